package api

import (
	"strings"
	"testing"

	"duckgate/admin"
)

// signIn signs in to the dashboard and returns the cookie header and the
// session's CSRF token.
func (e *env) signIn() (cookie, csrf string) {
	e.t.Helper()
	r := e.do("POST", "/admin/login", []byte(`{"key":"`+testAdminKey+`"}`), "Content-Type", "application/json")
	wantStatus(e.t, r, 200, "sign in")
	s := decodeBody[admin.SessionInfo](e.t, r)
	set := r.header["Set-Cookie"]
	cookie, _, _ = strings.Cut(set, ";")
	if s.CSRFToken == "" || !strings.HasPrefix(cookie, admin.SessionCookie+"=") {
		e.t.Fatalf("sign in: %s, Set-Cookie %q", r.body, set)
	}
	return cookie, s.CSRFToken
}

func TestDashboardPageAndAssets(t *testing.T) {
	e := newAdminEnv(t, adminEnvConfig{noQuery: true})
	for _, p := range []string{"/admin", "/admin/", "/admin/assets/app.js", "/admin/assets/app.css"} {
		r := e.do("GET", p, nil)
		wantStatus(t, r, 200, p)
		if !strings.Contains(r.header["Content-Security-Policy"], "script-src 'self'") || len(r.body) == 0 {
			t.Fatalf("%s: CSP %q, %d bytes", p, r.header["Content-Security-Policy"], len(r.body))
		}
	}
	page := string(e.do("GET", "/admin/", nil).body)
	// Nothing is loaded from elsewhere: the page works offline.
	if strings.Contains(page, "http://") || strings.Contains(page, "https://") || !strings.Contains(page, `src="/admin/assets/app.js"`) {
		t.Fatalf("page loads from elsewhere or not its script:\n%s", page)
	}
	for _, p := range []string{"/admin/assets/", "/admin/assets/index.html", "/admin/assets/../admin.go", "/admin/nope"} {
		wantStatus(t, e.do("GET", p, nil), 404, p)
	}
}

func TestDashboardSignIn(t *testing.T) {
	e := newAdminEnv(t, adminEnvConfig{noQuery: true})
	_, tenantKey := e.tenant("acme")
	f := func(body, ctype string, status int, hdr ...string) response {
		t.Helper()
		r := e.do("POST", "/admin/login", []byte(body), append([]string{"Content-Type", ctype}, hdr...)...)
		wantStatus(t, r, status, "sign in with "+body)
		if status != 200 && status != 303 && r.header["Set-Cookie"] != "" {
			t.Fatalf("refused sign-in set a cookie: %q", r.header["Set-Cookie"])
		}
		return r
	}
	const js = "application/json"
	f(`{"key":"wrong"}`, js, 401)
	f(`{"key":"`+tenantKey+`"}`, js, 401)
	f(`{}`, js, 401)
	f(`key=`+tenantKey, "application/x-www-form-urlencoded", 401)
	f(`{"key":"`+testAdminKey+`"}`, js, 403, "Origin", "https://evil.example")
	f(`{"key":"`+testAdminKey+`"}`, js, 403, "Origin", "https://duckgate.evil.example")
	f(`{"key":"`+testAdminKey+`"}`, js, 403, "Origin", "null")
	// Behind a proxy that says which host the browser asked for.
	f(`{"key":"`+testAdminKey+`"}`, js, 200, "Origin", "https://dg.example.com", "X-Forwarded-Host", "dg.example.com")

	r := f(`{"key":"`+testAdminKey+`"}`, js, 200)
	c := r.header["Set-Cookie"]
	for _, want := range []string{"HttpOnly", "SameSite=Strict", "path=/admin", "max-age="} {
		if !strings.Contains(strings.ToLower(c), strings.ToLower(want)) {
			t.Fatalf("Set-Cookie %q lacks %s", c, want)
		}
	}
	if strings.Contains(strings.ToLower(c), "secure") || strings.Contains(c, testAdminKey) {
		t.Fatalf("Set-Cookie %q: Secure over plain HTTP, or the key", c)
	}
	r = f(`{"key":"`+testAdminKey+`"}`, js, 200, "X-Forwarded-Proto", "https", "Origin", "http://duckgate")
	if !strings.Contains(strings.ToLower(r.header["Set-Cookie"]), "secure") {
		t.Fatalf("behind TLS: Set-Cookie %q is not Secure", r.header["Set-Cookie"])
	}
	r = f("key="+testAdminKey, "application/x-www-form-urlencoded", 303)
	if !strings.HasSuffix(r.header["Location"], "/admin/") || r.header["Set-Cookie"] == "" {
		t.Fatalf("form sign-in: Location %q, Set-Cookie %q", r.header["Location"], r.header["Set-Cookie"])
	}
}

