package api

import (
	"strings"
	"testing"
)

// On a single node (no -nats) the cluster route says so with 404, needs
// the admin key, takes only GET, and /healthz stays {"status":"ok"}.
func TestAdminClusterSingleNode(t *testing.T) {
	e := newEnv(t)
	f := func(method, uri string, wantStatus int, wantBody string, hdr ...string) {
		t.Helper()
		r := e.do(method, uri, nil, hdr...)
		if r.status != wantStatus || !strings.Contains(string(r.body), wantBody) {
			t.Fatalf("%s %s: %d %s; want %d with %q", method, uri, r.status, r.body, wantStatus, wantBody)
		}
	}
	admin := []string{"Authorization", "Bearer " + testAdminKey}
	f("GET", "/api/admin/cluster", 404, "no -nats", admin...)
	f("POST", "/api/admin/cluster", 405, "error", admin...)
	f("GET", "/api/admin/cluster", 401, "error")
	f("GET", "/api/admin/cluster", 401, "error", "Authorization", "Bearer "+strings.Repeat("x", 2_000))
	f("GET", "/healthz", 200, `{"status":"ok"}`)
}
