package cluster

import (
	_ "github.com/duckdb/duckdb-go/v2"

	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"duckgate/batcher"
	"duckgate/cluster/clustertest"
	"duckgate/tenantdb"
)

// testNode is a node with its batcher and databases in dir.
type testNode struct {
	t    *testing.T
	dir  string
	conn *Conn
	node *Node
	pool *tenantdb.Pool
	b    *batcher.Batcher
	done bool
}

func startNode(t *testing.T, urls []string, name, dir string) *testNode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := Connect(ctx, Config{URLs: urls, Node: name, Partitions: 4, LeaseTTL: 2 * time.Second, SnapshotInterval: time.Hour, MaxBytes: 64 << 20}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	node := New(conn, nil, zap.NewNop())
	pool, err := tenantdb.New(tenantdb.Config{Dir: filepath.Join(dir, "tenants")}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	b, err := batcher.New(batcher.Config{FlushInterval: 50 * time.Millisecond, Log: node}, pool, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if err := node.Start(b, pool); err != nil {
		t.Fatal(err)
	}
	tn := &testNode{t: t, dir: dir, conn: conn, node: node, pool: pool, b: b}
	t.Cleanup(tn.close)
	return tn
}

// close stops the node cleanly: partitions given back, buffers committed.
func (tn *testNode) close() {
	if tn.done {
		return
	}
	tn.done = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tn.node.Close(ctx); err != nil {
		tn.t.Error(err)
	}
	if err := tn.b.Close(ctx); err != nil {
		tn.t.Error(err)
	}
	if err := tn.pool.Close(); err != nil {
		tn.t.Error(err)
	}
	tn.conn.Close()
}

// die stops the node as a crash would for the cluster: its NATS
// connection drops at once, its leases are left to expire, and its data
// directory is lost.
func (tn *testNode) die() {
	tn.done = true
	tn.conn.NC.Close()
	tn.node.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = tn.b.Close(ctx)
	_ = tn.pool.Close()
	if err := os.RemoveAll(tn.dir); err != nil {
		tn.t.Fatal(err)
	}
}

// waitOwns waits until the node writes partition p.
func (tn *testNode) waitOwns(p int) {
	tn.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !tn.node.parts[p].isOwned() {
		if time.Now().After(deadline) {
			tn.t.Fatalf("node %s never got partition %d", tn.node.cfg.Node, p)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (tn *testNode) insert(tenant string, from, to int, key string) {
	tn.t.Helper()
	for i := from; i <= to; i++ {
		bl := batcher.NewBuilder()
		bl.AddString([]byte("id"), []byte(fmt.Sprintf("id%03d", i)))
		bl.AddString([]byte("at"), []byte("2026-12-01T10:00:00Z"))
		bl.AddNumber([]byte("big"), []byte("170141183460469231731687303715884105727"))
		bl.AddJSON([]byte("props"), []byte(fmt.Sprintf(`{"n":%d}`, i)))
		bl.EndRow()
		k := ""
		if key != "" {
			k = fmt.Sprintf("%s-%d", key, i)
		}
		if _, err := tn.b.Submit(batcher.Request{Tenant: tenant, Table: "events", Rows: bl.Rows(), IdempotencyKey: k}); err != nil {
			tn.t.Fatal(err)
		}
	}
}

// storedIDs reads the ids of tenant's events from the file in dir, each
// with its count.
func storedIDs(t *testing.T, dir, tenant string) (ids int, dups int, applied uint64) {
	t.Helper()
	db, err := sql.Open("duckdb", filepath.Join(dir, "tenants", tenant+".duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRow(`SELECT count(DISTINCT id), count(*) - count(DISTINCT id) FROM events`).Scan(&ids, &dups); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT seq FROM _duckgate_applied WHERE tbl = 'events'`).Scan(&applied); err != nil {
		t.Fatal(err)
	}
	// The snapshot keeps the types: TIMESTAMPTZ, HUGEINT, JSON.
	var types string
	if err := db.QueryRow(`SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_name = 'events'`).Scan(&types); err != nil {
		t.Fatal(err)
	}
	if want := "id VARCHAR, at TIMESTAMP WITH TIME ZONE, big HUGEINT, props JSON"; types != want {
		t.Fatalf("columns after the restore: %s; want %s", types, want)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM events WHERE props->>'n' = substr(id, 3)::INT::VARCHAR AND big = 170141183460469231731687303715884105727`).Scan(&n); err != nil || n != ids {
		t.Fatalf("%d of %d rows with their values (%v)", n, ids, err)
	}
	return ids, dups, applied
}

// A tenant's database is rebuilt on a node with an empty data directory
// from the last snapshot plus the stream after it: the owner's disk is
// not needed. The snapshot round purged the stream up to what the
// snapshot holds, and an idempotency key sent twice is stored once.
func TestSnapshotPlusReplayIntoFreshDirectory(t *testing.T) {
	nats := clustertest.Start(t, 1)
	const tenant = "t_snapshot"
	p := Partition(tenant, 4)
	a := startNode(t, nats.URLs(), "a", t.TempDir())
	a.waitOwns(p)
	a.insert(tenant, 1, 50, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.b.Flush(ctx, tenant); err != nil {
		t.Fatal(err)
	}
	if err := a.node.snapshotNow(ctx, p); err != nil {
		t.Fatal(err)
	}
	e, err := a.conn.manifests.Get(ctx, leaseKey(p))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(e.Value()), `"seq":50`) || !strings.Contains(string(e.Value()), tenant) {
		t.Fatalf("manifest after the snapshot: %s; want seq 50 and the tenant", e.Value())
	}
	if _, err := a.conn.stream.GetMsg(ctx, 50); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Fatalf("message 50 still in the stream after the snapshot holding it (err %v)", err)
	}

	// 50 more, acknowledged by the log but not committed by a.
	a.insert(tenant, 51, 100, "k")
	a.insert(tenant, 99, 100, "k") // retries: deduplicated by Nats-Msg-Id
	a.die()

	b := startNode(t, nats.URLs(), "b", t.TempDir())
	b.waitOwns(p)
	if err := b.b.Flush(ctx, tenant); err != nil {
		t.Fatal(err)
	}
	dir := b.dir
	b.close()
	ids, dups, applied := storedIDs(t, dir, tenant)
	if ids != 100 || dups != 0 || applied != 100 {
		t.Fatalf("rebuilt database: %d distinct ids, %d duplicates, applied position %d; want 100, 0, 100", ids, dups, applied)
	}
}

// A writer that lost its partition cannot record a snapshot: the manifest
// is written with compare-and-set on the revision the writer last saw,
// which the new writer's take-over changed; the stale writer stops
// writing the partition.
func TestStaleWriterCannotWriteManifest(t *testing.T) {
	nats := clustertest.Start(t, 1)
	const tenant = "t_stale"
	p := Partition(tenant, 4)
	a := startNode(t, nats.URLs(), "a", t.TempDir())
	a.waitOwns(p)
	a.insert(tenant, 1, 10, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.b.Flush(ctx, tenant); err != nil {
		t.Fatal(err)
	}
	// Another writer takes the manifest over (as restore does), while a
	// still believes it holds the partition.
	e, err := a.conn.manifests.Get(ctx, leaseKey(p))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.conn.manifests.Update(ctx, leaseKey(p), e.Value(), e.Revision()); err != nil {
		t.Fatal(err)
	}
	before, _ := a.conn.manifests.Get(ctx, leaseKey(p))
	if err := a.node.snapshotNow(ctx, p); !errors.Is(err, ErrStale) {
		t.Fatalf("snapshot round of a stale writer: %v; want ErrStale", err)
	}
	after, _ := a.conn.manifests.Get(ctx, leaseKey(p))
	if after.Revision() != before.Revision() || string(after.Value()) != string(before.Value()) {
		t.Fatalf("the stale writer changed the manifest: %s", after.Value())
	}
	// It gives the partition up (and may take it back at once by
	// compare-and-set on the lease in its name, as a new tenure).
	pt := a.node.parts[p]
	pt.mu.Lock()
	tenure := pt.tenure
	pt.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		pt.mu.Lock()
		owned, now := pt.owned, pt.tenure
		pt.mu.Unlock()
		if !owned || now != tenure {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the stale writer still writes the partition")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A full stream refuses an insert at once with ErrLogUnavailable (503,
// retry), and nothing acknowledged before is dropped to make room.
func TestFullStreamRefuses(t *testing.T) {
	nats := clustertest.Start(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := Connect(ctx, Config{URLs: nats.URLs(), Node: "a", Partitions: 4, MaxBytes: 64 << 10}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	node := New(conn, nil, zap.NewNop())
	pool, err := tenantdb.New(tenantdb.Config{Dir: t.TempDir()}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	b, err := batcher.New(batcher.Config{Log: node}, pool, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	big := strings.Repeat("x", 4<<10)
	accepted := 0
	for i := range 100 {
		bl := batcher.NewBuilder()
		bl.AddString([]byte("s"), []byte(big))
		bl.EndRow()
		start := time.Now()
		_, err := b.Submit(batcher.Request{Tenant: fmt.Sprintf("t%d", i), Table: "events", Rows: bl.Rows()})
		if err == nil {
			accepted++
			continue
		}
		if !errors.Is(err, batcher.ErrLogUnavailable) {
			t.Fatalf("insert into a full stream: %v; want ErrLogUnavailable", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("the refusal took %s: a full stream must answer at once, not after retries", d)
		}
		break
	}
	if accepted == 0 || accepted >= 100 {
		t.Fatalf("%d inserts of 4 KiB accepted by a 64 KiB stream; want some, then a refusal", accepted)
	}
	info, err := conn.stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != uint64(accepted) {
		t.Fatalf("stream holds %d messages; want the %d accepted", info.State.Msgs, accepted)
	}
}

// A node started with another partition count than the stream was made
// with is refused at once: it would send tenants' inserts elsewhere.
func TestPartitionCountFixed(t *testing.T) {
	nats := clustertest.Start(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := Connect(ctx, Config{URLs: nats.URLs(), Node: "a", Partitions: 4, MaxBytes: 1 << 20}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	start := time.Now()
	_, err = Connect(ctx, Config{URLs: nats.URLs(), Node: "b", Partitions: 8, MaxBytes: 1 << 20}, zap.NewNop())
	if err == nil || !strings.Contains(err.Error(), "created with 4 partitions, not 8") {
		t.Fatalf("second node with 8 partitions: %v; want a refusal naming both counts", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("the refusal was retried: it cannot succeed")
	}
	c, err := Connect(ctx, Config{URLs: nats.URLs(), Node: "c", Partitions: 4, MaxBytes: 1 << 20}, zap.NewNop())
	if err != nil {
		t.Fatalf("a node with the same count: %v", err)
	}
	c.Close()
}
