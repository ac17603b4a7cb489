package query

import (
	"bytes"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/VictoriaMetrics/metrics"
	_ "github.com/duckdb/duckdb-go/v2"
)

// testVersions is the tenants' data versions of a test, which bumps them
// after writing to a database as the batcher does after a commit.
type testVersions struct {
	mu sync.Mutex
	m  map[string]uint64
	n  atomic.Uint64
}

func (v *testVersions) DataVersion(tenantID string) uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.m[tenantID]
}

func (v *testVersions) bump(tenantID string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil {
		v.m = make(map[string]uint64)
	}
	v.m[tenantID] = v.n.Add(1)
}

func newCacheEnv(t *testing.T, cfg Config) (*testEnv, *testVersions) {
	t.Helper()
	v := &testVersions{}
	cfg.Versions = v
	if cfg.Cache.MaxBytes == 0 {
		cfg.Cache.MaxBytes = 1 << 20
	}
	return newEnv(t, cfg, nil), v
}

func cacheState(t *testing.T, r response) string {
	t.Helper()
	r.ok(t)
	return r.header.Get(CacheHeader)
}

// A repeated query is a hit with the same body until the tenant's data
// version changes; then it is a miss that sees the new data.
func TestCacheHitUntilCommit(t *testing.T) {
	env, versions := newCacheEnv(t, Config{})
	env.exec(t, "t1", "CREATE TABLE o (n BIGINT)", "INSERT INTO o VALUES (1), (2)")
	versions.bump("t1")
	q := "select sum(n) as s, count(*) as c from o"

	first := env.query(t, "t1", q)
	if got := cacheState(t, first); got != "miss" {
		t.Fatalf("first query: %s %s", CacheHeader, got)
	}
	second := env.query(t, "t1", q)
	if got := cacheState(t, second); got != "hit" {
		t.Fatalf("second query: %s %s", CacheHeader, got)
	}
	if !bytes.Equal(first.body, second.body) || second.header.Get("Content-Type") != first.header.Get("Content-Type") {
		t.Fatalf("hit differs: %q %q vs %q %q", first.body, first.header.Get("Content-Type"), second.body, second.header.Get("Content-Type"))
	}
	if got := asJSON(decodeRows(t, second.body)); got != `[{"c":2,"s":3}]` {
		t.Fatalf("rows %s", got)
	}

	// Another tenant with the same SQL is its own entry.
	env.exec(t, "t2", "CREATE TABLE o (n BIGINT)", "INSERT INTO o VALUES (10)")
	versions.bump("t2")
	if r := env.query(t, "t2", q); cacheState(t, r) != "miss" || asJSON(decodeRows(t, r.body)) != `[{"c":1,"s":10}]` {
		t.Fatalf("other tenant: %s %s", r.header.Get(CacheHeader), r.body)
	}

	// A commit changes the version: the next answer is computed again.
	env.exec(t, "t1", "INSERT INTO o VALUES (40)")
	versions.bump("t1")
	r := env.query(t, "t1", q)
	if cacheState(t, r) != "miss" || asJSON(decodeRows(t, r.body)) != `[{"c":3,"s":43}]` {
		t.Fatalf("after a commit: %s %s", r.header.Get(CacheHeader), r.body)
	}
	if r := env.query(t, "t1", q); cacheState(t, r) != "hit" || asJSON(decodeRows(t, r.body)) != `[{"c":3,"s":43}]` {
		t.Fatalf("after a commit, again: %s %s", r.header.Get(CacheHeader), r.body)
	}
	// t2's entry survived t1's commit.
	if r := env.query(t, "t2", q); cacheState(t, r) != "hit" {
		t.Fatalf("t2 after t1's commit: %s", r.header.Get(CacheHeader))
	}
}

