package query

import (
	"context"
	"sync"

	"github.com/VictoriaMetrics/metrics"
)

// fairSlots is the engine's limit on the queries DuckDB executes at once
// (Config.MaxExecuting), shared fairly between tenants:
//
//   - A tenant holds at most perTenant slots (Config.MaxExecutingPerTenant,
//     by default half of them), even when nobody else waits. DuckDB cannot
//     preempt a running query, so a slot given away is gone until the query
//     ends (up to its timeout); a hard cap is what keeps slots free for the
//     next tenant, whose small query then starts at once instead of waiting
//     for a long query of another tenant to end.
//   - When a slot frees, it goes to the waiting tenant that holds the fewest
//     slots; among equals, to the one served longest ago (round-robin), and
//     within a tenant to its oldest waiter (FIFO). A tenant with a hundred
//     queued queries thus delays another tenant's query by at most one turn.
//
// Waiting ends with the caller's context (its timeout), as before.
type fairSlots struct {
	max, perTenant int
	waits          *metrics.Counter // acquisitions that had to queue

	mu      sync.Mutex
	inUse   int                    // slots held; guarded by mu
	seq     uint64                 // ticks on every grant and every enqueue; guarded by mu
	tenants map[string]*fairTenant // tenants that hold or wait for a slot; guarded by mu
	changed chan struct{}          // closed at the next change if a watcher made it; guarded by mu
}

// fairTenant is one tenant's share of fairSlots. Every field is guarded by
// fairSlots.mu.
type fairTenant struct {
	held      int
	lastGrant uint64        // fairSlots.seq at the tenant's latest grant; 0 if never
	waiters   []*fairWaiter // oldest first
}

type fairWaiter struct {
	ready   chan struct{} // closed when the slot is granted
	granted bool          // guarded by fairSlots.mu
	since   uint64        // fairSlots.seq when it queued
}

func newFairSlots(max, perTenant int, waits *metrics.Counter) *fairSlots {
	return &fairSlots{max: max, perTenant: perTenant, waits: waits, tenants: make(map[string]*fairTenant)}
}

// acquire waits for an executing slot for the tenant until ctx is done, and
// returns the function that gives it back (call it exactly once). The error
// is ctx.Err().
func (f *fairSlots) acquire(ctx context.Context, tenantID string) (func(), error) {
	return f.join(tenantID).wait(ctx)
}

// fairTicket is one acquisition: granted at once or queued.
type fairTicket struct {
	f        *fairSlots
	tenantID string
	t        *fairTenant
	w        *fairWaiter // nil if granted at once
}

// join takes a free slot for the tenant if its share allows, else queues
// for one. It never blocks; wait then waits for the slot.
func (f *fairSlots) join(tenantID string) *fairTicket {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.tenants[tenantID]
	if t == nil {
		t = &fairTenant{}
		f.tenants[tenantID] = t
	}
	defer f.signalLocked()
	tk := &fairTicket{f: f, tenantID: tenantID, t: t}
	// Free slots with waiters left means those waiters are at their cap:
	// this tenant is not behind them. Its own waiters are ahead of it.
	if f.inUse < f.max && t.held < f.perTenant && len(t.waiters) == 0 {
		f.grantLocked(t)
		return tk
	}
	f.seq++
	tk.w = &fairWaiter{ready: make(chan struct{}), since: f.seq}
	t.waiters = append(t.waiters, tk.w)
	if f.waits != nil {
		f.waits.Inc()
	}
	return tk
}

// wait waits until the ticket's slot is granted or ctx is done, and returns
// the function that gives the slot back (call it exactly once). The error
// is ctx.Err(); the ticket is then withdrawn.
func (tk *fairTicket) wait(ctx context.Context) (func(), error) {
	f, t := tk.f, tk.t
	release := func() {
		f.mu.Lock()
		f.releaseLocked(tk.tenantID, t)
		f.mu.Unlock()
	}
	if tk.w == nil {
		return release, nil
	}
	select {
	case <-tk.w.ready:
		return release, nil
	case <-ctx.Done():
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.signalLocked()
	if tk.w.granted { // granted as the context ended: hand it on
		f.releaseLocked(tk.tenantID, t)
	} else {
		for i, o := range t.waiters {
			if o == tk.w {
				t.waiters = append(t.waiters[:i], t.waiters[i+1:]...)
				break
			}
		}
		f.forgetLocked(tk.tenantID, t)
	}
	return nil, ctx.Err()
}

// grantLocked gives t a slot.
func (f *fairSlots) grantLocked(t *fairTenant) {
	f.inUse++
	t.held++
	f.seq++
	t.lastGrant = f.seq
}

// releaseLocked gives back one of t's slots and hands the free slots on.
func (f *fairSlots) releaseLocked(tenantID string, t *fairTenant) {
	f.inUse--
	t.held--
	f.dispatchLocked()
	f.forgetLocked(tenantID, t)
	f.signalLocked()
}

// signalLocked wakes the watchers of changes (see watch).
func (f *fairSlots) signalLocked() {
	if f.changed != nil {
		close(f.changed)
		f.changed = nil
	}
}

// watch is the stats and a channel closed at the next change of them.
func (f *fairSlots) watch() (fairStats, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.changed == nil {
		f.changed = make(chan struct{})
	}
	return f.statsLocked(), f.changed
}

// forgetLocked drops t from the table once it neither holds nor waits.
func (f *fairSlots) forgetLocked(tenantID string, t *fairTenant) {
	if t.held == 0 && len(t.waiters) == 0 && f.tenants[tenantID] == t {
		delete(f.tenants, tenantID)
	}
}

// dispatchLocked grants free slots to waiters: each to the tenant below its
// cap that holds the fewest, then was served longest ago, then has waited
// longest. The scan is over tenants that hold or wait, at most MaxExecuting
// plus the waiting ones.
func (f *fairSlots) dispatchLocked() {
	for f.inUse < f.max {
		var next *fairTenant
		for _, t := range f.tenants {
			if len(t.waiters) == 0 || t.held >= f.perTenant {
				continue
			}
			if next == nil || t.held < next.held ||
				t.held == next.held && (t.lastGrant < next.lastGrant ||
					t.lastGrant == next.lastGrant && t.waiters[0].since < next.waiters[0].since) {
				next = t
			}
		}
		if next == nil {
			return
		}
		w := next.waiters[0]
		next.waiters[0] = nil
		next.waiters = next.waiters[1:]
		w.granted = true
		f.grantLocked(next)
		close(w.ready)
	}
}

// fairStats is a snapshot of fairSlots, for tests and metrics.
type fairStats struct {
	inUse   int
	held    map[string]int // slots held per tenant
	waiting map[string]int // waiters per tenant
}

func (f *fairSlots) stats() fairStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.statsLocked()
}

func (f *fairSlots) statsLocked() fairStats {
	s := fairStats{inUse: f.inUse, held: make(map[string]int), waiting: make(map[string]int)}
	for id, t := range f.tenants {
		if t.held > 0 {
			s.held[id] = t.held
		}
		if len(t.waiters) > 0 {
			s.waiting[id] = len(t.waiters)
		}
	}
	return s
}

// executing is the number of slots held.
func (f *fairSlots) executing() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inUse
}
