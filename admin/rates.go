package admin

import (
	"sync"
	"time"
)

// tenantRateEvery is how many node samples make one point of a tenant's
// rate: a minute at the default interval, so an hour is 60 points a tenant.
const tenantRateEvery = 12

// tenantRates keeps each tenant's rows/s over the last historySpan, sampled
// from ingest's per-tenant row counters, for the tenant list's sparklines.
type tenantRates struct {
	rows     func(f func(tenantID string, rows int64)) // ingest.Handler.EachTenantRows
	interval time.Duration

	mu     sync.Mutex
	last   map[string]int64     // the counters at the last sample; guarded by mu
	lastAt time.Time            // guarded by mu
	points map[string][]float64 // rows/s, oldest first, at most maxPoints; guarded by mu
}

func newTenantRates(rows func(func(string, int64)), nodeInterval time.Duration) *tenantRates {
	if nodeInterval <= 0 {
		nodeInterval = DefaultHistoryInterval
	}
	return &tenantRates{rows: rows, interval: tenantRateEvery * nodeInterval, points: make(map[string][]float64)}
}

func (r *tenantRates) maxPoints() int { return int(historySpan / r.interval) }

// run samples every interval until stop is closed.
func (r *tenantRates) run(stop <-chan struct{}) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	r.sample(time.Now())
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			r.sample(now)
		}
	}
}

// sample reads the counters and appends a point for every tenant seen; the
// first call only sets the base.
func (r *tenantRates) sample(now time.Time) {
	cur := make(map[string]int64)
	r.rows(func(id string, n int64) { cur[id] = n })
	r.mu.Lock()
	defer r.mu.Unlock()
	prev, prevAt := r.last, r.lastAt
	r.last, r.lastAt = cur, now
	if prev == nil {
		return
	}
	dt := now.Sub(prevAt).Seconds()
	if dt <= 0 {
		return
	}
	for id := range r.points {
		if _, ok := cur[id]; !ok {
			delete(r.points, id) // deleted, or the counters restarted
		}
	}
	for id, n := range cur {
		d := n - prev[id]
		if d < 0 {
			d = n
		}
		ps := append(r.points[id], float64(d)/dt)
		if over := len(ps) - r.maxPoints(); over > 0 {
			ps = append(ps[:0:0], ps[over:]...)
		}
		r.points[id] = ps
	}
}

// of returns a tenant's points, oldest first; nil if it sent nothing.
func (r *tenantRates) of(tenantID string) []float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]float64(nil), r.points[tenantID]...)
}
