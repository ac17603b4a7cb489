package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// hostileSQL reads query/testdata/hostile_sql.json, the statements a tenant
// must not be able to run, with its placeholders replaced.
func hostileSQL(t *testing.T, own, other, otherdb string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "query", "testdata", "hostile_sql.json"))
	if err != nil {
		t.Fatal(err)
	}
	var groups map[string][]string
	if err := json.Unmarshal(b, &groups); err != nil {
		t.Fatal(err)
	}
	r := strings.NewReplacer("{own}", own, "{other}", other, "{otherdb}", otherdb)
	var out []string
	for _, g := range groups {
		for _, q := range g {
			out = append(out, r.Replace(q))
		}
	}
	sort.Strings(out)
	if len(out) < 150 {
		t.Fatalf("the hostile list shrank to %d statements", len(out))
	}
	return out
}

// tenantSettings reads every setting of a tenant's database outside the
// sandbox.
func (e *env) tenantSettings(tenantID string) map[string]string {
	e.t.Helper()
	h, err := e.pool.Acquire(context.Background(), tenantID)
	if err != nil {
		e.t.Fatal(err)
	}
	defer h.Release()
	rows, err := h.DB.Query("SELECT name, coalesce(value, 'NULL') FROM duckdb_settings()")
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	m := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			e.t.Fatal(err)
		}
		m[k] = v
	}
	return m
}

func sameSettings(t *testing.T, before, after map[string]string) {
	t.Helper()
	for k, v := range before {
		if after[k] != v {
			t.Errorf("setting %s changed from %q to %q", k, v, after[k])
		}
	}
	if after["enable_external_access"] != "false" || after["lock_configuration"] != "true" {
		t.Errorf("sandbox settings: %s %s", after["enable_external_access"], after["lock_configuration"])
	}
}

