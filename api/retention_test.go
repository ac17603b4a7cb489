package api

import (
	"archive/zip"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	json "github.com/goccy/go-json"

	"duckgate/tenant"
	"duckgate/tenantdb"
)

// lifecycleClock is the retention sweep's clock in these tests.
type lifecycleClock struct{ ns atomic.Int64 }

func (c *lifecycleClock) Now() time.Time { return time.Unix(0, c.ns.Load()).UTC() }

func TestRetentionAPI(t *testing.T) {
	day := 24 * time.Hour
	t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	clock := &lifecycleClock{}
	clock.ns.Store(t0.UnixNano())
	e := newEnv(t, func(c *envConfig) {
		c.batcher.Now = clock.Now
		c.batcher.PlanRetention = func(string) time.Duration { return 7 * day } // the free plan's
	})
	id, key := e.tenantOn("acme", "free")
	_, queryKey, err := e.tenants.CreateKey(id, tenant.ScopeQuery)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for i, age := range []time.Duration{10 * day, 5 * day, 2 * day, 0} {
		lines = append(lines, fmt.Sprintf(`{"i":%d,"ts":%q}`, i, t0.Add(-age).Format(time.RFC3339)))
	}
	if r := e.insert(key, "events", strings.Join(lines, "\n")); r.status != 200 {
		t.Fatalf("insert: %d %s", r.status, r.body)
	}
	call := func(method, table, body, k string, want int) map[string]any {
		t.Helper()
		r := e.do(method, "/api/tables/"+table+"/retention", []byte(body), "X-API-KEY", k)
		if r.status != want {
			t.Fatalf("%s %s %s: %d %s, want %d", method, table, body, r.status, r.body, want)
		}
		var m map[string]any
		if err := json.Unmarshal(r.body, &m); err != nil {
			t.Fatalf("%s %s: not JSON: %s", method, table, r.body)
		}
		if want >= 400 && m["error"] == "" {
			t.Fatalf("%s %s: no error message: %s", method, table, r.body)
		}
		return m
	}
	m := call("GET", "events", "", queryKey, 200)
	if m["retention"] != "7d" || m["plan_retention"] != "7d" || m["table_retention"] != nil || m["time_column"] != nil || m["sweeps"] != false {
		t.Fatalf("GET before a setting: %v", m)
	}
	m = call("PUT", "events", `{"retention":"3d","time_column":"ts"}`, key, 200)
	if m["retention"] != "3d" || m["table_retention"] != "3d" || m["time_column"] != "ts" || m["table_time_column"] != "ts" ||
		m["time_column_source"] != "setting" || m["sweeps"] != true {
		t.Fatalf("PUT: %v", m)
	}

	// Bad input: nothing changes, the server answers on.
	call("PUT", "events", `{"retention":"3d"}`, queryKey, 403)
	call("PUT", "events", `{"retention":"30d"}`, key, 400) // beyond the plan
	call("PUT", "events", `{"retention":"abc"}`, key, 400)
	call("PUT", "events", `{"retention":"-1h"}`, key, 400)
	call("PUT", "events", `{"retention":"0d"}`, key, 400)
	call("PUT", "events", `{"retention":"1s"}`, key, 400)
	call("PUT", "events", `{"retention":"9999999999999999999h"}`, key, 400)
	call("PUT", "events", `{"retention":3}`, key, 400)
	call("PUT", "events", `{"days":3}`, key, 400)
	call("PUT", "events", `{}`, key, 400)
	call("PUT", "events", ``, key, 400)
	call("PUT", "events", `not json`, key, 400)
	call("PUT", "events", `{"retention":"3d"} {"retention":"1d"}`, key, 400)
	call("PUT", "events", `{"retention":"3d","pad":"`+strings.Repeat("x", 8<<10)+`"}`, key, 413)
	call("PUT", "events", `{"time_column":"nope"}`, key, 400)
	call("PUT", "events", `{"time_column":"i"}`, key, 400) // BIGINT
	call("PUT", "events", `{"time_column":""}`, key, 400)
	call("PUT", "nope", `{"retention":"1d"}`, key, 404)
	call("GET", "nope", ``, key, 404)
	call("PUT", "_duckgate_retention", `{"retention":"1d"}`, key, 400)
	call("GET", "_DuckGate_applied", ``, key, 400)
	call("PUT", "bad-name", `{"retention":"1d"}`, key, 400)
	call("GET", "a/b", ``, key, 400)
	call("GET", strings.Repeat("a", 100), ``, key, 400)
	call("POST", "events", `{"retention":"1d"}`, key, 405)
	if m := call("GET", "events", "", key, 200); m["retention"] != "3d" || m["time_column"] != "ts" {
		t.Fatalf("the setting changed on bad input: %v", m)
	}

	// A sweep deletes what is older than 3 days: rows 0 and 1.
	st, err := e.batcher.Sweep(context.Background(), id)
	if err != nil || st.Deleted != 2 {
		t.Fatalf("sweep: %+v, %v", st, err)
	}
	m = call("DELETE", "events", "", key, 200)
	if m["retention"] != "7d" || m["table_retention"] != nil || m["time_column"] != nil || m["table_time_column"] != nil || m["sweeps"] != false {
		t.Fatalf("DELETE: %v", m)
	}
	e.stop()
	db := e.openDB(id)
	var got string
	if err := db.QueryRow("SELECT string_agg(i::VARCHAR, ' ' ORDER BY i) FROM events").Scan(&got); err != nil || got != "2 3" {
		t.Fatalf("rows left: %q, %v", got, err)
	}
}

