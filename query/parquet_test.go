package query

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// exactSQL makes a table with every type of the README's type table and
// the types DuckDB would not write exactly to Parquet (HUGEINT, UHUGEINT and
// INTERVAL, also nested), with values at their edges.
const exactSQL = `CREATE TABLE exact (
	n INTEGER, b BOOLEAN, i BIGINT, h HUGEINT, hbig HUGEINT, d DOUBLE, s VARCHAR, ts TIMESTAMPTZ, j JSON,
	u UHUGEINT, iv INTERVAL, ivms INTERVAL, ivneg INTERVAL, lh HUGEINT[], st STRUCT("HUGEINT" HUGEINT, "x y" VARCHAR), dec DECIMAL(38,10),
	dt DATE, tm TIME, id UUID, bl BLOB, tsp TIMESTAMP, tns TIMESTAMP_NS);
INSERT INTO exact VALUES
	(1, true, 9223372036854775807, 1180591620717411303425, 170141183460469231731687303715884105727, 1.5,
	 'héllo "wörld", 日本' || chr(10) || 'end', '2024-01-02 03:04:05.123456+00', '{"z":1,"a":12345678901234567890123.5e400,"c":[true,null]}',
	 340282366920938463463374607431768211455, INTERVAL '1 day 1 microsecond', INTERVAL '2 months 3 days 4.567 seconds', INTERVAL '1 month -2 days',
	 [1180591620717411303425, -170141183460469231731687303715884105728, NULL], {'HUGEINT': 170141183460469231731687303715884105727, 'x y': 'v'},
	 1234567890123456789012345678.0123456789, '2024-02-29', '23:59:59.999999', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\x00\xFFab'::BLOB,
	 '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05.123456789'),
	(2, false, -9223372036854775808, -99999999999999999999999999999999999999, -170141183460469231731687303715884105728, 'NaN',
	 '', '1970-01-01 00:00:00+00', '[]', 0, INTERVAL '-1.5 seconds', INTERVAL '0 seconds', INTERVAL '1 second', [], NULL, -0.0000000001,
	 '0001-01-01', '00:00:00', '00000000-0000-0000-0000-000000000000', ''::BLOB, '1970-01-01 00:00:00', '1677-09-22 00:00:00'),
	(3, NULL, 0, 99999999999999999999999999999999999999, 1, 5e-324, NULL, NULL, '"x"', 1, NULL, NULL, NULL, NULL, {'HUGEINT': NULL, 'x y': NULL}, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
	(4, NULL, NULL, NULL, NULL, -0.0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`

// The Parquet type each column of exact is written as.
var exactParquetTypes = map[string]string{
	"n": "INTEGER", "b": "BOOLEAN", "i": "BIGINT", "h": "DECIMAL(38,0)", "hbig": "VARCHAR", "d": "DOUBLE",
	"s": "VARCHAR", "ts": "TIMESTAMP WITH TIME ZONE", "j": "JSON", "u": "VARCHAR", "iv": "VARCHAR",
	"ivms": "INTERVAL", "ivneg": "VARCHAR", "lh": "VARCHAR[]", "st": `STRUCT(HUGEINT VARCHAR, "x y" VARCHAR)`, "dec": "DECIMAL(38,10)",
	"dt": "DATE", "tm": "TIME", "id": "UUID", "bl": "BLOB", "tsp": "TIMESTAMP", "tns": "TIMESTAMP_NS",
}

