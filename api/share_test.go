package api

import (
	"bytes"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"duckgate/batcher"
	"duckgate/query"
	"duckgate/share"
	"duckgate/tenant"
	"duckgate/tenantdb"
)

// startShare wires a query engine (if ic has none) and a share.Service
// into ic, as cmd/duckgate does. Path defaults to <dir>/shares.json; a nil
// TenantActive asks the env's tenant registry.
func startShare(t *testing.T, dir string, sc share.Config, pool *tenantdb.Pool, b *batcher.Batcher, log *zap.Logger, ic *serverConfig) *share.Service {
	t.Helper()
	qe := query.New(query.Config{}, pool, b, log)
	if ic.Query == nil {
		ic.Query = qe
	}
	if sc.Path == "" {
		sc.Path = filepath.Join(dir, "shares.json")
	}
	if sc.TenantActive == nil {
		tenants := ic.Tenants
		sc.TenantActive = func(id string) bool {
			tn, err := tenants.Get(id)
			return err == nil && tn.Status == tenant.StatusActive
		}
	}
	sh, err := share.Open(sc, qe, log)
	if err != nil {
		t.Fatal(err)
	}
	ic.Share = sh
	return sh
}

// fakeClock is the share service's clock in tests.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *fakeClock) now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) add(d time.Duration) { c.ns.Add(int64(d)) }

// withShare wires sharing with the clock c; the janitor does not run
// during the test.
func withShare(c *fakeClock) func(*envConfig) {
	return func(cfg *envConfig) {
		cfg.share = &share.Config{Now: c.now, JanitorInterval: time.Hour}
	}
}

// withShareJanitor wires sharing with the clock c and a janitor that runs
// every millisecond: a test moves the clock and waits for its effect.
func withShareJanitor(c *fakeClock) func(*envConfig) {
	return func(cfg *envConfig) {
		cfg.share = &share.Config{Now: c.now, JanitorInterval: time.Millisecond}
	}
}

// waitFor polls cond until it holds, failing the test after 10 seconds:
// for effects of the server's own timers (janitor, clean-up after a
// response), which no channel reports.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	timeout := time.After(10 * time.Second)
	for !cond() {
		select {
		case <-tick.C:
		case <-timeout:
			t.Fatalf("still waiting for %s", what)
		}
	}
}

// shareInfo is what the owner's list shows of a link.
type shareInfo struct {
	LinkID    string `json:"link_id"`
	Name      string `json:"name"`
	Downloads int64  `json:"downloads"`
	Revoked   bool   `json:"revoked"`
}

// created is the answer to a new link.
type created struct {
	ID        string    `json:"id"`
	LinkID    string    `json:"link_id"`
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
	Rows      *int64    `json:"rows"`
}

// shareLink makes a link and fails the test unless it gets 201.
func (e *env) shareLink(key string, body any) created {
	e.t.Helper()
	r := e.createShare(key, body)
	if r.status != 201 {
		e.t.Fatalf("create share: %d %s", r.status, r.body)
	}
	var c created
	if err := json.Unmarshal(r.body, &c); err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *env) createShare(key string, body any) response {
	e.t.Helper()
	b, ok := body.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(body); err != nil {
			e.t.Fatal(err)
		}
	}
	return e.do("POST", "/api/data/query/share", b, "X-API-KEY", key, "Content-Type", "application/json")
}

// csvRows downloads url's data.csv and returns its records without the
// header.
func (e *env) csvRows(url string) [][]string {
	e.t.Helper()
	r := e.do("GET", url+"/data.csv", nil)
	if r.status != 200 {
		e.t.Fatalf("GET %s/data.csv: %d %s", url, r.status, r.body)
	}
	recs, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
	if err != nil {
		e.t.Fatalf("parse CSV: %v\n%s", err, r.body)
	}
	return recs[1:]
}

// parquetRows reads a Parquet file's rows with DuckDB as id|name lines.
func parquetRows(t *testing.T, b []byte) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "x.parquet")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT id, name FROM read_parquet('" + path + "') ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id int64
		var name string
		if err := rows.Scan(&id, &name); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%d|%s", id, name))
	}
	return out
}

const (
	shareSQL     = "select id, name, score from events order by id"
	shareNameSQL = "select id, name from events order by id"
)

