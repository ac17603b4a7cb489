package api

import (
	"net/url"
	"strings"
	"testing"

	"duckgate/admin"
	"duckgate/tenant"
)

// get sends a GET with a tenant key.
func (e *env) get(key, uri string) response {
	e.t.Helper()
	return e.do("GET", uri, nil, "X-API-KEY", key)
}

func sqlURI(q string) string { return "/api/data/query?query=" + url.QueryEscape(q) }

func TestTenantIsolation(t *testing.T) {
	e := newAdminEnv(t, adminEnvConfig{})
	aID, aKey := e.tenant("a")
	bID, bKey := e.tenant("b")
	wantStatus(t, e.insert(aKey, "orders", `[{"who":"a","n":1}]`), 200, "insert a")
	wantStatus(t, e.insert(bKey, "orders", `[{"who":"b","n":2},{"who":"b","n":3}]`), 200, "insert b")
	wantStatus(t, e.insert(bKey, "b_only", `{"secret":"b"}`), 200, "insert b_only")

	// Ingest: a key writes only into its own tenant, whatever the request says.
	wantStatus(t, e.do("POST", "/api/data/insert/orders?wait=true&tenant="+bID, []byte(`{"who":"a","n":9}`),
		"X-API-KEY", aKey, "X-Tenant-ID", bID), 200, "insert naming b")

	// Read: only its own rows, and no way to reach the other's database.
	r := e.get(aKey, sqlURI(`SELECT who, count(*) AS c FROM orders GROUP BY who`))
	wantStatus(t, r, 200, "query a")
	if strings.Contains(string(r.body), `"b"`) || !strings.Contains(string(r.body), `"c":2`) {
		t.Fatalf("a sees: %s", r.body)
	}
	bPath := e.pool.Path(bID)
	for _, q := range []string{
		`SELECT * FROM b_only`,
		`SELECT * FROM "` + bID + `".orders`,
		`SELECT * FROM '` + bPath + `'`,
		`SELECT * FROM read_text('` + bPath + `')`,
		`ATTACH '` + bPath + `' AS b (READ_ONLY)`,
		// Listing databases shows paths: the sandbox refuses it.
		`SELECT count(*) AS n FROM duckdb_databases() WHERE path LIKE '%` + bID + `%'`,
	} {
		r := e.get(aKey, sqlURI(q))
		if r.status < 400 || strings.Contains(string(r.body), `"secret"`) {
			t.Errorf("a's key ran %q: %d %s", q, r.status, r.body)
		}
	}
	// List: only its own tables and columns.
	r = e.get(aKey, "/api/tables")
	wantStatus(t, r, 200, "tables a")
	if strings.Contains(string(r.body), "b_only") {
		t.Fatalf("a lists b's table: %s", r.body)
	}
	wantStatus(t, e.get(aKey, "/api/tables/b_only/columns"), 404, "a reads b's columns")

	// Share links and revocation: a tenant key reaches no admin route, for
	// its own tenant or the other.
	for _, key := range []string{aKey, bKey} {
		for _, rt := range [][2]string{
			{"GET", "/api/admin/tenants"},
			{"POST", "/api/admin/tenants"},
			{"GET", "/api/admin/tenants/" + bID},
			{"GET", "/api/admin/tenants/" + bID + "/keys"},
			{"POST", "/api/admin/tenants/" + bID + "/keys"},
			{"DELETE", "/api/admin/tenants/" + bID + "/keys/k_000000000000"},
			{"DELETE", "/api/admin/tenants/" + bID + "?confirm=true"},
			{"PATCH", "/api/admin/tenants/" + aID},
			{"POST", "/api/admin/tenants/" + bID + "/suspend"},
			{"POST", "/api/admin/query"},
		} {
			wantStatus(t, e.do(rt[0], rt[1], []byte(`{"scope":"full","plan":"enterprise","name":"x","query":"SELECT 1"}`), "X-API-KEY", key), 401, "tenant key on "+rt[0]+" "+rt[1])
		}
	}
	// The admin cannot revoke one tenant's key through the other's path.
	bKeys, _ := e.tenants.Keys(bID)
	wantStatus(t, e.admin("DELETE", "/api/admin/tenants/"+aID+"/keys/"+bKeys[0].ID, ""), 404, "revoke b's key under a")
	wantStatus(t, e.get(bKey, "/api/tables"), 200, "b's key still works")
	// Share links: a's key cannot make one over b's data, list b's or
	// revoke b's.
	r = e.do("POST", "/api/data/query/share", []byte(`{"query":"SELECT * FROM b_only"}`), "X-API-KEY", aKey)
	if r.status < 400 {
		t.Fatalf("a shared b's table: %d %s", r.status, r.body)
	}
	r = e.do("POST", "/api/data/query/share", []byte(`{"query":"SELECT * FROM b_only"}`), "X-API-KEY", bKey)
	wantStatus(t, r, 201, "b shares its table")
	bLink := decodeBody[struct {
		ID     string `json:"id"`
		LinkID string `json:"link_id"`
	}](t, r)
	r = e.get(aKey, "/api/data/query/share")
	wantStatus(t, r, 200, "a lists its links")
	if strings.Contains(string(r.body), bLink.LinkID) {
		t.Fatalf("a lists b's link: %s", r.body)
	}
	if r := e.do("DELETE", "/api/data/query/share/"+bLink.LinkID, nil, "X-API-KEY", aKey); r.status != 404 {
		t.Fatalf("a revoking b's link: %d %s", r.status, r.body)
	}
	wantStatus(t, e.do("GET", "/share/"+bLink.ID+"/data.json", nil), 200, "b's link still works")

	// b's data is untouched by all of the above.
	r = e.get(bKey, sqlURI(`SELECT count(*) AS c FROM orders WHERE who = 'b'`))
	if !strings.Contains(string(r.body), `"c":2`) {
		t.Fatalf("b's rows: %s", r.body)
	}
	r = e.get(bKey, sqlURI(`SELECT count(*) AS c FROM orders`))
	if !strings.Contains(string(r.body), `"c":2`) {
		t.Fatalf("a's insert reached b: %s", r.body)
	}

	// A suspended tenant's keys do nothing (403); a deleted one's 401.
	wantStatus(t, e.admin("POST", "/api/admin/tenants/"+bID+"/suspend", ""), 200, "suspend b")
	for _, r := range []response{
		e.insert(bKey, "orders", `{"n":1}`),
		e.get(bKey, sqlURI(`SELECT 1`)),
		e.get(bKey, "/api/tables"),
		e.get(bKey, "/api/tables/orders/columns"),
	} {
		wantStatus(t, r, 403, "suspended tenant")
	}
	wantStatus(t, e.get(aKey, "/api/tables"), 200, "a while b is suspended")
	wantStatus(t, e.do("GET", "/share/"+bLink.ID+"/data.json", nil), 403, "suspended tenant's share link")
	wantStatus(t, e.admin("DELETE", "/api/admin/tenants/"+bID+"?confirm=true", ""), 200, "delete b")
	for _, r := range []response{
		e.insert(bKey, "orders", `{"n":1}`),
		e.get(bKey, sqlURI(`SELECT 1`)),
		e.get(bKey, "/api/tables"),
	} {
		wantStatus(t, r, 401, "deleted tenant")
	}
	wantStatus(t, e.get(aKey, sqlURI(`SELECT count(*) AS c FROM orders`)), 200, "a after b's deletion")
	if r := e.do("GET", "/share/"+bLink.ID+"/data.json", nil); r.status != 404 && r.status != 410 {
		t.Fatalf("deleted tenant's share link: %d %s", r.status, r.body)
	}
}