func TestDashboardSessionAndCSRF(t *testing.T) {
	e := newAdminEnv(t, adminEnvConfig{noQuery: true})
	cookie, csrf := e.signIn()
	tenants := func() int {
		t.Helper()
		r := e.admin("GET", "/api/admin/tenants", "")
		wantStatus(t, r, 200, "list")
		return len(decodeBody[struct{ Tenants []admin.TenantInfo }](t, r).Tenants)
	}
	create := []byte(`{"name":"acme"}`)
	// No cookie, no token, a forged token, another session's token, the
	// admin key in place of the session: nothing is created.
	wantStatus(t, e.do("POST", "/admin/api/tenants", create), 401, "no session")
	wantStatus(t, e.do("POST", "/admin/api/tenants", create, "X-CSRF-Token", csrf), 401, "token without cookie")
	wantStatus(t, e.do("POST", "/admin/api/tenants", create, "Cookie", cookie), 403, "cookie without token")
	wantStatus(t, e.do("POST", "/admin/api/tenants", create, "Cookie", cookie, "X-CSRF-Token", csrf+"x"), 403, "forged token")
	_, other := e.signIn()
	wantStatus(t, e.do("POST", "/admin/api/tenants", create, "Cookie", cookie, "X-CSRF-Token", other), 403, "another session's token")
	wantStatus(t, e.do("POST", "/admin/api/tenants", create, "X-API-KEY", testAdminKey), 401, "admin key on /admin/api")
	wantStatus(t, e.do("GET", "/admin/api/tenants", nil, "Cookie", cookie), 403, "read without token")
	if n := tenants(); n != 0 {
		t.Fatalf("%d tenants after refused requests", n)
	}

	r := e.do("GET", "/admin/session", nil, "Cookie", cookie)
	wantStatus(t, r, 200, "session")
	if s := decodeBody[admin.SessionInfo](t, r); s.CSRFToken != csrf || len(s.Plans) == 0 {
		t.Fatalf("session: %s", r.body)
	}
	wantStatus(t, e.do("GET", "/admin/session", nil), 401, "session without cookie")

	ok := func(method, path, body string) response {
		t.Helper()
		var b []byte
		if body != "" {
			b = []byte(body)
		}
		r := e.do(method, path, b, "Cookie", cookie, "X-CSRF-Token", csrf)
		if r.status >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, r.status, r.body)
		}
		return r
	}
	c := decodeBody[admin.CreateTenantResponse](t, ok("POST", "/admin/api/tenants", `{"name":"acme"}`))
	if n := tenants(); n != 1 || c.APIKey == "" {
		t.Fatalf("%d tenants, key %q", n, c.APIKey)
	}
	// A tenant that never stored a row has no table (and no database file).
	r = ok("GET", "/admin/api/tenants/"+c.TenantID+"/tables", "")
	if got := string(r.body); got != "{\"tables\":[],\"quarantine\":[],\"schema_changes\":[]}\n" {
		t.Fatalf("tables before insert: %s", got)
	}
	wantStatus(t, e.insert(c.APIKey, "orders", `[{"id":1,"who":"a"},{"id":2,"who":"b"}]`), 200, "insert")
	r = ok("GET", "/admin/api/tenants/"+c.TenantID+"/tables", "")
	tb := decodeBody[struct{ Tables []admin.TableInfo }](t, r).Tables
	if len(tb) != 1 || tb[0].Name != "orders" || tb[0].Rows != 2 || len(tb[0].Columns) < 2 {
		t.Fatalf("tables: %s", r.body)
	}
	ok("POST", "/admin/api/tenants/"+c.TenantID+"/suspend", "")
	wantStatus(t, e.insert(c.APIKey, "orders", `{"id":3}`), 403, "insert while suspended")

	// Sign-out needs the token too; after it the cookie is worth nothing.
	wantStatus(t, e.do("POST", "/admin/logout", nil, "Cookie", cookie), 403, "sign-out without token")
	r = ok("POST", "/admin/logout", "")
	if !strings.Contains(strings.ToLower(r.header["Set-Cookie"]), "expires=") {
		t.Fatalf("sign-out did not clear the cookie: %q", r.header["Set-Cookie"])
	}
	wantStatus(t, e.do("GET", "/admin/api/tenants", nil, "Cookie", cookie, "X-CSRF-Token", csrf), 401, "after sign-out")
}