// TestHostileSQLEndToEnd sends every hostile statement through the query
// endpoint and through share-link creation: each is refused with a 4xx and
// an error message, the server stays up, and the tenant's data and settings
// are the same afterwards. Then it writes share links holding the same SQL
// straight into shares.json, as an older version or a hand edit could, and
// restarts: the start-up check marks every one refused, their pages and
// downloads answer 403 and nothing runs, and a good link still works.
func TestHostileSQLEndToEnd(t *testing.T) {
	clock := newFakeClock()
	e := newEnv(t, withShare(clock))
	id, key := e.tenant("victim")
	otherID, otherKey := e.tenant("bystander")
	if r := e.insert(key, "events", `{"i":1,"s":"a"}`+"\n"+`{"i":2,"s":"b"}`); r.status != 200 {
		t.Fatalf("insert: %d %s", r.status, r.body)
	}
	if r := e.insert(otherKey, "secrets", `{"secret":42}`); r.status != 200 {
		t.Fatalf("insert: %d %s", r.status, r.body)
	}
	snap := e.shareLink(otherKey, map[string]any{"query": "select * from secrets", "duration": 3600, "snapshot": true})
	otherFiles, _ := filepath.Glob(filepath.Join(e.pool.ScratchDir(otherID), "share-*.parquet"))
	if len(otherFiles) != 1 {
		t.Fatalf("the bystander's snapshot: %v", otherFiles)
	}
	own := e.pool.ScratchDir(id)
	hostile := hostileSQL(t, own, otherFiles[0], e.pool.Path(otherID))
	before := e.tenantSettings(id)

	home, _ := os.UserHomeDir()
	paths := []string{e.dir, filepath.Join(home, ".duckdb")}
	check := func(what, q string, r response) {
		t.Helper()
		var body struct{ Error string }
		if r.status < 400 || r.status > 499 || json.Unmarshal(r.body, &body) != nil || body.Error == "" {
			t.Errorf("%s %q: %d %.300s", what, q, r.status, r.body)
		}
		for _, p := range paths { // no answer shows a server path the statement did not name
			if strings.Contains(string(r.body), p) && !strings.Contains(q, p) {
				t.Errorf("%s %q: the answer shows the server path %s: %.300s", what, q, p, r.body)
			}
		}
	}
	for _, q := range hostile {
		check("query", q, e.do("POST", "/api/data/query", []byte(q), "X-API-KEY", key, "Content-Type", "text/plain"))
		check("share", q, e.createShare(key, map[string]any{"query": q, "duration": 60}))
		check("snapshot share", q, e.createShare(key, map[string]any{"query": q, "duration": 60, "snapshot": true}))
	}
	if t.Failed() {
		t.FailNow()
	}
	r := e.do("GET", "/api/data/query?query=select+count(*)+as+n+from+events", nil, "X-API-KEY", key)
	if r.status != 200 || !strings.Contains(string(r.body), `"n":2`) {
		t.Fatalf("the tenant's rows after the hostile statements: %d %s", r.status, r.body)
	}
	r = e.do("GET", "/api/tables", nil, "X-API-KEY", key)
	if r.status != 200 || !strings.Contains(string(r.body), `"name":"events","rows":2`) || strings.Count(string(r.body), `"name"`) != 1 {
		t.Fatalf("the tenant's tables after the hostile statements: %d %s", r.status, r.body)
	}
	r = e.do("GET", "/api/data/query/share", nil, "X-API-KEY", key)
	if r.status != 200 || strings.Contains(string(r.body), "link_id") {
		t.Fatalf("links were made: %s", r.body)
	}
	sameSettings(t, before, e.tenantSettings(id))
	for _, f := range []string{"/tmp/duckgate-log", "/tmp/duckgate-evil.csv", "/tmp/duckgate-evil.duckdb", filepath.Join(own, "x.csv"), filepath.Join(own, "y.csv")} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("%s was written", f)
		}
	}

	// Links over the hostile SQL, written into the registry directly.
	good := e.shareLink(key, map[string]any{"query": "select i from events order by i", "duration": 3600})
	e.stop()
	regPath := filepath.Join(e.dir, "shares.json")
	b, err := os.ReadFile(regPath)
	if err != nil {
		t.Fatal(err)
	}
	var reg struct {
		Version int              `json:"version"`
		Links   []map[string]any `json:"links"`
	}
	if err := json.Unmarshal(b, &reg); err != nil {
		t.Fatal(err)
	}
	now := clock.now().UTC().Truncate(time.Second)
	ids := make([]string, len(hostile))
	for i, q := range hostile {
		var rnd [24]byte
		_, _ = rand.Read(rnd[:])
		ids[i] = base64.RawURLEncoding.EncodeToString(rnd[:])
		h := sha256.Sum256([]byte(ids[i]))
		reg.Links = append(reg.Links, map[string]any{"hash": hex.EncodeToString(h[:]), "tenant": id, "sql": q,
			"created": now, "expires": now.Add(time.Hour), "downloads": 0})
	}
	if b, err = json.Marshal(reg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(regPath, b, 0o600); err != nil {
		t.Fatal(err)
	}

	// At start the links are checked without the tenant's data: a link
	// that only names a table that does not exist (select * from
	// duckdb_settings, without parentheses, is no view in DuckDB 1.5) is
	// not marked, as the table may appear later; its download fails (422).
	e = e.restart(withShare(clock))
	linkOf := make(map[string]string) // link id (hex of the hash's first 8 bytes) → SQL
	for i, q := range hostile {
		h := sha256.Sum256([]byte(ids[i]))
		linkOf[hex.EncodeToString(h[:8])] = q
		mustRefuse := strings.Contains(q, "enable_logging") || strings.Contains(q, "\x00") || strings.Contains(q, "read_") ||
			strings.Contains(q, "current_setting") || strings.Contains(q, "duckdb_databases") || strings.Contains(q, "query(")
		for _, path := range []string{"/share/" + ids[i] + "/data.csv", "/share/" + ids[i] + "/data.json"} {
			r := e.do("GET", path, nil)
			refused := r.status == 403 && strings.Contains(string(r.body), "not allowed by the server's query sandbox")
			failed := r.status == 422 && strings.Contains(string(r.body), "cannot run now")
			if !refused && (mustRefuse || !failed) {
				t.Errorf("stored %q: GET %s: %d %.300s", q, path, r.status, r.body)
			}
		}
	}
	if r := e.do("GET", "/share/"+ids[0], nil); r.status != 403 || !strings.Contains(string(r.body), "sandbox") {
		t.Errorf("the page of a refused link: %d %.300s", r.status, r.body)
	}
	r = e.do("GET", "/api/data/query/share", nil, "X-API-KEY", key)
	var list struct {
		Links []struct {
			LinkID  string `json:"link_id"`
			Status  string `json:"status"`
			Refused string `json:"refused"`
		}
	}
	if err := json.Unmarshal(r.body, &list); err != nil || len(list.Links) != len(hostile)+1 {
		t.Fatalf("list: %v %.300s", err, r.body)
	}
	refused := 0
	for _, l := range list.Links {
		switch {
		case l.LinkID == good.LinkID:
			if l.Status != "active" || l.Refused != "" {
				t.Errorf("the good link is %s: %s", l.Status, l.Refused)
			}
		case l.Status == "refused" && l.Refused != "":
			refused++
		default:
			t.Logf("stored link not marked (its table does not exist): %q", linkOf[l.LinkID])
		}
	}
	if refused < len(hostile)-5 {
		t.Errorf("%d of %d stored hostile links were marked refused", refused, len(hostile))
	}
	if n := len(e.csvRows(good.URL)); n != 2 {
		t.Errorf("the good link after restart: %d rows", n)
	}
	if n := len(e.csvRows(snap.URL)); n != 1 {
		t.Errorf("the bystander's snapshot after restart: %d rows", n)
	}
	sameSettings(t, before, e.tenantSettings(id))
	// The mark is in the registry too.
	if b, err = os.ReadFile(regPath); err != nil || !strings.Contains(string(b), `"refused": "table function enable_logging is not allowed`) {
		t.Errorf("registry: %v, refused marks missing", err)
	}
}

