package batcher

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"duckgate/tenantdb"
)

// testBatcher is a Batcher over real DuckDB databases in a temporary
// directory, flushed only when asked (or when a flush is retried).
type testBatcher struct {
	t    *testing.T
	pool *tenantdb.Pool
	b    *Batcher
	done bool
}

func newTestBatcher(t *testing.T) *testBatcher {
	t.Helper()
	pool, err := tenantdb.New(tenantdb.Config{Dir: t.TempDir()}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{FlushInterval: time.Hour, QuarantineAfter: 2, RetryBackoff: time.Millisecond}, pool, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	tb := &testBatcher{t: t, pool: pool, b: b}
	t.Cleanup(tb.close)
	return tb
}

// close stops the batcher and closes the databases.
func (tb *testBatcher) close() {
	if tb.done {
		return
	}
	tb.done = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tb.b.Close(ctx); err != nil {
		tb.t.Errorf("close batcher: %v", err)
	}
	if err := tb.pool.Close(); err != nil {
		tb.t.Errorf("close pool: %v", err)
	}
}

// reopen closes the batcher and opens the tenant's database file directly.
func (tb *testBatcher) reopen(tenant string) *sql.DB {
	tb.t.Helper()
	path := tb.pool.Path(tenant)
	tb.close()
	db, err := sql.Open("duckdb", path)
	if err != nil {
		tb.t.Fatal(err)
	}
	tb.t.Cleanup(func() { db.Close() })
	return db
}

func (tb *testBatcher) insert(tenant, table string, rows *Rows, wait bool) *Ticket {
	tb.t.Helper()
	ticket, err := tb.b.Submit(Request{Tenant: tenant, Table: table, Rows: rows, Wait: wait})
	if err != nil {
		tb.t.Fatalf("insert into %s.%s: %v", tenant, table, err)
	}
	return ticket
}

func (tb *testBatcher) flush(tenant string) {
	tb.t.Helper()
	if err := tb.b.Flush(context.Background(), tenant); err != nil {
		tb.t.Fatalf("flush %s: %v", tenant, err)
	}
}

// columnTypes returns the columns of table as "name TYPE".
func columnTypes(t *testing.T, db *sql.DB, table string) []string {
	t.Helper()
	rows, err := db.Query(`SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position`, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			t.Fatal(err)
		}
		out = append(out, name+" "+typ)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func checkColumns(t *testing.T, db *sql.DB, table, want string) {
	t.Helper()
	if got := strings.Join(columnTypes(t, db, table), ", "); got != want {
		t.Fatalf("columns of %s:\n got %s\nwant %s", table, got, want)
	}
}

func TestWriterTypesAndValues(t *testing.T) {
	tb := newTestBatcher(t)
	b := NewBuilder()
	b.AddBool([]byte("b"), true)
	b.AddNumber([]byte("i"), []byte("-42"))
	b.AddNumber([]byte("big"), []byte("9007199254740993"))
	b.AddNumber([]byte("huge"), []byte("170141183460469231731687303715884105727"))
	b.AddNumber([]byte("numtext"), []byte("1e400"))
	b.AddNumber([]byte("f"), []byte("-0.0"))
	b.AddNumber([]byte("max"), []byte("1e308"))
	b.AddString([]byte("ts"), []byte("2024-02-29T23:59:59.123456+02:00"))
	b.AddString([]byte("s"), []byte("héllo \"quoted\" \\ 日本 🦆 \x00 end"))
	b.AddJSON([]byte("j"), []byte(`{"x":[1,2],"big":12345678901234567890}`))
	b.AddNumber([]byte("n"), []byte("1"))
	b.AddNumber([]byte("Case"), []byte("1"))
	b.AddNumber([]byte("case"), []byte("2")) // same column in another case: overflow
	b.EndRow()
	b.AddNumber([]byte("i"), []byte("7"))
	b.AddNumber([]byte("n"), []byte("2.5"))
	b.EndRow()
	tb.insert("t1", "events", b.Rows(), false)
	tb.flush("t1")

	// A second batch widens i to VARCHAR and adds a column.
	b = NewBuilder()
	b.AddString([]byte("i"), []byte("text"))
	b.AddBool([]byte("extra"), false)
	b.EndRow()
	tb.insert("t1", "events", b.Rows(), false)
	tb.flush("t1")
	if n := tb.b.Stats().RowsCommitted.Load(); n != 3 {
		t.Fatalf("RowsCommitted = %d; want 3", n)
	}

	db := tb.reopen("t1")
	checkColumns(t, db, "events", "b BOOLEAN, i VARCHAR, big BIGINT, huge HUGEINT, numtext VARCHAR, f DOUBLE, max DOUBLE, "+
		"ts TIMESTAMP WITH TIME ZONE, s VARCHAR, j JSON, n DOUBLE, Case BIGINT, _overflow JSON, extra BOOLEAN")

	var (
		bv        bool
		i, huge   string
		bigv      int64
		numtext   string
		f, max    float64
		ts        time.Time
		s, j, ovf string
		n         float64
		caseV     int64
	)
	err := db.QueryRow(`SELECT b, i, big, huge::VARCHAR, numtext, f, max, ts, s, j::VARCHAR, n, "Case", _overflow::VARCHAR FROM events WHERE b`).
		Scan(&bv, &i, &bigv, &huge, &numtext, &f, &max, &ts, &s, &j, &n, &caseV, &ovf)
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2024, 2, 29, 21, 59, 59, 123456000, time.UTC)
	switch {
	case !bv || i != "-42" || bigv != 9007199254740993 || numtext != "1e400":
		t.Fatalf("b, i, big, numtext = %v %q %d %q", bv, i, bigv, numtext)
	case huge != "170141183460469231731687303715884105727":
		t.Fatalf("huge = %s", huge)
	case f != 0 || !math.Signbit(f) || max != 1e308 || n != 1:
		t.Fatalf("f, max, n = %v (sign %v) %v %v", f, math.Signbit(f), max, n)
	case !ts.Equal(want):
		t.Fatalf("ts = %v; want %v", ts, want)
	case s != "héllo \"quoted\" \\ 日本 🦆 \x00 end":
		t.Fatalf("s = %q", s)
	case caseV != 1 || ovf != `{"case":2}`:
		t.Fatalf("Case = %d, _overflow = %s", caseV, ovf)
	}
	dec := json.NewDecoder(strings.NewReader(j))
	dec.UseNumber()
	var raw map[string]any
	if err := dec.Decode(&raw); err != nil {
		t.Fatalf("j = %s: %v", j, err)
	}
	if raw["big"].(json.Number) != "12345678901234567890" {
		t.Fatalf("j = %s: the big integer changed", j)
	}

	var rowsN, floats, texts int
	if err := db.QueryRow(`SELECT count(*), count(*) FILTER (n = 2.5), count(*) FILTER (i = 'text' AND NOT extra) FROM events`).Scan(&rowsN, &floats, &texts); err != nil {
		t.Fatal(err)
	}
	if rowsN != 3 || floats != 1 || texts != 1 {
		t.Fatalf("rows %d, n=2.5 %d, i='text' %d", rowsN, floats, texts)
	}
	// A huge integer round-trips through big.Int too.
	var hb string
	if err := db.QueryRow(`SELECT max(huge)::VARCHAR FROM events`).Scan(&hb); err != nil {
		t.Fatal(err)
	}
	if v, ok := new(big.Int).SetString(hb, 10); !ok || v.BitLen() != 127 {
		t.Fatalf("max(huge) = %s", hb)
	}
}

func TestWriterQuarantine(t *testing.T) {
	tb := newTestBatcher(t)
	// Rows the table refuses: DuckDB reports the CHECK at append time. (A
	// hand-made INTEGER column would refuse every row: the writer sends text
	// to columns of types it does not know.)
	h, err := tb.pool.Acquire(context.Background(), "t1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.DB.Exec(`CREATE TABLE t (a BIGINT CHECK (a < 0))`); err != nil {
		t.Fatal(err)
	}
	h.Release()

	bad := NewBuilder()
	bad.AddNumber([]byte("a"), []byte("5"))
	bad.EndRow()
	bad.AddNumber([]byte("a"), []byte("6"))
	bad.AddString([]byte("note"), []byte("x\"y"))
	bad.EndRow()
	ticket := tb.insert("t1", "t", bad.Rows(), true)

	// No Flush: the writer retries on its own after RetryBackoff, however
	// long FlushInterval is, and quarantines on the second failure.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = ticket.Wait(ctx)
	if err == nil || !strings.Contains(err.Error(), QuarantineTable) || strings.Contains(err.Error(), "not yet committed") {
		t.Fatalf("ticket: %v; want an error naming %s", err, QuarantineTable)
	}
	if n := tb.b.Stats().Quarantined.Load(); n != 2 {
		t.Fatalf("Quarantined = %d; want 2", n)
	}
	if n := tb.b.Stats().FlushErrors.Load(); n != 1 {
		t.Fatalf("FlushErrors = %d; want 1 (the second failure quarantines)", n)
	}

	// The table is not blocked, and other tables flow.
	good := NewBuilder()
	good.AddNumber([]byte("a"), []byte("-1"))
	good.EndRow()
	if err := tb.insert("t1", "t", good.Rows(), true).Wait(ctx); err != nil {
		t.Fatalf("good rows for t: %v", err)
	}
	other := NewBuilder()
	other.AddString([]byte("x"), []byte("y"))
	other.EndRow()
	if err := tb.insert("t1", "u", other.Rows(), true).Wait(ctx); err != nil {
		t.Fatalf("rows for u: %v", err)
	}
	if tb.b.Buffered() != 0 {
		t.Fatalf("%d bytes still buffered", tb.b.Buffered())
	}

	db := tb.reopen("t1")
	rows, err := db.Query(`SELECT table_name, error, row::VARCHAR FROM ` + QuarantineTable + ` ORDER BY row::VARCHAR`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var table, msg, row string
		if err := rows.Scan(&table, &msg, &row); err != nil {
			t.Fatal(err)
		}
		if table != "t" || !strings.Contains(msg, "flush t1.t") {
			t.Fatalf("quarantined row of %q with error %q", table, msg)
		}
		got = append(got, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if want := `{"a":5} | {"a":6,"note":"x\"y"}`; strings.Join(got, " | ") != want {
		t.Fatalf("quarantined rows %s; want %s", strings.Join(got, " | "), want)
	}
	var a int
	var u string
	if err := db.QueryRow(`SELECT (SELECT a FROM t), (SELECT x FROM u)`).Scan(&a, &u); err != nil {
		t.Fatal(err)
	}
	if a != -1 || u != "y" {
		t.Fatalf("t.a = %d, u.x = %q", a, u)
	}
}

// The applied position is one row per table, updated in place from the
// second flush on: a crash after several flushes replays exactly the
// insert not committed, and a writer started after recovery (which has not
// written the row itself yet) moves the same row on.
func TestAppliedUpdatedInPlace(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	wb := openWALBatcher(t, dir)
	submit := func(b *Batcher, vals ...string) {
		t.Helper()
		if _, err := b.Submit(Request{Tenant: "t1", Table: "ev", Rows: numbers("a", vals...)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range []string{"1", "2", "3"} {
		submit(wb.b, v)
		if err := wb.b.Flush(ctx, "t1"); err != nil {
			t.Fatal(err)
		}
	}
	submit(wb.b, "4", "5") // acknowledged, never committed
	wb.crash(t)

	wb = openWALBatcher(t, dir)
	// Committed inserts whose log segments are gone are not even read;
	// those still in the log are skipped by the applied position.
	if wb.st.Replayed != 1 || wb.st.Rows != 2 || wb.st.Skipped != wb.st.Records-1 {
		t.Fatalf("recovery: %+v; want only the 2 rows never committed replayed", wb.st)
	}
	submit(wb.b, "6")
	if err := wb.b.Flush(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	submit(wb.b, "7")
	if err := wb.b.Flush(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	last := wb.b.nextSeq() - 1 // the number of insert "7"
	wb.close(t)

	db := openFile(t, filepath.Join(dir, "tenants", "t1.duckdb"))
	if got := column(t, db, "SELECT a FROM ev ORDER BY a"); got != "1 2 3 4 5 6 7" {
		t.Fatalf("rows %q, want each once", got)
	}
	if got, want := column(t, db, "SELECT tbl || '=' || seq FROM "+appliedTable), fmt.Sprintf("ev=%d", last); got != want {
		t.Fatalf("%s holds %q, want %q", appliedTable, got, want)
	}
}