// exportRows are rows of every type ingest makes, in two tables.
const exportRows = `{"i":1,"ok":true,"x":1.5,"big":170141183460469231731687303715884105727,"ts":"2026-06-01T12:00:00.123456Z","s":"a'b","obj":{"k":[1,2.50]}}
{"i":2,"ok":false,"x":-2,"big":-5,"ts":"1970-01-01T00:00:00Z","s":"","obj":[]}
{"i":3}`

const exportQuery = `SELECT i, ok, x, big::VARCHAR, strftime(ts, '%Y-%m-%dT%H:%M:%S.%fZ'), s, obj::VARCHAR FROM events ORDER BY i`

const exportWant = "1|true|1.5|170141183460469231731687303715884105727|2026-06-01T12:00:00.123456Z|a'b|{\"k\":[1,2.50]}\n" +
	"2|false|-2|-5|1970-01-01T00:00:00.000000Z||[]\n" +
	"3|NULL|NULL|NULL|NULL|NULL|NULL"

const exportTypes = "i BIGINT, ok BOOLEAN, x DOUBLE, big HUGEINT, ts TIMESTAMP WITH TIME ZONE, s VARCHAR, obj JSON"

// exportText runs q and returns its rows as lines of "|"-separated text.
func exportText(t *testing.T, db *sql.DB, q string) string {
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

func TestExportAPI(t *testing.T) {
	e := newEnv(t)
	id, key := e.tenant("acme")
	if r := e.insert(key, "events", exportRows); r.status != 200 {
		t.Fatalf("insert: %d %s", r.status, r.body)
	}
	if r := e.insert(key, "other", `{"n":1}`); r.status != 200 {
		t.Fatalf("insert: %d %s", r.status, r.body)
	}
	dir := t.TempDir()
	duck, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer duck.Close()
	if _, err := duck.Exec("SET TimeZone = 'UTC'"); err != nil {
		t.Fatal(err)
	}
	duck.SetMaxOpenConns(1)

	// The DuckDB file.
	r := e.do("GET", "/api/export", nil, "X-API-KEY", key)
	if r.status != 200 || !strings.Contains(r.header["Content-Disposition"], id) {
		t.Fatalf("export: %d %v %.200s", r.status, r.header, r.body)
	}
	file := filepath.Join(dir, "export.duckdb")
	if err := os.WriteFile(file, r.body, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := duck.Exec("ATTACH '" + file + "' AS x (READ_ONLY); USE x"); err != nil {
		t.Fatal(err)
	}
	if got := exportText(t, duck, exportQuery); got != exportWant {
		t.Fatalf("events in the file:\n%s\nwant\n%s", got, exportWant)
	}
	if got := exportText(t, duck, "SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY column_index) FROM duckdb_columns() WHERE database_name = 'x' AND table_name = 'events'"); got != exportTypes {
		t.Fatalf("types in the file: %s", got)
	}
	if got := exportText(t, duck, "SELECT string_agg(table_name, ' ' ORDER BY table_name) FROM duckdb_tables() WHERE database_name = 'x'"); got != "events other" {
		t.Fatalf("tables in the file: %s (duckgate's bookkeeping must be left out)", got)
	}
	if _, err := duck.Exec("USE memory; DETACH x"); err != nil {
		t.Fatal(err)
	}

	// The zip of Parquet files.
	r = e.do("GET", "/api/export?format=parquet", nil, "X-API-KEY", key)
	if r.status != 200 || r.header["Content-Type"] != "application/zip" {
		t.Fatalf("parquet export: %d %v %.200s", r.status, r.header, r.body)
	}
	zr, err := zip.NewReader(bytes.NewReader(r.body), int64(len(r.body)))
	if err != nil {
		t.Fatal(err)
	}
	var manifest tenantdb.Manifest
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if f.Name == "manifest.json" {
			if err := json.Unmarshal(b, &manifest); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f.Name)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if len(manifest.Tables) != 2 || manifest.Tables[0].Name != "events" || manifest.Tables[0].Rows != 3 || manifest.Tables[1].Rows != 1 ||
		len(manifest.Tables[0].Columns) != 7 || manifest.Tables[0].Columns[3].Type != "HUGEINT" || manifest.Tables[0].Columns[3].ParquetType != "VARCHAR" {
		t.Fatalf("manifest: %+v", manifest)
	}
	// Read back, each column cast to the type the manifest names.
	var sel []string
	for _, c := range manifest.Tables[0].Columns {
		sel = append(sel, fmt.Sprintf("CAST(%q AS %s) AS %q", c.Name, c.Type, c.Name))
	}
	if _, err := duck.Exec("CREATE TABLE events AS SELECT " + strings.Join(sel, ", ") + " FROM read_parquet('" + filepath.Join(dir, "events.parquet") + "')"); err != nil {
		t.Fatal(err)
	}
	if got := exportText(t, duck, exportQuery); got != exportWant {
		t.Fatalf("events in Parquet:\n%s\nwant\n%s", got, exportWant)
	}

	// Refusals: nothing is exported, nothing left behind.
	_, queryKey, err := e.tenants.CreateKey(id, tenant.ScopeQuery)
	if err != nil {
		t.Fatal(err)
	}
	_, ingestKey, err := e.tenants.CreateKey(id, tenant.ScopeIngest)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		method, uri, key string
		want             int
	}{
		{"GET", "/api/export?format=csv", key, 400},
		{"GET", "/api/export?format=" + strings.Repeat("p", 10000), key, 400},
		{"GET", "/api/export?format=../../x", key, 400},
		{"GET", "/api/export", queryKey, 403},
		{"GET", "/api/export?format=parquet", ingestKey, 403},
		{"GET", "/api/export", "dg_wrong", 401},
		{"POST", "/api/export", key, 405},
	} {
		r := e.do(c.method, c.uri, nil, "X-API-KEY", c.key)
		if r.status != c.want || !bytes.Contains(r.body, []byte(`"error"`)) {
			t.Fatalf("%s %.60s: %d %s, want %d", c.method, c.uri, r.status, r.body, c.want)
		}
	}
	// The copies go once sent (the zip's writer may still be finishing).
	waitFor(t, "the scratch directory to be empty after the exports", func() bool {
		left, err := os.ReadDir(e.pool.ScratchDir(id))
		if err != nil {
			t.Fatal(err)
		}
		return len(left) == 0
	})
}

// An export taken while a client inserts holds a prefix of the inserts,
// each whole: batches of 50 rows numbered in order.
func TestExportDuringIngest(t *testing.T) {
	e := newEnv(t)
	_, key := e.tenant("acme")
	const per = 50
	var sent atomic.Int64
	// arrived gets the count of batches sent after each one; its room for
	// every batch keeps the sender from ever blocking on it.
	arrived := make(chan int64, 5000)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for b := 0; b < 5000; b++ {
			select {
			case <-stop:
				return
			default:
			}
			var sb strings.Builder
			for i := 0; i < per; i++ {
				fmt.Fprintf(&sb, `{"batch":%d,"i":%d,"pad":"%s"}`+"\n", b, i, strings.Repeat("x", 20))
			}
			r := e.do("POST", "/api/data/insert/events", []byte(sb.String()), "X-API-KEY", key)
			if r.status != 200 {
				t.Errorf("insert: %d %s", r.status, r.body)
				return
			}
			arrived <- sent.Add(1)
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	duck, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer duck.Close()
	duck.SetMaxOpenConns(1)
	dir := t.TempDir()
	for round := 0; round < 4; round++ {
		// Let some batches arrive between exports.
		for n := sent.Load(); n < int64(10*(round+1)); {
			select {
			case n = <-arrived:
			case <-time.After(30 * time.Second):
				t.Fatalf("round %d: only %d batches inserted after 30 s", round, n)
			}
		}
		// Even rounds take the DuckDB file, odd ones the Parquet zip.
		var rows, batches, maxBatch, short int64
		q := "SELECT count(*), count(DISTINCT batch), coalesce(max(batch), -1), " +
			"(SELECT count(*) FROM (SELECT batch FROM ev GROUP BY batch HAVING count(*) <> " + fmt.Sprint(per) + ")) FROM ev"
		if round%2 == 0 {
			r := e.do("GET", "/api/export", nil, "X-API-KEY", key)
			if r.status != 200 {
				t.Fatalf("export: %d %s", r.status, r.body)
			}
			file := filepath.Join(dir, fmt.Sprintf("e%d.duckdb", round))
			if err := os.WriteFile(file, r.body, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := duck.Exec("ATTACH '" + file + "' AS x (READ_ONLY); CREATE OR REPLACE VIEW ev AS SELECT * FROM x.events"); err != nil {
				t.Fatal(err)
			}
			if err := duck.QueryRow(q).Scan(&rows, &batches, &maxBatch, &short); err != nil {
				t.Fatal(err)
			}
			if _, err := duck.Exec("DROP VIEW ev; DETACH x"); err != nil {
				t.Fatal(err)
			}
		} else {
			r := e.do("GET", "/api/export?format=parquet", nil, "X-API-KEY", key)
			if r.status != 200 {
				t.Fatalf("export: %d %s", r.status, r.body)
			}
			zr, err := zip.NewReader(bytes.NewReader(r.body), int64(len(r.body)))
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(dir, fmt.Sprintf("e%d.parquet", round))
			for _, f := range zr.File {
				if f.Name != "events.parquet" {
					continue
				}
				rc, err := f.Open()
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := duck.Exec("CREATE OR REPLACE VIEW ev AS SELECT * FROM read_parquet('" + file + "')"); err != nil {
				t.Fatal(err)
			}
			if err := duck.QueryRow(q).Scan(&rows, &batches, &maxBatch, &short); err != nil {
				t.Fatal(err)
			}
		}
		// Every insert acknowledged before the export is flushed into it.
		if short != 0 || rows != batches*per || maxBatch+1 != batches || batches < int64(10*(round+1)) {
			t.Fatalf("export %d: %d rows, %d batches, highest %d, %d batches in part", round, rows, batches, maxBatch, short)
		}
		t.Logf("export %d: %d whole batches", round, batches)
	}
}
