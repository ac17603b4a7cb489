package batcher

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"duckgate/tenantdb"
)

// Errors of this package, mapped to HTTP status by the ingest handler.
var (
	// ErrBufferFull means the buffered rows of all tenants reached
	// Config.MaxBufferedBytes: the client should retry shortly (503).
	ErrBufferFull = errors.New("ingest buffer is full")
	// ErrClosed means the batcher is shutting down (503).
	ErrClosed = errors.New("batcher is shutting down")
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
	// MaxBufferedBytes caps the memory held by buffered rows of all
	// tenants; inserts beyond it get ErrBufferFull. Default 1 GiB.
	MaxBufferedBytes int64
	// MaxColumns caps the columns of a table; further keys go to the
	// _overflow JSON column. Default 1,000.
	MaxColumns int
	// RetryBackoff is the first delay before a failed flush is retried;
	// it doubles up to 30 s. Default 100 ms.
	RetryBackoff time.Duration
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
	if c.MaxBufferedBytes <= 0 {
		c.MaxBufferedBytes = 1 << 30
	}
	if c.MaxColumns <= 0 {
		c.MaxColumns = 1000
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = 100 * time.Millisecond
	}
}

// Batcher buffers rows and hands them to one writer goroutine per tenant.
type Batcher struct {
	cfg  Config
	pool *tenantdb.Pool
	log  *zap.Logger

	buffered atomic.Int64 // bytes of rows accepted and not yet committed
	stats    Stats

	mu      sync.Mutex
	writers map[string]*writer // by tenant id; guarded by mu
	closed  bool               // guarded by mu
	wg      sync.WaitGroup
}

// Stats are counters for metrics. Read them with Snapshot.
type Stats struct {
	RowsCommitted atomic.Int64
	Flushes       atomic.Int64
	FlushErrors   atomic.Int64
	SchemaChanges atomic.Int64
}

// New returns a Batcher writing into the databases of pool.
func New(cfg Config, pool *tenantdb.Pool, log *zap.Logger) *Batcher {
	cfg.setDefaults()
	return &Batcher{cfg: cfg, pool: pool, log: log, writers: make(map[string]*writer)}
}

// Stats returns the batcher's counters.
func (b *Batcher) Stats() *Stats { return &b.stats }

// Buffered is the number of bytes of rows buffered now.
func (b *Batcher) Buffered() int64 { return b.buffered.Load() }

// Ticket tells when inserted rows are committed in DuckDB.
type Ticket struct {
	done chan struct{}
	err  error
}

// Wait blocks until the rows are committed in DuckDB or ctx ends.
func (t *Ticket) Wait(ctx context.Context) error {
	select {
	case <-t.done:
		return t.err
	case <-ctx.Done():
		return fmt.Errorf("rows are accepted but not yet committed: %w", ctx.Err())
	}
}

// Insert queues rows for tenant's table. It never blocks on DuckDB: a full
// buffer is ErrBufferFull. With wait, the returned Ticket tells when the
// rows are committed (and the writer flushes the table right away); without
// it the Ticket is nil.
func (b *Batcher) Insert(tenant, table string, rows *Rows, wait bool) (*Ticket, error) {
	if rows.Len() == 0 {
		return nil, nil
	}
	if n := b.buffered.Add(rows.Size); n > b.cfg.MaxBufferedBytes {
		b.buffered.Add(-rows.Size)
		return nil, fmt.Errorf("%w: %d bytes buffered, limit %d", ErrBufferFull, n-rows.Size, b.cfg.MaxBufferedBytes)
	}
	w, err := b.writer(tenant)
	if err != nil {
		b.buffered.Add(-rows.Size)
		return nil, err
	}
	var t *Ticket
	if wait {
		t = &Ticket{done: make(chan struct{})}
	}
	w.add(table, &pending{rows: rows, ticket: t}, wait)
	return t, nil
}

// Flush commits everything the tenant has buffered now and returns when it
// is in DuckDB (read-your-writes for queries).
func (b *Batcher) Flush(ctx context.Context, tenant string) error {
	b.mu.Lock()
	w := b.writers[tenant]
	b.mu.Unlock()
	if w == nil {
		return nil
	}
	return w.flushAll(ctx)
}

func (b *Batcher) writer(tenant string) (*writer, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	w := b.writers[tenant]
	if w == nil {
		w = newWriter(b, tenant)
		b.writers[tenant] = w
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			w.run()
		}()
	}
	return w, nil
}

// Forget stops the tenant's writer after flushing it, e.g. before the tenant
// is deleted or its database must be reopened.
func (b *Batcher) Forget(ctx context.Context, tenant string) error {
	b.mu.Lock()
	w := b.writers[tenant]
	delete(b.writers, tenant)
	b.mu.Unlock()
	if w == nil {
		return nil
	}
	err := w.flushAll(ctx)
	w.stop()
	return err
}

// Close flushes every buffer and stops the writers. Inserts after Close get
// ErrClosed. A buffer whose flush keeps failing is given up when ctx ends;
// the error says how many rows were not committed.
func (b *Batcher) Close(ctx context.Context) error {
	b.mu.Lock()
	b.closed = true
	ws := make([]*writer, 0, len(b.writers))
	for _, w := range b.writers {
		ws = append(ws, w)
	}
	b.mu.Unlock()
	var errs []error
	for _, w := range ws {
		if err := w.flushAll(ctx); err != nil {
			errs = append(errs, err)
		}
		w.stop()
	}
	b.wg.Wait()
	return errors.Join(errs...)
}
