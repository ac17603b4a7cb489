package query

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// hostileSQL is testdata/hostile_sql.json: statements a tenant must not be
// able to run, by class, with {own} (the tenant's scratch directory),
// {other} (another tenant's Parquet file) and {otherdb} (another tenant's
// database file) replaced. api's end-to-end tests read the same file.
func hostileSQL(t testing.TB, own, other, otherdb string) (stmts, classes []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "hostile_sql.json"))
	if err != nil {
		t.Fatal(err)
	}
	var groups map[string][]string
	if err := json.Unmarshal(b, &groups); err != nil {
		t.Fatal(err)
	}
	r := strings.NewReplacer("{own}", own, "{other}", other, "{otherdb}", otherdb)
	names := make([]string, 0, len(groups))
	for name := range groups {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, q := range groups[name] {
			stmts = append(stmts, r.Replace(q))
			classes = append(classes, name)
		}
	}
	if len(stmts) < 150 {
		t.Fatalf("the hostile list shrank to %d statements", len(stmts))
	}
	return stmts, classes
}

// settingsOf reads every setting of the tenant's database outside the
// sandbox (tenants can no longer read them).
func settingsOf(t testing.TB, env *testEnv, tenant string) map[string]string {
	t.Helper()
	h, err := env.pool.Acquire(context.Background(), tenant)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	rows, err := h.DB.Query("SELECT name, coalesce(value, 'NULL') FROM duckdb_settings()")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	m := make(map[string]string)
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		m[k] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

// hostileSetup is a tenant t1 with seeded events and another tenant t2
// with a Parquet file in its scratch directory.
func hostileSetup(t testing.TB, env *testEnv) (own, other, otherdb string) {
	t.Helper()
	seed(t, env, "t1")
	other = filepath.Join(env.pool.ScratchDir("t2"), "s.parquet")
	env.exec(t, "t2", "COPY (select 42 as secret) TO '"+other+"' (FORMAT parquet)")
	return env.pool.ScratchDir("t1"), other, env.pool.Path("t2")
}

// hostileFiles are the files the hostile statements try to write.
func hostileFiles(own string) []string {
	return []string{"/tmp/duckgate-log", "/tmp/duckgate-evil.duckdb", "/tmp/duckgate-evil.csv", "/tmp/duckgate-exp",
		filepath.Join(own, "x.csv"), filepath.Join(own, "y.csv"), filepath.Join(own, "x.parquet")}
}

func TestHostileStatementsRefused(t *testing.T) {
	env := newEnv(t, Config{}, nil)
	own, other, otherdb := hostileSetup(t, env)
	for _, f := range hostileFiles(own) {
		_ = os.RemoveAll(f)
	}
	before := settingsOf(t, env, "t1")
	hostile, classes := hostileSQL(t, own, other, otherdb)
	// No answer shows a server path the statement did not name.
	home, _ := os.UserHomeDir()
	paths := []string{filepath.Dir(own), filepath.Join(home, ".duckdb")}
	for i, q := range hostile {
		// POST the text: a NUL byte is kept as it is.
		r := env.do(t, "t1", "POST", "/api/data/query", "text/plain", []byte(q))
		if r.status < 400 || r.status > 499 {
			t.Errorf("%s: %q: status %d, body %.300s", classes[i], q, r.status, r.body)
			continue
		}
		if errorOf(strings.TrimSpace(string(r.body))) == "" {
			t.Errorf("%q: body %q is not an error object", q, r.body)
		}
		for _, p := range paths {
			if strings.Contains(string(r.body), p) && !strings.Contains(q, p) {
				t.Errorf("%q: the answer shows the server path %s: %.300s", q, p, r.body)
			}
		}
		t.Logf("%-60.60q %d %.160s", q, r.status, r.body)
	}

	// Nothing changed.
	if r := env.query(t, "t1", "select count(*) as n from events").ok(t); string(r.body) != "[\n{\"n\":3}\n]\n" {
		t.Errorf("rows: %s", r.body)
	}
	if r := env.do(t, "t1", "GET", "/api/tables", "", nil).ok(t); string(r.body) != `[{"name":"events","rows":3}]`+"\n" {
		t.Errorf("tables: %s", r.body)
	}
	if r := env.query(t, "t1", "select count(*) as n from duckdb_columns() where table_name = 'events'").ok(t); string(r.body) != "[\n{\"n\":7}\n]\n" {
		t.Errorf("columns: %s", r.body)
	}
	// Read-only statements that name only allowed things run; they change
	// nothing. (PRAGMA table_info and checkpoint() ran before the
	// allow-list; they are in the hostile list now.)
	for _, q := range []string{"select * from pragma_table_info('events')", "describe events", "show tables", "summarize select s, ts from events",
		"select * from information_schema.columns where table_name = 'events'", "select database_name, table_name from duckdb_tables"} {
		env.query(t, "t1", q).ok(t)
	}
	// Binding EXPORT DATABASE creates its directory (only possible in the
	// tenant's own scratch directory); nothing is exported into it.
	if ents, err := os.ReadDir(filepath.Join(own, "exp")); err == nil && len(ents) > 0 {
		t.Errorf("export wrote %d files", len(ents))
	}
	for _, f := range hostileFiles(own) {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("%s was written", f)
		}
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("other tenant's file: %v", err)
	}
	// The sandbox settings still hold, and no setting changed (logging
	// included), read outside the sandbox.
	after := settingsOf(t, env, "t1")
	if after["enable_external_access"] != "false" || after["lock_configuration"] != "true" {
		t.Errorf("sandbox settings: enable_external_access=%s lock_configuration=%s", after["enable_external_access"], after["lock_configuration"])
	}
	for k, v := range before {
		if after[k] != v {
			t.Errorf("setting %s changed from %q to %q", k, v, after[k])
		}
	}
}

