package api

import (
	"bufio"
	"context"
	"database/sql"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"duckgate/batcher"
	"duckgate/share"
	"duckgate/tenant"
	"duckgate/tenantdb"
	"duckgate/wal"
	"duckgate/webhook"
)

// env is a whole duckgate (registry, databases, batcher, HTTP server) in a
// temporary directory, served on an in-memory listener.
type env struct {
	t       *testing.T
	dir     string
	tenants *tenant.Store
	pool    *tenantdb.Pool
	batcher *batcher.Batcher
	wal     *wal.Log // nil with noWAL
	server  *Server
	hooks   *webhook.Store // nil unless the test wired webhooks
	share   *share.Service // nil unless envConfig.share is set
	ln      *fasthttputil.InmemoryListener
	client  *fasthttp.Client
	stopped bool
}

const testAdminKey = "test-admin-key"

// envConfig adjusts an env before it starts.
type envConfig struct {
	batcher batcher.Config
	ingest  serverConfig
	noWAL   bool             // -durability=none
	walFile wal.OpenFileFunc // fault injection for the log's files
	walSeg  int64            // segment size of the log; 0 for the default
	share   *share.Config    // set: wire a query engine and a share.Service (startShare)
}

func newEnv(t *testing.T, mods ...func(*envConfig)) *env {
	t.Helper()
	return startEnv(t, t.TempDir(), mods...)
}

// startEnv starts duckgate on dir (which may hold data of an earlier env).
func startEnv(t *testing.T, dir string, mods ...func(*envConfig)) *env {
	t.Helper()
	var cfg envConfig
	cfg.batcher.FlushInterval = 50 * time.Millisecond
	for _, m := range mods {
		m(&cfg)
	}
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	tenants, err := tenant.Open(tenant.Config{Path: filepath.Join(dir, "meta.json")})
	if err != nil {
		t.Fatal(err)
	}
	if !tenants.HasAdminKey() {
		if err := tenants.SetAdminKey(testAdminKey); err != nil {
			t.Fatal(err)
		}
	}
	set := metrics.NewSet()
	pool, err := tenantdb.New(tenantdb.Config{Dir: filepath.Join(dir, "tenants"), Metrics: set}, log)
	if err != nil {
		t.Fatal(err)
	}
	bc := cfg.batcher
	bc.Metrics = set
	var wl *wal.Log
	if !cfg.noWAL {
		if wl, err = wal.Open(wal.Config{Dir: filepath.Join(dir, "wal"), OpenFile: cfg.walFile, SegmentSize: cfg.walSeg, Metrics: set}, log); err != nil {
			t.Fatal(err)
		}
		bc.WAL, bc.StateDir = wl, filepath.Join(dir, "state")
	}
	b, err := batcher.New(bc, pool, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	ic := cfg.ingest
	ic.Tenants, ic.Batcher, ic.Pool, ic.Metrics = tenants, b, pool, set
	var sh *share.Service
	if cfg.share != nil {
		sh = startShare(t, dir, *cfg.share, pool, b, log, &ic)
	}
	srv := ic.build(t, log)
	srv.SetReady()
	ln := fasthttputil.NewInmemoryListener()
	hs := srv.HTTPServer()
	go func() { _ = hs.Serve(ln) }()
	e := &env{t: t, dir: dir, tenants: tenants, pool: pool, batcher: b, wal: wl, server: srv, ln: ln,
		client: &fasthttp.Client{
			Dial:                func(string) (net.Conn, error) { return ln.Dial() },
			MaxResponseBodySize: 1 << 30,
		}}
	e.share = sh
	e.hooks = ic.Webhooks
	t.Cleanup(e.stop)
	return e
}

// stop shuts the env down cleanly: flush, close databases.
func (e *env) stop() {
	if e.stopped {
		return
	}
	e.stopped = true
	_ = e.ln.Close()
	if e.share != nil {
		if err := e.share.Close(); err != nil {
			e.t.Errorf("share close: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.batcher.Close(ctx); err != nil {
		e.t.Errorf("batcher close: %v", err)
	}
	if err := e.pool.Close(); err != nil {
		e.t.Errorf("pool close: %v", err)
	}
	if e.wal != nil {
		if err := e.wal.Close(); err != nil {
			e.t.Errorf("wal close: %v", err)
		}
	}
}

// crash abandons the env as kill -9 would: nothing is flushed, the log and
// the databases are just closed under the writers.
func (e *env) crash() {
	e.stopped = true
	_ = e.ln.Close()
	_ = e.pool.Close()
	if e.wal != nil {
		_ = e.wal.Close()
	}
	// Stop the writer goroutines, which can reach nothing any more, so that
	// none logs after the test ends.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = e.batcher.Close(ctx)
}

// restart stops the env and starts a new one on the same directory.
func (e *env) restart(mods ...func(*envConfig)) *env {
	e.stop()
	return startEnv(e.t, e.dir, mods...)
}

// tenant creates a tenant and returns its id and full-scope key.
func (e *env) tenant(name string) (id, key string) {
	e.t.Helper()
	return e.tenantOn(name, "")
}

// tenantOn creates a tenant on a plan ("" for the default plan) and returns
// its id and full-scope key.
func (e *env) tenantOn(name, plan string) (id, key string) {
	e.t.Helper()
	tn, _, key, err := e.tenants.CreateTenant(name, plan)
	if err != nil {
		e.t.Fatal(err)
	}
	return tn.ID, key
}

// response is what a test keeps of an HTTP answer.
type response struct {
	status int
	body   []byte
	header map[string]string
}

// do sends a request; hdr alternates names and values.
func (e *env) do(method, uri string, body []byte, hdr ...string) response {
	e.t.Helper()
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI("http://duckgate" + uri)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	req.SetBody(body)
	if err := e.client.DoTimeout(req, resp, time.Minute); err != nil {
		e.t.Fatalf("%s %s: %v", method, uri, err)
	}
	r := response{status: resp.StatusCode(), body: append([]byte(nil), resp.Body()...), header: map[string]string{}}
	for k, v := range resp.Header.All() {
		r.header[string(k)] = string(v)
	}
	return r
}

// rawPost sends a POST while reading the answer concurrently, the way curl
// does, so a server that answers before reading the whole body (413) is seen.
func (e *env) rawPost(uri string, body []byte, hdr ...string) response {
	e.t.Helper()
	conn, err := e.ln.Dial()
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close()
	go func() {
		var req fasthttp.Request
		req.Header.SetMethod("POST")
		req.SetRequestURI("http://duckgate" + uri)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		req.SetBody(body)
		w := bufio.NewWriter(conn)
		_ = req.Write(w)
		_ = w.Flush()
	}()
	var resp fasthttp.Response
	if err := resp.Read(bufio.NewReader(conn)); err != nil {
		e.t.Fatalf("POST %s: %v", uri, err)
	}
	return response{status: resp.StatusCode(), body: append([]byte(nil), resp.Body()...)}
}

// insert posts body to table with key and wait=true.
func (e *env) insert(key, table string, body string) response {
	e.t.Helper()
	return e.do("POST", "/api/data/insert/"+table+"?wait=true", []byte(body), "X-API-KEY", key)
}

// openDB opens a tenant's database file directly, as an operator would,
// after the env is stopped. The caller closes it.
func (e *env) openDB(tenantID string) *sql.DB {
	e.t.Helper()
	db, err := sql.Open("duckdb", filepath.Join(e.dir, "tenants", tenantID+".duckdb"))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = db.Close() })
	// One connection, so the session's time zone holds for every query.
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("SET TimeZone = 'UTC'"); err != nil {
		e.t.Fatal(err)
	}
	return db
}
