package batcher

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"go.uber.org/zap"

	"duckgate/atomicfile"
	"duckgate/tenantdb"
	"duckgate/wal"
)

// Errors of this package, mapped to HTTP status by the ingest handler.
var (
	// ErrBufferFull means the buffered rows of all tenants reached
	// Config.MaxBufferedBytes: the client should retry shortly (503).
	ErrBufferFull = errors.New("ingest buffer is full")
	// ErrClosed means the batcher is shutting down (503).
	ErrClosed = errors.New("batcher is shutting down")
	// ErrLogUnavailable means the write-ahead log could not take the rows
	// (disk full, I/O error, backlog over its cap): nothing was
	// acknowledged and the client should retry (503).
	ErrLogUnavailable = errors.New("write-ahead log unavailable")
)

// Config configures a Batcher. Zero fields take the documented defaults.
type Config struct {
	// FlushRows flushes a table's buffer once it holds this many rows.
	// Default 100,000: larger batches stopped helping the Appender.
	FlushRows int
	// FlushBytes flushes a table's buffer once it holds this many bytes.
	// Default 32 MiB.
	FlushBytes int64
	// FlushInterval flushes a table's buffer once its oldest row is this
	// old. Default 1 s: the visibility delay of an insert without wait.
	FlushInterval time.Duration
	// MinFlushInterval is how soon a small buffer (under a tenth of
	// FlushRows and of FlushBytes) is flushed while the process's CPUs are
	// not busy: the visibility delay of a tenant sending a few events a
	// second. It grows towards FlushInterval as they get busy (adaptive.go).
	// Default FlushInterval/10 (100 ms); negative turns early flushes off.
	MinFlushInterval time.Duration
	// ColdFlushInterval replaces FlushInterval for a tenant whose database
	// is closed while the pool is full, so that a thousand tenants over a
	// pool of 64 open databases flush in fewer, larger batches instead of
	// opening and closing databases all the time. Default 5 × FlushInterval.
	ColdFlushInterval time.Duration
	// MaxBufferedBytes caps the memory held by buffered rows of all
	// tenants; inserts beyond it get ErrBufferFull. Default 1 GiB.
	MaxBufferedBytes int64
	// MaxColumns caps the columns of a table; further keys go to the
	// _overflow JSON column. Default 1,000.
	MaxColumns int
	// RetryBackoff is the first delay before a failed flush is retried;
	// it doubles up to 30 s. Default 100 ms.
	RetryBackoff time.Duration
	// MaxConcurrentFlushes bounds the flushes running at once across all
	// tenants, so a thousand writers whose buffers come due together do not
	// thrash a few cores with as many DuckDB instances. Default: 4 × the
	// number of CPUs: a small flush spends most of its time waiting (its
	// commit, the Appender's locks), not computing, and with one slot per
	// CPU 100 tenants' small flushes queued behind each other.
	MaxConcurrentFlushes int
	// QuarantineAfter is the number of failed flushes after which a batch
	// is moved to the tenant's _duckgate_quarantine table instead of
	// blocking its table. Default 10 (about a minute and a half of retries).
	QuarantineAfter int

	// WAL makes inserts durable: rows are acknowledged once in the log,
	// which is replayed by Recover. Nil means no log (-durability=none):
	// rows buffered in memory are lost on a crash.
	WAL *wal.Log
	// Log replaces WAL in cluster mode (see Log): inserts are acknowledged
	// once the Log has them, and reach the writers through Apply on the
	// node that writes their tenant. Recover does nothing then. Set at most
	// one of WAL and Log.
	Log Log
	// StateDir holds the batcher's own files: the boot epoch and the
	// idempotency keys. Required with WAL; empty keeps keys in memory only.
	StateDir string
	// IdempotencyWindow is how long an Idempotency-Key is remembered.
	// Default 24 h.
	IdempotencyWindow time.Duration
	// Metrics is the set the batcher registers its series on; nil keeps
	// them private.
	Metrics *metrics.Set
	// TenantExists tells Recover whether a tenant still exists; log
	// records of deleted tenants are dropped. Nil means every tenant exists.
	TenantExists func(tenantID string) bool

	// PlanRetention is the retention of the tenant's plan, the bound of
	// its tables' own (see retention.go); nil or 0 is none.
	PlanRetention func(tenantID string) time.Duration
	// Tenants lists the tenants whose databases the periodic retention
	// sweep visits besides those with a writer; nil visits only those.
	Tenants func() []string
	// SweepInterval is how often every tenant's retention is swept.
	// Default 10 minutes: a row outlives its retention by at most that.
	SweepInterval time.Duration
	// SweepBatchRows bounds the rows one DELETE of a sweep removes, so a
	// due flush waits for one such statement at most. Default 50,000
	// (measured on 2 shared cores: 1,000,000 expired rows in 21 batches
	// took 0.46 s with the checkpoint and the rewrite, under 25 ms a
	// batch; TestRetentionSweepLargeTable with 1,000,000 rows and this
	// batch size).
	SweepBatchRows int
	// Now is the clock retention compares row times with. Default
	// time.Now; tests set their own.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.FlushRows <= 0 {
		c.FlushRows = 100_000
	}
	if c.FlushBytes <= 0 {
		c.FlushBytes = 32 << 20
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = time.Second
	}
	if c.MinFlushInterval == 0 {
		c.MinFlushInterval = c.FlushInterval / 10
	}
	if c.ColdFlushInterval <= 0 {
		c.ColdFlushInterval = 5 * c.FlushInterval
	}
	if c.MaxBufferedBytes <= 0 {
		c.MaxBufferedBytes = 1 << 30
	}
	if c.MaxColumns <= 0 {
		c.MaxColumns = 1000
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = 100 * time.Millisecond
	}
	if c.MaxConcurrentFlushes <= 0 {
		c.MaxConcurrentFlushes = 4 * runtime.NumCPU()
	}
	if c.QuarantineAfter <= 0 {
		c.QuarantineAfter = 10
	}
	if c.IdempotencyWindow <= 0 {
		c.IdempotencyWindow = 24 * time.Hour
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = 10 * time.Minute
	}
	if c.SweepBatchRows <= 0 {
		c.SweepBatchRows = 50_000
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Batcher buffers rows and hands them to one writer goroutine per tenant.
type Batcher struct {
	cfg  Config
	pool *tenantdb.Pool
	log  *zap.Logger

	buffered     atomic.Int64 // bytes of rows accepted and not yet committed
	bufferedRows atomic.Int64 // rows accepted and not yet committed
	stats        Stats
	metrics      batcherMetrics
	flushSlots   chan struct{} // a token per flush running; see MaxConcurrentFlushes
	idem         *idemStore
	seq          atomic.Uint64 // last sequence number given; see nextSeq
	schemaLog    schemaLog     // recent schema changes per tenant, for the dashboard
	sweeperDone  chan struct{} // closed when the retention sweeper returns
	versions     versions      // tenants' data versions; see DataVersion
	load         *flushLoad    // how busy the flush slots are; see adaptive.go

	walMu    sync.Mutex
	segCount map[uint64]int // uncommitted log records by floor segment; guarded by walMu

	// ctx is the writers' context: Close cancels it when its own context
	// ends, aborting flushes in flight (their rows stay in the log).
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.RWMutex
	writers map[string]*writer   // by tenant id; guarded by mu
	running map[*writer]struct{} // writers whose goroutine has not returned, Forgotten ones too; guarded by mu
	closed  bool                 // guarded by mu
}

// Stats are counters for metrics. Read them with Snapshot.
type Stats struct {
	RowsCommitted atomic.Int64
	Flushes       atomic.Int64
	FlushErrors   atomic.Int64
	SchemaChanges atomic.Int64
	LogErrors     atomic.Int64
	Quarantined   atomic.Int64
	// RetentionDeleted counts rows deleted by retention sweeps.
	RetentionDeleted atomic.Int64
}

// New returns a Batcher writing into the databases of pool. With a WAL,
// call Recover before the first Insert.
func New(cfg Config, pool *tenantdb.Pool, log *zap.Logger) (*Batcher, error) {
	cfg.setDefaults()
	b := &Batcher{cfg: cfg, pool: pool, log: log, writers: make(map[string]*writer), segCount: make(map[uint64]int),
		running: make(map[*writer]struct{}), flushSlots: make(chan struct{}, cfg.MaxConcurrentFlushes),
		load: newFlushLoad(cfg.MaxConcurrentFlushes)}
	idemPath := ""
	if cfg.StateDir != "" {
		if err := os.MkdirAll(cfg.StateDir, 0o750); err != nil {
			return nil, fmt.Errorf("batcher state directory: %w", err)
		}
		idemPath = filepath.Join(cfg.StateDir, "idempotency.ndjson")
		epoch, err := nextEpoch(filepath.Join(cfg.StateDir, "epoch"))
		if err != nil {
			return nil, err
		}
		// Sequence numbers grow across restarts: the epoch is the high
		// part, so a number given now exceeds every one given before.
		b.seq.Store(epoch << 40)
	} else if cfg.WAL != nil {
		return nil, errors.New("batcher: a WAL needs a StateDir")
	}
	if cfg.WAL != nil && cfg.Log != nil {
		return nil, errors.New("batcher: set a WAL or a Log, not both")
	}
	var err error
	if b.idem, err = openIdemStore(idemPath, cfg.IdempotencyWindow, log); err != nil {
		return nil, err
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	set := cfg.Metrics
	if set == nil {
		set = metrics.NewSet()
	}
	b.registerMetrics(set)
	b.sweeperDone = make(chan struct{})
	go b.sweeper()
	return b, nil
}

// nextSeq numbers an insert. Inserts into one table are numbered in the
// order they enter its buffer; a flush records the last number it
// committed, so a replay skips exactly what DuckDB already has.
func (b *Batcher) nextSeq() uint64 { return b.seq.Add(1) }

// nextEpoch reads, increments and durably rewrites the boot counter.
func nextEpoch(path string) (uint64, error) {
	var epoch uint64
	if raw, err := os.ReadFile(path); err == nil {
		if epoch, err = strconv.ParseUint(strings.TrimSpace(string(raw)), 10, 64); err != nil {
			return 0, fmt.Errorf("read %s: %w", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("read boot epoch: %w", err)
	}
	epoch++
	if err := atomicfile.Write(path, []byte(strconv.FormatUint(epoch, 10)+"\n")); err != nil {
		return 0, fmt.Errorf("write boot epoch: %w", err)
	}
	return epoch, nil
}

// Stats returns the batcher's counters.
func (b *Batcher) Stats() *Stats { return &b.stats }

// Full returns ErrBufferFull when the buffers are at their memory cap, so a
// handler can refuse an insert before spending CPU on decoding it. With a
// Log it is always nil: an insert is not buffered on the node that receives
// it (the writers wait for room instead, see WaitRoom).
func (b *Batcher) Full() error {
	if b.remote() {
		return nil
	}
	if n := b.buffered.Load(); n >= b.cfg.MaxBufferedBytes {
		return fmt.Errorf("%w: %d bytes buffered, limit %d", ErrBufferFull, n, b.cfg.MaxBufferedBytes)
	}
	return nil
}

// Buffered is the number of bytes of rows buffered now.
func (b *Batcher) Buffered() int64 { return b.buffered.Load() }

// Ticket tells when inserted rows are committed in DuckDB.
type Ticket struct {
	done chan struct{}
	err  error
	wait func(context.Context) error // set instead of done in cluster mode
}

// Wait blocks until the rows are committed in DuckDB or ctx ends.
func (t *Ticket) Wait(ctx context.Context) error {
	if t.wait != nil {
		return t.wait(ctx)
	}
	select {
	case <-t.done:
		return t.err
	case <-ctx.Done():
		return fmt.Errorf("rows are accepted but not yet committed: %w", ctx.Err())
	}
}

// Request is one insert.
type Request struct {
	Tenant, Table string
	Rows          *Rows
	// Wait asks for a Ticket that tells when the rows are committed; the
	// writer then flushes the table right away.
	Wait bool
	// IdempotencyKey, if set, was reserved with BeginIdempotent; Response
	// is the answer a retry with the same key gets.
	IdempotencyKey string
	Response       []byte
}

// Submit queues an insert. It returns once the rows are durable (in the
// write-ahead log, fsynced) or, without a log, buffered; it never waits for
// DuckDB. A full buffer is ErrBufferFull, a log that cannot write is
// ErrLogUnavailable. With Wait, the Ticket tells when the rows are
// committed; otherwise it is nil.
func (b *Batcher) Submit(req Request) (*Ticket, error) {
	rows := req.Rows
	if rows.Len() == 0 {
		return nil, nil
	}
	if b.remote() {
		return b.submitLog(req)
	}
	if n := b.buffered.Add(rows.Size); n > b.cfg.MaxBufferedBytes {
		b.buffered.Add(-rows.Size)
		return nil, fmt.Errorf("%w: %d bytes buffered, limit %d", ErrBufferFull, n-rows.Size, b.cfg.MaxBufferedBytes)
	}
	b.bufferedRows.Add(int64(rows.Len()))
	w, err := b.writer(req.Tenant)
	if err != nil {
		b.uncharge(rows.Size, rows.Len())
		return nil, err
	}
	p := &pending{rows: rows, durable: b.cfg.WAL == nil}
	if req.Wait {
		p.ticket = &Ticket{done: make(chan struct{})}
	}
	now := time.Now()
	if b.cfg.WAL == nil {
		if req.IdempotencyKey != "" {
			b.idem.accept(req.Tenant, req.IdempotencyKey, req.Response, now)
			p.rec = &record{tenant: req.Tenant, idemKey: req.IdempotencyKey, response: req.Response, at: now.Unix()}
		}
		w.add(req.Table, p, req.Wait)
		return p.ticket, nil
	}

	w.add(req.Table, p, false) // numbers p; not flushable until durable
	rec := &record{tenant: req.Tenant, table: req.Table, seq: p.seq, at: now.Unix(),
		idemKey: req.IdempotencyKey, response: req.Response, rows: rows}
	buf := recordPool.Get().(*[]byte)
	*buf = encodeRecord((*buf)[:0], rec)
	b.walMu.Lock()
	floor := b.cfg.WAL.Floor()
	b.segCount[floor]++
	b.walMu.Unlock()
	_, err = b.cfg.WAL.Append(*buf)
	if cap(*buf) <= 1<<20 {
		recordPool.Put(buf)
	}
	if err != nil {
		b.releaseFloor(floor)
		w.markFailed(p)
		b.uncharge(rows.Size, rows.Len())
		b.stats.LogErrors.Add(1)
		return nil, fmt.Errorf("%w: %v", ErrLogUnavailable, err)
	}
	p.floor = floor
	if req.IdempotencyKey != "" {
		b.idem.accept(req.Tenant, req.IdempotencyKey, req.Response, now)
		rec.rows = nil
		p.rec = rec
	}
	w.markDurable(req.Table, p, req.Wait)
	return p.ticket, nil
}

// uncharge returns rows no longer buffered to the memory budget.
func (b *Batcher) uncharge(size int64, rows int) {
	b.buffered.Add(-size)
	b.bufferedRows.Add(-int64(rows))
}

var recordPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// releaseFloor forgets one uncommitted record noted at floor.
func (b *Batcher) releaseFloor(floor uint64) {
	b.walMu.Lock()
	if b.segCount[floor]--; b.segCount[floor] <= 0 {
		delete(b.segCount, floor)
	}
	b.walMu.Unlock()
}

// releaseLog lets the log delete the segments that hold no uncommitted
// record any more.
func (b *Batcher) releaseLog() {
	l := b.cfg.WAL
	if l == nil {
		return
	}
	b.walMu.Lock()
	low := l.Floor() // nothing uncommitted: everything before the newest segment can go
	for seg := range b.segCount {
		low = min(low, seg)
	}
	b.walMu.Unlock()
	if err := l.Release(wal.Position{Segment: low}); err != nil {
		b.log.Warn("release write-ahead log segments", zap.Error(err))
	}
}

// BeginIdempotent looks up an Idempotency-Key of a tenant. found means an
// insert with this key was accepted within the window: resp is its answer
// and nothing must be stored again. Otherwise the key is reserved for this
// request: pass it in Request.IdempotencyKey, or call AbortIdempotent if
// the insert is not submitted. A key reserved by a request still running
// is ErrInProgress.
func (b *Batcher) BeginIdempotent(tenant, key string) (resp []byte, found bool, err error) {
	return b.idem.begin(tenant, key)
}

// AbortIdempotent releases a key reserved by BeginIdempotent.
func (b *Batcher) AbortIdempotent(tenant, key string) { b.idem.abort(tenant, key) }

// Flush commits everything the tenant has buffered now and returns when it
// is in DuckDB (read-your-writes for queries). With a Log, it first waits
// until every insert the log acknowledged before the call is buffered here
// (Log.CaughtUp).
func (b *Batcher) Flush(ctx context.Context, tenant string) error {
	if b.remote() {
		if err := b.cfg.Log.CaughtUp(ctx, tenant); err != nil {
			return fmt.Errorf("flush tenant %s: %w", tenant, err)
		}
	}
	return b.Commit(ctx, tenant)
}

// Commit commits what the tenant has buffered now and returns when it is in
// DuckDB, without waiting for the Log (cluster mode: the writer of a
// partition before it snapshots a tenant or answers a remote wait).
func (b *Batcher) Commit(ctx context.Context, tenant string) error {
	b.mu.Lock()
	w := b.writers[tenant]
	b.mu.Unlock()
	if w == nil {
		return nil
	}
	return w.flushAll(ctx)
}

func (b *Batcher) writer(tenant string) (*writer, error) {
	b.mu.RLock()
	w, closed := b.writers[tenant], b.closed
	b.mu.RUnlock()
	if w != nil && !closed {
		return w, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	w = b.writers[tenant]
	if w == nil {
		w = newWriter(b, tenant)
		b.writers[tenant] = w
		b.running[w] = struct{}{}
		go func() {
			defer close(w.done) // last: stopWriters waits for this
			w.run()
			b.mu.Lock()
			delete(b.running, w)
			b.mu.Unlock()
		}()
	}
	return w, nil
}

// stopGrace bounds the wait for writers whose context was canceled because
// the caller's deadline passed: each of their waits ends with that context,
// so they return within a DuckDB interrupt.
const stopGrace = 10 * time.Second

// flushWriters asks every writer of ws to flush all it holds, so that they
// flush at once (at most MaxConcurrentFlushes at a time), and waits for
// them until ctx ends. errs[i] is the error of ws[i].
func flushWriters(ctx context.Context, ws []*writer) (errs []error) {
	errs = make([]error, len(ws))
	chs := make([]chan error, len(ws))
	for i, w := range ws {
		chs[i] = w.requestFlush()
	}
	for i, w := range ws {
		errs[i] = w.waitFlush(ctx, chs[i])
	}
	return errs
}

// stopWriters stops the writers of ws, each after a last flush, and waits
// for their goroutines until ctx ends. Writers still running then have
// their context canceled, which aborts what they are doing, and are waited
// for stopGrace more.
func stopWriters(ctx context.Context, ws []*writer) error {
	for _, w := range ws {
		w.quitOnce()
	}
	var stuck []*writer
	for i, w := range ws {
		select {
		case <-w.done:
			continue
		case <-ctx.Done():
		}
		for _, w := range ws[i:] {
			select {
			case <-w.done:
			default:
				w.cancel()
				stuck = append(stuck, w)
			}
		}
		break
	}
	if len(stuck) == 0 {
		return nil
	}
	grace := time.NewTimer(stopGrace)
	defer grace.Stop()
	for i, w := range stuck {
		select {
		case <-w.done:
		case <-grace.C:
			return fmt.Errorf("stop tenant writers: %w; %d still running %s after it", ctx.Err(), len(stuck)-i, stopGrace)
		}
	}
	return fmt.Errorf("stop tenant writers: %w; %d stopped by aborting their flush", ctx.Err(), len(stuck))
}

// Forget stops the tenant's writer after flushing it, e.g. before the tenant
// is deleted or its database must be reopened. When ctx ends first, the
// writer's flush is aborted: its rows stay in the log.
func (b *Batcher) Forget(ctx context.Context, tenant string) error {
	b.schemaLog.forget(tenant)
	// Whoever writes the tenant next (another node in cluster mode) may
	// change its data without this batcher: answers cached until now must
	// not be served again.
	defer b.versions.bump(tenant)
	b.mu.Lock()
	w := b.writers[tenant]
	delete(b.writers, tenant)
	b.mu.Unlock()
	if w == nil {
		return nil
	}
	err := w.flushAll(ctx)
	return errors.Join(err, stopWriters(ctx, []*writer{w}))
}

// Close flushes every buffer and stops the writers, all tenants at once
// (at most MaxConcurrentFlushes flushes at a time). Inserts after Close get
// ErrClosed. When ctx ends first, the flushes in flight are aborted and
// Close returns an error that says how many rows were not committed: with a
// write-ahead log they are replayed by the next Recover, without one they
// are lost. Close returns once every goroutine of the batcher has, or, if
// one ignores the abort, stopGrace after ctx ended, with an error.
func (b *Batcher) Close(ctx context.Context) error {
	b.mu.Lock()
	b.closed = true
	ws := make([]*writer, 0, len(b.running))
	for w := range b.running {
		ws = append(ws, w)
	}
	b.mu.Unlock()
	if ctx.Err() != nil {
		b.cancel()
	}
	stopAbort := context.AfterFunc(ctx, b.cancel)
	defer stopAbort()

	var errs []error
	for _, err := range flushWriters(ctx, ws) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := stopWriters(ctx, ws); err != nil {
		errs = append(errs, err)
	}
	b.cancel()
	<-b.sweeperDone // returns at once: b.ctx is canceled
	b.releaseLog()
	if err := b.idem.close(ctx); err != nil {
		errs = append(errs, err)
	}
	if n := b.bufferedRows.Load(); n > 0 {
		fate := "lost (no write-ahead log)"
		if b.cfg.WAL != nil {
			fate = "kept in the write-ahead log for Recover"
		} else if b.cfg.Log != nil {
			fate = "kept in the cluster's log for the tenants' next writer"
		}
		errs = append(errs, fmt.Errorf("close batcher: %d rows not committed, %s", n, fate))
	}
	return errors.Join(errs...)
}
