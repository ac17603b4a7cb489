package api

import (
	"database/sql"
	"encoding/csv"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Issue 12: rows of every type of the README's type table, inserted as
// JSON, come back exact in a Parquet download. The file is read by a DuckDB
// of the test's own (not the tenant's sandbox) and each column's text is
// compared with the text the tenant's database gives for it.
func TestParquetDownloadExact(t *testing.T) {
	e := newAdminEnv(t, adminEnvConfig{})
	_, key := e.tenant("acme")
	body := strings.Join([]string{
		`{"n":1,"b":true,"i":9223372036854775807,"h":1180591620717411303425,"hbig":170141183460469231731687303715884105727,"d":1.7976931348623157e308,"over":1e400,"s":"héllo \"wörld\"\n日本","ts":"2026-11-21T10:00:00.123456Z","j":{"z":1,"a":[12345678901234567890123.5,null]}}`,
		`{"n":2,"b":false,"i":-9223372036854775808,"h":-99999999999999999999999999999999999999,"hbig":-170141183460469231731687303715884105728,"d":2.2250738585072014e-308,"over":"2.5e-330","s":"","ts":"1970-01-01T00:00:00Z","j":[]}`,
		`{"n":3,"h":99999999999999999999999999999999999999,"hbig":1,"d":-0.0,"j":"x"}`,
	}, "\n")
	if r := e.insert(key, "events", body); r.status != 200 || !strings.Contains(string(r.body), `"rejected":0`) {
		t.Fatalf("insert: %d %s", r.status, r.body)
	}
	query := func(q, format string) []byte {
		t.Helper()
		r := e.do("GET", "/api/data/query?"+url.Values{"query": {q}, "format": {format}, "flush": {"true"}}.Encode(), nil, "X-API-KEY", key)
		if r.status != 200 {
			t.Fatalf("%s as %s: %d %s", q, format, r.status, r.body)
		}
		return r.body
	}
	types := map[string]string{}
	for _, rec := range csvRecords(t, query("select column_name, data_type from information_schema.columns where table_name = 'events'", "csv")) {
		types[rec[0]] = rec[1]
	}
	for col, want := range map[string]string{"b": "BOOLEAN", "i": "BIGINT", "h": "HUGEINT", "hbig": "HUGEINT", "d": "DOUBLE",
		"over": "VARCHAR", "s": "VARCHAR", "ts": "TIMESTAMP WITH TIME ZONE", "j": "JSON"} {
		if types[col] != want {
			t.Fatalf("column %s is %s; want %s (all: %v)", col, types[col], want, types)
		}
	}
	cols := "b, i, h, hbig, d, over, s, ts, j"
	q := "select " + cols + " from events order by n"
	path := filepath.Join(t.TempDir(), "events.parquet")
	if err := os.WriteFile(path, query(q, "parquet"), 0o600); err != nil {
		t.Fatal(err)
	}
	stored := csvRecords(t, query("select columns(*)::VARCHAR from ("+q+")", "csv"))

	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("SET TimeZone = 'UTC'"); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query("select columns(*)::VARCHAR from (select " + cols + " from read_parquet('" + path + "'))")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	names, _ := rows.Columns()
	for r := 0; rows.Next(); r++ {
		vals := make([]sql.NullString, len(names))
		ptrs := make([]any, len(vals))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			// The CSV of the query API has an empty field for NULL.
			if got, want := v.String, stored[r][i]; got != want {
				t.Errorf("row %d, column %s (%s): Parquet %q, stored %q", r+1, names[i], types[names[i]], got, want)
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var h string
	if err := db.QueryRow("select h::VARCHAR from read_parquet('" + path + "') limit 1").Scan(&h); err != nil || h != "1180591620717411303425" {
		t.Fatalf("issue 12's HUGEINT read back %q, %v", h, err)
	}
}

// csvRecords parses a CSV result without its header row.
func csvRecords(t *testing.T, b []byte) [][]string {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(string(b))).ReadAll()
	if err != nil || len(recs) == 0 {
		t.Fatalf("csv %.300q: %v", b, err)
	}
	return recs[1:]
}
