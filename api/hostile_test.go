package api

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"duckgate/ingest"
)

// TestHostileInput sends what a hostile or broken client sends and checks
// that each gets a clear 4xx or is stored as data, that the server stays
// up, and that no other request's rows are lost.
func TestHostileInput(t *testing.T) {
	e := newEnv(t, func(c *envConfig) { c.ingest.MaxBodySize = 4 << 20 })
	id, key := e.tenant("victim")
	otherID, other := e.tenant("bystander")

	good := func(n int) {
		t.Helper()
		if r := e.insert(other, "events", fmt.Sprintf(`{"n":%d}`, n)); r.status != 200 {
			t.Fatalf("bystander insert %d: %d %s", n, r.status, r.body)
		}
	}
	expectStatus := func(name string, r response, want int) {
		t.Helper()
		if r.status != want {
			t.Errorf("%s: status %d, want %d: %.300s", name, r.status, want, r.body)
			return
		}
		var body map[string]any
		if err := json.Unmarshal(r.body, &body); err != nil {
			t.Errorf("%s: body is not JSON: %.200s", name, r.body)
			return
		}
		if want >= 400 {
			if msg, _ := body["error"].(string); msg == "" {
				t.Errorf("%s: no error message: %s", name, r.body)
			}
		}
	}

	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 64<<10)
	for i := range random {
		random[i] = byte(rng.UintN(256))
	}
	good(1)
	expectStatus("random bytes", e.insert(key, "events", string(random)), 400)
	good(2)

	expectStatus("invalid UTF-8 only row", e.insert(key, "events", "{\"s\":\"\xff\xfe\"}"), 400)
	r := e.insert(key, "events", "{\"s\":\"ok\"}\n{\"s\":\"\xff\"}\n{\"\xc3\":1}")
	expectStatus("invalid UTF-8 lines", r, 200)
	var ir ingest.InsertResponse
	_ = json.Unmarshal(r.body, &ir)
	if ir.Accepted != 1 || ir.Rejected != 2 {
		t.Errorf("invalid UTF-8 lines: %s", r.body)
	}

	deep := strings.Repeat(`{"a":`, 100_000) + "1" + strings.Repeat("}", 100_000)
	expectStatus("100,000 levels of nesting", e.insert(key, "events", deep), 400)
	deepArr := `{"a":` + strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000) + "}"
	expectStatus("100,000 nested arrays", e.insert(key, "events", deepArr), 400)
	good(3)

	big := bytes.Repeat([]byte(`{"pad":"`+strings.Repeat("x", 1000)+`"}`+"\n"), 5000) // ~5 MB > 4 MiB
	expectStatus("oversized body", e.rawPost("/api/data/insert/events", big, "X-API-KEY", key), 413)
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	_, _ = zw.Write(bytes.Repeat([]byte(" "), 64<<20)) // a 64 MiB bomb in ~64 KiB
	_ = zw.Close()
	expectStatus("gzip bomb", e.do("POST", "/api/data/insert/events", zb.Bytes(), "X-API-KEY", key, "Content-Encoding", "gzip"), 413)
	expectStatus("bad gzip", e.do("POST", "/api/data/insert/events", []byte("not gzip"), "X-API-KEY", key, "Content-Encoding", "gzip"), 400)
	expectStatus("unknown encoding", e.do("POST", "/api/data/insert/events", []byte(`{"a":1}`), "X-API-KEY", key, "Content-Encoding", "br"), 400)
	good(4)

	for _, table := range []string{"a%22%3B%20DROP%20TABLE%20events%3B%20--", "events;DROP", "1abc", strings.Repeat("a", 64), "t%00"} {
		expectStatus("table "+table, e.do("POST", "/api/data/insert/"+table, []byte(`{"a":1}`), "X-API-KEY", key), 400)
	}
	// fasthttp resolves the dot segments: the path leaves the insert route.
	expectStatus("table ..%2Fetc", e.do("POST", "/api/data/insert/..%2Fetc", []byte(`{"a":1}`), "X-API-KEY", key), 404)
	expectStatus("no key", e.do("POST", "/api/data/insert/events", []byte(`{"a":1}`)), 401)
	expectStatus("wrong key", e.do("POST", "/api/data/insert/events", []byte(`{"a":1}`), "X-API-KEY", key+"x"), 401)
	expectStatus("wrong method", e.do("GET", "/api/data/insert/events", nil, "X-API-KEY", key), 405)

	var many strings.Builder
	many.WriteString(`{`)
	for i := range 10_000 {
		if i > 0 {
			many.WriteString(",")
		}
		fmt.Fprintf(&many, `"k%d":%d`, i, i)
	}
	many.WriteString(`}`)
	expectStatus("10,000 keys", e.insert(key, "wide", many.String()), 200)
	expectStatus("hostile key", e.insert(key, "events", `{"a\"; DROP TABLE events; --":"x","s":"y"}`), 200)
	good(5)

	e.stop()
	db := e.openDB(id)
	var cols, ovKeys int
	if err := db.QueryRow(`SELECT count(*) FROM information_schema.columns WHERE table_name = 'wide'`).Scan(&cols); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT len(json_keys(_overflow)) FROM wide`).Scan(&ovKeys); err != nil {
		t.Fatal(err)
	}
	if cols != 1001 || ovKeys != 9000 {
		t.Errorf("wide: %d columns and %d overflow keys, want 1001 and 9000", cols, ovKeys)
	}
	var last string
	if err := db.QueryRow(`SELECT _overflow->>'k9999' FROM wide`).Scan(&last); err != nil || last != "9999" {
		t.Errorf("k9999 = %q, %v", last, err)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM events WHERE s IN ('ok', 'y')`).Scan(&n); err != nil || n != 2 {
		t.Errorf("victim events = %d, %v", n, err)
	}
	odb := e.openDB(otherID)
	if err := odb.QueryRow(`SELECT count(*) FROM events`).Scan(&n); err != nil || n != 5 {
		t.Errorf("bystander rows = %d, %v; want 5", n, err)
	}
}

