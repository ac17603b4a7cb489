package batcher

import (
	"math"
	"sync"
	"time"
)

// The adaptive flush policy. A table's buffer is flushed when it reaches
// FlushRows or FlushBytes, or when its oldest row is FlushInterval old, as
// before; and also, sooner, when it is small (under a tenth of FlushRows
// and of FlushBytes), its rows arrive slowly (under a tenth of FlushRows per
// second, over its recent flushes) and its oldest row is MinFlushInterval
// old while the flushes are not busy. A tenant sending a few events a second then sees
// them in queries about MinFlushInterval after their ack instead of up to
// FlushInterval; a table filling fast is not small at MinFlushInterval and
// still flushes in large batches, so batched throughput keeps its batch
// size. As the flush slots get busy (flushLoad), the early delay grows
// towards FlushInterval, so that many small tenants cannot turn the
// per-flush cost into the bottleneck.

// flushLoad measures how busy the flush slots are: the share of slot time
// spent flushing over the last window, smoothed.
type flushLoad struct {
	slots int

	mu       sync.Mutex
	busy     time.Duration // flush time finished in the current window; guarded by mu
	running  int           // flushes running now; guarded by mu
	windowAt time.Time     // start of the current window; guarded by mu
	smoothed float64       // utilization in [0, 1]; guarded by mu
}

// loadWindow is how often the utilization is folded into the average.
const loadWindow = 250 * time.Millisecond

func newFlushLoad(slots int) *flushLoad {
	return &flushLoad{slots: max(slots, 1), windowAt: time.Now()}
}

// begin notes a flush starting; end(start) when it is done.
func (l *flushLoad) begin() time.Time {
	l.mu.Lock()
	l.running++
	l.mu.Unlock()
	return time.Now()
}

func (l *flushLoad) end(start time.Time) {
	now := time.Now()
	l.mu.Lock()
	l.running--
	// Only the part inside the current window counts in it.
	l.busy += now.Sub(maxTime(start, l.windowAt))
	l.rollLocked(now)
	l.mu.Unlock()
}

// utilization is the smoothed share of flush slot time in use, in [0, 1].
func (l *flushLoad) utilization() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rollLocked(time.Now())
	return l.smoothed
}

// rollLocked closes the current window if it is over, folding its
// utilization into the average (flushes still running count as busy).
func (l *flushLoad) rollLocked(now time.Time) {
	d := now.Sub(l.windowAt)
	if d < loadWindow {
		return
	}
	busy := l.busy + time.Duration(l.running)*d
	u := min(float64(busy)/float64(d)/float64(l.slots), 1)
	// Windows with nothing at all (an idle server) decay the average fast.
	const alpha = 0.5
	l.smoothed = alpha*u + (1-alpha)*l.smoothed
	l.busy = 0
	l.windowAt = now
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Utilization bounds of the policy: below loadLow small buffers flush after
// MinFlushInterval, above loadHigh after the full interval, in between the
// delay grows linearly.
const (
	loadLow  = 0.4
	loadHigh = 0.8
)

// dueAfterLocked is how old buf's oldest row may grow before buf is flushed;
// interval is the writer's full interval (FlushInterval, or the cold one).
// The caller holds w.mu.
func (w *writer) dueAfterLocked(buf *tableBuf, interval time.Duration, util float64) time.Duration {
	cfg := &w.b.cfg
	early := cfg.MinFlushInterval
	if early <= 0 || early >= interval || buf.rows >= cfg.FlushRows/10 || buf.bytes >= cfg.FlushBytes/10 ||
		buf.flow.rate >= float64(cfg.FlushRows/10) {
		return interval
	}
	switch {
	case util <= loadLow:
		return early
	case util >= loadHigh:
		return interval
	}
	return early + (interval-early).Round(time.Millisecond)*time.Duration(math.Round((util-loadLow)/(loadHigh-loadLow)*1000))/1000
}

// flow estimates how fast rows arrive in one table's buffer: the rows of
// each flush over the time since the previous one, smoothed. A table
// written to in bulk (one tenant's batched load) is never "small" for the
// early flush even when one of its flushes happens to be: with one writer
// per tenant, its flushes hold one slot and never make the slots look busy.
type flow struct {
	last time.Time // the previous flush; zero before the first
	rate float64   // rows per second
}

// note accounts a flush of items at now.
func (f *flow) note(items []*pending, now time.Time) {
	n := 0
	for _, p := range items {
		n += p.rows.Len()
	}
	if !f.last.IsZero() {
		if d := now.Sub(f.last).Seconds(); d > 0 {
			f.rate = 0.5*float64(n)/d + 0.5*f.rate
		}
	}
	f.last = now
}
