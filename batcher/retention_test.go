package batcher

import (
	"context"
	"errors"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"duckgate/tenantdb"
)

// testClock is a clock tests move by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// newRetentionBatcher is a test batcher with a test clock, the plan's
// retention plan and sweeps of batch rows.
func newRetentionBatcher(t *testing.T, dir string, clock *testClock, plan time.Duration, batch int) *testBatcher {
	t.Helper()
	pool, err := tenantdb.New(tenantdb.Config{Dir: dir}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{FlushInterval: time.Hour, Now: clock.Now, SweepBatchRows: batch,
		PlanRetention: func(string) time.Duration { return plan }}, pool, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	tb := &testBatcher{t: t, pool: pool, b: b}
	t.Cleanup(tb.close)
	return tb
}

// timed returns one row per time, {col: time, "n": i}.
func timed(col string, times ...time.Time) *Rows {
	b := NewBuilder()
	for i, at := range times {
		b.AddString([]byte(col), []byte(at.UTC().Format(time.RFC3339Nano)))
		b.AddNumber([]byte("n"), []byte{byte('0' + i)})
		b.EndRow()
	}
	return b.Rows()
}

func (tb *testBatcher) sweep(tenant string) SweepStats {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := tb.b.Sweep(ctx, tenant)
	if err != nil {
		tb.t.Fatalf("sweep %s: %v", tenant, err)
	}
	return st
}

// Rows older than the retention go within one sweep once their time has
// passed; newer rows, rows of tables without a time column and rows of
// tables without a retention stay.
func TestRetentionSweep(t *testing.T) {
	day := 24 * time.Hour
	t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	clock := &testClock{now: t0}
	dir := t.TempDir()
	tb := newRetentionBatcher(t, dir, clock, 7*day, 0)
	ctx := context.Background()

	tb.insert("t1", "events", timed("at", t0.Add(-10*day), t0.Add(-5*day), t0.Add(-day), t0.Add(time.Hour)), false)
	tb.insert("t1", "tracks", timed("received_at", t0.Add(-8*day), t0.Add(-day)), false)
	tb.insert("t1", "plain", numbers("x", "1", "2"), false)
	tb.flush("t1")

	tr, err := tb.b.SetRetention(ctx, "t1", "EVENTS", RetentionSetting{Retention: 3 * day, TimeColumn: "AT"})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Table != "events" || tr.Effective != 3*day || tr.Plan != 7*day || tr.TimeColumn != "at" || tr.TimeColumnSource != "setting" {
		t.Fatalf("SetRetention = %+v", tr)
	}
	if tr, err := tb.b.Retention(ctx, "t1", "tracks"); err != nil || tr.Effective != 7*day || tr.TimeColumn != "received_at" || tr.TimeColumnSource != "default" {
		t.Fatalf("Retention(tracks) = %+v, %v", tr, err)
	}
	if tr, err := tb.b.Retention(ctx, "t1", "plain"); err != nil || tr.TimeColumn != "" || tr.TimeColumnSource != "none" {
		t.Fatalf("Retention(plain) = %+v, %v", tr, err)
	}

	// events keeps 3 days: -10d and -5d go; tracks the plan's 7: -8d goes.
	st := tb.sweep("t1")
	if st.Deleted != 3 || st.Tables != 2 || !st.Checkpointed {
		t.Fatalf("first sweep: %+v", st)
	}
	// Nothing more until the clock moves.
	if st := tb.sweep("t1"); st.Deleted != 0 {
		t.Fatalf("second sweep deleted %d", st.Deleted)
	}
	// Two days and a minute later the -1d row is older than 3 days.
	clock.advance(2*day + time.Minute)
	if st := tb.sweep("t1"); st.Deleted != 1 {
		t.Fatalf("sweep after two days deleted %d rows, want 1", st.Deleted)
	}

	db := tb.reopen("t1")
	if got := column(t, db, "SELECT n FROM events ORDER BY n"); got != "3" {
		t.Fatalf("events left: %q, want the future row only", got)
	}
	if got := column(t, db, "SELECT n FROM tracks ORDER BY n"); got != "1" {
		t.Fatalf("tracks left: %q", got)
	}
	if got := column(t, db, "SELECT x FROM plain ORDER BY x"); got != "1 2" {
		t.Fatalf("plain left: %q", got)
	}
	if got := column(t, db, "SELECT tbl || ' ' || retention_ms || ' ' || time_column FROM _duckgate_retention"); got != "events 259200000 at" {
		t.Fatalf("stored setting: %q", got)
	}
	db.Close()

	// The setting survives a restart; clearing it falls back to the plan.
	tb2 := newRetentionBatcher(t, dir, clock, 7*day, 0)
	if tr, err := tb2.b.Retention(ctx, "t1", "events"); err != nil || tr.Effective != 3*day || tr.TimeColumn != "at" {
		t.Fatalf("after restart: %+v, %v", tr, err)
	}
	if tr, err := tb2.b.SetRetention(ctx, "t1", "events", RetentionSetting{}); err != nil || tr.Effective != 7*day || tr.TimeColumn != "" {
		t.Fatalf("cleared: %+v, %v", tr, err)
	}
	// A table setting longer than the plan is capped by it.
	if tr, err := tb2.b.SetRetention(ctx, "t1", "tracks", RetentionSetting{Retention: 30 * day}); err != nil || tr.Effective != 7*day {
		t.Fatalf("longer than the plan: %+v, %v", tr, err)
	}
}

func TestRetentionSettingErrors(t *testing.T) {
	tb := newRetentionBatcher(t, t.TempDir(), &testClock{now: time.Now()}, 0, 0)
	ctx := context.Background()
	tb.insert("t1", "events", timed("at", time.Now()), false)
	b := NewBuilder()
	b.AddString([]byte("name"), []byte("x"))
	b.EndRow()
	tb.insert("t1", "events", b.Rows(), false)
	f := func(table string, s RetentionSetting, want error) {
		t.Helper()
		if _, err := tb.b.SetRetention(ctx, "t1", table, s); !errors.Is(err, want) {
			t.Fatalf("SetRetention(%s, %+v) = %v, want %v", table, s, err, want)
		}
	}
	f("nope", RetentionSetting{Retention: time.Hour}, ErrNoTable)
	f("events", RetentionSetting{Retention: time.Hour, TimeColumn: "missing"}, ErrBadRetention)
	f("events", RetentionSetting{Retention: time.Hour, TimeColumn: "name"}, ErrBadRetention)
	f("_duckgate_retention", RetentionSetting{Retention: time.Hour}, ErrNoTable)
	if _, err := tb.b.Retention(ctx, "t1", "nope"); !errors.Is(err, ErrNoTable) {
		t.Fatalf("Retention(nope) = %v", err)
	}
	// No retention anywhere: a sweep deletes nothing.
	if st := tb.sweep("t1"); st.Deleted != 0 || st.Tables != 0 {
		t.Fatalf("sweep without retention: %+v", st)
	}
}

// A sweep of a large table runs in bounded steps between flushes: an
// insert waiting for its commit lands while the sweep still has most of
// its work ahead. Afterwards the rows left are the new ones, and the file
// is smaller.
func TestRetentionSweepLargeTable(t *testing.T) {
	t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	clock := &testClock{now: t0}
	const total, batch = 500_000, 2_000
	tb := newRetentionBatcher(t, t.TempDir(), clock, time.Hour, batch)
	ctx := context.Background()

	// A large table of old rows, written directly before the writer knows
	// the tenant: received_at a second apart, all older than an hour.
	h, err := tb.pool.Acquire(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"CREATE TABLE events (received_at TIMESTAMPTZ, n BIGINT, payload VARCHAR)",
		"INSERT INTO events SELECT TIMESTAMPTZ '2026-05-01 00:00:00+00' + to_seconds(i), i, repeat('x', 40) || i FROM range(" +
			itoa(total) + ") t(i)",
		"CHECKPOINT",
	} {
		if _, err := h.DB.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	h.Release()
	before, err := tb.pool.Size("t1")
	if err != nil {
		t.Fatal(err)
	}

	// The sweep's second step waits until the insert is submitted; the
	// hook then notes how many steps had run when the insert was
	// committed: one more at most, since the writer flushes between steps.
	var ticket *Ticket
	started, submitted := make(chan struct{}), make(chan struct{})
	var committedAt atomic.Int64
	committedAt.Store(-1)
	sweepStepHook = func(st SweepStats) {
		if st.Batches == 1 {
			close(started)
			<-submitted
		}
		if ticket != nil && committedAt.Load() < 0 {
			select {
			case <-ticket.done:
				committedAt.Store(int64(st.Batches))
			default:
			}
		}
	}
	var release sync.Once
	t.Cleanup(func() {
		release.Do(func() { close(submitted) }) // never leave the writer blocked
		sweepStepHook = nil
	})

	type result struct {
		st  SweepStats
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := tb.b.Sweep(ctx, "t1")
		done <- result{st, err}
	}()
	count := func() int64 {
		h, err := tb.pool.Acquire(ctx, "t1")
		if err != nil {
			t.Fatal(err)
		}
		defer h.Release()
		var n int64
		if err := h.DB.QueryRowContext(ctx, "SELECT count(*) FROM events").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	select {
	case <-started:
	case r := <-done:
		t.Fatalf("the sweep ended at once: %+v, %v", r.st, r.err)
	}
	ticket = tb.insert("t1", "events", timed("received_at", t0), true)
	release.Do(func() { close(submitted) })
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := ticket.Wait(wctx); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if at := committedAt.Load(); at < 1 || at > 2 {
		t.Fatalf("the insert was committed after %d of the sweep's %d steps; want within one step of its arrival", at, r.st.Batches)
	}
	if r.st.Deleted != total || r.st.Batches < total/batch || !r.st.Checkpointed || r.st.Compacted != 1 {
		t.Fatalf("sweep: %+v", r.st)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d rows left, want the new one", n)
	}
	after, err := tb.pool.Size("t1")
	if err != nil {
		t.Fatal(err)
	}
	if after >= before/2 {
		t.Fatalf("database %d bytes before the sweep, %d after", before, after)
	}
	t.Logf("database %d bytes before the sweep, %d after; %d batches", before, after, r.st.Batches)
	// The rewritten table takes inserts, new columns too.
	b := NewBuilder()
	b.AddString([]byte("received_at"), []byte(t0.Format(time.RFC3339)))
	b.AddNumber([]byte("n"), []byte("7"))
	b.AddString([]byte("extra"), []byte("x"))
	b.EndRow()
	if err := tb.insert("t1", "events", b.Rows(), true).Wait(wctx); err != nil {
		t.Fatal(err)
	}
	db := tb.reopen("t1")
	if got := column(t, db, "SELECT n || ' ' || coalesce(extra, '-') FROM events ORDER BY n"); got != "0 - 7 x" {
		t.Fatalf("after reopening: %q", got)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// The sweeper visits, every SweepInterval, the tenants with a writer and
// those Config.Tenants lists that have a database but no writer yet.
func TestRetentionSweeper(t *testing.T) {
	t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	clock := &testClock{now: t0}
	pool, err := tenantdb.New(tenantdb.Config{Dir: t.TempDir()}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	// t2 has a database but no writer: nothing was inserted since start.
	h, err := pool.Acquire(context.Background(), "t2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.DB.Exec("CREATE TABLE hooks (_received_at TIMESTAMPTZ, n BIGINT); INSERT INTO hooks VALUES ('2026-05-01 00:00:00+00', 1), ('2026-06-01 11:59:00+00', 2)"); err != nil {
		t.Fatal(err)
	}
	h.Release()
	b, err := New(Config{FlushInterval: time.Hour, Now: clock.Now, SweepInterval: 20 * time.Millisecond,
		PlanRetention: func(string) time.Duration { return time.Hour },
		Tenants:       func() []string { return []string{"t1", "t2", "t3"} }}, pool, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	tb := &testBatcher{t: t, pool: pool, b: b}
	t.Cleanup(tb.close)
	tb.insert("t1", "tracks", timed("received_at", t0.Add(-2*time.Hour), t0), false)
	tb.flush("t1")
	count := func(tenant, table string) int64 {
		h, err := pool.Acquire(context.Background(), tenant)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Release()
		var n int64
		if err := h.DB.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	eventually(t, time.Minute, "sweeps leaving 1 row in t1.tracks and in t2.hooks", func() bool {
		return count("t1", "tracks") == 1 && count("t2", "hooks") == 1 && b.Stats().RetentionDeleted.Load() >= 2
	})
	if pool.Exists("t3") {
		t.Fatal("the sweeper created a database for a tenant without one")
	}
}

// TestRetentionSweep10M measures a sweep of 10,000,000 rows, 2,678,400 of
// them expired, with the default batch size: the longest step is how long
// a due flush of the tenant may wait. Slow: DUCKGATE_BENCH=1.
func TestRetentionSweep10M(t *testing.T) {
	if os.Getenv("DUCKGATE_BENCH") == "" {
		t.Skip("set DUCKGATE_BENCH=1")
	}
	clock := &testClock{now: time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)} // 31 days after the 2,678,400th second
	tb := newRetentionBatcher(t, t.TempDir(), clock, 0, 0)
	ctx := context.Background()
	h, err := tb.pool.Acquire(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"CREATE TABLE events (received_at TIMESTAMPTZ, n BIGINT, v VARCHAR)",
		"INSERT INTO events SELECT TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_seconds(i), i, 'x' || i FROM range(10000000) t(i)",
		"CHECKPOINT",
	} {
		if _, err := h.DB.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	h.Release()
	before, _ := tb.pool.Size("t1")
	if _, err := tb.b.SetRetention(ctx, "t1", "events", RetentionSetting{Retention: 31 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	var last time.Time
	var longest time.Duration
	sweepStepHook = func(SweepStats) {
		if !last.IsZero() {
			longest = max(longest, time.Since(last))
		}
		last = time.Now()
	}
	t.Cleanup(func() { sweepStepHook = nil })
	start := time.Now()
	st := tb.sweep("t1")
	took := time.Since(start)
	longest = max(longest, time.Since(last)) // the last step
	after, _ := tb.pool.Size("t1")
	t.Logf("deleted %d rows in %d batches, %v in all, longest step %v; compacted %d; file %d -> %d bytes",
		st.Deleted, st.Batches, took, longest, st.Compacted, before, after)
	if st.Deleted != 31*24*3600 {
		t.Fatalf("deleted %d", st.Deleted)
	}
}

// A sweep that frees too little to rewrite anything leaves the file's
// length alone, but the pool's Used, which the storage quota measures,
// counts the deleted rows as gone.
func TestRetentionQuotaCountsWhatIsLeft(t *testing.T) {
	clock := &testClock{now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	tb := newRetentionBatcher(t, t.TempDir(), clock, 700_000*time.Second, 0)
	ctx := context.Background()
	h, err := tb.pool.Acquire(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	// 1,000,000 rows a second apart up to 2026-06-01: the oldest 300,000
	// are older than 700,000 seconds; the first two row groups of 122,880
	// rows go whole, freeing their blocks (under half of the file).
	for _, q := range []string{
		"CREATE TABLE events (received_at TIMESTAMPTZ, s VARCHAR)",
		"INSERT INTO events SELECT TIMESTAMPTZ '2026-05-20 10:13:20+00' + to_seconds(i), md5(i::VARCHAR) FROM range(1000000) t(i)",
		"CHECKPOINT",
	} {
		if _, err := h.DB.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	var total, free int64
	if err := h.DB.QueryRow("SELECT total_blocks, free_blocks FROM pragma_database_size()").Scan(&total, &free); err != nil {
		t.Fatal(err)
	}
	t.Logf("before: %d blocks, %d free", total, free)
	h.Release()
	st := tb.sweep("t1")
	if st.Deleted != 300_000 || st.Compacted != 0 {
		t.Fatalf("sweep: %+v; want some rows deleted, under half, no rewrite", st)
	}
	size, err := tb.pool.Size("t1")
	if err != nil {
		t.Fatal(err)
	}
	used, err := tb.pool.Used("t1")
	if err != nil {
		t.Fatal(err)
	}
	if used >= size || used <= 0 {
		t.Fatalf("after deleting %d of 1,000,000 rows: Used %d, Size %d", st.Deleted, used, size)
	}
	t.Logf("deleted %d of 1,000,000 rows: file %d bytes, used %d", st.Deleted, size, used)
}
