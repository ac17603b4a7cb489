package query

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHostileStatementsRefused(t *testing.T) {
	env := newEnv(t, Config{}, nil)
	seed(t, env, "t1")
	// Another tenant's scratch file, written by its own sandboxed database.
	other := filepath.Join(env.pool.ScratchDir("t2"), "s.parquet")
	env.exec(t, "t2", "COPY (select 42 as secret) TO '"+other+"' (FORMAT parquet)")
	own := env.pool.ScratchDir("t1")

	hostile := []string{
		"insert into events (i) values (1)",
		"insert into events select * from events returning 1",
		"update events set i = 0",
		"update events set i = 0 returning *",
		"delete from events",
		"drop table events",
		"truncate events",
		"create table x (a int)",
		"create table x as select 1",
		"create temp table x as select 1",
		"create view v as select 1",
		"create macro m(a) as a",
		"create function f(a) as a + 1",
		"create secret s (type s3, key_id 'a', secret 'b')",
		"create sequence sq",
		"create schema s",
		"alter table events add column z int",
		"attach ':memory:' as m",
		"attach '/tmp/duckgate-evil.duckdb' as x",
		"detach t1",
		"copy events to '/tmp/duckgate-evil.csv'",
		"copy events to '" + own + "/x.csv'",
		"copy events from '/etc/passwd'",
		"export database '/tmp/duckgate-exp'",
		"export database '" + own + "/exp'",
		"import database '/tmp/duckgate-exp'",
		"install httpfs",
		"load httpfs",
		"force install httpfs",
		"set memory_limit = '100GB'",
		"set enable_external_access = true",
		"set global lock_configuration = false",
		"reset memory_limit",
		"set variable x = 1",
		"pragma enable_profiling",
		"pragma memory_limit = '100GB'",
		"call pragma_version()",
		"call checkpoint()",
		"checkpoint",
		"force checkpoint",
		"vacuum",
		"analyze",
		"use memory",
		"begin transaction",
		"commit",
		"rollback",
		"prepare p as select 1",
		"execute p",
		"deallocate p",
		"explain select 1",
		"explain analyze select 1",
		"summarize events; drop table events",
		"select 1; drop table events",
		"select 1 /* a comment */; drop table events",
		"select 1 -- a comment\n; drop table events",
		"select 1; -- trailing\ndrop table events",
		"drop table events; select 1",
		"select * from read_csv('/etc/passwd')",
		"select * from read_csv_auto('/etc/passwd')",
		"select * from '/etc/passwd'",
		"select * from read_text('/etc/passwd')",
		"select * from read_blob('/etc/hostname')",
		"select * from read_json('/etc/passwd')",
		"select * from sniff_csv('/etc/passwd')",
		"select * from glob('/*')",
		"select * from read_parquet('" + other + "')",
		"select * from read_parquet('" + own + "/../t2.scratch/s.parquet')",
		"select * from read_csv('http://127.0.0.1:1/x.csv')",
		"select * from query('drop table events')",
		"select * from query_table('events'); drop table events",
		"select * from force_checkpoint()",
		"with x as (delete from events returning *) select * from x",
		"select * from events; insert into events (i) values (1)",
	}
	for _, q := range hostile {
		r := env.query(t, "t1", q)
		if r.status < 400 || r.status > 499 {
			t.Errorf("%q: status %d, body %.300s", q, r.status, r.body)
			continue
		}
		if errorOf(strings.TrimSpace(string(r.body))) == "" {
			t.Errorf("%q: body %q is not an error object", q, r.body)
		}
		t.Logf("%-60.60q %d %.160s", q, r.status, r.body)
	}
	if len(hostile) < 30 {
		t.Fatal("the hostile list shrank")
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
	// Read-only statements DuckDB types as SELECT run; they change nothing.
	for _, q := range []string{"pragma table_info('events')", "select * from checkpoint()", "describe events", "show tables"} {
		env.query(t, "t1", q).ok(t)
	}
	// Binding EXPORT DATABASE creates its directory (only possible in the
	// tenant's own scratch directory); nothing is exported into it.
	if ents, err := os.ReadDir(filepath.Join(own, "exp")); err == nil && len(ents) > 0 {
		t.Errorf("export wrote %d files", len(ents))
	}
	for _, f := range []string{"/tmp/duckgate-evil.duckdb", "/tmp/duckgate-evil.csv", "/tmp/duckgate-exp", filepath.Join(own, "x.csv")} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("%s was written", f)
		}
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("other tenant's file: %v", err)
	}
	// The sandbox settings still hold.
	r := env.query(t, "t1", "select current_setting('enable_external_access') as e, current_setting('lock_configuration') as l").ok(t)
	if string(r.body) != "[\n{\"e\":false,\"l\":true}\n]\n" {
		t.Errorf("settings: %s", r.body)
	}
}

func TestCheck(t *testing.T) {
	env := newEnv(t, Config{}, nil)
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
	f("select * from missing", ErrBadQuery, "missing")
	f("select from where", ErrBadQuery, "syntax")
	if statusOf(env.engine.Check(ctx, "t1", Request{SQL: "delete from events"})) != 403 {
		t.Fatal("not 403")
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
