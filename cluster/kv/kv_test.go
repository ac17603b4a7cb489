package kv_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"duckgate/cluster/kv"
	"duckgate/cluster/kv/kvtest"
	"duckgate/tenant"
	"duckgate/webhook"
)

// spread is the promise: a change on one node is in effect on the others
// within a second.
const spread = time.Second

// hookKey is the webhook sealing key the test cluster's nodes share.
var hookKey = bytes.Repeat([]byte{7}, 32)

const hookSecret = "gh-8d0a2f1c9b7e4a63b5f0c2d9e1a7b3c4"

// node is one duckgate node's shared state: its own connection, buckets,
// tenant registry and webhook store.
type node struct {
	js      jetstream.JetStream
	stores  *kv.Stores
	tenants *tenant.Store
	hooks   *webhook.Store
}

type nodeConfig struct {
	replicas int
	log      *zap.Logger
	hookKey  []byte
	path     string // a single node's registry file, to seed an empty cluster
	plans    map[string]tenant.Plan
}

func startNode(t *testing.T, url string, nc nodeConfig) *node {
	t.Helper()
	n, err := tryNode(t, url, nc)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func tryNode(t *testing.T, url string, nc nodeConfig) (*node, error) {
	t.Helper()
	if nc.log == nil {
		nc.log = zap.NewNop()
	}
	if nc.hookKey == nil {
		nc.hookKey = hookKey
	}
	_, js := kvtest.Connect(t, url)
	st, err := kv.Open(context.Background(), js, kv.Config{Replicas: nc.replicas, Log: nc.log})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = st.Close() })
	n := &node{js: js, stores: st}
	if n.tenants, err = tenant.Open(tenant.Config{Path: nc.path, Plans: nc.plans, Shared: st.Tenants}); err != nil {
		return nil, err
	}
	if n.hooks, err = webhook.Open(webhook.StoreConfig{Dir: t.TempDir(), Key: nc.hookKey, Shared: st.Webhooks}); err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = n.hooks.Close() })
	return n, nil
}

// close stops the node as cmd does: the stores, then the buckets.
func (n *node) close(t *testing.T) {
	t.Helper()
	if err := n.tenants.Save(); err != nil {
		t.Fatal(err)
	}
	if err := n.hooks.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.stores.Close(); err != nil {
		t.Fatal(err)
	}
}

func authenticates(s *tenant.Store, key string) bool {
	_, _, err := s.Authenticate([]byte(key))
	return err == nil
}

