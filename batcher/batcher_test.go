package batcher

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"duckgate/tenantdb"
	"duckgate/wal"
)

// numbers returns one row per value, each {key: value}.
func numbers(key string, values ...string) *Rows {
	b := NewBuilder()
	for _, v := range values {
		b.AddNumber([]byte(key), []byte(v))
		b.EndRow()
	}
	return b.Rows()
}

// openFile opens a tenant's database file directly, after its pool closed.
func openFile(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("duckdb", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// column returns the values of one column of table, in order, as text.
func column(t *testing.T, db *sql.DB, q string) string {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v sql.NullString
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v.String)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, " ")
}

// Rows submitted for two tenants are in their databases, with their types,
// once Close returns: Close flushes everything.
func TestSubmitTwoTenantsClose(t *testing.T) {
	tb := newTestBatcher(t)
	a := NewBuilder()
	a.AddNumber([]byte("n"), []byte("1"))
	a.AddString([]byte("s"), []byte("one"))
	a.EndRow()
	a.AddNumber([]byte("n"), []byte("2"))
	a.AddString([]byte("s"), []byte("two"))
	a.EndRow()
	tb.insert("t1", "events", a.Rows(), false)
	b := NewBuilder()
	b.AddBool([]byte("ok"), true)
	b.AddNumber([]byte("x"), []byte("1.5"))
	b.AddString([]byte("at"), []byte("2024-01-02T03:04:05Z"))
	b.EndRow()
	tb.insert("t2", "metrics", b.Rows(), false)
	tb.insert("t2", "metrics", numbers("x", "7"), false)
	p1, p2 := tb.pool.Path("t1"), tb.pool.Path("t2")
	tb.close()

	db1 := openFile(t, p1)
	checkColumns(t, db1, "events", "n BIGINT, s VARCHAR")
	if got := column(t, db1, `SELECT n || ':' || s FROM events ORDER BY n`); got != "1:one 2:two" {
		t.Fatalf("t1 events: %s", got)
	}
	db2 := openFile(t, p2)
	checkColumns(t, db2, "metrics", "ok BOOLEAN, x DOUBLE, at TIMESTAMP WITH TIME ZONE")
	if got := column(t, db2, `SELECT concat_ws('|', ok, x, epoch("at")::BIGINT) FROM metrics ORDER BY x`); got != "true|1.5|1704164645 7.0" {
		t.Fatalf("t2 metrics: %s", got)
	}
	if ts, err := tenantdb.Tables(context.Background(), db2); err != nil || len(ts) != 1 || ts[0].Rows != 2 {
		t.Fatalf("t2 tables: %v, %v", ts, err)
	}
}

// walBatcher is a batcher with a write-ahead log over dir, recovered.
type walBatcher struct {
	pool *tenantdb.Pool
	log  *wal.Log
	b    *Batcher
	st   RecoveryStats
}

