package query

import (
	"bytes"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestNDJSONAndCSV(t *testing.T) {
	env := newEnv(t, Config{}, nil)
	seed(t, env, "t1")
	q := "select i, h, s, ts, j, d from events order by i desc nulls last"

	r := env.query(t, "t1", q, "format", "ndjson").ok(t)
	if ct := r.header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Fatalf("content type %q", ct)
	}
	lines := strings.Split(strings.TrimSuffix(string(r.body), "\n"), "\n")
	want := []string{
		`{"i":9223372036854775807,"h":170141183460469231731687303715884105727,"s":"héllo \"wörld\", 日本\n\tend","ts":"2024-01-02T03:04:05.123456Z","j":{"a":[1,2,{"b":null}],"c":"x"},"d":1.5}`,
		`{"i":-9223372036854775808,"h":-42,"s":"","ts":"1970-01-01T00:00:00.000000Z","j":[],"d":null}`,
		`{"i":null,"h":null,"s":null,"ts":null,"j":null,"d":null}`,
	}
	if len(lines) != len(want) {
		t.Fatalf("ndjson: %q", r.body)
	}
	for i := range want {
		if !json.Valid([]byte(lines[i])) || lines[i] != want[i] {
			t.Errorf("ndjson line %d:\ngot  %s\nwant %s", i, lines[i], want[i])
		}
	}

	r = env.query(t, "t1", q, "format", "csv").ok(t)
	if ct := r.header.Get("Content-Type"); ct != "text/csv; charset=utf-8" {
		t.Fatalf("content type %q", ct)
	}
	recs, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
	if err != nil {
		t.Fatalf("csv %q: %v", r.body, err)
	}
	wantCSV := [][]string{
		{"i", "h", "s", "ts", "j", "d"},
		{"9223372036854775807", "170141183460469231731687303715884105727", "héllo \"wörld\", 日本\n\tend", "2024-01-02T03:04:05.123456Z", `{"a":[1,2,{"b":null}],"c":"x"}`, "1.5"},
		{"-9223372036854775808", "-42", "", "1970-01-01T00:00:00.000000Z", "[]", "NaN"},
		{"", "", "", "", "", ""},
	}
	if got, w := asJSON(recs), asJSON(wantCSV); got != w {
		t.Errorf("csv:\ngot  %s\nwant %s", got, w)
	}
	// NULL is an empty field, the empty string is "".
	if !strings.Contains(string(r.body), `,"",`) || !strings.HasSuffix(string(r.body), "\r\n,,,,,\r\n") {
		t.Errorf("csv null/empty: %q", r.body)
	}
}