func TestScopes(t *testing.T) {
	e := newAdminEnv(t, adminEnvConfig{})
	id, full := e.tenant("s")
	wantStatus(t, e.insert(full, "ev", `{"a":1}`), 200, "seed")
	keyOf := func(scope string) string {
		r := e.admin("POST", "/api/admin/tenants/"+id+"/keys", `{"scope":"`+scope+`"}`)
		wantStatus(t, r, 201, "create "+scope+" key")
		return decodeBody[admin.CreateKeyResponse](t, r).APIKey
	}
	keys := map[tenant.Scope]string{tenant.ScopeIngest: keyOf("ingest"), tenant.ScopeQuery: keyOf("query"), tenant.ScopeFull: full}
	type call struct {
		name string
		need tenant.Scope
		do   func(key string) response
	}
	calls := []call{
		{"insert", tenant.ScopeIngest, func(k string) response { return e.insert(k, "ev", `{"a":2}`) }},
		{"query", tenant.ScopeQuery, func(k string) response { return e.get(k, sqlURI(`SELECT count(*) FROM ev`)) }},
		{"tables", tenant.ScopeQuery, func(k string) response { return e.get(k, "/api/tables") }},
		{"columns", tenant.ScopeQuery, func(k string) response { return e.get(k, "/api/tables/ev/columns") }},
	}
	for scope, key := range keys {
		for _, c := range calls {
			r := c.do(key)
			if scope.Allows(c.need) {
				wantStatus(t, r, 200, string(scope)+" key: "+c.name)
				continue
			}
			wantStatus(t, r, 403, string(scope)+" key: "+c.name)
			if !strings.Contains(string(r.body), `needs a \"`+string(c.need)+`\" or \"full\" key`) {
				t.Fatalf("%s key: %s: the 403 does not name the scope: %s", scope, c.name, r.body)
			}
		}
	}
}

