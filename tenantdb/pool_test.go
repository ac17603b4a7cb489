package tenantdb

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

func newPool(t *testing.T, maxOpen int) *Pool {
	t.Helper()
	p, err := New(Config{Dir: t.TempDir(), MaxOpen: maxOpen, LimitsOf: func(string) Limits {
		return Limits{MemoryLimit: "128MB", Threads: 1}
	}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func TestSandboxAndPersistence(t *testing.T) {
	p := newPool(t, 4)
	h, err := p.Acquire(context.Background(), "t1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.DB.Exec(`CREATE TABLE ev(a BIGINT); INSERT INTO ev VALUES (42)`); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`SELECT * FROM read_csv('/etc/hostname')`,
		`SET enable_external_access=true`,
		`SET memory_limit='10GB'`,
		`ATTACH '/tmp/other.duckdb' AS o`,
		`INSTALL httpfs`,
		`COPY ev TO '/tmp/x.csv'`,
	} {
		if _, err := h.DB.Exec(q); err == nil {
			t.Errorf("%s: want error, got none", q)
		}
	}
	var tz, mem string
	var threads int
	if err := h.DB.QueryRow(`SELECT current_setting('TimeZone'), current_setting('memory_limit'), current_setting('threads')`).Scan(&tz, &mem, &threads); err != nil {
		t.Fatal(err)
	}
	if tz != "UTC" || threads != 1 || !strings.Contains(mem, "MiB") {
		t.Fatalf("settings: TimeZone=%q memory_limit=%q threads=%d", tz, mem, threads)
	}
	h.Release()
	if err := p.Evict("t1", time.Second); err != nil {
		t.Fatal(err)
	}
	if n := p.OpenCount(); n != 0 {
		t.Fatalf("open after evict = %d", n)
	}
	h, err = p.Acquire(context.Background(), "t1")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	var a int64
	if err := h.DB.QueryRow(`SELECT a FROM ev`).Scan(&a); err != nil || a != 42 {
		t.Fatalf("after reopen: a=%d err=%v", a, err)
	}
}

func TestLRUKeepsOpenBounded(t *testing.T) {
	p := newPool(t, 3)
	held, err := p.Acquire(context.Background(), "held")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		h, err := p.Acquire(context.Background(), fmt.Sprintf("t%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.DB.Exec(`CREATE TABLE x AS SELECT 1 AS v`); err != nil {
			t.Fatal(err)
		}
		h.Release()
		if n := p.OpenCount(); n > 3 {
			t.Fatalf("open = %d after %d tenants, want <= 3", n, i+1)
		}
	}
	// The held database was never closed under its user.
	if _, err := held.DB.Exec(`SELECT 1`); err != nil {
		t.Fatalf("held handle broken: %v", err)
	}
	held.Release()
}

func TestScratchDirIsTheOnlyWritablePlace(t *testing.T) {
	p := newPool(t, 4)
	h, err := p.Acquire(context.Background(), "t1")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	dir := p.ScratchDir("t1")
	if _, err := h.DB.Exec(`COPY (SELECT 1 AS v) TO '` + dir + `/x.parquet' (FORMAT parquet)`); err != nil {
		t.Fatalf("copy into scratch: %v", err)
	}
	for _, q := range []string{
		`COPY (SELECT 1 AS v) TO '` + dir + `/../escape.parquet' (FORMAT parquet)`,
		`SELECT * FROM read_text('` + dir + `/../../../etc/hostname')`,
		`SET allowed_directories=['/']`,
	} {
		if _, err := h.DB.Exec(q); err == nil {
			t.Errorf("%s: want error", q)
		}
	}
}

// With every slot held, Acquire of another tenant gives up when its
// context ends, and gets a slot once one is released.
func TestAcquireWaitsUnderContext(t *testing.T) {
	p := newPool(t, 1)
	held, err := p.Acquire(context.Background(), "t1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if h, err := p.Acquire(ctx, "t2"); !errors.Is(err, context.Canceled) {
		if h != nil {
			h.Release()
		}
		t.Fatalf("Acquire with a full pool and an ended context: %v; want context.Canceled", err)
	}
	got := make(chan error, 1)
	go func() {
		h, err := p.Acquire(context.Background(), "t2")
		if err == nil {
			h.Release()
		}
		got <- err
	}()
	held.Release()
	if err := <-got; err != nil {
		t.Fatalf("Acquire after a release: %v", err)
	}
}

// Evict waits for the last handle to be released, and gives up at its
// deadline while one is held.
func TestEvictWaitsForRelease(t *testing.T) {
	p := newPool(t, 4)
	h, err := p.Acquire(context.Background(), "t1")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Evict("t1", 0); err == nil {
		t.Fatal("Evict of a held database succeeded")
	}
	evicted := make(chan error, 1)
	go func() { evicted <- p.Evict("t1", time.Minute) }()
	h.Release()
	if err := <-evicted; err != nil {
		t.Fatalf("Evict after release: %v", err)
	}
	if n := p.OpenCount(); n != 0 {
		t.Fatalf("open after evict = %d", n)
	}
}

func TestTablesAndColumns(t *testing.T) {
	p := newPool(t, 4)
	ctx := context.Background()
	h, err := p.Acquire(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	if ts, err := Tables(ctx, h.DB); err != nil || len(ts) != 0 {
		t.Fatalf("Tables of an empty database = %v, %v", ts, err)
	}
	if _, err := h.DB.Exec(`CREATE TABLE "b ""q""" (x BIGINT, y JSON);
		INSERT INTO "b ""q""" SELECT range, '{}' FROM range(3);
		CREATE TABLE a (t TIMESTAMPTZ);
		CREATE TABLE _duckgate_applied (tbl VARCHAR, seq UBIGINT);
		INSERT INTO _duckgate_applied VALUES ('a', 1);
		CREATE TEMPORARY TABLE tmp (x INT)`); err != nil {
		t.Fatal(err)
	}
	tx, err := h.DB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	ts, err := Tables(ctx, tx)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(ts); got != `[{a 0} {b "q" 3}]` {
		t.Fatalf("Tables = %s", got)
	}
	cols, err := Columns(ctx, tx, `b "q"`)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(cols); got != `[{x BIGINT} {y JSON}]` {
		t.Fatalf("Columns = %s", got)
	}
	if cols, err := Columns(ctx, tx, "nope"); err != nil || len(cols) != 0 {
		t.Fatalf("Columns of an unknown table = %v, %v", cols, err)
	}
}

// A database smaller than SingleThreadBelow opens with one DuckDB thread;
// once its file is larger, the next open gives it its limits' threads.
func TestSingleThreadBelow(t *testing.T) {
	p, err := New(Config{Dir: t.TempDir(), SingleThreadBelow: 2 << 20, LimitsOf: func(string) Limits {
		return Limits{MemoryLimit: "256MB", Threads: 2}
	}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	threads := func() int {
		t.Helper()
		h, err := p.Acquire(context.Background(), "t1")
		if err != nil {
			t.Fatal(err)
		}
		defer h.Release()
		var n int
		if err := h.DB.QueryRow(`SELECT current_setting('threads')`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := threads(); n != 1 {
		t.Fatalf("new database: %d threads", n)
	}
	h, err := p.Acquire(context.Background(), "t1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.DB.Exec(`CREATE TABLE big AS SELECT i, md5(i::VARCHAR) AS s FROM range(300000) t(i); CHECKPOINT`); err != nil {
		t.Fatal(err)
	}
	h.Release()
	if n := threads(); n != 1 {
		t.Fatalf("grown while open: %d threads (the setting is fixed until it reopens)", n)
	}
	if err := p.Evict("t1", time.Second); err != nil {
		t.Fatal(err)
	}
	if n := threads(); n != 2 {
		t.Fatalf("reopened at more than 2 MiB: %d threads", n)
	}
}
