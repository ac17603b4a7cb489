package batcher

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"

	"duckgate/tenantdb"
)

// A small buffer is flushed after MinFlushInterval, long before
// FlushInterval, and the tenant's data version moves with the commit.
func TestSmallBufferFlushesEarly(t *testing.T) {
	pool, err := tenantdb.New(tenantdb.Config{Dir: t.TempDir()}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	b, err := New(Config{FlushInterval: time.Hour, MinFlushInterval: 20 * time.Millisecond}, pool, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	v0 := b.DataVersion("t1")
	if _, err := b.Submit(Request{Tenant: "t1", Table: "ev", Rows: numbers("n", "1", "2")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "a small buffer flushed long before FlushInterval (1 h)", func() bool {
		return b.Stats().RowsCommitted.Load() >= 2
	})
	if v := b.DataVersion("t1"); v == v0 {
		t.Fatalf("data version %d did not change with the commit", v)
	}
	if v := b.DataVersion("t2"); v != 0 {
		t.Fatalf("an untouched tenant has version %d", v)
	}
}

// dueAfterLocked: small buffers flush early while the CPUs are not busy,
// later as they fill, and large buffers wait for the full interval.
func TestDueAfter(t *testing.T) {
	b := &Batcher{cfg: Config{FlushRows: 1000, FlushBytes: 1 << 20, MinFlushInterval: 100 * time.Millisecond}}
	w := &writer{b: b}
	small := &tableBuf{rows: 5, bytes: 500}
	large := &tableBuf{rows: 100, bytes: 500}
	const interval = time.Second
	const quarter = loadLow + (loadHigh-loadLow)/4
	for _, c := range []struct {
		buf  *tableBuf
		util float64
		want time.Duration
	}{
		{small, 0, 100 * time.Millisecond},
		{small, loadLow, 100 * time.Millisecond},
		{small, quarter, 325 * time.Millisecond}, // a quarter of the way from loadLow to loadHigh
		{small, loadHigh, interval},
		{small, 1, interval},
		{large, 0, interval},
		{&tableBuf{rows: 5, bytes: 200 << 10}, 0, interval},
		{&tableBuf{rows: 5, bytes: 500, flow: flow{rate: 100}}, 0, interval}, // 100 rows/s ≥ FlushRows/10 per second
		{&tableBuf{rows: 5, bytes: 500, flow: flow{rate: 99}}, 0, 100 * time.Millisecond},
	} {
		if got := w.dueAfterLocked(c.buf, interval, c.util); got != c.want {
			t.Errorf("rows %d bytes %d util %.2f: %s, want %s", c.buf.rows, c.buf.bytes, c.util, got, c.want)
		}
	}
	// With FlushRows large enough that the rate rule above does not apply,
	// the delay grows with the rate beyond earlyRate.
	b.cfg.FlushRows = 100_000
	for _, c := range []struct {
		buf  *tableBuf
		util float64
		want time.Duration
	}{
		{&tableBuf{rows: 5, bytes: 500, flow: flow{rate: earlyRate}}, 0, 100 * time.Millisecond},
		{&tableBuf{rows: 5, bytes: 500, flow: flow{rate: 3 * earlyRate}}, 0, 300 * time.Millisecond},
		{&tableBuf{rows: 5, bytes: 500, flow: flow{rate: 3 * earlyRate}}, quarter, 325 * time.Millisecond}, // the load's delay is longer
		{&tableBuf{rows: 5, bytes: 500, flow: flow{rate: 50 * earlyRate}}, 0, interval},
	} {
		if got := w.dueAfterLocked(c.buf, interval, c.util); got != c.want {
			t.Errorf("rows %d bytes %d util %.2f: %s, want %s", c.buf.rows, c.buf.bytes, c.util, got, c.want)
		}
	}
	b.cfg.MinFlushInterval = -1
	if got := w.dueAfterLocked(small, interval, 0); got != interval {
		t.Errorf("early flushes off: %s", got)
	}
}

// flow follows the rows per second of a table's flushes.
func TestFlow(t *testing.T) {
	var f flow
	t0 := time.Now()
	f.note([]*pending{{rows: numbers("n", "1", "2")}}, t0)
	if f.rate != 0 {
		t.Fatalf("rate after the first flush: %f", f.rate)
	}
	f.note([]*pending{{rows: numbers("n", "1", "2", "3", "4")}}, t0.Add(time.Second))
	if f.rate != 2 { // half of 4 rows in 1 s
		t.Fatalf("rate %f, want 2", f.rate)
	}
}

// flushLoad reports the share of slot time in use.
func TestFlushLoad(t *testing.T) {
	l := newFlushLoad(2)
	l.windowAt = time.Now().Add(-loadWindow) // the window is over
	l.busy = loadWindow                      // one slot busy all along
	if u := l.utilization(); u < 0.2 || u > 0.3 {
		t.Fatalf("one of two slots busy: smoothed %.2f, want 0.25 (half of 0.5)", u)
	}
	l.windowAt = time.Now().Add(-loadWindow)
	l.running = 2 // both busy now
	if u := l.utilization(); u < 0.6 || u > 0.65 {
		t.Fatalf("both busy: smoothed %.2f, want 0.625", u)
	}
}

// pressure is the process's share of the CPUs, smoothed.
func TestFlushLoadPressure(t *testing.T) {
	l := newFlushLoad(2)
	l.windowAt = time.Now().Add(-loadWindow)
	// As if the process had used every CPU for twice the window: capped at 1.
	l.cpuAt = processCPU() - 2*loadWindow*time.Duration(l.cpus)
	if p := l.pressure(); p != 0.5 {
		t.Fatalf("all CPUs busy for one window: smoothed %.3f, want 0.5 (half of 1)", p)
	}
	if processCPU() <= 0 {
		t.Fatal("the process's CPU time is unknown")
	}
}
