package api

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"duckgate/batcher"
	"duckgate/ingest"
	"duckgate/tenant"
)

func (e *env) call(method, key, uri, body string) response {
	e.t.Helper()
	return e.do(method, uri, []byte(body), "X-API-KEY", key)
}

// columnList returns a table's columns as "name TYPE, …", in order, from a
// database opened after the env stopped.
func columnList(t *testing.T, e *env, tenantID, table string) string {
	t.Helper()
	db, err := sql.Open("duckdb", filepath.Join(e.dir, "tenants", tenantID+".duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out []string
	for _, c := range columnsOf(t, db, table) {
		out = append(out, c[0]+" "+c[1])
	}
	return strings.Join(out, ", ")
}

// A pinned BIGINT column receiving "abc" quarantines that value with its
// reason and stores the rest of the row; unpin plus replay brings it back
// as VARCHAR, once.
func TestPinQuarantineReplay(t *testing.T) {
	e := newEnv(t)
	id, key := e.tenant("acme")
	r := e.call("PUT", key, "/api/tables/events/columns/n", `{"type":"bigint"}`)
	wantStatus(t, r, 200, "pin before the table exists")
	if got := decodeBody[batcher.PinResult](t, r); got.Type != "BIGINT" || got.Altered || got.From != "" {
		t.Fatalf("pin: %+v", got)
	}
	wantStatus(t, e.insert(key, "events", `{"n":1,"s":"a"}`+"\n"+`{"n":"abc","s":"b"}`), 200, "insert")

	list := decodeBody[ingest.QuarantineList](t, e.get(key, "/api/quarantine"))
	if list.Total != 1 || len(list.Entries) != 1 || len(list.Reasons) != 1 || list.Reasons[0].Rows != 1 {
		t.Fatalf("quarantine: %+v", list)
	}
	q := list.Entries[0]
	if q.Table != "events" || q.Column != "n" || string(q.Value) != `"abc"` || q.ExpectedType != "BIGINT" ||
		!strings.Contains(q.Error, "pinned as BIGINT") || !strings.Contains(string(q.Row), `"s":"b"`) {
		t.Fatalf("entry: %+v (row %s)", q, q.Row)
	}
	// The operator sees the count.
	adm := decodeBody[struct {
		Quarantined int64 `json:"quarantined_rows"`
	}](t, e.admin("GET", "/api/admin/tenants/"+id, ""))
	if adm.Quarantined != 1 {
		t.Fatalf("admin quarantined_rows = %d; want 1", adm.Quarantined)
	}
	// Still pinned: a replay does not fit and replaces the entry.
	rr := decodeBody[ingest.ReplayResponse](t, e.call("POST", key, "/api/quarantine/replay", fmt.Sprintf(`{"ids":[%d]}`, q.ID)))
	if rr.Replayed != 1 || rr.Landed != 0 || rr.QuarantinedAgain != 1 {
		t.Fatalf("replay while pinned: %+v", rr)
	}
	list = decodeBody[ingest.QuarantineList](t, e.get(key, "/api/quarantine?table=events"))
	if list.Total != 1 || list.Entries[0].ReplayedFrom != q.ID {
		t.Fatalf("after replay while pinned: %+v", list)
	}
	wantStatus(t, e.call("DELETE", key, "/api/tables/events/columns/N", ""), 200, "unpin")
	wantStatus(t, e.call("DELETE", key, "/api/tables/events/columns/n", ""), 404, "unpin twice")
	rr = decodeBody[ingest.ReplayResponse](t, e.call("POST", key, "/api/quarantine/replay", `{"table":"events"}`))
	if rr.Replayed != 1 || rr.Landed != 1 || rr.QuarantinedAgain != 0 {
		t.Fatalf("replay: %+v", rr)
	}
	rr = decodeBody[ingest.ReplayResponse](t, e.call("POST", key, "/api/quarantine/replay", `{"all":true}`))
	if rr.Replayed != 0 {
		t.Fatalf("second replay: %+v", rr)
	}
	if list = decodeBody[ingest.QuarantineList](t, e.get(key, "/api/quarantine")); list.Total != 0 {
		t.Fatalf("quarantine after replay: %+v", list)
	}
	e.stop()
	if got := columnList(t, e, id, "events"); got != "n VARCHAR, s VARCHAR" {
		t.Fatalf("columns: %s", got)
	}
	rows := queryText(t, e.openDB(id), `SELECT coalesce(n, 'NULL') || '/' || coalesce(s, 'NULL') FROM events ORDER BY ALL`)
	if got := fmt.Sprint(rows); got != "[[1/a] [NULL/b] [abc/NULL]]" {
		t.Fatalf("rows: %s", got)
	}
	if n := queryInt(t, e, id, "SELECT count(*) FROM "+batcher.QuarantineTable); n != 0 {
		t.Fatalf("%d quarantined rows left", n)
	}
}

// A pin is refused when stored values do not convert exactly, and converts
// the column when they do.
func TestPinRefusedWhenValuesDoNotConvert(t *testing.T) {
	e := newEnv(t)
	id, key := e.tenant("acme")
	wantStatus(t, e.insert(key, "t", `[{"s":"12","d":1.5,"w":1.0,"z":"007"},{"s":"abc","d":2,"w":2,"z":"7"}]`), 200, "insert")
	f := func(col, typ string, status int) response {
		t.Helper()
		r := e.call("PUT", key, "/api/tables/t/columns/"+col, `{"type":"`+typ+`"}`)
		wantStatus(t, r, status, "pin "+col+" "+typ)
		return r
	}
	r := f("s", "BIGINT", 409)
	if !strings.Contains(string(r.body), `1 stored values`) || !strings.Contains(string(r.body), `abc`) {
		t.Fatalf("refusal does not say why: %s", r.body)
	}
	f("d", "BIGINT", 409) // 1.5 would round
	wantStatus(t, e.call("PUT", key, "/api/tables/T/columns/S", `{"type":"BIGINT"}`), 409, "pin in another case")
	f("z", "BIGINT", 409) // "007" is not how 7 is spelled
	if got := decodeBody[batcher.PinResult](t, f("w", "BIGINT", 200)); !got.Altered || got.From != "DOUBLE" {
		t.Fatalf("pin w: %+v", got)
	}
	f("s", "VARCHAR", 200)
	f("d", "JSON", 200)
	e.stop()
	if got := columnList(t, e, id, "t"); got != "s VARCHAR, d JSON, w BIGINT, z VARCHAR" {
		t.Fatalf("columns: %s", got)
	}
}

// A frozen table puts new keys in _overflow; pinned columns are still
// added; unfreezing adds columns again.
func TestFrozenTable(t *testing.T) {
	e := newEnv(t)
	id, key := e.tenant("acme")
	wantStatus(t, e.insert(key, "t", `{"a":1}`), 200, "insert")
	r := e.call("PUT", key, "/api/tables/t", `{"frozen":true}`)
	wantStatus(t, r, 200, "freeze")
	wantStatus(t, e.call("PUT", key, "/api/tables/t/columns/p", `{"type":"DOUBLE"}`), 200, "pin")
	wantStatus(t, e.insert(key, "t", `{"a":2,"b":"x","p":3}`), 200, "insert frozen")
	got := decodeBody[ingest.TableRulesResponse](t, e.get(key, "/api/tables/t"))
	if !got.Frozen || got.Pins["p"] != "DOUBLE" {
		t.Fatalf("rules: %+v", got)
	}
	dr := decodeBody[batcher.DryRunResult](t, e.call("POST", key, "/api/data/insert/t?dry_run=true", `{"zz":1,"a":1}`))
	if len(dr.NewColumns) != 0 || fmt.Sprint(dr.Overflow) != "[zz]" {
		t.Fatalf("dry run on a frozen table: %+v", dr)
	}
	wantStatus(t, e.call("PUT", key, "/api/tables/t", `{"frozen":false}`), 200, "unfreeze")
	wantStatus(t, e.insert(key, "t", `{"c":true}`), 200, "insert unfrozen")
	e.stop()
	if got := columnList(t, e, id, "t"); got != "a BIGINT, p DOUBLE, _overflow JSON, c BOOLEAN" {
		t.Fatalf("columns: %s", got)
	}
	rows := queryText(t, e.openDB(id), `SELECT a, p, CAST(_overflow AS VARCHAR) FROM t WHERE a = 2`)
	if got := fmt.Sprint(rows); got != `[[2 3 {"b":"x"}]]` {
		t.Fatalf("row: %s", got)
	}
}

// A dry run answers the changes the real insert then makes, and stores
// nothing.
func TestDryRunMatchesInsert(t *testing.T) {
	e := newEnv(t)
	id, key := e.tenant("acme")
	// On a tenant that has no database yet, nothing is created.
	r := e.call("POST", key, "/api/data/insert/t?dry_run=true", `{"a":1}`)
	wantStatus(t, r, 200, "dry run on nothing")
	if _, err := os.Stat(filepath.Join(e.dir, "tenants", id+".duckdb")); !os.IsNotExist(err) {
		t.Fatalf("a dry run created the database: %v", err)
	}
	wantStatus(t, e.insert(key, "t", `{"n":1,"x":2}`), 200, "insert")
	wantStatus(t, e.call("PUT", key, "/api/tables/t/columns/x", `{"type":"BIGINT"}`), 200, "pin")
	body := `{"n":"abc","x":"bad","new":true}` + "\n" + `{"n":2.5,"x":3}` + "\nnot json\n"
	r = e.call("POST", key, "/api/data/insert/t?dry_run=true", body)
	wantStatus(t, r, 200, "dry run")
	var dr struct {
		DryRun   bool `json:"dry_run"`
		Accepted int  `json:"accepted"`
		Rejected int  `json:"rejected"`
		batcher.DryRunResult
	}
	if err := json.Unmarshal(r.body, &dr); err != nil {
		t.Fatal(err)
	}
	if !dr.DryRun || dr.Accepted != 2 || dr.Rejected != 1 || !dr.TableExists ||
		fmt.Sprint(dr.NewColumns) != "[{new BOOLEAN}]" || len(dr.Widened) != 1 || dr.Widened[0].Column != "n" ||
		dr.Widened[0].To != "VARCHAR" || string(dr.Widened[0].Value) != `"abc"` || dr.Quarantined != 1 ||
		dr.QuarantinedValues[0].Column != "x" || dr.QuarantinedValues[0].Row != 1 || string(dr.QuarantinedValues[0].Value) != `"bad"` {
		t.Fatalf("dry run: %s", r.body)
	}
	e.stop()
	if got := columnList(t, e, id, "t"); got != "n BIGINT, x BIGINT" {
		t.Fatalf("a dry run changed the table: %s", got)
	}
	db, err := sql.Open("duckdb", filepath.Join(e.dir, "tenants", id+".duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != 1 {
		t.Fatalf("a dry run stored rows: %d, %v", n, err)
	}
	db.Close()
	e = e.restart()
	wantStatus(t, e.insert(key, "t", body), 200, "real insert")
	list := decodeBody[ingest.QuarantineList](t, e.get(key, "/api/quarantine"))
	if list.Total != int64(dr.Quarantined) {
		t.Fatalf("dry run said %d quarantined, the insert quarantined %d", dr.Quarantined, list.Total)
	}
	e.stop()
	if got := columnList(t, e, id, "t"); got != "n VARCHAR, x BIGINT, new BOOLEAN" {
		t.Fatalf("columns after the insert: %s", got)
	}
}

// Bad input to every lifecycle call is a 4xx that says why, and nothing
// changes.
func TestLifecycleBadInput(t *testing.T) {
	e := newEnv(t)
	id, key := e.tenant("acme")
	_, qkey, err := e.tenants.CreateKey(id, tenant.ScopeQuery)
	if err != nil {
		t.Fatal(err)
	}
	_, ikey, err := e.tenants.CreateKey(id, tenant.ScopeIngest)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, e.insert(key, "t", `{"a":1}`), 200, "insert")
	big := `{"ids":[` + strings.Repeat("1,", 40000) + `1]}`
	for _, c := range []struct {
		method, key, uri, body string
		status                 int
	}{
		{"PUT", key, "/api/tables/t/columns/a", `{"type":`, 400},
		{"PUT", key, "/api/tables/t/columns/a", `{"type":"INT128"}`, 400},
		{"PUT", key, "/api/tables/t/columns/a", `{"type":"NONE"}`, 400},
		{"PUT", key, "/api/tables/t/columns/a", `{"type":"BIGINT","x":1}`, 400},
		{"PUT", key, "/api/tables/t/columns/a", `{}`, 400},
		{"PUT", key, "/api/tables/t/columns/a", `{"type":"BIGINT"} {}`, 400},
		{"PUT", key, "/api/tables/t/columns/_overflow", `{"type":"BIGINT"}`, 400},
		{"PUT", key, "/api/tables/_duckgate_pins/columns/a", `{"type":"BIGINT"}`, 400},
		{"PUT", key, "/api/tables/bad-name/columns/a", `{"type":"BIGINT"}`, 400},
		{"PUT", key, "/api/tables/_duckgate_quarantine", `{"frozen":true}`, 400},
		{"PUT", key, "/api/tables/t", `{"frozen":"yes"}`, 400},
		{"PUT", key, "/api/tables/t", ``, 400},
		{"PUT", key, "/api/tables/t", big, 413},
		{"GET", key, "/api/tables/_duckgate_applied", ``, 400},
		{"DELETE", key, "/api/tables/t/columns/nope", ``, 404},
		{"POST", key, "/api/tables/t/columns/a", ``, 405},
		{"PUT", qkey, "/api/tables/t/columns/a", `{"type":"BIGINT"}`, 403},
		{"PUT", ikey, "/api/tables/t/columns/a", `{"type":"BIGINT"}`, 403},
		{"PUT", ikey, "/api/tables/t", `{"frozen":true}`, 403},
		{"GET", ikey, "/api/quarantine", ``, 403},
		{"POST", qkey, "/api/quarantine/replay", `{"all":true}`, 403},
		{"DELETE", qkey, "/api/quarantine", `{"all":true}`, 403},
		{"DELETE", key, "/api/quarantine", ``, 400},
		{"DELETE", key, "/api/quarantine", `{}`, 400},
		{"DELETE", key, "/api/quarantine", `{"all":true,"table":"t"}`, 400},
		{"DELETE", key, "/api/quarantine", `{"ids":[]}`, 400},
		{"DELETE", key, "/api/quarantine", `{"ids":["x"]}`, 400},
		{"DELETE", key, "/api/quarantine", `{"table":"_duckgate_x"}`, 400},
		{"POST", key, "/api/quarantine/replay", `[1,2]`, 400},
		{"POST", key, "/api/quarantine/replay", big, 413},
		{"GET", key, "/api/quarantine?limit=0", ``, 400},
		{"GET", key, "/api/quarantine?limit=100000", ``, 400},
		{"GET", key, "/api/quarantine?after=x", ``, 400},
		{"GET", key, "/api/quarantine?table=a%20b", ``, 400},
		{"PUT", key, "/api/quarantine", ``, 405},
		{"GET", key, "/api/quarantine/replay", ``, 405},
		{"GET", qkey, "/api/quarantine", ``, 200},
		{"DELETE", key, "/api/quarantine", `{"ids":[12345]}`, 200},
	} {
		r := e.call(c.method, c.key, c.uri, c.body)
		if r.status != c.status {
			t.Errorf("%s %s %.40s: status %d, want %d: %s", c.method, c.uri, c.body, r.status, c.status, r.body)
		}
		var body struct {
			Error string `json:"error"`
		}
		if c.status >= 400 && (json.Unmarshal(r.body, &body) != nil || body.Error == "") {
			t.Errorf("%s %s: error body %s", c.method, c.uri, r.body)
		}
	}
	e.stop()
	if got := columnList(t, e, id, "t"); got != "a BIGINT" {
		t.Fatalf("columns changed: %s", got)
	}
}

// A replay is exactly once: an entry whose replay is durable but not yet
// committed is not sent again, and after a crash the log commits it and
// deletes the entry in one transaction.
func TestReplayExactlyOnceAcrossCrash(t *testing.T) {
	slow := func(c *envConfig) { c.batcher.FlushInterval = time.Hour }
	e := newEnv(t, slow)
	id, key := e.tenant("acme")
	wantStatus(t, e.call("PUT", key, "/api/tables/t/columns/n", `{"type":"BIGINT"}`), 200, "pin")
	wantStatus(t, e.insert(key, "t", `{"n":"abc","s":"x"}`), 200, "insert")
	wantStatus(t, e.call("DELETE", key, "/api/tables/t/columns/n", ``), 200, "unpin")
	list := decodeBody[ingest.QuarantineList](t, e.get(key, "/api/quarantine"))
	if list.Total != 1 {
		t.Fatalf("quarantine: %+v", list)
	}
	q := list.Entries[0]

	// A replay made durable by the log, not yet flushed (the interval is an hour).
	rkey := batcher.QuarantineReplayKey(q.ID)
	if _, found, err := e.batcher.BeginIdempotent(id, rkey); err != nil || found {
		t.Fatalf("reserve the replay key: %v, %v", found, err)
	}
	b := batcher.NewBuilder()
	if err := ingest.DecodeOne(b, q.Replay(), nil); err != nil {
		t.Fatal(err)
	}
	if err := e.batcher.SubmitAll([]batcher.Request{{Tenant: id, Table: "t", Rows: b.Rows(), IdempotencyKey: rkey, Response: []byte("{}")}}); err != nil {
		t.Fatal(err)
	}
	// Another replay now does not send it again.
	rr := decodeBody[ingest.ReplayResponse](t, e.call("POST", key, "/api/quarantine/replay", `{"all":true}`))
	if rr.Replayed != 0 || rr.Pending != 1 {
		t.Fatalf("replay while one is in flight: %+v", rr)
	}
	e.crash()
	e = startEnv(t, e.dir, slow)
	if list := decodeBody[ingest.QuarantineList](t, e.get(key, "/api/quarantine")); list.Total != 0 {
		t.Fatalf("the recovered replay left its entry: %+v", list)
	}
	rr = decodeBody[ingest.ReplayResponse](t, e.call("POST", key, "/api/quarantine/replay", `{"all":true}`))
	if rr.Replayed != 0 || rr.Pending != 0 {
		t.Fatalf("replay after recovery: %+v", rr)
	}
	e.stop()
	if n := queryInt(t, e, id, `SELECT count(*) FROM t WHERE n = 'abc'`); n != 1 {
		t.Fatalf("the replayed value is stored %d times", n)
	}
}

// A quarantine table from before entries had ids (rows of a batch that
// kept failing) gets ids on first use; its rows replay whole, and discard
// removes what is selected.
func TestReplayOldQuarantine(t *testing.T) {
	dir := t.TempDir()
	e := startEnv(t, dir)
	id, key := e.tenant("acme")
	wantStatus(t, e.insert(key, "t", `{"a":1}`), 200, "insert")
	e.stop()
	db, err := sql.Open("duckdb", filepath.Join(dir, "tenants", id+".duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE _duckgate_quarantine (table_name VARCHAR, error VARCHAR, quarantined_at TIMESTAMPTZ, row JSON)`,
		`INSERT INTO _duckgate_quarantine VALUES ('t', 'boom', now(), '{"a":2,"b":"x"}'), ('t', 'boom', now(), '{"a":3}'), ('u', 'bang', now(), '{"z":true}')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	e = startEnv(t, dir)
	list := decodeBody[ingest.QuarantineList](t, e.get(key, "/api/quarantine?limit=2"))
	if list.Total != 3 || len(list.Entries) != 2 || list.NextAfter == nil || list.Entries[0].ID >= 0 || len(list.Reasons) != 2 {
		t.Fatalf("old quarantine: %s", mustJSON(t, list))
	}
	next := decodeBody[ingest.QuarantineList](t, e.get(key, fmt.Sprintf("/api/quarantine?limit=2&after=%d", *list.NextAfter)))
	if len(next.Entries) != 1 || next.NextAfter != nil {
		t.Fatalf("second page: %s", mustJSON(t, next))
	}
	rr := decodeBody[ingest.ReplayResponse](t, e.call("POST", key, "/api/quarantine/replay", `{"table":"t"}`))
	if rr.Replayed != 2 || rr.Landed != 2 {
		t.Fatalf("replay: %+v", rr)
	}
	d := decodeBody[map[string]int64](t, e.call("DELETE", key, "/api/quarantine", `{"table":"u"}`))
	if d["discarded"] != 1 {
		t.Fatalf("discard: %v", d)
	}
	e.stop()
	if n := queryInt(t, e, id, `SELECT count(*) FROM _duckgate_quarantine`); n != 0 {
		t.Fatalf("%d entries left", n)
	}
	rows := queryText(t, e.openDB(id), `SELECT a, b FROM t ORDER BY a`)
	if got := fmt.Sprint(rows); got != "[[1 <nil>] [2 x] [3 <nil>]]" {
		t.Fatalf("rows: %s", got)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A lifecycle call that outlasts the wait timeout is a 504 that says so,
// and the server goes on.
func TestLifecycleTimeout(t *testing.T) {
	e := newEnv(t, func(c *envConfig) { c.ingest.WaitTimeout = time.Nanosecond })
	_, key := e.tenant("acme")
	r := e.call("PUT", key, "/api/tables/t/columns/a", `{"type":"BIGINT"}`)
	wantStatus(t, r, 504, "pin past the deadline")
	if !strings.Contains(string(r.body), "may not have taken effect") {
		t.Fatalf("timeout answer: %s", r.body)
	}
	wantStatus(t, e.do("POST", "/api/data/insert/t", []byte(`{"a":1}`), "X-API-KEY", key), 200, "insert after")
}