func openWALBatcher(t *testing.T, dir string, mods ...func(*wal.Config)) *walBatcher {
	t.Helper()
	pool, err := tenantdb.New(tenantdb.Config{Dir: filepath.Join(dir, "tenants")}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	// Tiny segments: every group commit gets its own, so a committed
	// insert's segment can go and its key must live in the key store.
	wc := wal.Config{Dir: filepath.Join(dir, "wal"), SegmentSize: 1}
	for _, m := range mods {
		m(&wc)
	}
	l, err := wal.Open(wc, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{FlushInterval: time.Hour, WAL: l, StateDir: filepath.Join(dir, "state")}, pool, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	st, err := b.Recover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return &walBatcher{pool: pool, log: l, b: b, st: st}
}

func (wb *walBatcher) submitKeyed(t *testing.T, tenant, key, resp string, rows *Rows) {
	t.Helper()
	if _, found, err := wb.b.BeginIdempotent(tenant, key); err != nil || found {
		t.Fatalf("BeginIdempotent(%s): found %v, %v", key, found, err)
	}
	if _, err := wb.b.Submit(Request{Tenant: tenant, Table: "ev", Rows: rows, IdempotencyKey: key, Response: []byte(resp)}); err != nil {
		t.Fatal(err)
	}
}

// crash abandons wb as kill -9 would: the log and the databases go away
// under the batcher, which is never closed and flushes nothing more. Its
// goroutines are reaped when the test ends.
func (wb *walBatcher) crash(t *testing.T) {
	t.Helper()
	if err := wb.log.Close(); err != nil {
		t.Fatal(err)
	}
	if err := wb.pool.Close(); err != nil {
		t.Fatal(err)
	}
	crashed := wb.b
	t.Cleanup(func() {
		ended, cancel := context.WithCancel(context.Background())
		cancel()
		_ = crashed.Close(ended)
		select {
		case <-crashed.idem.done:
		default:
			t.Error("idempotency key writer still running after Close")
		}
	})
}

func (wb *walBatcher) close(t *testing.T) {
	t.Helper()
	if err := wb.b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := wb.pool.Close(); err != nil {
		t.Fatal(err)
	}
	if err := wb.log.Close(); err != nil {
		t.Fatal(err)
	}
}

// After a crash, Recover stores exactly what was acknowledged and not yet
// committed, once, and the keys of both kinds of insert answer retries.
func TestRecoverExactlyOnceAfterCrash(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	wb := openWALBatcher(t, dir)
	wb.submitKeyed(t, "t1", "k1", `{"accepted":1}`, numbers("a", "1"))
	if err := wb.b.Flush(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	wb.submitKeyed(t, "t1", "k2", `{"accepted":2}`, numbers("a", "2", "3"))

	// The crash: the log and the databases go away under the batcher,
	// which is never closed and never flushes k2's rows.
	wb.crash(t)

	wb = openWALBatcher(t, dir)
	if wb.st.Replayed != 1 || wb.st.Rows != 2 || wb.st.Dropped != 0 {
		t.Fatalf("recovery: %+v; want 1 insert of 2 rows replayed", wb.st)
	}
	for key, want := range map[string]string{"k1": `{"accepted":1}`, "k2": `{"accepted":2}`} {
		resp, found, err := wb.b.BeginIdempotent("t1", key)
		if err != nil || !found || string(resp) != want {
			t.Fatalf("retry with %s after the crash: %q, %v, %v; want %s", key, resp, found, err, want)
		}
	}
	wb.close(t)

	// A clean restart replays nothing again.
	wb = openWALBatcher(t, dir)
	if wb.st.Replayed != 0 {
		t.Fatalf("second recovery replayed %+v", wb.st)
	}
	path := wb.pool.Path("t1")
	wb.close(t)
	if got := column(t, openFile(t, path), `SELECT a FROM ev ORDER BY a`); got != "1 2 3" {
		t.Fatalf("rows after recovery: %s; want 1 2 3", got)
	}
}

// Close whose context has ended aborts flushes that cannot finish (here
// they wait for a flush slot that never frees), says rows were not
// committed, and returns only once its goroutines have.
func TestCloseWithEndedContext(t *testing.T) {
	tb := newTestBatcher(t)
	tb.insert("t1", "ev", numbers("a", "1"), false)
	tb.insert("t2", "ev", numbers("a", "2"), false)
	for range cap(tb.b.flushSlots) {
		tb.b.flushSlots <- struct{}{}
	}
	tb.b.mu.Lock()
	var ws []*writer
	for w := range tb.b.running {
		ws = append(ws, w)
	}
	tb.b.mu.Unlock()
	if len(ws) != 2 {
		t.Fatalf("%d writers running; want 2", len(ws))
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := tb.b.Close(ctx)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "2 rows not committed") {
		t.Fatalf("Close with an ended context: %v", err)
	}
	for _, w := range ws {
		select {
		case <-w.done:
		default:
			t.Fatalf("writer of %s still running after Close", w.tenant)
		}
	}
	select {
	case <-tb.b.idem.done:
	default:
		t.Fatal("idempotency key writer still running after Close")
	}
	for range cap(tb.b.flushSlots) {
		<-tb.b.flushSlots
	}
	tb.done = true // closed: the cleanup's Close would report the rows again
	if err := tb.pool.Close(); err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond until it holds, failing the test with what after
// d: for effects of the writers' own timers (early flushes, periodic
// sweeps), which no channel reports.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(d)
	for !cond() {
		select {
		case <-tick.C:
		case <-timeout:
			t.Fatalf("still waiting after %s for %s", d, what)
		}
	}
}
