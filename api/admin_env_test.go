package api

import (
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"duckgate/batcher"
	"duckgate/query"
	"duckgate/share"
	"duckgate/tenant"
	"duckgate/tenantdb"
)

// adminEnvConfig is what the admin tests vary beyond envConfig: the plans,
// the pool's cap and whether queries are served.
type adminEnvConfig struct {
	plans   map[string]tenant.Plan
	maxOpen int
	noQuery bool
	ingest  func(*serverConfig)
	// cacheBytes turns the query result cache on (query.CacheConfig.MaxBytes).
	cacheBytes int64
	// singleThreadBelow is tenantdb.Config.SingleThreadBelow.
	singleThreadBelow int64
}

// newAdminEnv is newEnv wired as cmd/duckgate serve wires it: the pool and
// the query engine in ingest.Config.
func newAdminEnv(t *testing.T, ac adminEnvConfig) *env {
	t.Helper()
	return startAdminEnv(t, t.TempDir(), ac)
}

func startAdminEnv(t *testing.T, dir string, ac adminEnvConfig) *env {
	t.Helper()
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	tenants, err := tenant.Open(tenant.Config{Path: filepath.Join(dir, "meta.json"), Plans: ac.plans})
	if err != nil {
		t.Fatal(err)
	}
	if !tenants.HasAdminKey() {
		if err := tenants.SetAdminKey(testAdminKey); err != nil {
			t.Fatal(err)
		}
	}
	pool, err := tenantdb.New(tenantdb.Config{Dir: filepath.Join(dir, "tenants"), MaxOpen: ac.maxOpen, SingleThreadBelow: ac.singleThreadBelow,
		LimitsOf: func(id string) tenantdb.Limits {
			p := tenants.PlanOf(id)
			return tenantdb.Limits{MemoryLimit: p.MemoryLimit, Threads: p.Threads}
		}}, log)
	if err != nil {
		t.Fatal(err)
	}
	b, err := batcher.New(batcher.Config{FlushInterval: 50 * time.Millisecond}, pool, log)
	if err != nil {
		t.Fatal(err)
	}
	ic := serverConfig{Tenants: tenants, Batcher: b, Pool: pool, QuotaCheckInterval: time.Millisecond}
	if !ac.noQuery {
		ic.Query = query.New(query.Config{Cache: query.CacheConfig{MaxBytes: ac.cacheBytes}, Versions: b}, pool, b, log)
	}
	var sh *share.Service
	if !ac.noQuery {
		sh = startShare(t, dir, share.Config{}, pool, b, log, &ic)
	}
	if ac.ingest != nil {
		ac.ingest(&ic)
	}
	srv := ic.build(t, log)
	srv.SetReady()
	ln := fasthttputil.NewInmemoryListener()
	hs := srv.HTTPServer()
	go func() { _ = hs.Serve(ln) }()
	e := &env{t: t, dir: dir, tenants: tenants, pool: pool, batcher: b, server: srv, ln: ln,
		client: &fasthttp.Client{
			Dial:                func(string) (net.Conn, error) { return ln.Dial() },
			MaxResponseBodySize: 1 << 30,
			MaxConnsPerHost:     1024,
		}}
	e.share = sh
	t.Cleanup(e.stop)
	return e
}

// admin sends an admin API request with the admin key.
func (e *env) admin(method, uri, body string) response {
	e.t.Helper()
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	return e.do(method, uri, b, "X-API-KEY", testAdminKey)
}
