package ingest

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"duckgate/tenant"
)

// defaultQuotaCheckInterval is how long a tenant's measured database size is
// trusted before the quota check stats the files again. A tenant can
// overshoot its quota by what it ingests in this time.
const defaultQuotaCheckInterval = 5 * time.Second

// tenantState is what the handler keeps in memory per tenant for the hot
// path. It is created on first use and dropped when the
// tenant is deleted; a restart starts it afresh (last ingest unknown, full
// token bucket).
type tenantState struct {
	// lastIngest is the unix time in nanoseconds of the last accepted
	// insert since the server started; 0 means none.
	lastIngest atomic.Int64
	// rows counts the rows accepted since the server started, by any route.
	rows atomic.Int64
	// size is the database's bytes on disk measured at sizeAt (unix ns).
	size   atomic.Int64
	sizeAt atomic.Int64

	mu       sync.Mutex
	tokens   float64 // rows that may be inserted now; negative is debt; guarded by mu
	refilled int64   // unix ns of the last refill, 0 before the first insert; guarded by mu

}

// tenantStates maps tenant ids to their state.
type tenantStates struct {
	m sync.Map // tenant id → *tenantState
}

func (ts *tenantStates) get(id string) *tenantState {
	if v, ok := ts.m.Load(id); ok {
		return v.(*tenantState)
	}
	v, _ := ts.m.LoadOrStore(id, &tenantState{})
	return v.(*tenantState)
}

func (ts *tenantStates) peek(id string) *tenantState {
	if v, ok := ts.m.Load(id); ok {
		return v.(*tenantState)
	}
	return nil
}

func (ts *tenantStates) drop(id string) { ts.m.Delete(id) }

// NoteAccepted records rows that another route (a webhook delivery) handed
// to the batcher for the tenant: its last ingest, and the same row and
// byte counters inserts raise.
func (h *Handler) NoteAccepted(tenantID string, rows, bytes int) {
	h.noteIngest(tenantID, rows)
	h.metrics.rowsAccepted.Add(rows)
	h.metrics.bytesAccepted.Add(bytes)
}

// noteIngest records that rows of the tenant were accepted now: its last
// ingest and its row counter.
func (h *Handler) noteIngest(tenantID string, rows int) {
	st := h.states.get(tenantID)
	st.lastIngest.Store(time.Now().UnixNano())
	st.rows.Add(int64(rows))
}

// Admit applies the tenant's plan to an insert of n rows: the storage
// quota (ErrQuota, 403), then the rows-per-second token bucket
// (*RateLimitError, 429). Both checks are a map load, an atomic or two and
// a short mutex: the quota stats the database files at most once per
// Config.QuotaCheckInterval.
func (h *Handler) Admit(t tenant.Tenant, n int) error {
	plan, ok := h.cfg.Tenants.Plan(t.Plan)
	if !ok || (plan.StorageBytes <= 0 && plan.RowsPerSecond <= 0) {
		return nil
	}
	st := h.states.get(t.ID)
	now := time.Now().UnixNano()
	if plan.StorageBytes > 0 && h.cfg.Pool != nil {
		if size := h.sizeOf(st, t.ID, now); size >= plan.StorageBytes {
			return fmt.Errorf("%w: storage quota of %d bytes reached (plan %q); the database holds %d bytes: ask the operator for a larger plan",
				ErrQuota, plan.StorageBytes, t.Plan, size)
		}
	}
	if plan.RowsPerSecond <= 0 {
		return nil
	}
	wait, ok := st.take(float64(plan.RowsPerSecond), n, now)
	if ok {
		return nil
	}
	secs := max(1, int(math.Ceil(wait.Seconds())))
	return &RateLimitError{RetryAfter: secs, msg: fmt.Sprintf(
		"%v: the plan %q allows %d rows per second; retry after %d s, send fewer rows, or ask the operator for a larger plan",
		ErrRateLimited, t.Plan, plan.RowsPerSecond, secs)}
}

// take is the token bucket: it holds at most one second of rows (rate)
// and refills continuously. A batch is admitted whenever the bucket is not
// in debt, and may take it into debt, so that a batch larger than one
// second of rows still passes and the next ones wait: the average rate
// holds whatever the batch size. It returns how long until the debt is
// paid when the batch is refused.
func (st *tenantState) take(rate float64, n int, now int64) (time.Duration, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.refilled == 0 {
		st.tokens = rate
	} else {
		st.tokens = min(rate, st.tokens+rate*float64(now-st.refilled)/1e9)
	}
	st.refilled = now
	if st.tokens <= 0 {
		return time.Duration(-st.tokens / rate * 1e9), false
	}
	st.tokens -= float64(n)
	return 0, true
}

// sizeOf returns the tenant's bytes on disk less the free space inside its
// database file (tenantdb.Pool.Used), measured at most once per
// QuotaCheckInterval: one caller refreshes while the others use the
// previous figure.
func (h *Handler) sizeOf(st *tenantState, tenantID string, now int64) int64 {
	at := st.sizeAt.Load()
	if now-at < int64(h.cfg.QuotaCheckInterval) || !st.sizeAt.CompareAndSwap(at, now) {
		return st.size.Load()
	}
	size, err := h.cfg.Pool.Used(tenantID) // rows deleted by retention count as gone
	if err != nil {
		h.log.Warn("measure tenant database", zap.String("tenant", tenantID), zap.Error(err))
		return st.size.Load()
	}
	st.size.Store(size)
	return size
}

// LastIngest returns when the tenant's last insert was accepted since the
// server started, and false if none was.
func (h *Handler) LastIngest(tenantID string) (time.Time, bool) {
	st := h.states.peek(tenantID)
	if st == nil {
		return time.Time{}, false
	}
	ns := st.lastIngest.Load()
	return time.Unix(0, ns).UTC(), ns != 0
}

// Forget drops what the handler keeps about a deleted tenant.
func (h *Handler) Forget(tenantID string) { h.states.drop(tenantID) }

// EachTenantRows calls f with every tenant that has sent rows since the
// server started and the rows accepted for it so far, by any route (the
// dashboard's per-tenant rates are sampled from it).
func (h *Handler) EachTenantRows(f func(tenantID string, rows int64)) {
	h.states.m.Range(func(k, v any) bool {
		if n := v.(*tenantState).rows.Load(); n > 0 {
			f(k.(string), n)
		}
		return true
	})
}