// values returns every value stored in a bucket.
func values(t *testing.T, js jetstream.JetStream, bucket string) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	b, err := js.KeyValue(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := b.Keys(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, k := range keys {
		e, err := b.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		out[k] = e.Value()
	}
	return out
}

func TestKeysMadeOrRevokedOnOneNodeActOnTheOther(t *testing.T) {
	srv := kvtest.RunServer(t, t.TempDir())
	a, b := startNode(t, srv.ClientURL(), nodeConfig{}), startNode(t, srv.ClientURL(), nodeConfig{})

	ten, _, key, err := a.tenants.CreateTenant("acme", "pro")
	if err != nil {
		t.Fatal(err)
	}
	if !authenticates(a.tenants, key) {
		t.Fatal("the key does not work on the node that made it")
	}
	kvtest.Eventually(t, spread, "a tenant's key made on A works on B", func() bool { return authenticates(b.tenants, key) })
	if got, _, _ := b.tenants.Authenticate([]byte(key)); got.Plan != "pro" || got.Name != "acme" {
		t.Fatalf("B sees tenant %+v", got)
	}
	if _, _, _, err := b.tenants.CreateTenant("acme", ""); !errors.Is(err, tenant.ErrExists) {
		t.Fatalf("same name on B: %v, want ErrExists", err)
	}

	ik, ikey, err := b.tenants.CreateKey(ten.ID, tenant.ScopeIngest)
	if err != nil {
		t.Fatal(err)
	}
	kvtest.Eventually(t, spread, "a key made on B works on A", func() bool { return authenticates(a.tenants, ikey) })

	if err := a.tenants.RevokeKey(ten.ID, ik.ID); err != nil {
		t.Fatal(err)
	}
	if authenticates(a.tenants, ikey) {
		t.Fatal("a revoked key still works on the node that revoked it")
	}
	kvtest.Eventually(t, spread, "a key revoked on A stops on B", func() bool { return !authenticates(b.tenants, ikey) })
	if !authenticates(b.tenants, key) {
		t.Fatal("revoking one key stopped another")
	}
	if err := b.tenants.RevokeKey(ten.ID, ik.ID); !errors.Is(err, tenant.ErrNotFound) {
		t.Fatalf("revoke twice: %v, want ErrNotFound", err)
	}

	if _, err := b.tenants.SetStatus(ten.ID, tenant.StatusSuspended); err != nil {
		t.Fatal(err)
	}
	kvtest.Eventually(t, spread, "a suspension on B reaches A", func() bool {
		got, err := a.tenants.Get(ten.ID)
		return err == nil && got.Status == tenant.StatusSuspended
	})
	if err := a.tenants.SetAdminKey("the-admin-key"); err != nil {
		t.Fatal(err)
	}
	kvtest.Eventually(t, spread, "an admin key set on A works on B", func() bool { return b.tenants.IsAdmin([]byte("the-admin-key")) })

	for k, v := range values(t, a.js, kv.TenantsBucket) {
		for _, secret := range []string{key, ikey, "the-admin-key"} {
			if strings.Contains(string(v), secret) {
				t.Fatalf("record %s holds a key in clear", k)
			}
		}
	}

	if err := b.tenants.Delete(ten.ID); err != nil {
		t.Fatal(err)
	}
	kvtest.Eventually(t, spread, "a tenant deleted on B loses its keys on A", func() bool { return !authenticates(a.tenants, key) })
	if _, err := a.tenants.Get(ten.ID); !errors.Is(err, tenant.ErrNotFound) {
		t.Fatalf("deleted tenant on A: %v", err)
	}
}

func TestWebhookEndpointMadeOnOneNodeTakesDeliveriesOnTheOther(t *testing.T) {
	srv := kvtest.RunServer(t, t.TempDir())
	a, b := startNode(t, srv.ClientURL(), nodeConfig{}), startNode(t, srv.ClientURL(), nodeConfig{})

	e, err := a.hooks.Create("t_0123456789abcdef", webhook.GitHub, "events", hookSecret)
	if err != nil {
		t.Fatal(err)
	}
	kvtest.Eventually(t, spread, "an endpoint made on A opens on B", func() bool {
		got, secret, err := b.hooks.Lookup(e.ID)
		return err == nil && secret == hookSecret && got.Table == "events" && got.TenantID == e.TenantID
	})
	for k, v := range values(t, a.js, kv.WebhooksBucket) {
		if strings.Contains(string(v), hookSecret) {
			t.Fatalf("record %s holds the secret in clear", k)
		}
	}
	if err := b.hooks.Delete("t_ffffffffffffffff", e.ID); !errors.Is(err, webhook.ErrNotFound) {
		t.Fatalf("another tenant deletes the endpoint: %v", err)
	}
	if err := b.hooks.Delete(e.TenantID, e.ID); err != nil {
		t.Fatal(err)
	}
	kvtest.Eventually(t, spread, "an endpoint deleted on B is gone on A", func() bool {
		_, _, err := a.hooks.Lookup(e.ID)
		return errors.Is(err, webhook.ErrNotFound)
	})

	// A node sealing with another key refuses to start, and says why.
	_, err = tryNode(t, srv.ClientURL(), nodeConfig{hookKey: bytes.Repeat([]byte{8}, 32)})
	if !errors.Is(err, webhook.ErrKey) || !strings.Contains(err.Error(), "same key") {
		t.Fatalf("a node with another webhook key: %v, want ErrKey", err)
	}
}

// Two nodes changing the same tenant at once lose none of the changes:
// every change is a compare-and-set on the tenant's record.
func TestConcurrentChangesOfOneTenantLoseNothing(t *testing.T) {
	srv := kvtest.RunServer(t, t.TempDir())
	a, b := startNode(t, srv.ClientURL(), nodeConfig{}), startNode(t, srv.ClientURL(), nodeConfig{})
	ten, _, _, err := a.tenants.CreateTenant("acme", "")
	if err != nil {
		t.Fatal(err)
	}
	kvtest.Eventually(t, spread, "the tenant reaches B", func() bool { _, err := b.tenants.Get(ten.ID); return err == nil })

	const perNode = 15
	var mu sync.Mutex
	var keys []string
	var wg sync.WaitGroup
	errs := make(chan error, 2*perNode+2)
	for _, n := range []*node{a, b} {
		for range perNode {
			wg.Go(func() {
				_, key, err := n.tenants.CreateKey(ten.ID, tenant.ScopeQuery)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				keys = append(keys, key)
				mu.Unlock()
			})
		}
	}
	wg.Go(func() {
		if _, err := a.tenants.SetPlan(ten.ID, "pro"); err != nil {
			errs <- err
		}
	})
	wg.Go(func() {
		if _, err := b.tenants.SetAllowedOrigins(ten.ID, []string{"https://app.example"}); err != nil {
			errs <- err
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, n := range []*node{a, b} {
		kvtest.Eventually(t, spread, "every change on both nodes", func() bool {
			ks, err := n.tenants.Keys(ten.ID)
			got, _ := n.tenants.Get(ten.ID)
			return err == nil && len(ks) == 1+2*perNode && got.Plan == "pro" && len(got.AllowedOrigins) == 1
		})
		for _, key := range keys {
			if !authenticates(n.tenants, key) {
				t.Fatal("a key made concurrently does not work")
			}
		}
	}
}

// Stopped and started again, NATS server included, a node has the state
// back from JetStream: keys, revocations, the admin key, last uses and
// webhook endpoints.
func TestReopenLoadsTheStateFromJetStream(t *testing.T) {
	dir := t.TempDir()
	srv := kvtest.RunServer(t, dir)
	a := startNode(t, srv.ClientURL(), nodeConfig{})
	ten, _, key, err := a.tenants.CreateTenant("acme", "free")
	if err != nil {
		t.Fatal(err)
	}
	gone, gkey, err := a.tenants.CreateKey(ten.ID, tenant.ScopeIngest)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.tenants.RevokeKey(ten.ID, gone.ID); err != nil {
		t.Fatal(err)
	}
	if err := a.tenants.SetAdminKey("the-admin-key"); err != nil {
		t.Fatal(err)
	}
	e, err := a.hooks.Create(ten.ID, webhook.Shopify, "orders", "shpss_0123456789")
	if err != nil {
		t.Fatal(err)
	}
	if !authenticates(a.tenants, key) { // a last use, saved at close
		t.Fatal("key does not work")
	}
	a.close(t)
	srv.Shutdown()
	srv.WaitForShutdown()

	srv = kvtest.RunServer(t, dir)
	a = startNode(t, srv.ClientURL(), nodeConfig{})
	got, k, err := a.tenants.Authenticate([]byte(key))
	if err != nil || got.ID != ten.ID || got.Plan != "free" {
		t.Fatalf("after reopening: %+v, %v", got, err)
	}
	if authenticates(a.tenants, gkey) {
		t.Fatal("a revoked key works again after reopening")
	}
	if !a.tenants.IsAdmin([]byte("the-admin-key")) {
		t.Fatal("the admin key is lost")
	}
	ks, _ := a.tenants.Keys(ten.ID)
	if len(ks) != 1 || ks[0].ID != k.ID || ks[0].LastUsed.IsZero() {
		t.Fatalf("keys after reopening: %+v", ks)
	}
	if _, secret, err := a.hooks.Lookup(e.ID); err != nil || secret != "shpss_0123456789" {
		t.Fatalf("endpoint after reopening: %q, %v", secret, err)
	}
}

// Garbage in the buckets (someone's `nats kv put`) is skipped with a log
// line, when a node loads and while it runs; the rest loads and works.
func TestMalformedRecordsAreSkippedAndLogged(t *testing.T) {
	srv := kvtest.RunServer(t, t.TempDir())
	a := startNode(t, srv.ClientURL(), nodeConfig{})
	ten, _, key, err := a.tenants.CreateTenant("acme", "")
	if err != nil {
		t.Fatal(err)
	}
	e, err := a.hooks.Create(ten.ID, webhook.GitHub, "events", hookSecret)
	if err != nil {
		t.Fatal(err)
	}
	put := func(bucket, key, value string) {
		t.Helper()
		b, err := a.js.KeyValue(context.Background(), bucket)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Put(context.Background(), key, []byte(value)); err != nil {
			t.Fatal(err)
		}
	}
	tenantRecord := func(id, hash string) string {
		return fmt.Sprintf(`{"tenant_id":%q,"name":"x","plan":"default","status":"active","keys":[{"key_id":"k_1","tenant_id":%q,"scope":"full","hash":%q}]}`, id, id, hash)
	}
	garbage := [][3]string{
		{kv.TenantsBucket, "t_0000000000000000", "{not json"},
		{kv.TenantsBucket, "t_1111111111111111", tenantRecord("t_1111111111111111", "not-a-hash")},
		{kv.TenantsBucket, "t_2222222222222222", tenantRecord("t_3333333333333333", strings.Repeat("ab", 32))},
		{kv.TenantsBucket, "admin", `{"admin_hash":"xyz"}`},
		{kv.TenantsBucket, "whatever", `{}`},
		{kv.WebhooksBucket, "wh_garbage", `[1,2]`},
		{kv.WebhooksBucket, "wh_forged", `{"id":"wh_forged","tenant_id":"t_0123456789abcdef","provider":"github","table":"x","sealed_secret":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`},
	}
	for _, g := range garbage {
		put(g[0], g[1], g[2])
	}

	core, logs := observer.New(zapcore.WarnLevel)
	b := startNode(t, srv.ClientURL(), nodeConfig{log: zap.New(core)})
	if !authenticates(b.tenants, key) {
		t.Fatal("the good tenant did not load next to the garbage")
	}
	if _, secret, err := b.hooks.Lookup(e.ID); err != nil || secret != hookSecret {
		t.Fatalf("the good endpoint did not load next to the garbage: %v", err)
	}
	if got := len(b.tenants.List()); got != 1 {
		t.Fatalf("%d tenants loaded, want 1", got)
	}
	if b.tenants.HasAdminKey() {
		t.Fatal("a malformed admin record was taken")
	}
	skipped := func() int { return logs.FilterMessage("skipped a malformed record of the shared state").Len() }
	if got := skipped(); got != len(garbage) {
		t.Fatalf("%d malformed records logged, want %d: %v", got, len(garbage), logs.All())
	}
	for _, entry := range logs.All() {
		if strings.Contains(fmt.Sprint(entry.ContextMap()), hookSecret) {
			t.Fatal("a log line holds the secret")
		}
	}

	// Garbage arriving while the node runs: logged, and the node goes on
	// applying what comes after it.
	put(kv.TenantsBucket, ten.ID, "garbage")
	kvtest.Eventually(t, spread, "the live garbage logged", func() bool { return skipped() == len(garbage)+1 })
	if !authenticates(b.tenants, key) {
		t.Fatal("garbage over a good record removed it")
	}
	if err := a.tenants.SetAdminKey("after-the-garbage"); err != nil {
		t.Fatal(err)
	}
	kvtest.Eventually(t, spread, "a change after the garbage reaches B", func() bool { return b.tenants.IsAdmin([]byte("after-the-garbage")) })
	if _, err := a.tenants.SetPlan(ten.ID, "pro"); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Fatalf("changing a tenant whose record is garbage: %v, want an error naming it", err)
	}
}

// Three NATS servers, buckets with three replicas: the state reaches every
// node, and keeps working when one server is lost.
func TestThreeServerCluster(t *testing.T) {
	servers := kvtest.RunCluster(t, 3)
	a := startNode(t, servers[0].ClientURL(), nodeConfig{replicas: 3})
	b := startNode(t, servers[1].ClientURL(), nodeConfig{replicas: 3})
	st, err := a.js.KeyValue(context.Background(), kv.TenantsBucket)
	if err != nil {
		t.Fatal(err)
	}
	status, err := st.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r := status.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas; r != 3 {
		t.Fatalf("bucket replicas %d, want 3", r)
	}
	ten, _, key, err := a.tenants.CreateTenant("acme", "")
	if err != nil {
		t.Fatal(err)
	}
	kvtest.Eventually(t, spread, "a key made through server 1 works through server 2", func() bool { return authenticates(b.tenants, key) })

	servers[2].Shutdown()
	servers[2].WaitForShutdown()
	// Losing a server may cost the bucket's leader: the change is retried
	// through the election (seconds), then must spread as before.
	var ikey string
	t0 := time.Now()
	kvtest.Eventually(t, 30*time.Second, "a key made after losing a server", func() bool {
		_, ikey, err = b.tenants.CreateKey(ten.ID, tenant.ScopeIngest)
		if err != nil {
			t.Logf("%s %v", time.Since(t0), err)
		}
		return err == nil
	})
	t.Logf("created after %s", time.Since(t0))
	defer func() { t.Logf("spread after %s", time.Since(t0)) }()
	kvtest.Eventually(t, 30*time.Second, "a key made on B after losing a server works on A", func() bool { return authenticates(a.tenants, ikey) })
}

// A single node's registry file seeds an empty cluster, so its tenants and
// keys carry over; a cluster that has state ignores another node's file.
func TestSingleNodeRegistrySeedsAnEmptyCluster(t *testing.T) {
	dir := t.TempDir()
	single := func(name string) (string, string) {
		t.Helper()
		path := filepath.Join(dir, name+".json")
		s, err := tenant.Open(tenant.Config{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetAdminKey(name + "-admin"); err != nil {
			t.Fatal(err)
		}
		_, _, key, err := s.CreateTenant(name, "pro")
		if err != nil {
			t.Fatal(err)
		}
		return path, key
	}
	firstPath, firstKey := single("first")
	otherPath, otherKey := single("other")

	srv := kvtest.RunServer(t, t.TempDir())
	a := startNode(t, srv.ClientURL(), nodeConfig{path: firstPath})
	b := startNode(t, srv.ClientURL(), nodeConfig{path: otherPath})
	for _, n := range []*node{a, b} {
		got, _, err := n.tenants.Authenticate([]byte(firstKey))
		if err != nil || got.Name != "first" || got.Plan != "pro" {
			t.Fatalf("the seeded tenant: %+v, %v", got, err)
		}
		if !n.tenants.IsAdmin([]byte("first-admin")) || n.tenants.IsAdmin([]byte("other-admin")) {
			t.Fatal("the admin key is not the seeding node's")
		}
		if authenticates(n.tenants, otherKey) || len(n.tenants.List()) != 1 {
			t.Fatal("a second node's file was merged into a cluster that has state")
		}
	}
}

// Authenticate reads the maps only, shared or not: no allocation.
func TestAuthenticateOnSharedStateAllocatesNothing(t *testing.T) {
	srv := kvtest.RunServer(t, t.TempDir())
	a := startNode(t, srv.ClientURL(), nodeConfig{})
	_, _, key, err := a.tenants.CreateTenant("acme", "")
	if err != nil {
		t.Fatal(err)
	}
	k := []byte(key)
	if n := testing.AllocsPerRun(100, func() {
		if _, _, err := a.tenants.Authenticate(k); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("Authenticate allocates %v times", n)
	}
}

// BenchmarkKeySpread is the time from a key's creation on one node to its
// first successful authentication on another (one NATS server, loopback).
func BenchmarkKeySpread(b *testing.B) {
	srv := kvtest.RunServer(b, b.TempDir())
	na, nb := benchNode(b, srv.ClientURL()), benchNode(b, srv.ClientURL())
	ten, _, _, err := na.CreateTenant("acme", "")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		_, key, err := na.CreateKey(ten.ID, tenant.ScopeIngest)
		if err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(spread)
		for !authenticates(nb, key) {
			if time.Now().After(deadline) {
				b.Fatalf("not spread within %s", spread)
			}
		}
	}
}

func benchNode(b *testing.B, url string) *tenant.Store {
	b.Helper()
	_, js := kvtest.Connect(b, url)
	st, err := kv.Open(context.Background(), js, kv.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	s, err := tenant.Open(tenant.Config{Shared: st.Tenants})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// The first node's plan table is the cluster's: a node started with other
// plans uses the stored table (and says so), so that a tenant's plan means
// the same limits on every node.
func TestPlansAreTheFirstNodes(t *testing.T) {
	srv := kvtest.RunServer(t, t.TempDir())
	first := startNode(t, srv.ClientURL(), nodeConfig{})
	other := startNode(t, srv.ClientURL(), nodeConfig{plans: map[string]tenant.Plan{
		"default": {MemoryLimit: "1GB", Threads: 1},
		"gold":    {MemoryLimit: "8GB", Threads: 8},
	}})
	if first.tenants.PlansDiffer() || !other.tenants.PlansDiffer() {
		t.Fatalf("PlansDiffer: first %v, other %v; want false, true", first.tenants.PlansDiffer(), other.tenants.PlansDiffer())
	}
	want := strings.Join(first.tenants.PlanNames(), ",")
	if got := strings.Join(other.tenants.PlanNames(), ","); got != want {
		t.Fatalf("the other node's plans are %s, want the first node's %s", got, want)
	}
	if _, _, _, err := other.tenants.CreateTenant("acme", "gold"); err == nil {
		t.Fatal("the other node created a tenant on its own plan gold, which the cluster does not have")
	}
	tn, _, _, err := other.tenants.CreateTenant("acme", "free")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := other.tenants.PlanOf(tn.ID).MemoryLimit, tenant.DefaultPlans()["free"].MemoryLimit; got != want {
		t.Fatalf("free plan's memory limit on the other node = %q, want the first node's %q", got, want)
	}
}