// TestAllowedQueries: ordinary analytics pass the allow-list.
func TestAllowedQueries(t *testing.T) {
	env := newEnv(t, Config{}, nil)
	seed(t, env, "t1")
	for _, q := range []string{
		"select count(*), sum(i), avg(d), min(ts), max(ts), count(distinct s) from events",
		"select s, count(*) as n from events group by s order by n desc, s nulls last",
		"select i, row_number() over (order by i), lag(i) over (order by i), sum(h) over (partition by b order by ts rows between unbounded preceding and current row) from events",
		"select * from events qualify row_number() over (partition by b order by ts desc) = 1",
		"with t as (select i from events), u as (select * from t where i > 0) select * from u",
		"with recursive r(n) as (select 1 union all select n + 1 from r where n < 5) select sum(n) from r",
		"select j->>'$.c' as c, j->'a' as a, json_extract(j, '$.a[0]'), json_extract_string(j, '$.c'), json_type(j), json_valid(s) from events",
		"select to_json({'a': 1}), json_object('a', 1), json_array(1, 2), json_group_array(i) from events",
		"select date_trunc('hour', ts), strftime(ts, '%Y-%m-%d'), epoch(ts), extract(year from ts), ts + interval 1 day, date_diff('day', ts, ts) from events",
		"select time_bucket(interval 1 hour, ts), date_part('dow', ts), age(ts, ts), ts at time zone 'UTC', make_date(2024, 1, 2), now() is not null, current_date is not null from events",
		"select list_transform([1, 2, 3], x -> x * 2), list_filter([1, 2, 3], x -> x > 1), [x * 2 for x in [1, 2]], list_sum([1, 2]), list_sort([3, 1]), [1, 2, 3][1:2], len([1])",
		"select struct_pack(a := 1), {'a': 1}.a, map([1], [2]), map {'k': 1}, [1, 2][1], list_value(1, 2), array_length([1])",
		"select regexp_matches(s, 'h.*'), regexp_replace(s, 'h', 'H'), regexp_extract(s, '(\\w+)', 1), s like 'h%', s ilike 'H%', s similar to 'h.*' from events",
		"select strftime(ts, '%H:%M'), strptime('2024-01-02', '%Y-%m-%d'), try_strptime('x', '%Y') from events",
		"select unnest([1, 2, 3]) as x",
		"select * from unnest([1, 2, 3]) t(x)",
		"select * from range(10) t(i) where i % 2 = 0",
		"select * from generate_series(1, 3), range(2)",
		"select approx_count_distinct(i), quantile_cont(d, 0.5), median(d), mode(s), string_agg(s, ','), histogram(b), arg_max(s, i), list(i) from events",
		"select coalesce(s, 'x'), nullif(i, 0), case when i > 1 then 'big' else 'small' end, i::varchar, try_cast(s as int), cast(h as varchar) from events",
		"select md5(s), hash(i), sha256(s), uuid() is not null, gen_random_uuid() is not null, random() < 1 from events",
		"select greatest(1, 2), least(1, 2), round(d, 2), floor(d), abs(-1), pow(2, 3), ln(2), sqrt(4), 7 // 2, 7 % 2 from events",
		"select starts_with(s, 'h'), contains(s, 'l'), s ^@ 'h', printf('%d', 1), format('{}', 1), lpad('a', 3, 'x'), split_part('a,b', ',', 2), string_split('a,b', ','), upper(s), length(s) from events",
		"select i from events union all select i from events except select 1 order by 1 nulls last",
		"select * from events e join events f using (i)",
		"select * from events e left join (select 1 as i) f on e.i = f.i",
		"pivot events on b in (true, false) using count(*) group by s",
		"select * from (select 1 as a, 2 as b) unpivot (v for k in (a, b))",
		"select current_database() is not null, current_schema()",
		"select columns('^[bi]$') from events",
		"select * exclude (j) from events",
		"select ? + 1 as x",
		"select * from events using sample 2 rows",
		"select * from duckdb_tables() where table_name = 'events'",
		"describe select * from events",
		"select count(*) from t1.main.events",
		"select count(*) from main.events",
		"select repeat('-', 20), repeat('ab', 1000), repeat(s, 3), lpad(s, 10, '0'), rpad('a', 1000, ' '), printf('%08.3f', 1.5), format('{:>10}', s), list_resize([1], 3), range(5), generate_series(1, 10, 2), bitstring('1', 8) from events",
		"select len(range(1048576)), approx_top_k(i, 5), reservoir_quantile(i, 0.5, 100), equi_width_bins(0, 10, 5, false) from events",
		"select '[]'::json, 1::int4, 'a'::string, 1::decimal(10, 2), [1]::integer[], {'a': 1}::struct(a int), null::map(int, varchar), " +
			"'2024-01-02'::timestamptz, null::uuid, null::bignum, null::geometry, 1::hugeint, null::int[3], null::blob, null::interval",
	} {
		r := env.do(t, "t1", "POST", "/api/data/query", "application/json", []byte(asJSON(map[string]any{"query": q, "params": []any{1}})))
		if r.status != 200 || r.readErr != nil {
			t.Errorf("%s: status %d, body %.300s", q, r.status, r.body)
		}
	}
}

