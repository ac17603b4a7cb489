package api

import (
	"encoding/json"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
	"go.uber.org/zap/zaptest"

	"duckgate/tenant"
	"duckgate/webhook"
)

func TestMetricsAndPprof(t *testing.T) {
	e := newEnv(t)
	_, key := e.tenant("acme")
	if r := e.insert(key, "events", `{"a":1}`+"\n"+`{"a":2}`+"\nnot json"); r.status != 200 {
		t.Fatalf("insert: %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/api/data/insert/events", []byte(`{"a":1}`)); r.status != 401 {
		t.Fatalf("unauthenticated insert: %d", r.status)
	}
	r := e.do("GET", "/metrics", nil)
	if r.status != 200 || !strings.HasPrefix(r.header["Content-Type"], "text/plain") {
		t.Fatalf("/metrics: %d %v", r.status, r.header)
	}
	body := string(r.body)
	for _, want := range []string{
		`duckgate_insert_requests_total{status="200"} 1`,
		`duckgate_insert_requests_total{status="401"} 1`,
		"duckgate_rows_accepted_total 2",
		"duckgate_rows_rejected_total 1",
		"duckgate_rows_committed_total 2",
		"duckgate_flushes_total 1",
		"duckgate_flush_duration_seconds_count 1",
		"duckgate_schema_changes_total 1",
		"duckgate_buffered_rows 0",
		"duckgate_wal_size_bytes",
		"duckgate_wal_torn_tail_bytes_total 0",
		"duckgate_wal_corrupt_segments_total 0",
		"process_resident_memory_bytes",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(body, key) || strings.Contains(body, "tenant=") {
		t.Error("/metrics names a key or a tenant")
	}
	if r := e.do("GET", "/debug/pprof/", nil); r.status != 401 {
		t.Fatalf("pprof without the admin key: %d", r.status)
	}
	if r := e.do("GET", "/debug/pprof/", nil, "X-API-KEY", key); r.status != 401 || !strings.Contains(string(r.body), "needs the admin key") {
		t.Fatalf("pprof with a tenant key: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/debug/pprof/", nil, "X-API-KEY", testAdminKey); r.status != 200 || !strings.Contains(string(r.body), "goroutine") {
		t.Errorf("pprof index: %d %.200s", r.status, r.body)
	}
	if r := e.do("GET", "/debug/pprof", nil, "X-API-KEY", testAdminKey); r.status != 301 || !strings.HasSuffix(r.header["Location"], "/debug/pprof/") {
		t.Errorf("pprof without the slash: %d %v", r.status, r.header)
	}
	if r := e.do("GET", "/debug/pprof/nonsense", nil, "X-API-KEY", testAdminKey); r.status != 404 || !strings.HasPrefix(string(r.body), `{"error":`) {
		t.Errorf("unknown profile: %d %.200s", r.status, r.body)
	}
	if r := e.do("GET", "/debug/pprof/goroutine?debug=1", nil, "X-API-KEY", testAdminKey); r.status != 200 || !strings.Contains(string(r.body), "goroutine") {
		t.Fatalf("pprof with the admin key: %d", r.status)
	}
}

// TestMetricsWhileStarting: /metrics answers while the log is recovered;
// every other route but /healthz answers 503 starting, as JSON.
func TestMetricsWhileStarting(t *testing.T) {
	tenants, err := tenant.Open(tenant.Config{Path: filepath.Join(t.TempDir(), "meta.json")})
	if err != nil {
		t.Fatal(err)
	}
	set := metrics.NewSet()
	set.NewCounter("duckgate_test_total").Inc()
	srv := serverConfig{Tenants: tenants, Metrics: set}.build(t, zaptest.NewLogger(t))
	ln := fasthttputil.NewInmemoryListener()
	hs := srv.HTTPServer()
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Shutdown() })
	c := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
	get := func(path string) (int, string) {
		status, body, err := c.GetTimeout(nil, "http://duckgate"+path, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return status, string(body)
	}
	if status, body := get("/metrics"); status != 200 || !strings.Contains(body, "duckgate_test_total 1") {
		t.Errorf("/metrics while starting: %d %.200s", status, body)
	}
	if status, body := get("/healthz"); status != 503 || !strings.Contains(body, "starting") {
		t.Errorf("/healthz while starting: %d %s", status, body)
	}
	if status, body := get("/api/tables"); status != 503 || !strings.HasPrefix(body, `{"error":"starting`) {
		t.Errorf("/api/tables while starting: %d %s", status, body)
	}
	srv.SetReady()
	if status, _ := get("/healthz"); status != 200 {
		t.Errorf("/healthz when ready: %d", status)
	}
}

// TestMetricsPrometheusConventions: every family has # HELP with text and
// # TYPE; counters are counters; histograms have le buckets; webhook
// deliveries are counted by provider and status, refusals included, and
// their rows raise the insert's row counter. With promtool on the machine
// (Debian's prometheus package), `promtool check metrics` is clean.
func TestMetricsPrometheusConventions(t *testing.T) {
	e := newHookEnv(t)
	_, key := e.tenant("acme")
	if r := e.insert(key, "events", `{"a":1}`); r.status != 200 {
		t.Fatalf("insert: %d %s", r.status, r.body)
	}
	r := e.do("POST", "/api/webhooks", []byte(`{"provider":"github","table":"gh","secret":"`+hookGHSecret+`"}`), "X-API-KEY", key)
	if r.status != 201 {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	var ep webhook.EndpointView
	if err := json.Unmarshal(r.body, &ep); err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"zen":"ok"}`)
	if r := e.do("POST", ep.URL, body, hookGitHubHeaders(hookGHSecret, "ping", "d-1", body)...); r.status != 200 {
		t.Fatalf("delivery: %d %s", r.status, r.body)
	}
	if r := e.do("POST", ep.URL, body, hookGitHubHeaders("wrong-secret-0123456789", "ping", "d-2", body)...); r.status != 401 {
		t.Fatalf("forged delivery: %d %s", r.status, r.body)
	}
	e.do("POST", "/api/webhooks/wh_unknown", body)

	m := string(e.do("GET", "/metrics", nil).body)
	for _, want := range []string{
		"# TYPE duckgate_flushes_total counter",
		"# TYPE duckgate_rows_committed_total counter",
		"# TYPE duckgate_wal_corrupt_segments_total counter",
		"# TYPE duckgate_flush_duration_seconds histogram",
		`duckgate_flush_duration_seconds_bucket{le="+Inf"}`,
		`duckgate_query_first_byte_seconds_bucket{le="0.005"}`,
		"# HELP duckgate_rows_accepted_total Rows acknowledged, by any route",
		"duckgate_rows_accepted_total 2",
		`duckgate_webhook_deliveries_total{provider="github",status="200"} 1`,
		`duckgate_webhook_deliveries_total{provider="github",status="401"} 1`,
		`duckgate_webhook_deliveries_total{provider="unknown",status="404"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	families := map[string]bool{}
	for line := range strings.Lines(m) {
		if f, ok := strings.CutPrefix(line, "# HELP "); ok {
			name, help, _ := strings.Cut(strings.TrimSpace(f), " ")
			if help == "" {
				t.Errorf("family %s has no help text", name)
			}
			families[name] = true
		}
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, _, _ := strings.Cut(f, " ")
			if !families[name] {
				t.Errorf("family %s has # TYPE without # HELP", name)
			}
		}
	}
	if strings.Contains(m, "vmrange") {
		t.Error("/metrics still has vmrange histograms")
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool not found (apt-get install prometheus); the lint part is skipped")
		return
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(m)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