// Format and params are part of the key.
func TestCacheKeyFormatAndParams(t *testing.T) {
	env, _ := newCacheEnv(t, Config{})
	q := "select ?::BIGINT * 2 as x"
	for _, p := range []string{"[1]", "[2]", "[1.0]"} {
		for _, f := range []string{"json", "csv", "ndjson"} {
			r := env.query(t, "t1", q, "params", p, "format", f)
			if got := cacheState(t, r); got != "miss" {
				t.Fatalf("%s %s first: %s", p, f, got)
			}
		}
	}
	r := env.query(t, "t1", q, "params", "[2]", "format", "csv")
	if cacheState(t, r) != "hit" || string(r.body) != "x\r\n4\r\n" {
		t.Fatalf("csv [2]: %s %q", r.header.Get(CacheHeader), r.body)
	}
	r = env.query(t, "t1", q, "params", "[1]", "format", "ndjson")
	if cacheState(t, r) != "hit" || string(r.body) != "{\"x\":2}\n" {
		t.Fatalf("ndjson [1]: %s %q", r.header.Get(CacheHeader), r.body)
	}
	// POST with a JSON body is the same request as the GET.
	r = env.do(t, "t1", "POST", "/api/data/query", "application/json", []byte(`{"query":"select ?::BIGINT * 2 as x","params":[2],"format":"csv"}`))
	if cacheState(t, r) != "hit" || string(r.body) != "x\r\n4\r\n" {
		t.Fatalf("POST: %s %q", r.header.Get(CacheHeader), r.body)
	}
}

// SQL whose answer changes without a commit (the clock, randomness) is
// never served from the cache; neither is a result that failed or was cut.
func TestCacheNeverStale(t *testing.T) {
	env, _ := newCacheEnv(t, Config{MaxRows: 100})
	for _, q := range []string{
		"select now() as t", "select current_timestamp as t", "select random() as r", "select gen_random_uuid() as u",
		"select count(*) as n from range(10) using sample 5", "select localtimestamp as t", "select today() as d",
		"select table_name from duckdb_tables()",
	} {
		for i := range 2 {
			if got := cacheState(t, env.query(t, "t1", q)); got != "miss" {
				t.Fatalf("%s, #%d: %s", q, i, got)
			}
		}
	}
	// A cut result (over MaxRows) is not kept.
	for range 2 {
		r := env.query(t, "t1", "select * from range(1000)")
		if r.readErr == nil || r.header.Get(CacheHeader) != "miss" {
			t.Fatalf("cut result: %v %s", r.readErr, r.header.Get(CacheHeader))
		}
	}
	// Nor is an error.
	for range 2 {
		if r := env.query(t, "t1", "select * from nosuchtable"); r.status != 400 {
			t.Fatalf("error: %d", r.status)
		}
	}
	if n := env.engine.cache.stores.Get(); n != 0 {
		t.Fatalf("%d results stored", n)
	}
}

// A result over MaxEntryBytes streams whole and is not kept.
func TestCacheLargeResultNotKept(t *testing.T) {
	env, _ := newCacheEnv(t, Config{Cache: CacheConfig{MaxBytes: 1 << 20, MaxEntryBytes: 1000}})
	q := "select i from range(1000) t(i)"
	for range 2 {
		r := env.query(t, "t1", q, "format", "csv")
		if cacheState(t, r) != "miss" || strings.Count(string(r.body), "\r\n") != 1001 {
			t.Fatalf("%s %d lines", r.header.Get(CacheHeader), strings.Count(string(r.body), "\r\n"))
		}
	}
	if r := env.query(t, "t1", "select 1 as one"); cacheState(t, r) != "miss" {
		t.Fatal("small result")
	}
	if r := env.query(t, "t1", "select 1 as one"); cacheState(t, r) != "hit" {
		t.Fatal("small result, again")
	}
}

// Without Versions the cache is off: no header.
func TestCacheOff(t *testing.T) {
	env := newEnv(t, Config{Cache: CacheConfig{MaxBytes: 1 << 20}}, nil)
	for range 2 {
		r := env.query(t, "t1", "select 1 as one").ok(t)
		if h := r.header.Get(CacheHeader); h != "" {
			t.Fatalf("header %q", h)
		}
	}
}

