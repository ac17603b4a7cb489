package ingest

import (
	"strings"
	"testing"
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
	if r := e.do("GET", "/debug/pprof/", nil, "X-API-KEY", key); r.status != 401 {
		t.Fatalf("pprof with a tenant key: %d", r.status)
	}
	if r := e.do("GET", "/debug/pprof/goroutine?debug=1", nil, "X-API-KEY", testAdminKey); r.status != 200 || !strings.Contains(string(r.body), "goroutine") {
		t.Fatalf("pprof with the admin key: %d", r.status)
	}
}
