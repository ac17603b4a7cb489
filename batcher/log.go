package batcher

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Log is a durable log kept outside this process, which replaces the local
// write-ahead log in cluster mode (package cluster implements it on NATS
// JetStream). Submit and SubmitAll append each insert to it and return once
// it is acknowledged there; nothing is buffered on the node that received
// the insert. The node that writes a tenant's database reads the log and
// hands each insert to Apply with its position, which the commit records
// in the tenant's _duckgate_applied table in the same transaction as the
// rows.
type Log interface {
	// Append makes one encoded insert of tenant durable and returns its
	// position in the log. dedupKey, when not empty, is the insert's
	// idempotency key (Idempotency-Key, a webhook delivery id, a tracking
	// message id): an insert appended again with the same key of the same
	// tenant within the log's window is stored once.
	Append(ctx context.Context, tenant, dedupKey string, record []byte) (pos uint64, err error)
	// Committed waits until the tenant's inserts up to pos are committed in
	// its database, on whichever node writes it.
	Committed(ctx context.Context, tenant string, pos uint64) error
	// CaughtUp waits until every insert of tenant the log acknowledged
	// before the call has been handed to Apply on this node. It returns nil
	// at once on a node that does not write the tenant.
	CaughtUp(ctx context.Context, tenant string) error
}

// logTimeout bounds one Append: past it the insert is refused with
// ErrLogUnavailable (503) and the client retries.
const logTimeout = 10 * time.Second

// remote reports whether inserts go to a Log rather than the local WAL.
func (b *Batcher) remote() bool { return b.cfg.Log != nil }

// logged reports whether commits record their position in appliedTable:
// with the local write-ahead log or a Log.
func (b *Batcher) logged() bool { return b.cfg.WAL != nil || b.cfg.Log != nil }

// appendLog appends one insert to the Log.
func (b *Batcher) appendLog(req Request, at time.Time) (uint64, error) {
	rec := &record{tenant: req.Tenant, table: req.Table, at: at.Unix(), idemKey: req.IdempotencyKey, response: req.Response, rows: req.Rows}
	buf := recordPool.Get().(*[]byte)
	*buf = encodeRecord((*buf)[:0], rec)
	ctx, cancel := context.WithTimeout(b.ctx, logTimeout)
	pos, err := b.cfg.Log.Append(ctx, req.Tenant, req.IdempotencyKey, *buf)
	cancel()
	if cap(*buf) <= 1<<20 {
		recordPool.Put(buf)
	}
	if err != nil {
		b.stats.LogErrors.Add(1)
		return 0, fmt.Errorf("%w: %v", ErrLogUnavailable, err)
	}
	return pos, nil
}

// submitLog is Submit in cluster mode: the insert is appended to the Log
// and acknowledged once the log has it.
func (b *Batcher) submitLog(req Request) (*Ticket, error) {
	b.mu.RLock()
	closed := b.closed
	b.mu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	now := time.Now()
	pos, err := b.appendLog(req, now)
	if err != nil {
		return nil, err
	}
	if req.IdempotencyKey != "" {
		b.idem.accept(req.Tenant, req.IdempotencyKey, req.Response, now)
	}
	if !req.Wait {
		return nil, nil
	}
	log, tenant := b.cfg.Log, req.Tenant
	return &Ticket{wait: func(ctx context.Context) error { return log.Committed(ctx, tenant, pos) }}, nil
}

// submitAllLog is SubmitAll in cluster mode: the inserts are appended
// concurrently, each acknowledged on its own.
func (b *Batcher) submitAllLog(reqs []Request) error {
	b.mu.RLock()
	closed := b.closed
	b.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	now := time.Now()
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	for w := range min(submitAllWorkers, len(reqs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(reqs); i += submitAllWorkers {
				if reqs[i].Rows.Len() == 0 {
					continue
				}
				if _, errs[i] = b.appendLog(reqs[i], now); errs[i] == nil && reqs[i].IdempotencyKey != "" {
					b.idem.accept(reqs[i].Tenant, reqs[i].IdempotencyKey, reqs[i].Response, now)
				}
			}
		}()
	}
	wg.Wait()
	failed := 0
	var first error
	for _, err := range errs {
		if err != nil {
			failed++
			if first == nil {
				first = err
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d records not appended: %w", failed, len(reqs), first)
	}
	return nil
}

// WaitRoom waits until the buffers are below Config.MaxBufferedBytes, or
// ctx ends: a partition consumer calls it before Apply, so that a writer
// behind its log holds the backlog in the log, not in memory.
func (b *Batcher) WaitRoom(ctx context.Context) error {
	for b.buffered.Load() >= b.cfg.MaxBufferedBytes {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// ErrNotLogged means Apply was called on a batcher without a Log.
var ErrNotLogged = errors.New("batcher has no Log")

// Apply queues one insert read from the Log at position pos, on the node
// that writes the tenant's database. done is called once the insert is
// committed, or at once if its table already recorded pos or a later
// position (a redelivery, or a writer that lost the tenant and got it
// back): so the caller acknowledges it to the log only then, and an insert
// is never stored twice. Inserts of one table must be applied in log
// order. Apply returns the insert's tenant; a record that cannot be decoded
// is an error (the caller drops it). Config.TenantExists is not asked: a
// tenant made on another node a moment ago may not be known here yet, and
// its rows must not be dropped.
func (b *Batcher) Apply(raw []byte, pos uint64, done func()) (tenant string, err error) {
	if !b.remote() {
		return "", ErrNotLogged
	}
	rec, err := decodeRecord(raw)
	if err != nil {
		return "", err
	}
	w, err := b.writer(rec.tenant)
	if err != nil {
		return rec.tenant, err
	}
	b.buffered.Add(rec.rows.Size)
	b.bufferedRows.Add(int64(rec.rows.Len()))
	w.add(rec.table, &pending{rows: rec.rows, seq: pos, durable: true, done: done, key: rec.idemKey}, false)
	return rec.tenant, nil
}