func TestShareFormatsAndStates(t *testing.T) {
	clock := newFakeClock()
	e := newEnv(t, withShareJanitor(clock))
	idA, keyA := e.tenant("a")
	_, keyB := e.tenant("b")
	if r := e.insert(keyA, "events", `{"id":1,"name":"ann","score":1.5}
{"id":2,"name":"bob, \"the\" <b>","score":2}
{"id":3,"name":"cy","score":null}`); r.status != 200 {
		t.Fatalf("insert: %d %s", r.status, r.body)
	}
	c := e.shareLink(keyA, map[string]any{"query": shareSQL, "duration": 3600, "name": "Weekly Report!"})
	if len(c.ID) != 32 || c.URL != "/share/"+c.ID || len(c.LinkID) != 16 {
		t.Fatalf("created %+v", c)
	}
	if d := c.ExpiresAt.Sub(clock.now()); d < 3590*time.Second || d > 3600*time.Second {
		t.Fatalf("expires_at %s is not an hour after now %s", c.ExpiresAt, clock.now())
	}

	// The page: preview table and download links, never the key nor the SQL.
	page := e.do("GET", c.URL, nil)
	if page.status != 200 || !strings.HasPrefix(page.header["Content-Type"], "text/html") {
		t.Fatalf("page: %d %s %s", page.status, page.header["Content-Type"], page.body)
	}
	checkPage(t, string(page.body), c.URL, []string{"Weekly Report!", "3 rows", "<th>name</th>", "<td>ann</td>",
		"<td>bob, &#34;the&#34; &lt;b&gt;</td>"}, []string{keyA, shareSQL, "from events", "<b>"})

	// Every format, parsed back.
	wantCSV := [][]string{{"1", "ann", "1.5"}, {"2", `bob, "the" <b>`, "2"}, {"3", "cy", ""}}
	got := e.csvRows(c.URL)
	if fmt.Sprint(got) != fmt.Sprint(wantCSV) {
		t.Fatalf("csv %q; want %q", got, wantCSV)
	}
	r := e.do("GET", c.URL+"/data.json", nil)
	var arr []map[string]any
	if err := json.Unmarshal(r.body, &arr); err != nil || r.status != 200 {
		t.Fatalf("json: %d %v %s", r.status, err, r.body)
	}
	if len(arr) != 3 || arr[1]["name"] != `bob, "the" <b>` || arr[0]["score"] != 1.5 || arr[2]["score"] != nil {
		t.Fatalf("json %v", arr)
	}
	if cd := r.header["Content-Disposition"]; cd != `attachment; filename="weekly-report.json"` {
		t.Fatalf("Content-Disposition %q", cd)
	}
	r = e.do("GET", c.URL+"/data.ndjson", nil)
	lines := strings.Split(strings.TrimSpace(string(r.body)), "\n")
	if r.status != 200 || len(lines) != 3 {
		t.Fatalf("ndjson: %d %s", r.status, r.body)
	}
	for i, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil || m["id"] != float64(i+1) {
			t.Fatalf("ndjson line %d %q: %v", i, l, err)
		}
	}
	r = e.do("GET", c.URL+"/data.parquet", nil)
	if r.status != 200 || r.header["Content-Disposition"] != `attachment; filename="weekly-report.parquet"` {
		t.Fatalf("parquet: %d %v", r.status, r.header)
	}
	if p := parquetRows(t, r.body); fmt.Sprint(p) != `[1|ann 2|bob, "the" <b> 3|cy]` {
		t.Fatalf("parquet rows %q", p)
	}
	if r := e.do("GET", c.URL+"/data.xml", nil); r.status != 404 {
		t.Fatalf("data.xml: %d", r.status)
	}
	if r := e.do("POST", c.URL+"/data.csv", nil); r.status != 405 {
		t.Fatalf("POST data.csv: %d", r.status)
	}

	// The owner's list: no id, no URL; 4 downloads.
	r = e.do("GET", "/api/data/query/share", nil, "X-API-KEY", keyA)
	var list struct {
		Links []shareInfo `json:"links"`
	}
	if err := json.Unmarshal(r.body, &list); err != nil || r.status != 200 || len(list.Links) != 1 {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	if l := list.Links[0]; l.LinkID != c.LinkID || l.Downloads != 4 || l.Revoked || l.Name != "Weekly Report!" {
		t.Fatalf("listed %+v", l)
	}
	if bytes.Contains(r.body, []byte(c.ID)) {
		t.Fatal("the list shows the secret id")
	}

	// Another tenant can neither list nor revoke it, but the link works for anyone.
	r = e.do("GET", "/api/data/query/share", nil, "X-API-KEY", keyB)
	if r.status != 200 || strings.TrimSpace(string(r.body)) != `{"links":[]}` {
		t.Fatalf("b's list: %d %s", r.status, r.body)
	}
	for _, ref := range []string{c.LinkID, c.ID} {
		if r := e.do("DELETE", "/api/data/query/share/"+ref, nil, "X-API-KEY", keyB); r.status != 404 {
			t.Fatalf("b revokes a's link: %d %s", r.status, r.body)
		}
	}
	if got := e.csvRows(c.URL); len(got) != 3 {
		t.Fatalf("a's link after b's attempts: %d rows", len(got))
	}

	// Unknown, tampered, malformed: 404.
	flip := []byte(c.ID)
	flip[10] ^= 'a' ^ 'b'
	if flip[10] == c.ID[10] {
		t.Fatal("tamper did nothing")
	}
	for _, u := range []string{"/share/" + strings.Repeat("A", 32), "/share/" + string(flip), "/share/" + string(flip) + "/data.csv",
		"/share/abc", "/share/", "/share/" + c.ID + "x"} {
		if r := e.do("GET", u, nil); r.status != 404 {
			t.Fatalf("GET %s: %d", u, r.status)
		}
	}

	// Suspended owner: 403; resumed: 200.
	if _, err := e.tenants.SetStatus(idA, tenant.StatusSuspended); err != nil {
		t.Fatal(err)
	}
	if r := e.do("GET", c.URL+"/data.csv", nil); r.status != 403 {
		t.Fatalf("suspended: %d %s", r.status, r.body)
	}
	if _, err := e.tenants.SetStatus(idA, tenant.StatusActive); err != nil {
		t.Fatal(err)
	}

	// Revoked: 410 for the page and the data; revoking again is fine.
	if r := e.do("DELETE", "/api/data/query/share/"+c.LinkID, nil, "X-API-KEY", keyA); r.status != 200 {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	for _, u := range []string{c.URL, c.URL + "/data.csv", c.URL + "/data.parquet"} {
		if r := e.do("GET", u, nil); r.status != 410 {
			t.Fatalf("revoked %s: %d %s", u, r.status, r.body)
		}
	}
	if r := e.do("DELETE", "/api/data/query/share/"+c.ID, nil, "X-API-KEY", keyA); r.status != 200 {
		t.Fatalf("revoke by id: %d %s", r.status, r.body)
	}

	// Expired: 410 once the clock passes expires_at.
	c2 := e.shareLink(keyA, map[string]any{"query": shareSQL, "duration": 60})
	if got := e.csvRows(c2.URL); len(got) != 3 {
		t.Fatalf("fresh: %d rows", len(got))
	}
	if cd := e.do("GET", c2.URL+"/data.csv", nil).header["Content-Disposition"]; cd != `attachment; filename="share-`+clock.now().UTC().Format("2006-01-02")+`.csv"` {
		t.Fatalf("unnamed Content-Disposition %q", cd)
	}
	clock.add(61 * time.Second)
	for _, u := range []string{c2.URL, c2.URL + "/data.json"} {
		if r := e.do("GET", u, nil); r.status != 410 {
			t.Fatalf("expired %s: %d %s", u, r.status, r.body)
		}
	}
	// Kept for KeepExpired (7 days) as 410, then dropped by the janitor: 404.
	clock.add(8 * 24 * time.Hour)
	waitFor(t, "the janitor to drop the expired link", func() bool { return e.do("GET", c2.URL, nil).status == 404 })
}

// checkPage checks the page is well-formed enough for a browser (balanced
// table tags, a download link per format) and holds want but none of
// banned.
func checkPage(t *testing.T, page, url string, want, banned []string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(page, w) {
			t.Errorf("page lacks %q", w)
		}
	}
	for _, b := range banned {
		if strings.Contains(page, b) {
			t.Errorf("page shows %q", b)
		}
	}
	for _, ext := range []string{"csv", "json", "ndjson", "parquet"} {
		if a := `<a href="` + url + `/data.` + ext + `"`; !strings.Contains(page, a) {
			t.Errorf("page lacks %s", a)
		}
	}
	if !strings.HasPrefix(page, "<!DOCTYPE html>") || !strings.Contains(page, "</html>") {
		t.Error("page is not a whole HTML document")
	}
	for _, tag := range []string{"html", "head", "body", "table", "thead", "tbody", "tr", "th", "td", "p", "a", "h1", "title", "style"} {
		open := len(regexp.MustCompile(`<`+tag+`[ >]`).FindAllString(page, -1))
		closed := strings.Count(page, "</"+tag+">")
		if open != closed {
			t.Errorf("page has %d <%s> and %d </%s>", open, tag, closed, tag)
		}
	}
	if !strings.Contains(page, "<table>") {
		t.Error("page has no table")
	}
	if t.Failed() {
		t.Log(page)
	}
}

