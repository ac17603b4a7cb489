package share

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"duckgate/cluster/kv"
	"duckgate/cluster/kv/kvtest"
	"duckgate/query"
	"duckgate/tenantdb"
)

// noFlush is the query engine's flusher when nothing is buffered.
type noFlush struct{}

func (noFlush) Flush(context.Context, string) error { return nil }

// sharedNode is one node's share service on the cluster's shared links,
// with its own connection, data directory and DuckDB databases.
type sharedNode struct {
	js     jetstream.JetStream
	stores *kv.Stores
	svc    *Service
}

func startSharedNode(t *testing.T, url, dir string, log *zap.Logger) *sharedNode {
	t.Helper()
	if log == nil {
		log = zap.NewNop()
	}
	_, js := kvtest.Connect(t, url)
	st, err := kv.Open(context.Background(), js, kv.Config{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	pool, err := tenantdb.New(tenantdb.Config{Dir: filepath.Join(dir, "tenants")}, log)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := Open(Config{Shared: st.Shares, JanitorInterval: time.Hour}, query.New(query.Config{}, pool, noFlush{}, log), log)
	if err != nil {
		t.Fatal(err)
	}
	n := &sharedNode{js: js, stores: st, svc: svc}
	t.Cleanup(func() {
		n.close(t)
		_ = pool.Close()
	})
	return n
}

// close stops the node as cmd does: the service (which stores the
// download counts), then the buckets.
func (n *sharedNode) close(t *testing.T) {
	t.Helper()
	if err := n.svc.Close(); err != nil {
		t.Error(err)
	}
	if err := n.stores.Close(); err != nil {
		t.Error(err)
	}
}

func (n *sharedNode) downloads(tenantID string) int64 {
	ls := n.svc.list(tenantID)
	if len(ls) != 1 {
		return -1
	}
	return ls[0].Downloads
}

const sharedTenant = "t_0123456789abcdef"

// A link made on one node resolves on another within a second; downloads
// counted on both add up; a revocation on one stops it on the other; the
// links come back from JetStream when a node starts again.
func TestSharedLinkAcrossNodes(t *testing.T) {
	srv := kvtest.RunServer(t, t.TempDir())
	a := startSharedNode(t, srv.ClientURL(), t.TempDir(), nil)
	b := startSharedNode(t, srv.ClientURL(), t.TempDir(), nil)

	c, err := a.svc.create(context.Background(), sharedTenant, createRequest{SQL: "select 42 as answer", Name: "the answer"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.svc.resolve(c.ID); err != nil {
		t.Fatalf("the link does not resolve on the node that made it: %v", err)
	}
	kvtest.Eventually(t, time.Second, "a link made on A resolves on B", func() bool {
		l, err := b.svc.resolve(c.ID)
		return err == nil && l.sql == "select 42 as answer" && l.name == "the answer"
	})
	bucket, err := a.js.KeyValue(context.Background(), kv.SharesBucket)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := bucket.Keys(context.Background())
	for _, k := range keys {
		e, _ := bucket.Get(context.Background(), k)
		if strings.Contains(k, c.ID) || strings.Contains(string(e.Value()), c.ID) {
			t.Fatal("the bucket holds a link id in clear")
		}
	}

	la, _ := a.svc.resolve(c.ID)
	lb, _ := b.svc.resolve(c.ID)
	a.svc.noteDownload(la)
	b.svc.noteDownload(lb)
	b.svc.noteDownload(lb)
	for _, n := range []*sharedNode{a, b} {
		if err := n.svc.sweep(); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*sharedNode{a, b} {
		kvtest.Eventually(t, time.Second, "downloads of both nodes add up", func() bool { return n.downloads(sharedTenant) == 3 })
	}

	if _, err := b.svc.revoke(sharedTenant, c.LinkID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.resolve(c.ID); !errors.Is(err, ErrGone) {
		t.Fatalf("resolve on the revoking node: %v, want ErrGone", err)
	}
	kvtest.Eventually(t, time.Second, "a link revoked on B is gone on A", func() bool {
		_, err := a.svc.resolve(c.ID)
		return errors.Is(err, ErrGone)
	})

	a.close(t)
	a = startSharedNode(t, srv.ClientURL(), t.TempDir(), nil)
	if _, err := a.svc.resolve(c.ID); !errors.Is(err, ErrGone) {
		t.Fatalf("the revoked link after a restart: %v, want ErrGone", err)
	}
	if got := a.downloads(sharedTenant); got != 3 {
		t.Fatalf("downloads after a restart: %d, want 3", got)
	}

	if err := a.svc.DropTenant(sharedTenant); err != nil {
		t.Fatal(err)
	}
	kvtest.Eventually(t, time.Second, "a deleted tenant's links are gone on B", func() bool { return len(b.svc.list(sharedTenant)) == 0 })
}

// A snapshot's file is on the node that made it: revoked on another node,
// the record keeps the file's name until the owner's sweep deletes the
// file, so none is left behind.
func TestSharedSnapshotDeletedByItsNode(t *testing.T) {
	srv := kvtest.RunServer(t, t.TempDir())
	a := startSharedNode(t, srv.ClientURL(), t.TempDir(), nil)
	b := startSharedNode(t, srv.ClientURL(), t.TempDir(), nil)
	c, err := a.svc.create(context.Background(), sharedTenant, createRequest{SQL: "select 42 as answer", Snapshot: true})
	if err != nil {
		t.Fatal(err)
	}
	la, err := a.svc.resolve(c.ID)
	if err != nil {
		t.Fatal(err)
	}
	file := a.svc.snapshotPath(la)
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("snapshot file: %v", err)
	}
	kvtest.Eventually(t, time.Second, "the snapshot link on B", func() bool { _, err := b.svc.resolve(c.ID); return err == nil })
	if _, err := b.svc.revoke(sharedTenant, c.LinkID); err != nil {
		t.Fatal(err)
	}
	kvtest.Eventually(t, time.Second, "the revocation on A", func() bool { _, err := a.svc.resolve(c.ID); return errors.Is(err, ErrGone) })
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("the snapshot went before its node swept: %v", err)
	}
	if err := b.svc.sweep(); err != nil {
		t.Fatal(err)
	}
	if err := a.svc.sweep(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the owner's sweep left the snapshot: %v", err)
	}
	kvtest.Eventually(t, time.Second, "the file's name cleared on B", func() bool {
		l, _ := b.svc.byHashOf(c.ID)
		return l != nil && b.svc.snapshotPath(l) == ""
	})
}

// Garbage in the links' bucket is logged and skipped.
func TestSharedLinksSkipGarbage(t *testing.T) {
	srv := kvtest.RunServer(t, t.TempDir())
	a := startSharedNode(t, srv.ClientURL(), t.TempDir(), nil)
	c, err := a.svc.create(context.Background(), sharedTenant, createRequest{SQL: "select 1"})
	if err != nil {
		t.Fatal(err)
	}
	bucket, err := a.js.KeyValue(context.Background(), kv.SharesBucket)
	if err != nil {
		t.Fatal(err)
	}
	garbage := map[string]string{
		"not-a-hash":            `{}`,
		strings.Repeat("a", 64): `{"hash":"` + strings.Repeat("b", 64) + `","tenant":"t","sql":"select 1"}`,
		strings.Repeat("c", 64): `nonsense`,
	}
	for k, v := range garbage {
		if _, err := bucket.Put(context.Background(), k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	core, logs := observer.New(zapcore.WarnLevel)
	b := startSharedNode(t, srv.ClientURL(), t.TempDir(), zap.New(core))
	if _, err := b.svc.resolve(c.ID); err != nil {
		t.Fatalf("the good link did not load next to the garbage: %v", err)
	}
	if got := logs.FilterMessage("skipped a malformed record of the shared state").Len(); got != len(garbage) {
		t.Fatalf("%d records skipped, want %d", got, len(garbage))
	}
}

// FuzzApplySharedRecord feeds hostile link records to the shared links'
// apply: no panic; a refused record leaves the links as they were; a taken
// one is keyed by its own hash.
func FuzzApplySharedRecord(f *testing.F) {
	h := strings.Repeat("ab", 32)
	f.Add(h, []byte(`{"hash":"`+h+`","tenant":"t_0123456789abcdef","sql":"select 1","created":"2026-01-01T00:00:00Z","expires":"2026-02-01T00:00:00Z","downloads":3}`))
	f.Add(h, []byte(`{"hash":"`+h+`","tenant":"t","sql":"select 1","revoked":"2026-01-01T00:00:00Z","file":"share-x.parquet"}`))
	f.Add(h, []byte(`{"hash":"`+strings.Repeat("cd", 32)+`","tenant":"t","sql":"select 1"}`))
	f.Add("zz", []byte(`{}`))
	f.Add(h, []byte(nil))
	f.Add(h, []byte(`{"hash":"`+h+`","params":[1,`))
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		keep := [32]byte{1}
		s := &Service{cfg: Config{Now: time.Now}, byHash: map[[32]byte]*link{keep: {hash: keep, tenant: "t"}}}
		err := s.apply(key, value)
		if err != nil {
			if len(s.byHash) != 1 || s.byHash[keep] == nil {
				t.Fatal("a refused record changed the links")
			}
			return
		}
		for hash, l := range s.byHash {
			if l.hash != hash || l.tenant == "" {
				t.Fatalf("link %x stored under %x or without a tenant", l.hash, hash)
			}
		}
	})
}

// byHashOf is the link of id, live or not.
func (s *Service) byHashOf(id string) (*link, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.byHash[sha256.Sum256([]byte(id))]
	return l, ok
}
