package tenantdb

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"
)

// exec runs statements on the tenant's database.
func execTenant(t *testing.T, p *Pool, tenant string, qs ...string) {
	t.Helper()
	h, err := p.Acquire(context.Background(), tenant)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	for _, q := range qs {
		if _, err := h.DB.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// rowsText runs q on db and returns its rows, one line each, fields
// separated by "|".
func rowsText(t *testing.T, db *sql.DB, q string) string {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var lines []string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		f := make([]string, len(vals))
		for i, v := range vals {
			f[i] = "NULL"
			if v.Valid {
				f[i] = v.String
			}
		}
		lines = append(lines, strings.Join(f, "|"))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// every type ingest makes, with edge values.
var exportSetup = []string{
	`CREATE TABLE events (b BOOLEAN, n BIGINT, h HUGEINT, d DOUBLE, ts TIMESTAMPTZ, s VARCHAR, j JSON, _overflow JSON)`,
	`INSERT INTO events VALUES
		(true, 9223372036854775807, 170141183460469231731687303715884105727, 0.1, '2026-06-01 12:00:00.123456+00', 'a''b', '{"k":[1,2.50,"x"]}', NULL),
		(false, -9223372036854775808, -170141183460469231731687303715884105727, -1e300, '1970-01-01 00:00:00+00', '', '[]', '{"A":1}'),
		(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
	`CREATE TABLE empty_one (x VARCHAR)`,
	`CREATE TABLE _duckgate_applied (tbl VARCHAR PRIMARY KEY, seq UBIGINT)`,
	`INSERT INTO _duckgate_applied VALUES ('events', 7)`,
	`CREATE TABLE _duckgate_quarantine (table_name VARCHAR, error VARCHAR, quarantined_at TIMESTAMPTZ, "row" JSON)`,
	`INSERT INTO _duckgate_quarantine VALUES ('events', 'boom', '2026-06-01 00:00:00+00', '{"n":"x"}')`,
}

const eventsOrdered = "SELECT b, n, CAST(h AS VARCHAR), d, ts, s, CAST(j AS VARCHAR), CAST(_overflow AS VARCHAR) FROM events ORDER BY n NULLS LAST"

const eventsWant = "false|-9223372036854775808|-170141183460469231731687303715884105727|-1e+300|1970-01-01T00:00:00Z||[]|{\"A\":1}\n" +
	"true|9223372036854775807|170141183460469231731687303715884105727|0.1|2026-06-01T12:00:00.123456Z|a'b|{\"k\":[1,2.50,\"x\"]}|NULL\n" +
	"NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL"

func TestExportDatabase(t *testing.T) {
	p := newPool(t, 4)
	execTenant(t, p, "t1", exportSetup...)
	path, tables, err := p.ExportDatabase(context.Background(), "t1", "export.duckdb", []string{"_duckgate_quarantine"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tb := range tables {
		names = append(names, tb.Name)
	}
	if got := strings.Join(names, " "); got != "_duckgate_quarantine empty_one events" {
		t.Fatalf("tables %q", got)
	}
	if tables[2].Rows != 3 || len(tables[2].Columns) != 8 || tables[2].Columns[2].Type != "HUGEINT" {
		t.Fatalf("events: %+v", tables[2])
	}
	db, err := sql.Open("duckdb", path+"?access_mode=READ_ONLY")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := rowsText(t, db, eventsOrdered); got != eventsWant {
		t.Fatalf("events:\n%s\nwant\n%s", got, eventsWant)
	}
	if got := rowsText(t, db, `SELECT table_name || ' ' || column_name || ' ' || data_type FROM duckdb_columns() WHERE table_name = 'events' ORDER BY column_index`); got != strings.Join([]string{
		"events b BOOLEAN", "events n BIGINT", "events h HUGEINT", "events d DOUBLE", "events ts TIMESTAMP WITH TIME ZONE",
		"events s VARCHAR", "events j JSON", "events _overflow JSON"}, "\n") {
		t.Fatalf("types:\n%s", got)
	}
	if got := rowsText(t, db, `SELECT string_agg(table_name, ' ' ORDER BY table_name) FROM duckdb_tables()`); got != "_duckgate_quarantine empty_one events" {
		t.Fatalf("tables in the file: %q", got)
	}
	if got := rowsText(t, db, `SELECT error FROM _duckgate_quarantine`); got != "boom" {
		t.Fatalf("quarantine: %q", got)
	}
}

func TestExportParquet(t *testing.T) {
	p := newPool(t, 4)
	execTenant(t, p, "t1", exportSetup...)
	dir, m, err := p.ExportParquet(context.Background(), "t1", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if len(m.Tables) != 2 || m.Tables[0].Name != "empty_one" || m.Tables[1].File != "events.parquet" || m.Tables[1].Rows != 3 ||
		m.Tables[1].Columns[2].ParquetType != "VARCHAR" || m.Tables[1].Columns[1].ParquetType != "" {
		t.Fatalf("manifest: %+v", m)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	file := filepath.Join(dir, "events.parquet")
	// HUGEINT comes back as its exact digits; cast back as the manifest says.
	q := "SELECT b, n, CAST(CAST(h AS HUGEINT) AS VARCHAR), d, ts, s, CAST(j AS VARCHAR), CAST(_overflow AS VARCHAR) FROM read_parquet('" + file + "') ORDER BY n NULLS LAST"
	if got := rowsText(t, db, q); got != eventsWant {
		t.Fatalf("events:\n%s\nwant\n%s", got, eventsWant)
	}
	if got := rowsText(t, db, "SELECT string_agg(column_name || ' ' || column_type, ', ') FROM (DESCRIBE SELECT * FROM read_parquet('"+file+"'))"); got !=
		"b BOOLEAN, n BIGINT, h VARCHAR, d DOUBLE, ts TIMESTAMP WITH TIME ZONE, s VARCHAR, j JSON, _overflow JSON" {
		t.Fatalf("parquet types: %s", got)
	}
	if got := rowsText(t, db, "SELECT count(*) FROM read_parquet('"+filepath.Join(dir, "empty_one.parquet")+"')"); got != "0" {
		t.Fatalf("empty table: %s", got)
	}
}

// An export taken while transactions commit holds each of them whole or
// not at all, across tables: every transaction inserts 100 rows into a and
// one into b.
func TestExportIsConsistentDuringWrites(t *testing.T) {
	p := newPool(t, 4)
	execTenant(t, p, "t1", "CREATE TABLE a (i BIGINT)", "CREATE TABLE b (i BIGINT)")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		h, err := p.Acquire(context.Background(), "t1")
		if err != nil {
			t.Error(err)
			return
		}
		defer h.Release()
		for i := 0; i < 100_000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := h.DB.Exec("BEGIN; INSERT INTO a SELECT range FROM range(100); INSERT INTO b VALUES (1); COMMIT"); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	partial := false
	check := func(a, b int64) {
		t.Helper()
		partial = partial || b > 0
		if a != 100*b {
			t.Fatalf("export holds %d rows of a and %d of b: a transaction is in part", a, b)
		}
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := 0; i < 5; i++ {
		path, tables, err := p.ExportDatabase(context.Background(), "t1", "e.duckdb", nil)
		if err != nil {
			t.Fatal(err)
		}
		check(tables[0].Rows, tables[1].Rows)
		var a, b int64
		if _, err := db.Exec("ATTACH '" + path + "' AS e (READ_ONLY)"); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow("SELECT (SELECT count(*) FROM e.a), (SELECT count(*) FROM e.b)").Scan(&a, &b); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec("DETACH e"); err != nil {
			t.Fatal(err)
		}
		check(a, b)
		os.Remove(path)
		dir, m, err := p.ExportParquet(context.Background(), "t1", nil)
		if err != nil {
			t.Fatal(err)
		}
		check(m.Tables[0].Rows, m.Tables[1].Rows)
		if err := db.QueryRow("SELECT (SELECT count(*) FROM read_parquet('"+filepath.Join(dir, "a.parquet")+"')), (SELECT count(*) FROM read_parquet('"+filepath.Join(dir, "b.parquet")+"'))").Scan(&a, &b); err != nil {
			t.Fatal(err)
		}
		check(a, b)
		os.RemoveAll(dir)
	}
	close(stop)
	wg.Wait()
	var bn int64
	h, _ := p.Acquire(context.Background(), "t1")
	_ = h.DB.QueryRow("SELECT count(*) FROM b").Scan(&bn)
	h.Release()
	if bn == 0 || !partial {
		t.Fatalf("%d transactions committed, exports saw some: %v: nothing was tested", bn, partial)
	}
	t.Logf("%d transactions committed", bn)
}

// A Parquet export's directory left by a crash goes when the pool opens.
func TestExportLeftoverDirectoryRemoved(t *testing.T) {
	dir := t.TempDir()
	p, err := New(Config{Dir: dir}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	execTenant(t, p, "t1", "CREATE TABLE ev AS SELECT range AS a FROM range(10)")
	left, _, err := p.ExportParquet(context.Background(), "t1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p, err = New(Config{Dir: dir}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := os.Stat(left); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("export directory left: %v", err)
	}
}