func TestParquet(t *testing.T) {
	env := newEnv(t, Config{}, nil)
	seed(t, env, "t1")
	body := `{"query":"select i, h, s, j from events where i > $1 or i is null order by i nulls last -- trailing comment","params":[0],"format":"parquet"}`
	r := env.do(t, "t1", "POST", "/api/data/query", "application/json", []byte(body)).ok(t)
	if ct := r.header.Get("Content-Type"); ct != "application/vnd.apache.parquet" {
		t.Fatalf("content type %q", ct)
	}
	if !bytes.HasPrefix(r.body, []byte("PAR1")) {
		t.Fatalf("not parquet: %.40q", r.body)
	}
	path := filepath.Join(t.TempDir(), "r.parquet")
	if err := os.WriteFile(path, r.body, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	var i, h, s string
	// h's 39 digits do not fit DECIMAL(38,0): the column is VARCHAR, exact
	// (TestParquetExactTypes has every type).
	if err := db.QueryRow("select count(*), max(i)::VARCHAR, max(h::HUGEINT)::VARCHAR, max(s) from read_parquet(?)", path).Scan(&n, &i, &h, &s); err != nil {
		t.Fatal(err)
	}
	if n != 2 || i != "9223372036854775807" || h != "170141183460469231731687303715884105727" || !strings.HasPrefix(s, "héllo") {
		t.Fatalf("parquet: %d %s %s %q", n, i, h, s)
	}
	// The scratch directory is left empty.
	if ents, _ := os.ReadDir(env.pool.ScratchDir("t1")); len(ents) != 0 {
		t.Fatalf("scratch holds %d files", len(ents))
	}
	// Errors are known before the first byte.
	if r := env.query(t, "t1", "select error('boom')", "format", "parquet"); r.status != 400 {
		t.Fatalf("parquet error: %d %s", r.status, r.body)
	}
	if r := env.query(t, "t1", "insert into events (i) values (1)", "format", "parquet"); r.status != 403 {
		t.Fatalf("parquet insert: %d %s", r.status, r.body)
	}
}

func TestTimeout(t *testing.T) {
	env := newEnv(t, Config{}, nil)
	// A query of hours is interrupted at its timeout.
	r := env.query(t, "t1", "select sum(hash(i)) from range(1000000000000) t(i)", "timeout", "1")
	if r.status != 504 || !strings.Contains(string(r.body), "timed out") {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	// The connection is usable afterwards.
	env.query(t, "t1", "select 1").ok(t)
}

func TestMidStreamError(t *testing.T) {
	env := newEnv(t, Config{MaxRows: 1000}, nil)
	q := "select i, 'row ' || i as s from range(100000) t(i)"
	f := func(format string, check func(body string)) {
		t.Helper()
		r := env.query(t, "t1", q, "format", format)
		if r.status != 200 || r.readErr == nil {
			t.Fatalf("%s: status %d, read error %v: a cut result must look broken", format, r.status, r.readErr)
		}
		check(string(r.body))
	}
	f("json", func(body string) {
		var v any
		if json.Unmarshal([]byte(body), &v) == nil {
			t.Fatal("json: a cut result parses")
		}
		lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
		if len(lines) != 1002 || !strings.Contains(errorOf(lines[len(lines)-1]), "more than 1000 rows") {
			t.Fatalf("json: %d lines, last %q", len(lines), lines[len(lines)-1])
		}
	})
	f("ndjson", func(body string) {
		lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
		if len(lines) != 1001 || !strings.Contains(errorOf(lines[1000]), "result too large") {
			t.Fatalf("ndjson: %d lines, last %q", len(lines), lines[len(lines)-1])
		}
	})
	f("csv", func(body string) {
		lines := strings.Split(strings.TrimSuffix(body, "\r\n"), "\r\n")
		if len(lines) != 1002 || !strings.HasPrefix(lines[1001], "#error: result too large") {
			t.Fatalf("csv: %d lines, last %q", len(lines), lines[len(lines)-1])
		}
	})
	// Exactly MaxRows rows is a complete result.
	env.query(t, "t1", "select * from range(1000)", "format", "csv").ok(t)

	// A query that fails after some rows never passes for a complete result.
	r := env.query(t, "t1", "select case when i < 1000 then i else error('boom') end as x from range(100000) t(i)")
	if r.status == 200 && r.readErr == nil {
		t.Fatalf("failing query passed: %.200s", r.body)
	}
	if !strings.Contains(string(r.body), "boom") {
		t.Fatalf("no reason given: %d %.300s", r.status, r.body)
	}

	// MaxBytes.
	env2 := newEnv(t, Config{MaxBytes: 10000}, nil)
	r = env2.query(t, "t1", q, "format", "ndjson")
	if r.status != 200 || r.readErr == nil || !strings.Contains(string(r.body), `{"error":"result too large`) {
		t.Fatalf("max bytes: %d %v %.100s", r.status, r.readErr, r.body)
	}
}

func TestConcurrencyLimit(t *testing.T) {
	env := newEnv(t, Config{MaxConcurrent: 1}, nil)
	done := make(chan response)
	go func() {
		done <- env.query(t, "t1", "select sum(hash(i)) from range(1000000000000) t(i)", "timeout", "3")
	}()
	waitExecuting(t, env.engine, 1)
	r := env.query(t, "t1", "select 1", "timeout", "0.5")
	if r.status != 503 || r.header.Get("Retry-After") == "" || !strings.Contains(string(r.body), "concurrent") {
		t.Fatalf("got %d %v %s", r.status, r.header, r.body)
	}
	// Another tenant is not affected.
	env.query(t, "t2", "select 1", "timeout", "0.5").ok(t)
	if r := <-done; r.status != 504 {
		t.Fatalf("slow query: %d %s", r.status, r.body)
	}
	env.query(t, "t1", "select 1").ok(t)
}

func TestFlushAndRelease(t *testing.T) {
	fl := &testFlusher{}
	env := newEnv(t, Config{}, fl)
	env.query(t, "t1", "select 1", "flush", "true").ok(t)
	env.query(t, "t1", "select 2").ok(t)
	if asJSON(fl.tenants) != `["t1"]` {
		t.Fatalf("flushed %v", fl.tenants)
	}

	// A client that goes away mid-stream releases the query.
	req, _ := newGet("/api/data/query?format=csv&query=select+*+from+range(5000000)")
	req.Header.Set("X-Tenant", "t1")
	resp, err := env.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1000)
	if _, err := resp.Body.Read(buf); err != nil {
		t.Fatal(err)
	}
	if n := slotsInUse(env.engine); n != 1 {
		t.Fatalf("%d slots in use while streaming", n)
	}
	_ = resp.Body.Close()
	env.client.Transport.(interface{ CloseIdleConnections() }).CloseIdleConnections()
	waitSlotsFree(t, env.engine, "the query released after the client went away")
}

// waitSlotsFree waits until no tenant holds or waits for a query slot and
// no query executes, on the slot tables' change signals.
func waitSlotsFree(t testing.TB, e *Engine, what string) {
	t.Helper()
	timeout := time.NewTimer(20 * time.Second)
	defer timeout.Stop()
	for {
		tenants, slotChanged := e.slots.watch()
		st, execChanged := e.executing.watch()
		if tenants == 0 && st.inUse == 0 {
			return
		}
		select {
		case <-slotChanged:
		case <-execChanged:
		case <-timeout.C:
			t.Fatalf("waiting for %s: %d tenants hold slots, %+v", what, tenants, st)
		}
	}
}

// waitExecuting waits until n queries hold the engine's executing slots
// (past their tenant's slot, running in DuckDB).
func waitExecuting(t testing.TB, e *Engine, n int) {
	t.Helper()
	waitStats(t, e, fmt.Sprintf("%d queries executing", n), func(st fairStats) bool { return st.inUse == n })
}

func slotsInUse(e *Engine) int {
	n, _ := e.slots.watch()
	return n
}

// MaxExecuting bounds the queries DuckDB runs at once across tenants: with
// one slot, a long query of one tenant makes another tenant's query wait
// (and time out) rather than share the core, the slot is given back when
// the first row is fetched, and concurrent short queries all complete.
func TestExecutingLimit(t *testing.T) {
	env := newEnv(t, Config{MaxExecuting: 1}, nil)
	done := make(chan response)
	go func() {
		done <- env.query(t, "t1", "select sum(hash(i)) from range(1000000000000) t(i)", "timeout", "2")
	}()
	waitExecuting(t, env.engine, 1)
	if r := env.query(t, "t2", "select 1", "timeout", "0.5"); r.status != 504 {
		t.Fatalf("second tenant while the slot is taken: %d %s", r.status, r.body)
	}
	if r := <-done; r.status != 504 {
		t.Fatalf("slow query: %d %s", r.status, r.body)
	}
	// A streaming result does not hold the slot.
	req, _ := newGet("/api/data/query?format=csv&query=select+*+from+range(5000000)")
	req.Header.Set("X-Tenant", "t1")
	resp, err := env.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	env.query(t, "t2", "select 1", "timeout", "2").ok(t)

	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			env.query(t, fmt.Sprintf("t%d", i), "select 42 as n", "timeout", "10").ok(t)
		}()
	}
	wg.Wait()
}
