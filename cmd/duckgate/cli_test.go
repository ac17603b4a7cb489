package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCLIMapsCommandsToAdminAPI(t *testing.T) {
	type seen struct{ method, uri, body, key string }
	var got seen
	status := 200
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = seen{r.Method, r.URL.RequestURI(), string(b), r.Header.Get("X-API-KEY")}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()
	env := map[string]string{"DUCKGATE_ADDR": srv.URL, "DUCKGATE_ADMIN_KEY": "adm"}
	getenv := func(k string) string { return env[k] }
	const id = "t_0123456789abcdef"
	f := func(args string, code int, want seen) {
		t.Helper()
		got = seen{}
		var stdout, stderr bytes.Buffer
		if c := runCLI(strings.Fields(args), &stdout, &stderr, getenv); c != code {
			t.Fatalf("%s: exit %d, want %d; stderr %s", args, c, code, stderr.String())
		}
		if got != want {
			t.Fatalf("%s: sent %+v, want %+v", args, got, want)
		}
		if code == 0 && !strings.Contains(stdout.String(), `"ok": true`) {
			t.Fatalf("%s: stdout %q", args, stdout.String())
		}
	}
	f("tenant create acme -plan pro", 0, seen{"POST", "/api/admin/tenants", `{"name":"acme","plan":"pro"}`, "adm"})
	f("tenant create -plan pro acme", 0, seen{"POST", "/api/admin/tenants", `{"name":"acme","plan":"pro"}`, "adm"})
	f("tenant list", 0, seen{"GET", "/api/admin/tenants", "", "adm"})
	f("tenant get "+id, 0, seen{"GET", "/api/admin/tenants/" + id, "", "adm"})
	f("tenant plan "+id+" enterprise", 0, seen{"PATCH", "/api/admin/tenants/" + id, `{"plan":"enterprise"}`, "adm"})
	f("tenant suspend "+id, 0, seen{"POST", "/api/admin/tenants/" + id + "/suspend", "", "adm"})
	f("tenant resume "+id, 0, seen{"POST", "/api/admin/tenants/" + id + "/resume", "", "adm"})
	f("tenant delete "+id+" -confirm", 0, seen{"DELETE", "/api/admin/tenants/" + id + "?confirm=true", "", "adm"})
	f("key create "+id+" -scope ingest", 0, seen{"POST", "/api/admin/tenants/" + id + "/keys", `{"scope":"ingest"}`, "adm"})
	f("key list "+id, 0, seen{"GET", "/api/admin/tenants/" + id + "/keys", "", "adm"})
	f("key revoke "+id+" k_0123456789ab", 0, seen{"DELETE", "/api/admin/tenants/" + id + "/keys/k_0123456789ab", "", "adm"})
	f("tenant list -admin-key other", 0, seen{"GET", "/api/admin/tenants", "", "other"})

	// Bad usage sends nothing.
	f("tenant delete "+id, 2, seen{})
	f("tenant create", 2, seen{})
	f("tenant frobnicate", 2, seen{})
	f("key revoke "+id, 2, seen{})
	f("tenant list -nope", 2, seen{})
	delete(env, "DUCKGATE_ADMIN_KEY")
	f("tenant list", 2, seen{})
	env["DUCKGATE_ADMIN_KEY"] = "adm"

	// A refusal is exit 1 with the server's answer on stderr.
	status = 404
	var stdout, stderr bytes.Buffer
	if c := runCLI([]string{"tenant", "get", id}, &stdout, &stderr, getenv); c != 1 || stdout.Len() != 0 || !strings.Contains(stderr.String(), "HTTP 404") {
		t.Fatalf("404: exit %d stdout %q stderr %q", c, stdout.String(), stderr.String())
	}
	// No server: exit 1.
	env["DUCKGATE_ADDR"] = "http://127.0.0.1:1"
	if c := runCLI([]string{"tenant", "list"}, &stdout, &stderr, getenv); c != 1 {
		t.Fatalf("no server: exit %d", c)
	}
}