func TestCheck(t *testing.T) {
	env := newEnv(t, Config{MaxSQLBytes: 1000}, nil)
	seed(t, env, "t1")
	ctx := context.Background()
	f := func(q string, want error, msg string) {
		t.Helper()
		err := env.engine.Check(ctx, "t1", Request{SQL: q})
		if !errors.Is(err, want) || (err != nil && !strings.Contains(err.Error(), msg)) {
			t.Fatalf("Check(%q) = %v; want %v containing %q", q, err, want, msg)
		}
	}
	f("select * from events", nil, "")
	f("select ? + 1", nil, "")
	f("insert into events (i) values (1)", ErrNotReadOnly, "INSERT statements are not allowed: only one read-only SELECT per request")
	f("drop table events", ErrNotReadOnly, "DROP statements are not allowed")
	f("explain analyze select 1", ErrNotReadOnly, "EXPLAIN statements are not allowed")
	f("select 1; drop table events", ErrMultipleStatements, "exactly one")
	f("select 1; select 2", ErrMultipleStatements, "exactly one")
	f("select * from missing", ErrBadQuery, "missing")
	f("select from where", ErrBadQuery, "syntax")
	f("select * from enable_logging(level='trace')", ErrNotAllowed, "table function enable_logging is not allowed in a query")
	f("select current_setting('threads')", ErrNotAllowed, "function current_setting is not allowed in a query")
	f("select * from query('select 1')", ErrNotAllowed, "table function query is not allowed")
	f("select * from duckdb_databases", ErrNotAllowed, "table duckdb_databases is not allowed")
	f("select * from '/etc/passwd'", ErrNotAllowed, "names a file")
	f("pragma table_info('events')", ErrNotAllowed, "not a plain SELECT")
	f("select 1\x00; drop table events", ErrBadRequest, "NUL byte")
	f("select '"+strings.Repeat("x", 1000)+"'", ErrSQLTooLarge, "limit is 1000")
	for q, status := range map[string]int{"delete from events": 403, "select * from sniff_csv('/etc/passwd')": 403,
		"select 1\x00": 400, strings.Repeat(" ", 1001): 413} {
		if got := statusOf(env.engine.Check(ctx, "t1", Request{SQL: q})); got != status {
			t.Fatalf("%.40q: status %d; want %d", q, got, status)
		}
	}
}