func TestAdminBadInput(t *testing.T) {
	e := newAdminEnv(t, adminEnvConfig{})
	id, _ := e.tenant("x")
	const unknown = "t_0123456789abcdef"
	f := func(method, uri, body string, status int, says string) {
		t.Helper()
		r := e.admin(method, uri, body)
		if r.status != status || !strings.Contains(string(r.body), says) {
			t.Fatalf("%s %s %s: %d %s; want %d containing %q", method, uri, body, r.status, r.body, status, says)
		}
	}
	ten := "/api/admin/tenants/"
	// Unknown or malformed tenant ids.
	for _, bad := range []string{unknown, "nope", "t_../../etc", "t_0123456789ABCDEF"} {
		f("GET", ten+bad, "", 404, "not found")
		f("PATCH", ten+bad, `{"plan":"pro"}`, 404, "not found")
		f("DELETE", ten+bad+"?confirm=true", "", 404, "not found")
		f("POST", ten+bad+"/suspend", "", 404, "not found")
		f("POST", ten+bad+"/resume", "", 404, "not found")
		f("POST", ten+bad+"/keys", `{"scope":"full"}`, 404, "not found")
		f("GET", ten+bad+"/keys", "", 404, "not found")
		f("DELETE", ten+bad+"/keys/k_000000000000", "", 404, "not found")
	}
	f("DELETE", ten+id+"/keys/k_000000000000", "", 404, "not found")
	f("POST", "/api/admin/query", `{"query":"SELECT 1","tenants":["`+unknown+`"]}`, 404, "not found")
	// Bad JSON.
	for _, body := range []string{"", "{", "[1]", `{"name":1}`} {
		f("POST", "/api/admin/tenants", body, 400, "")
	}
	f("PATCH", ten+id, "{", 400, "invalid JSON")
	f("PATCH", ten+id, `{}`, 400, "nothing to change")
	f("POST", ten+id+"/keys", "{", 400, "invalid JSON")
	f("POST", "/api/admin/query", "{", 400, "invalid JSON")
	f("POST", "/api/admin/query", `{"query":""}`, 400, "query")
	f("POST", "/api/admin/query", `{"query":"SELECT 1","format":"xml"}`, 400, "format")
	// Bad plan, scope, name, missing confirm.
	f("POST", "/api/admin/tenants", `{"name":"y","plan":"platinum"}`, 400, "unknown plan")
	f("PATCH", ten+id, `{"plan":"platinum"}`, 400, "unknown plan")
	f("POST", "/api/admin/tenants", `{"name":""}`, 400, "name")
	f("POST", "/api/admin/tenants", `{"name":"x"}`, 409, "exists")
	f("POST", ten+id+"/keys", `{"scope":"admin"}`, 400, "use ingest, query or full")
	f("POST", ten+id+"/keys", `{}`, 400, "use ingest, query or full")
	f("DELETE", ten+id, "", 400, "confirm=true")
	f("DELETE", ten+id+"?confirm=false", "", 400, "confirm=true")
	// Wrong methods and routes.
	f("PUT", "/api/admin/tenants", "", 405, "GET, POST")
	f("GET", ten+id+"/suspend", "", 405, "POST")
	f("GET", "/api/admin/query", "", 405, "POST")
	f("GET", "/api/admin/nope", "", 404, "no admin route")
	f("GET", ten+id+"/keys/x/y", "", 404, "no admin route")
	// Nothing above changed the tenant.
	if tn, err := e.tenants.Get(id); err != nil || tn.Status != "active" || tn.Plan != tenant.DefaultPlan {
		t.Fatalf("tenant after bad calls: %+v %v", tn, err)
	}
	// No key, a wrong key: 401.
	wantStatus(t, e.do("GET", "/api/admin/tenants", nil), 401, "no key")
	wantStatus(t, e.do("GET", "/api/admin/tenants", nil, "X-API-KEY", testAdminKey+"x"), 401, "wrong key")
}