// The cache stays within its total and per-tenant bounds, dropping the
// least recently used results first.
func TestCacheBounds(t *testing.T) {
	c := newResultCache(CacheConfig{MaxBytes: 10 * (1000 + cacheOverhead + 10), MaxTenantBytes: 4 * (1000 + cacheOverhead + 10)}, metrics.NewSet())
	body := bytes.Repeat([]byte("x"), 1000)
	key := func(tenant string, i int) string { return fmt.Sprintf("%s/%05d", tenant, i) } // 10 bytes for t1
	for i := range 6 {
		c.put("t1", key("t1", i), 7, body)
	}
	// t1 keeps its 4 most recent.
	for i := range 6 {
		if got := c.get("t1", key("t1", i), 7) != nil; got != (i >= 2) {
			t.Fatalf("t1 entry %d kept: %v", i, got)
		}
	}
	c.get("t1", key("t1", 2), 7) // most recently used now
	for _, tn := range []string{"t2", "t3", "t4"} {
		for i := range 3 {
			c.put(tn, key(tn, i), 1, body)
		}
	}
	if c.bytes > c.cfg.MaxBytes {
		t.Fatalf("%d bytes over %d", c.bytes, c.cfg.MaxBytes)
	}
	if len(c.entries) != 10 {
		t.Fatalf("%d entries", len(c.entries))
	}
	// t1's least recently used went first; t1/2 was used last.
	if c.get("t1", key("t1", 2), 7) == nil || c.get("t1", key("t1", 3), 7) != nil {
		t.Fatal("the total bound dropped the wrong entries")
	}
	// An older version is not stored, a newer one drops the tenant's old entries.
	c.put("t4", key("t4", 9), 0, body)
	if c.get("t4", key("t4", 9), 1) != nil {
		t.Fatal("result of an older version stored")
	}
	c.put("t4", key("t4", 9), 2, body)
	if c.get("t4", key("t4", 0), 2) != nil || c.get("t4", key("t4", 9), 2) == nil {
		t.Fatal("a newer version kept the old entries")
	}
	// A stale lookup drops the tenant.
	if c.get("t3", key("t3", 0), 5) != nil || c.tenants["t3"] != nil {
		t.Fatal("stale lookup")
	}
	var sum int64
	for _, e := range c.entries {
		sum += e.size()
	}
	if sum != c.bytes {
		t.Fatalf("bytes %d, entries hold %d", c.bytes, sum)
	}
}

// consistentAnyway are the names DuckDB marks volatile, or whose macro
// text holds a word of uncacheableWords, that give the same answer for the
// same data: error() fails the query (a failed result is never kept); user
// is the constant current_user 'duckdb'; histogram's macros name the
// technique 'sample', a constant string.
var consistentAnyway = map[string]bool{"error": true, "user": true, "histogram": true, "histogram_values": true}

// Every function DuckDB marks as other than CONSISTENT, and every DuckDB
// macro calling one, is matched by uncacheableWords: a new one in a DuckDB
// upgrade fails here.
func TestVolatileFunctionsCovered(t *testing.T) {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT DISTINCT function_name, coalesce(macro_definition, '') FROM duckdb_functions()
		WHERE (function_type IN ('scalar', 'aggregate') AND stability <> 'CONSISTENT') OR function_type IN ('macro', 'table_macro')`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var name, def string
		if err := rows.Scan(&name, &def); err != nil {
			t.Fatal(err)
		}
		if def != "" && !volatileSQL(def) {
			continue // a macro of consistent functions
		}
		if consistentAnyway[name] {
			continue
		}
		n++
		if !volatileSQL(name + "()") {
			t.Errorf("%s is volatile (%.80s) and not in uncacheableWords", name, def)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 20 {
		t.Fatalf("only %d volatile functions found", n)
	}
	for _, q := range []string{"SELECT CURRENT_DATE", "select localtime", "SELECT x FROM t TABLESAMPLE 10%", "select 'x'::TIMESTAMPTZ"} {
		if want := !strings.Contains(q, "TIMESTAMPTZ"); volatileSQL(q) != want {
			t.Errorf("volatileSQL(%q) = %v", q, !want)
		}
	}
}
