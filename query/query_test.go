package query

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
	"go.uber.org/zap"

	"duckgate/tenantdb"
)

// testEnv is an Engine behind a real fasthttp server on an in-memory
// listener. The tenant is taken from the X-Tenant header, as the ingest
// router would after authentication.
type testEnv struct {
	pool   *tenantdb.Pool
	engine *Engine
	client *http.Client
}

type testFlusher struct {
	mu      sync.Mutex
	tenants []string
}

func (f *testFlusher) Flush(_ context.Context, tenantID string) error {
	f.mu.Lock()
	f.tenants = append(f.tenants, tenantID)
	f.mu.Unlock()
	return nil
}

func newEnv(t testing.TB, cfg Config, flusher Flusher) *testEnv {
	t.Helper()
	pool, err := tenantdb.New(tenantdb.Config{Dir: t.TempDir()}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	e := New(cfg, pool, flusher, zap.NewNop())
	ln := fasthttputil.NewInmemoryListener()
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		tenant := string(ctx.Request.Header.Peek("X-Tenant"))
		path := string(ctx.Path())
		var err error
		switch {
		case path == "/api/data/query":
			err = e.HandleQuery(ctx, tenant)
		case path == "/api/tables":
			err = e.HandleTables(ctx, tenant)
		case strings.HasPrefix(path, "/api/tables/") && strings.HasSuffix(path, "/columns"):
			err = e.HandleColumns(ctx, tenant, strings.TrimSuffix(strings.TrimPrefix(path, "/api/tables/"), "/columns"))
		default:
			ctx.NotFound()
		}
		if err != nil {
			writeTestError(ctx, err)
		}
	}, Logger: silentLogger{}, MaxRequestBodySize: 16 << 20}
	go func() { _ = srv.Serve(ln) }()
	tr := &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return ln.Dial() }}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		_ = srv.Shutdown()
		_ = pool.Close()
	})
	return &testEnv{pool: pool, engine: e, client: &http.Client{Transport: tr}}
}

// statusOf is the status errors.go documents for each error, as the api
// package maps them.
func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrNotReadOnly), errors.Is(err, ErrNotAllowed):
		return fasthttp.StatusForbidden
	case errors.Is(err, ErrSQLTooLarge):
		return fasthttp.StatusRequestEntityTooLarge
	case errors.Is(err, ErrBadQuery), errors.Is(err, ErrMultipleStatements), errors.Is(err, ErrBadRequest):
		return fasthttp.StatusBadRequest
	case errors.Is(err, ErrNoTable):
		return fasthttp.StatusNotFound
	case errors.Is(err, ErrTimeout):
		return fasthttp.StatusGatewayTimeout
	case errors.Is(err, ErrTooLarge):
		return fasthttp.StatusUnprocessableEntity
	case errors.Is(err, ErrBusy), errors.Is(err, ErrCanceled):
		return fasthttp.StatusServiceUnavailable
	}
	return fasthttp.StatusInternalServerError
}

// writeTestError answers err as the api package does: {"error":"..."}
// with its status, Retry-After on 503.
func writeTestError(ctx *fasthttp.RequestCtx, err error) {
	if ctx.Response.StatusCode() != fasthttp.StatusOK || len(ctx.Response.Body()) > 0 || ctx.Response.IsBodyStream() {
		panic(fmt.Sprintf("a handler wrote a response and returned %v", err))
	}
	status := statusOf(err)
	if status == fasthttp.StatusServiceUnavailable {
		ctx.Response.Header.Set("Retry-After", "1")
	}
	b, _ := json.Marshal(map[string]string{"error": err.Error()})
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '\n'))
}

type silentLogger struct{}

func (silentLogger) Printf(string, ...any) {}