// Issue 12: a Parquet download keeps every value exact. Each column of the
// downloaded file, read back by a DuckDB of the test's own, cast back to
// the column's type and then to text, equals the stored column as text; a
// column of a type the README's type table lists also equals it as text
// without the cast back (HUGEINT as DECIMAL(38,0) prints the same digits).
func TestParquetExactTypes(t *testing.T) {
	env := newEnv(t, Config{}, nil)
	env.exec(t, "t1", exactSQL)
	q := "select * from exact order by n"

	r := env.query(t, "t1", q, "format", "parquet").ok(t)
	download := filepath.Join(t.TempDir(), "download.parquet")
	if err := os.WriteFile(download, r.body, 0o600); err != nil {
		t.Fatal(err)
	}
	// Share snapshots write through ExportParquet: the same mapping.
	snapshot, rows, err := env.engine.ExportParquet(context.Background(), "t1", Request{SQL: q}, "snap.parquet")
	if err != nil || rows != 4 {
		t.Fatalf("export: %d rows, %v", rows, err)
	}

	h, err := env.pool.Acquire(context.Background(), "t1")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	stored := func(col, typ string) []string { return texts(t, h.DB, "select "+col+"::VARCHAR from exact order by n") }

	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("SET TimeZone = 'UTC'"); err != nil {
		t.Fatal(err)
	}
	var types [][2]string
	rowsOf(t, h.DB, "select column_name, data_type from information_schema.columns where table_name = 'exact' order by ordinal_position", func(name, typ string) {
		types = append(types, [2]string{name, typ})
	})
	readme := map[string]bool{"b": true, "i": true, "h": true, "hbig": true, "d": true, "s": true, "ts": true, "j": true}
	for _, file := range []string{download, snapshot} {
		got := make(map[string]string)
		rowsOf(t, db, "select column_name, column_type from (describe select * from read_parquet('"+file+"'))", func(name, typ string) {
			got[name] = typ
		})
		for _, ct := range types {
			col, typ := ct[0], ct[1]
			if got[col] != exactParquetTypes[col] {
				t.Errorf("%s: column %s (%s) is %s in Parquet; want %s", filepath.Base(file), col, typ, got[col], exactParquetTypes[col])
			}
			want := strings.Join(stored(col, typ), "|")
			back := strings.Join(texts(t, db, "select CAST("+col+" AS "+typ+")::VARCHAR from read_parquet('"+file+"')"), "|")
			if back != want {
				t.Errorf("%s: column %s (%s) read back as\n%s\nwant\n%s", filepath.Base(file), col, typ, back, want)
			}
			if readme[col] {
				if plain := strings.Join(texts(t, db, "select "+col+"::VARCHAR from read_parquet('"+file+"')"), "|"); plain != want {
					t.Errorf("%s: column %s (%s) as text\n%s\nwant\n%s", filepath.Base(file), col, typ, plain, want)
				}
			}
		}
	}
	// Issue 12's value.
	if v := texts(t, db, "select h::VARCHAR from read_parquet('"+download+"') where n = 1"); v[0] != "1180591620717411303425" {
		t.Fatalf("HUGEINT read back %s", v[0])
	}
	// A query without such columns is written as it is (no wrapping), and
	// a tenant's own error text naming the marker changes nothing.
	env.query(t, "t1", "select n, s from exact", "format", "parquet").ok(t)
	if r := env.query(t, "t1", "select error('"+parquetRetryMarker+"1') as h", "format", "parquet"); r.status != 400 {
		t.Fatalf("forged marker: %d %s", r.status, r.body)
	}
	if r := env.query(t, "t1", "select case when n = 4 then error('"+parquetRetryMarker+"1') end::HUGEINT as h from exact", "format", "parquet"); r.status != 400 {
		t.Fatalf("forged marker on a HUGEINT column: %d %s", r.status, r.body)
	}
}

// Types of nested columns: only HUGEINT and UHUGEINT as type names become
// VARCHAR, never a field name spelled so.
func TestNestedWithoutHugeint(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := nestedWithoutHugeint(in); got != want {
			t.Fatalf("nestedWithoutHugeint(%s) = %s; want %s", in, got, want)
		}
	}
	f("HUGEINT[]", "VARCHAR[]")
	f("UHUGEINT[2][3]", "VARCHAR[2][3]")
	f("MAP(HUGEINT, UHUGEINT)", "MAP(VARCHAR, VARCHAR)")
	f(`STRUCT("x y" HUGEINT, HUGEINT UHUGEINT, "HUGEINT" INTEGER)`, `STRUCT("x y" VARCHAR, HUGEINT VARCHAR, "HUGEINT" INTEGER)`)
	f(`STRUCT("a""HUGEINT," INTEGER)`, `STRUCT("a""HUGEINT," INTEGER)`)
	f("STRUCT(MYHUGEINT BIGINT)", "STRUCT(MYHUGEINT BIGINT)")
	f("BIGINT[]", "BIGINT[]")
}

func texts(t *testing.T, db *sql.DB, q string) []string {
	t.Helper()
	var out []string
	rows, err := db.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	for rows.Next() {
		var s sql.NullString
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		if s.Valid {
			out = append(out, s.String)
		} else {
			out = append(out, "NULL")
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
}

func rowsOf(t *testing.T, db *sql.DB, q string, f func(a, b string)) {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	for rows.Next() {
		var a, b string
		if err := rows.Scan(&a, &b); err != nil {
			t.Fatal(err)
		}
		f(a, b)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}