func TestShareSnapshotVsLive(t *testing.T) {
	clock := newFakeClock()
	e := newEnv(t, withShareJanitor(clock))
	idA, key := e.tenant("a")
	e.insert(key, "events", `{"id":1,"name":"ann"}
{"id":2,"name":"bob"}`)
	live := e.shareLink(key, map[string]any{"query": shareNameSQL, "duration": 3600, "name": "live"})
	snap := e.shareLink(key, map[string]any{"query": shareNameSQL, "duration": 3600, "name": "frozen", "snapshot": true})
	if snap.Rows == nil || *snap.Rows != 2 {
		t.Fatalf("snapshot rows %v", snap.Rows)
	}
	if r := e.insert(key, "events", `{"id":3,"name":"cy"}`); r.status != 200 {
		t.Fatalf("insert: %d %s", r.status, r.body)
	}
	if n := len(e.csvRows(live.URL)); n != 3 {
		t.Fatalf("live after insert: %d rows; want 3", n)
	}
	if n := len(e.csvRows(snap.URL)); n != 2 {
		t.Fatalf("snapshot after insert: %d rows; want 2", n)
	}
	for _, ext := range []string{"json", "ndjson"} {
		r := e.do("GET", snap.URL+"/data."+ext, nil)
		if r.status != 200 || bytes.Contains(r.body, []byte("cy")) || !bytes.Contains(r.body, []byte("bob")) {
			t.Fatalf("snapshot %s: %d %s", ext, r.status, r.body)
		}
	}
	r := e.do("GET", snap.URL+"/data.parquet", nil)
	if p := parquetRows(t, r.body); r.status != 200 || fmt.Sprint(p) != "[1|ann 2|bob]" {
		t.Fatalf("snapshot parquet: %d %q", r.status, p)
	}
	checkPage(t, string(e.do("GET", snap.URL, nil).body), snap.URL, []string{"2 rows", "A snapshot"}, []string{"<td>cy</td>", shareNameSQL})
	checkPage(t, string(e.do("GET", live.URL, nil).body), live.URL, []string{"3 rows", "<td>cy</td>"}, []string{shareNameSQL})

	// Revoking deletes the snapshot file; so does expiry, at the janitor's tick.
	snapshots := func() int {
		m, _ := filepath.Glob(filepath.Join(e.pool.ScratchDir(idA), "share-*.parquet"))
		return len(m)
	}
	snap2 := e.shareLink(key, map[string]any{"query": shareNameSQL, "duration": 60, "snapshot": true})
	if n := snapshots(); n != 2 {
		t.Fatalf("%d snapshot files; want 2", n)
	}
	if r := e.do("DELETE", "/api/data/query/share/"+snap.LinkID, nil, "X-API-KEY", key); r.status != 200 {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	if n := snapshots(); n != 1 {
		t.Fatalf("after revoke %d snapshot files; want 1", n)
	}
	clock.add(time.Minute)
	if r := e.do("GET", snap2.URL+"/data.parquet", nil); r.status != 410 {
		t.Fatalf("expired snapshot: %d", r.status)
	}
	waitFor(t, "the janitor to delete the expired snapshot", func() bool { return snapshots() == 0 })
}

func TestShareSurvivesRestart(t *testing.T) {
	clock := newFakeClock()
	e := newEnv(t, withShare(clock))
	id, key := e.tenant("a")
	e.insert(key, "events", `{"id":1,"name":"ann"}`)
	live := e.shareLink(key, map[string]any{"query": "select * from events where id >= ?", "params": []any{1}, "duration": 3600})
	snap := e.shareLink(key, map[string]any{"query": shareNameSQL, "duration": 3600, "snapshot": true})
	e.csvRows(live.URL)
	e.csvRows(live.URL)

	// A snapshot file without a link (a crash between writing it and
	// saving the link) is deleted at start; the linked one stays.
	orphan := filepath.Join(e.pool.ScratchDir(id), "share-0123456789abcdef01234567.parquet")
	if err := os.WriteFile(orphan, []byte("PAR1"), 0o600); err != nil {
		t.Fatal(err)
	}
	e = e.restart(withShare(clock))
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Fatalf("orphaned snapshot: %v", err)
	}
	e.insert(key, "events", `{"id":2,"name":"bob"}`)
	if n := len(e.csvRows(live.URL)); n != 2 {
		t.Fatalf("live after restart: %d rows", n)
	}
	if n := len(e.csvRows(snap.URL)); n != 1 {
		t.Fatalf("snapshot after restart: %d rows", n)
	}
	r := e.do("GET", "/api/data/query/share", nil, "X-API-KEY", key)
	var list struct{ Links []shareInfo }
	if err := json.Unmarshal(r.body, &list); err != nil || len(list.Links) != 2 {
		t.Fatalf("list: %s", r.body)
	}
	for _, l := range list.Links {
		if want := map[string]int64{live.LinkID: 3, snap.LinkID: 1}[l.LinkID]; l.Downloads != want {
			t.Errorf("link %s: %d downloads; want %d (counts survive the restart)", l.LinkID, l.Downloads, want)
		}
	}
	// The registry holds hashes, never the ids.
	reg, err := os.ReadFile(filepath.Join(e.dir, "shares.json"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(reg, []byte(live.ID)) || bytes.Contains(reg, []byte(snap.ID)) {
		t.Fatal("the registry file holds a link id")
	}
}

func TestShareRefused(t *testing.T) {
	clock := newFakeClock()
	e := newEnv(t, withShare(clock))
	id, key := e.tenant("a")
	e.insert(key, "events", `{"id":1,"name":"ann"}`)
	_, ingestKey, err := e.tenants.CreateKey(id, tenant.ScopeIngest)
	if err != nil {
		t.Fatal(err)
	}
	f := func(key string, body string, status int, msg string) {
		t.Helper()
		r := e.createShare(key, []byte(body))
		if r.status != status || !strings.Contains(string(r.body), msg) {
			t.Fatalf("%s: %d %s; want %d containing %q", body, r.status, r.body, status, msg)
		}
	}
	f(key, `{"query":"drop table events","duration":60}`, 403, "DROP statements are not allowed")
	f(key, `{"query":"select 1; drop table events","duration":60}`, 400, "exactly one SQL statement")
	f(key, `{"query":"select * from nope","duration":60}`, 400, "nope")
	f(key, `{"query":"select ? as x","duration":60}`, 400, "")
	f(key, `{"query":"copy events to 'x.csv'","duration":60,"snapshot":true}`, 403, "the statement is not a SELECT")
	f(key, `{"query":"select 1","duration":2678400}`, 400, "longer than the longest this server allows, 2592000s (30 days)")
	f(key, `{"query":"select 1","duration":1e300}`, 400, "longer than the longest")
	f(key, `{"query":"select 1","duration":0}`, 400, "at least 1 second")
	f(key, `{"query":"select 1","duration":-5}`, 400, "at least 1 second")
	f(key, `{"query":"select 1","duration":"soon"}`, 400, "")
	f(key, `{"query":"select 1",`, 400, "invalid JSON")
	f(key, ``, 400, "empty")
	f(key, `{"duration":60}`, 400, "is required")
	f(key, `{"query":"select 1","durration":60}`, 400, "unknown field")
	f(key, `{"query":"select 1","name":"a\u0000b"}`, 400, "control characters")
	f(ingestKey, `{"query":"select 1"}`, 403, "scope")
	f("", `{"query":"select 1"}`, 401, "API key")
	if r := e.do("GET", "/api/data/query/share", nil); r.status != 401 {
		t.Fatalf("list without key: %d", r.status)
	}
	if r := e.do("PUT", "/api/data/query/share", nil, "X-API-KEY", key); r.status != 405 {
		t.Fatalf("PUT: %d", r.status)
	}
	if r := e.do("GET", "/api/data/query/shares", nil, "X-API-KEY", key); r.status != 404 {
		t.Fatalf("/shares: %d", r.status)
	}
	if r := e.do("DELETE", "/api/data/query/share/0123456789abcdef", nil, "X-API-KEY", key); r.status != 404 {
		t.Fatalf("revoke unknown: %d", r.status)
	}

	// No duration: the default, 7 days.
	c := e.shareLink(key, map[string]any{"query": "select 1 as one"})
	if d := c.ExpiresAt.Sub(clock.now()); d < 7*24*time.Hour-time.Second || d > 7*24*time.Hour {
		t.Fatalf("default expiry in %s", d)
	}
	// A query that fails at download time is reported without its SQL.
	c = e.shareLink(key, map[string]any{"query": "select name::INTEGER as n from events"})
	r := e.do("GET", c.URL+"/data.csv", nil)
	if r.status == 200 || bytes.Contains(r.body, []byte("INTEGER")) || bytes.Contains(r.body, []byte("events")) {
		t.Fatalf("failing download: %d %s", r.status, r.body)
	}
	page := e.do("GET", c.URL, nil)
	if page.status != 200 || bytes.Contains(page.body, []byte("INTEGER")) || !bytes.Contains(page.body, []byte("cannot be read")) {
		t.Fatalf("failing page: %d %s", page.status, page.body)
	}
}

// Sharing is off unless configured.
func TestShareDisabled(t *testing.T) {
	e := newEnv(t)
	_, key := e.tenant("a")
	if r := e.createShare(key, map[string]any{"query": "select 1"}); r.status != 404 {
		t.Fatalf("create: %d", r.status)
	}
	if r := e.do("GET", "/share/"+strings.Repeat("A", 32), nil); r.status != 404 {
		t.Fatalf("page: %d", r.status)
	}
}

// With BaseURL the link and the page's download links are absolute.
func TestShareBaseURL(t *testing.T) {
	clock := newFakeClock()
	e := newEnv(t, func(cfg *envConfig) {
		cfg.share = &share.Config{Now: clock.now, BaseURL: "https://dg.example.com/", JanitorInterval: time.Hour}
	})
	_, key := e.tenant("a")
	e.insert(key, "events", `{"id":1,"name":"ann"}`)
	c := e.shareLink(key, map[string]any{"query": shareNameSQL})
	path, ok := strings.CutPrefix(c.URL, "https://dg.example.com/share/")
	if !ok || path != c.ID {
		t.Fatalf("url %q", c.URL)
	}
	page := e.do("GET", "/share/"+c.ID, nil)
	checkPage(t, string(page.body), c.URL, []string{"1 row."}, []string{key})
}

// Downloads running while the link is revoked and the janitor sweeps
// either complete or get 410; nothing else.
func TestShareConcurrentRevoke(t *testing.T) {
	clock := newFakeClock()
	e := newEnv(t, withShareJanitor(clock))
	_, key := e.tenant("a")
	var rows strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&rows, `{"id":%d,"name":"n%d"}`+"\n", i, i)
	}
	e.insert(key, "events", rows.String())
	live := e.shareLink(key, map[string]any{"query": shareNameSQL})
	snap := e.shareLink(key, map[string]any{"query": shareNameSQL, "snapshot": true})
	get := func(uri string) (int, []byte, error) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://duckgate" + uri)
		err := e.client.DoTimeout(req, resp, time.Minute)
		return resp.StatusCode(), append([]byte(nil), resp.Body()...), err
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	downloading := make(chan struct{}) // closed once a download has answered
	var once sync.Once
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				u := []string{live.URL, snap.URL}[(g+i)%2] + "/data." + []string{"csv", "json", "ndjson", "parquet"}[i%4]
				st, body, err := get(u)
				once.Do(func() { close(downloading) })
				switch {
				case err != nil:
					errs <- fmt.Errorf("%s: %v", u, err)
				case st == 410:
				case st != 200:
					errs <- fmt.Errorf("%s: %d %s", u, st, body)
				case strings.HasSuffix(u, ".csv") && bytes.Count(body, []byte("\n")) != 2001:
					errs <- fmt.Errorf("%s: %d lines", u, bytes.Count(body, []byte("\n")))
				}
			}
		}()
	}
	// Revoke while downloads are under way.
	select {
	case <-downloading:
	case <-time.After(time.Minute):
		t.Fatal("no download answered within a minute")
	}
	for _, c := range []created{snap, live} {
		if r := e.do("DELETE", "/api/data/query/share/"+c.LinkID, nil, "X-API-KEY", key); r.status != 200 {
			t.Fatalf("revoke: %d %s", r.status, r.body)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