// exec runs setup SQL in a tenant's database outside the sandboxed query path.
func (env *testEnv) exec(t testing.TB, tenant string, stmts ...string) {
	t.Helper()
	h, err := env.pool.Acquire(context.Background(), tenant)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	for _, s := range stmts {
		if _, err := h.DB.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

type response struct {
	status  int
	header  http.Header
	body    []byte
	readErr error // set if the body was cut
}

func (env *testEnv) do(t testing.TB, tenant, method, path, contentType string, body []byte) response {
	t.Helper()
	req, err := http.NewRequest(method, "http://gw"+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Tenant", tenant)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := env.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, rerr := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b, readErr: rerr}
}

// query runs sql with GET and extra query-string arguments.
func (env *testEnv) query(t testing.TB, tenant, sql string, kv ...string) response {
	t.Helper()
	v := url.Values{"query": {sql}}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return env.do(t, tenant, "GET", "/api/data/query?"+v.Encode(), "", nil)
}

func (r response) ok(t testing.TB) response {
	t.Helper()
	if r.status != 200 || r.readErr != nil {
		t.Fatalf("status %d, read error %v, body %.500s", r.status, r.readErr, r.body)
	}
	return r
}

func decodeRows(t testing.TB, b []byte) []map[string]any {
	t.Helper()
	var rows []map[string]any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&rows); err != nil {
		t.Fatalf("decode %.300s: %v", b, err)
	}
	return rows
}

func asJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

const seedSQL = `CREATE TABLE events (b BOOLEAN, i BIGINT, h HUGEINT, d DOUBLE, ts TIMESTAMPTZ, s VARCHAR, j JSON)`

func seed(t testing.TB, env *testEnv, tenant string) {
	t.Helper()
	env.exec(t, tenant, seedSQL,
		`INSERT INTO events VALUES
		(true, 9223372036854775807, 170141183460469231731687303715884105727, 1.5, '2024-01-02 03:04:05.123456+00', 'héllo "wörld", 日本' || chr(10) || chr(9) || 'end', '{"a":[1,2,{"b":null}],"c":"x"}'),
		(false, -9223372036854775808, -42, 'NaN', '1970-01-01 00:00:00+00', '', '[]'),
		(NULL, NULL, NULL, NULL, NULL, NULL, NULL)`)
}

func TestJSONValues(t *testing.T) {
	env := newEnv(t, Config{}, nil)
	seed(t, env, "t1")
	r := env.query(t, "t1", "select * from events order by i desc nulls last").ok(t)
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("content type %q", ct)
	}
	rows := decodeRows(t, r.body)
	want := []string{
		`{"b":true,"d":1.5,"h":170141183460469231731687303715884105727,"i":9223372036854775807,"j":{"a":[1,2,{"b":null}],"c":"x"},"s":"héllo \"wörld\", 日本\n\tend","ts":"2024-01-02T03:04:05.123456Z"}`,
		`{"b":false,"d":null,"h":-42,"i":-9223372036854775808,"j":[],"s":"","ts":"1970-01-01T00:00:00.000000Z"}`,
		`{"b":null,"d":null,"h":null,"i":null,"j":null,"s":null,"ts":null}`,
	}
	if len(rows) != len(want) {
		t.Fatalf("got %d rows: %s", len(rows), r.body)
	}
	for i := range want {
		if got := asJSON(rows[i]); got != want[i] {
			t.Errorf("row %d:\ngot  %s\nwant %s", i, got, want[i])
		}
	}
	// Columns keep the query's order in the raw output.
	if !bytes.HasPrefix(r.body, []byte(`[`+"\n"+`{"b":true,"i":9223372036854775807,"h":170141183460469231731687303715884105727,"d":1.5,`)) {
		t.Errorf("raw output %.200s", r.body)
	}
	// An empty result is an empty array.
	if r := env.query(t, "t1", "select * from events where false").ok(t); string(r.body) != "[]\n" {
		t.Errorf("empty result %q", r.body)
	}
}

func TestJSONOtherTypes(t *testing.T) {
	env := newEnv(t, Config{}, nil)
	r := env.query(t, "t1", `select
		DATE '2024-02-29' as d, TIME '13:14:15.5' as tm, TIMESTAMP '2024-01-02 03:04:05' as tsn,
		123456789012345678.123::DECIMAL(38,3) as dec, 1.10::DECIMAL(4,2) as dec2,
		[1, 2, NULL] as l, {'x': 1, 'y': 'z'} as st, MAP {'k': 1, 'a': 2} as m,
		'5c1b7cd8-2a1e-4d6c-9a0e-3b9f8a3e2f10'::UUID as u, INTERVAL '1 year 2 months 3 days 04:05:06.5' as iv,
		'\x00\xFFab'::BLOB as bl, 'inf'::DOUBLE as inf, 255::UTINYINT as ut, 18446744073709551615::UBIGINT as ub,
		1 as dup, 2 as dup`).ok(t)
	want := `[` + "\n" + `{"d":"2024-02-29","tm":"13:14:15.500000","tsn":"2024-01-02T03:04:05.000000",` +
		`"dec":123456789012345678.123,"dec2":1.1,"l":[1,2,null],"st":{"x":1,"y":"z"},"m":{"k":1,"a":2},` +
		`"u":"5c1b7cd8-2a1e-4d6c-9a0e-3b9f8a3e2f10","iv":"P1Y2M3DT4H5M6.5S","bl":"AP9hYg==","inf":null,` +
		`"ut":255,"ub":18446744073709551615,"dup":1,"dup_1":2}` + "\n]\n"
	if string(r.body) != want {
		t.Errorf("got\n%s\nwant\n%s", r.body, want)
	}
}

func TestParams(t *testing.T) {
	env := newEnv(t, Config{}, nil)
	seed(t, env, "t1")
	body := `{"query":"select ? + 1 as x","params":[41]}`
	r := env.do(t, "t1", "POST", "/api/data/query", "application/json", []byte(body)).ok(t)
	if string(r.body) != "[\n{\"x\":42}\n]\n" {
		t.Fatalf("got %s", r.body)
	}
	// An injection attempt in a param stays data.
	body = `{"query":"select count(*) as n from events where s = $1","params":["x'; drop table events; --"],"format":"ndjson"}`
	r = env.do(t, "t1", "POST", "/api/data/query", "application/json", []byte(body)).ok(t)
	if string(r.body) != "{\"n\":0}\n" {
		t.Fatalf("got %s", r.body)
	}
	r = env.query(t, "t1", "select count(*) as n from events").ok(t)
	if string(r.body) != "[\n{\"n\":3}\n]\n" {
		t.Fatalf("table changed: %s", r.body)
	}
	// Big integers, strings, null, arrays; params in the query string.
	r = env.query(t, "t1", "select $1::HUGEINT + 1 as h, $2 as s, $3 as n, $4 as l", "params", `[170141183460469231731687303715884105726, "é", null, [1,2]]`).ok(t)
	if string(r.body) != "[\n{\"h\":170141183460469231731687303715884105727,\"s\":\"é\",\"n\":null,\"l\":[1,2]}\n]\n" {
		t.Fatalf("got %s", r.body)
	}
	// The body is the SQL text for other content types.
	r = env.do(t, "t1", "POST", "/api/data/query?format=csv", "text/plain", []byte("select 1 as one")).ok(t)
	if string(r.body) != "one\r\n1\r\n" {
		t.Fatalf("got %q", r.body)
	}
}

func TestBadInput(t *testing.T) {
	env := newEnv(t, Config{}, nil)
	seed(t, env, "t1")
	f := func(r response, status int, msg string) {
		t.Helper()
		if r.status != status || !strings.Contains(string(r.body), msg) {
			t.Fatalf("got %d %s; want %d containing %q", r.status, r.body, status, msg)
		}
		var e struct{ Error string }
		if err := json.Unmarshal(r.body, &e); err != nil || e.Error == "" {
			t.Fatalf("error body %q is not {\"error\":...}", r.body)
		}
	}
	f(env.query(t, "t1", "select 1", "format", "xml"), 400, "unknown format")
	f(env.query(t, "t1", "select 1", "timeout", "abc"), 400, "timeout")
	f(env.query(t, "t1", "select 1", "timeout", "-1"), 400, "timeout")
	f(env.query(t, "t1", "select 1", "params", "{"), 400, "params")
	f(env.query(t, "t1", ""), 400, "empty query")
	f(env.query(t, "t1", "   -- only a comment"), 400, "statement")
	f(env.do(t, "t1", "POST", "/api/data/query", "application/json", []byte(`{"query": "select 1"`)), 400, "invalid JSON body")
	f(env.do(t, "t1", "POST", "/api/data/query", "application/json", []byte(`{"query": "select ?", "params": [{"a":1}]}`)), 400, "objects")
	f(env.query(t, "t1", "selec 1"), 400, "syntax error")
	f(env.query(t, "t1", "select * from nope"), 400, "nope")
	f(env.query(t, "t1", "select 1", "flush", "maybe"), 400, "flush")
	// Query text up to the limit (1 MiB) is fine.
	big := "select '" + strings.Repeat("x", DefaultMaxSQLBytes-64) + "' as x"
	r := env.do(t, "t1", "POST", "/api/data/query", "text/plain", []byte(big)).ok(t)
	if len(r.body) < DefaultMaxSQLBytes-64 {
		t.Fatalf("1 MB query: %d bytes back", len(r.body))
	}
	f(env.do(t, "t1", "POST", "/api/data/query", "text/plain", []byte(strings.Repeat(" ", DefaultMaxSQLBytes)+"select 1")), 413, "limit")
}

// errorOf returns the error of a marker line, "" if line is not one.
func errorOf(line string) string {
	var e map[string]string
	if json.Unmarshal([]byte(line), &e) != nil || len(e) != 1 {
		return ""
	}
	return e["error"]
}

var _ = time.Second

func newGet(path string) (*http.Request, error) {
	return http.NewRequest("GET", "http://gw"+path, nil)
}
