package batcher

import (
	"math"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// The adaptive flush policy. A table's buffer is flushed when it reaches
// FlushRows or FlushBytes, or when its oldest row is FlushInterval old, as
// before; and also, sooner, when it is small (under a tenth of FlushRows
// and of FlushBytes), its rows arrive slowly (under a tenth of FlushRows per
// second, over its recent flushes) and its oldest row is MinFlushInterval
// old while the process has CPU to spare. A tenant sending a few events a
// second then sees them in queries about MinFlushInterval after their ack
// instead of up to FlushInterval; a table filling fast is not small at
// MinFlushInterval and still flushes in large batches, so batched
// throughput keeps its batch size. As the process's CPU gets busy
// (flushLoad.pressure), the early delay grows towards FlushInterval, so
// that many small tenants cannot turn the per-flush cost (about 1 ms of
// CPU: BenchmarkSmallFlush) into the bottleneck.
//
// The signal is the process's CPU time, not how busy the flush slots are:
// a small flush spends part of its time waiting (its commit's fsync, a
// core another process holds), and slot time counted those waits as load,
// so that on a shared machine the early delay went back to FlushInterval
// with the process using a fifth of its cores (100 tenants × 10 events/s:
// 0.4 cores, visibility p50 about 450 ms, p99 about 1 s).

// flushLoad measures how busy the flush slots are (the share of slot time
// spent flushing over the last window, smoothed: utilization) and how busy
// the process's CPUs are (pressure), which the policy follows.
type flushLoad struct {
	slots int
	cpus  int

	mu       sync.Mutex
	busy     time.Duration // flush time finished in the current window; guarded by mu
	running  int           // flushes running now; guarded by mu
	windowAt time.Time     // start of the current window; guarded by mu
	smoothed float64       // utilization in [0, 1]; guarded by mu
	cpuAt    time.Duration // process CPU time at windowAt; guarded by mu
	cpu      float64       // smoothed share of the CPUs the process used, in [0, 1]; guarded by mu
}

// loadWindow is how often the utilization is folded into the average.
const loadWindow = 250 * time.Millisecond

func newFlushLoad(slots int) *flushLoad {
	return &flushLoad{slots: max(slots, 1), cpus: runtime.NumCPU(), windowAt: time.Now(), cpuAt: processCPU()}
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

// pressure is the smoothed share of the machine's CPUs the process used
// over the last windows, in [0, 1].
func (l *flushLoad) pressure() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rollLocked(time.Now())
	return l.cpu
}

// processCPU is the CPU time (user and system) the process used so far, 0
// if unknown.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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
	cpu := processCPU()
	c := min(float64(cpu-l.cpuAt)/float64(d)/float64(l.cpus), 1)
	l.cpu = alpha*max(c, 0) + (1-alpha)*l.cpu
	l.cpuAt = cpu
	l.busy = 0
	l.windowAt = now
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// CPU pressure bounds of the policy: below loadLow small buffers flush
// after MinFlushInterval, above loadHigh after the full interval, in
// between the delay grows linearly. With 0.5 and 0.9, 100 tenants × 10
// events/s (the process at about half of 2 cores, the bench's polling
// included) sat on the lower bound and its visibility p99 was 318–599 ms;
// with 0.7 and 0.95, 129 and 218 ms. The rate rule of dueAfterLocked keeps
// a hundred busy tenants from flushing ten times a second either way.
const (
	loadLow  = 0.7
	loadHigh = 0.95
)

// dueAfterLocked is how old buf's oldest row may grow before buf is flushed;
// interval is the writer's full interval (FlushInterval, or the cold one);
// load is flushLoad.pressure. The caller holds w.mu.
//
// A small buffer waits MinFlushInterval, longer when either of two things
// says its flushes cost too much for what they carry: the process's CPU
// pressure (from loadLow to loadHigh the delay grows linearly to interval),
// and the table's own rate: above earlyRate rows/s the delay grows in
// proportion (at 5 × earlyRate, 5 × MinFlushInterval), so that a hundred
// tenants each writing a few hundred rows a second flush a few times a
// second, not ten, while one writing a few events a second sees them after
// MinFlushInterval.
func (w *writer) dueAfterLocked(buf *tableBuf, interval time.Duration, load float64) time.Duration {
	if !w.smallLocked(buf, interval) {
		return interval
	}
	early := w.b.cfg.MinFlushInterval
	d := early
	if buf.flow.rate > earlyRate {
		d = time.Duration(float64(early) * buf.flow.rate / earlyRate)
	}
	switch {
	case load >= loadHigh:
		d = interval
	case load > loadLow:
		d = max(d, early+(interval-early).Round(time.Millisecond)*time.Duration(math.Round((load-loadLow)/(loadHigh-loadLow)*1000))/1000)
	}
	return min(d, interval)
}

// earlyRate is the arrival rate (rows per second) up to which a small
// buffer is flushed MinFlushInterval after its first row; see
// dueAfterLocked.
const earlyRate = 100

// smallLocked reports whether buf may be flushed before interval, load
// permitting: it is small and fills slowly. The caller holds w.mu.
func (w *writer) smallLocked(buf *tableBuf, interval time.Duration) bool {
	cfg := &w.b.cfg
	early := cfg.MinFlushInterval
	return early > 0 && early < interval && buf.rows < cfg.FlushRows/10 && buf.bytes < cfg.FlushBytes/10 &&
		buf.flow.rate < float64(cfg.FlushRows/10)
}

// loadRecheck is how often a writer whose small buffer waits longer than
// MinFlushInterval because of the load looks again: the load may have
// fallen since the delay was chosen (after a burst of database opens, for
// one), and the buffer should not then wait out the full interval.
const loadRecheck = 100 * time.Millisecond

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