// TestScratchFile: read_parquet is allowed for the one file the server
// names in Request.ScratchFile (share snapshots), nothing else.
func TestScratchFile(t *testing.T) {
	env := newEnv(t, Config{}, nil)
	seed(t, env, "t1")
	path, _, err := env.engine.ExportParquet(context.Background(), "t1", Request{SQL: "select i from events"}, "snap.parquet")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	q := "SELECT * FROM read_parquet('" + path + "')"
	rows, err := env.engine.Rows(ctx, "t1", Request{SQL: q, ScratchFile: path})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		n++
	}
	if rows.Err() != nil || n != 3 {
		t.Fatalf("%d rows, %v", n, rows.Err())
	}
	for _, req := range []Request{
		{SQL: q},
		{SQL: q, ScratchFile: path + "x"},
		{SQL: "SELECT * FROM read_parquet('" + path + "', filename = true)", ScratchFile: path},
		{SQL: "SELECT * FROM read_parquet(['" + path + "'])", ScratchFile: path},
		{SQL: "SELECT * FROM read_csv('" + path + "')", ScratchFile: path},
	} {
		if err := env.engine.Check(ctx, "t1", req); !errors.Is(err, ErrNotAllowed) {
			t.Fatalf("%s with %s: %v", req.SQL, req.ScratchFile, err)
		}
	}
}

// TestTimeoutCoversPlanning: the time DuckDB spends parsing, binding and
// planning counts against the timeout, and the SQL text is capped.
func TestTimeoutCoversPlanning(t *testing.T) {
	env := newEnv(t, Config{}, nil)
	seed(t, env, "t1")
	inList := func(bytes int) string {
		var b strings.Builder
		b.WriteString("select count(*) from range(10) t(i) where i in (1")
		for b.Len() < bytes-2 {
			b.WriteString(",1")
		}
		b.WriteString(")")
		return b.String()
	}
	// 4 MiB, as in the issue: over the cap.
	r := env.do(t, "t1", "POST", "/api/data/query?timeout=1", "text/plain", []byte(inList(4<<20)))
	if r.status != 413 || !strings.Contains(string(r.body), "limit is 1048576") {
		t.Fatalf("4 MiB IN list: %d %.300s", r.status, r.body)
	}
	// Just under the cap: about 2 s of parsing and planning on 2 cores.
	r = env.do(t, "t1", "POST", "/api/data/query?timeout=0.2", "text/plain", []byte(inList(DefaultMaxSQLBytes-10)))
	if r.status != 504 {
		t.Fatalf("1 MiB IN list with timeout=0.2: %d %.300s", r.status, r.body)
	}
	if r := env.query(t, "t1", "select count(*) as n from events").ok(t); string(r.body) != "[\n{\"n\":3}\n]\n" {
		t.Fatalf("after the timeout: %s", r.body)
	}
	// A query that runs long is interrupted as before.
	if r := env.query(t, "t1", "select count(*) from range(1000000000000) t(i) where i % 7 = 3", "timeout", "0.5"); r.status != 504 {
		t.Fatalf("long query: %d %.300s", r.status, r.body)
	}
}