// TestReservedTableNames: the tables duckgate keeps for itself cannot be
// written by an insert or a webhook, in any letter case; nothing is stored.
func TestReservedTableNames(t *testing.T) {
	e := newHookEnv(t)
	id, key := e.tenant("acme")
	for _, table := range []string{"_duckgate_applied", "_duckgate_quarantine", "_DuckGate_x", "_duckgate"} {
		r := e.insert(key, table, `{"table_name":"x","seq":1}`)
		if r.status != 400 || !strings.Contains(string(r.body), "reserved") {
			t.Errorf("insert into %s: %d %s", table, r.status, r.body)
		}
		r = e.do("POST", "/api/webhooks", []byte(`{"provider":"github","table":"`+table+`","secret":"s3cret-s3cret"}`), "X-API-KEY", key)
		if r.status != 400 || !strings.Contains(string(r.body), "reserved") {
			t.Errorf("webhook into %s: %d %s", table, r.status, r.body)
		}
	}
	if r := e.insert(key, "duckgate_events", `{"a":1}`); r.status != 200 {
		t.Errorf("a name merely containing duckgate: %d %s", r.status, r.body)
	}
	e.stop()
	db := e.openDB(id)
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM duckdb_tables() WHERE table_name ILIKE '_duckgate%' AND table_name NOT IN ('_duckgate_applied')`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d reserved tables were created", n)
	}
	var applied int
	if err := db.QueryRow(`SELECT count(*) FROM _duckgate_applied WHERE tbl ILIKE '_duckgate%'`).Scan(&applied); err != nil {
		t.Fatal(err)
	}
	if applied != 0 {
		t.Errorf("_duckgate_applied holds %d forged rows", applied)
	}
}