func TestAdminTenantSharesWebhooksQuarantine(t *testing.T) {
	e := newAdminEnv(t, adminEnvConfig{})
	id, key := e.tenant("acme")
	_, otherKey := e.tenant("other")
	wantStatus(t, e.insert(key, "events", `{"a":1}`), 200, "insert")
	wantStatus(t, e.insert(otherKey, "events", `{"a":1}`), 200, "insert")
	mine := e.shareLink(key, map[string]any{"query": "SELECT * FROM events", "name": "mine"})
	theirs := e.shareLink(otherKey, map[string]any{"query": "SELECT * FROM events", "name": "theirs"})

	type links struct {
		Links []struct {
			LinkID  string `json:"link_id"`
			Name    string `json:"name"`
			Revoked bool   `json:"revoked"`
		} `json:"links"`
	}
	r := e.admin("GET", "/api/admin/tenants/"+id+"/shares", "")
	wantStatus(t, r, 200, "shares")
	if l := decodeBody[links](t, r).Links; len(l) != 1 || l[0].Name != "mine" || strings.Contains(string(r.body), mine.ID) {
		t.Fatalf("shares: %s", r.body)
	}
	// Another tenant's link cannot be revoked through this tenant.
	wantStatus(t, e.admin("DELETE", "/api/admin/tenants/"+id+"/shares/"+theirs.LinkID, ""), 404, "revoke another's link")
	wantStatus(t, e.do("GET", theirs.URL, nil), 200, "their link")
	wantStatus(t, e.admin("DELETE", "/api/admin/tenants/"+id+"/shares/"+mine.LinkID, ""), 200, "revoke")
	if r := e.do("GET", mine.URL, nil); r.status != 410 || !strings.Contains(string(r.body), "revoked") {
		t.Fatalf("revoked link: %d %s", r.status, r.body)
	}
	wantStatus(t, e.admin("GET", "/api/admin/tenants/t_0000000000000000/shares", ""), 404, "unknown tenant")

	r = e.admin("GET", "/api/admin/tenants/"+id+"/webhooks", "")
	wantStatus(t, r, 200, "webhooks")
	if got := strings.TrimSpace(string(r.body)); got != `{"webhooks":[]}` {
		t.Fatalf("webhooks without a store: %s", got)
	}

	// Quarantined rows, in the table and shape package batcher writes.
	h, err := e.pool.Acquire(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE _duckgate_quarantine (table_name VARCHAR, error VARCHAR, quarantined_at TIMESTAMPTZ, row JSON)`,
		`INSERT INTO _duckgate_quarantine VALUES ('events', 'Conversion Error', '2026-11-30 10:00:00+00', '{"a":"x"}'),
			('events', 'Conversion Error', '2026-11-30 11:00:00+00', '{"a":"y"}'), ('orders', 'other', '2026-11-30 09:00:00+00', '{}')`,
	} {
		if _, err := h.DB.Exec(q); err != nil {
			h.Release()
			t.Fatal(err)
		}
	}
	h.Release()
	r = e.admin("GET", "/api/admin/tenants/"+id+"/tables", "")
	wantStatus(t, r, 200, "tables")
	got := decodeBody[struct {
		Tables     []admin.TableInfo
		Quarantine []admin.QuarantineInfo
	}](t, r)
	if len(got.Tables) != 1 || got.Tables[0].Name != "events" || len(got.Quarantine) != 2 ||
		got.Quarantine[0].Table != "events" || got.Quarantine[0].Rows != 2 || got.Quarantine[0].Error != "Conversion Error" ||
		got.Quarantine[0].Last.Hour() != 11 || got.Quarantine[1].Table != "orders" {
		t.Fatalf("tables: %s", r.body)
	}
}

func TestAdminTenantWebhooks(t *testing.T) {
	e := newHookEnv(t)
	id, key := e.tenant("acme")
	ep := e.registerWebhook(key, "github", "gh_events", "s3cret-s3cret")
	r := e.admin("GET", "/api/admin/tenants/"+id+"/webhooks", "")
	wantStatus(t, r, 200, "webhooks")
	got := decodeBody[struct{ Webhooks []admin.WebhookInfo }](t, r).Webhooks
	if len(got) != 1 || got[0].ID != ep.ID || got[0].Table != "gh_events" || string(got[0].Provider) != "github" ||
		strings.Contains(string(r.body), "s3cret") {
		t.Fatalf("webhooks: %s", r.body)
	}
}