// TestAllowListCoversDuckDB fails when DuckDB has a function that is
// neither allowed nor denied in sandbox_names.txt (a new DuckDB version),
// or when the file names a function DuckDB does not have (a typo).
func TestAllowListCoversDuckDB(t *testing.T) {
	env := newEnv(t, Config{}, nil)
	h, err := env.pool.Acquire(context.Background(), "t1")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	rows, err := h.DB.Query("SELECT DISTINCT lower(function_name), function_type FROM duckdb_functions() WHERE function_type <> 'pragma'")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	l := sandboxNames()
	scalar, table := map[string]bool{}, map[string]bool{}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(typ, "table") {
			table[name] = true
			if !l.tables.has(name) && !l.deniedTables.has(name) {
				t.Errorf("table function %s is neither allowed nor denied in sandbox_names.txt", name)
			}
			continue
		}
		scalar[name] = true
		if !l.functions.has(name) && !l.deniedFunctions.has(name) {
			t.Errorf("function %s (%s) is neither allowed nor denied in sandbox_names.txt", name, typ)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		set   nameSet
		known map[string]bool
		what  string
	}{{l.functions, scalar, "function"}, {l.deniedFunctions, scalar, "function"}, {l.tables, table, "table function"}, {l.deniedTables, table, "table function"}} {
		for name := range c.set.names {
			if !c.known[name] && !scalar[name] && !table[name] {
				t.Errorf("sandbox_names.txt names %s %s, which DuckDB does not have", c.what, name)
			}
		}
	}
	for name := range l.functions.names {
		if l.deniedFunctions.has(name) {
			t.Errorf("function %s is both allowed and denied", name)
		}
	}
	for name := range l.tables.names {
		if l.deniedTables.has(name) {
			t.Errorf("table function %s is both allowed and denied", name)
		}
	}
}

func TestTenantIsolation(t *testing.T) {
	env := newEnv(t, Config{}, nil)
	seed(t, env, "t1")
	env.exec(t, "t2", "CREATE TABLE mine (x INT)", "INSERT INTO mine VALUES (7)")
	if r := env.query(t, "t2", "select * from events"); r.status != 400 || !strings.Contains(string(r.body), "events") {
		t.Fatalf("t2 sees t1's table: %d %s", r.status, r.body)
	}
	for _, q := range []string{"select * from t1.events", "select * from t1.main.events", "attach 't1.duckdb' as x"} {
		if r := env.query(t, "t2", q); r.status < 400 || r.status > 499 {
			t.Fatalf("%s: %d %s", q, r.status, r.body)
		}
	}
	if r := env.do(t, "t2", "GET", "/api/tables", "", nil).ok(t); string(r.body) != `[{"name":"mine","rows":1}]`+"\n" {
		t.Fatalf("t2 tables: %s", r.body)
	}
	if r := env.do(t, "t2", "GET", "/api/tables/events/columns", "", nil); r.status != 404 {
		t.Fatalf("t2 columns of events: %d %s", r.status, r.body)
	}
}

func TestTablesAndColumns(t *testing.T) {
	env := newEnv(t, Config{}, nil)
	if r := env.do(t, "t1", "GET", "/api/tables", "", nil).ok(t); string(r.body) != "[]\n" {
		t.Fatalf("empty tenant: %s", r.body)
	}
	seed(t, env, "t1")
	env.exec(t, "t1", `CREATE TABLE "we""ird" (a INT)`, `INSERT INTO "we""ird" SELECT * FROM range(1000)`,
		"CREATE TABLE _duckgate_meta (k VARCHAR)", "CREATE SCHEMA _duckgate", "CREATE TABLE _duckgate.state (k INT)",
		"CREATE SCHEMA other", "CREATE TABLE other.t (k INT)", "CREATE VIEW v AS SELECT 1 AS one")
	r := env.do(t, "t1", "GET", "/api/tables", "", nil).ok(t)
	if want := `[{"name":"events","rows":3},{"name":"we\"ird","rows":1000}]` + "\n"; string(r.body) != want {
		t.Fatalf("tables: %s", r.body)
	}
	r = env.do(t, "t1", "GET", "/api/tables/events/columns", "", nil).ok(t)
	want := `[{"name":"b","type":"BOOLEAN"},{"name":"i","type":"BIGINT"},{"name":"h","type":"HUGEINT"},{"name":"d","type":"DOUBLE"},` +
		`{"name":"ts","type":"TIMESTAMP WITH TIME ZONE"},{"name":"s","type":"VARCHAR"},{"name":"j","type":"JSON"}]` + "\n"
	if string(r.body) != want {
		t.Fatalf("columns: %s", r.body)
	}
	for _, tbl := range []string{"nope", "_duckgate_meta", "state", "t"} {
		if r := env.do(t, "t1", "GET", "/api/tables/"+tbl+"/columns", "", nil); r.status != 404 || errorOf(strings.TrimSpace(string(r.body))) == "" {
			t.Fatalf("%s: %d %s", tbl, r.status, r.body)
		}
	}
}