// TestQueryTextLimits: SQL over -query.max-sql is 413, a NUL byte 400,
// through the query endpoint and share creation.
func TestQueryTextLimits(t *testing.T) {
	e := newEnv(t, withShare(newFakeClock()))
	_, key := e.tenant("a")
	var b strings.Builder
	b.WriteString("select 1 where 1 in (1")
	for b.Len() < 4<<20 {
		b.WriteString(",1")
	}
	b.WriteString(")")
	big := b.String()
	if r := e.do("POST", "/api/data/query?timeout=1", []byte(big), "X-API-KEY", key, "Content-Type", "text/plain"); r.status != 413 {
		t.Errorf("4 MiB IN list: %d %.300s", r.status, r.body)
	}
	if r := e.createShare(key, map[string]any{"query": big, "duration": 60}); r.status != 413 {
		t.Errorf("4 MiB IN list shared: %d %.300s", r.status, r.body)
	}
	nul := "select 1\x00; drop table events"
	if r := e.do("POST", "/api/data/query", []byte(nul), "X-API-KEY", key, "Content-Type", "text/plain"); r.status != 400 || !strings.Contains(string(r.body), "NUL") {
		t.Errorf("NUL byte: %d %.300s", r.status, r.body)
	}
	if r := e.createShare(key, map[string]any{"query": nul, "duration": 60}); r.status != 400 || !strings.Contains(string(r.body), "NUL") {
		t.Errorf("NUL byte shared: %d %.300s", r.status, r.body)
	}
	if r := e.createShare(key, map[string]any{"query": "select * from sniff_csv('/etc/passwd')", "duration": 60}); r.status != 403 ||
		!strings.Contains(string(r.body), "table function sniff_csv is not allowed in a query") {
		t.Errorf("sniff_csv shared: %d %.300s", r.status, r.body)
	}
}

// TestOperatorQuerySandbox: the operator query runs through the same
// sandbox: the tenants' snapshots may be named with three-part names, what
// the allow-list refuses is refused.
func TestOperatorQuerySandbox(t *testing.T) {
	e := newAdminEnv(t, adminEnvConfig{})
	aID, aKey := e.tenant("a")
	wantStatus(t, e.insert(aKey, "orders", `[{"amount":1.5},{"amount":2.5}]`), 200, "a")
	q := `SELECT count(*) AS n FROM "` + aID + `".main.orders`
	r := e.admin("POST", "/api/admin/query", `{"query":`+strconvQuote(q)+`,"tenants":["`+aID+`"]}`)
	if r.status != 200 || !strings.Contains(string(r.body), `"n":2`) {
		t.Fatalf("three-part name: %d %s", r.status, r.body)
	}
	for _, q := range []string{
		"select * from enable_logging(level='trace')",
		"select current_setting('allowed_directories')",
		"select * from duckdb_databases()",
		`select * from system.main.duckdb_settings()`,
	} {
		r := e.admin("POST", "/api/admin/query", `{"query":`+strconvQuote(q)+`,"tenants":["`+aID+`"]}`)
		if r.status != 403 || !strings.Contains(string(r.body), "not allowed in a query") {
			t.Errorf("operator %s: %d %s", q, r.status, r.body)
		}
	}
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
