package batcher

import (
	"fmt"
	"sync"
	"time"
)

// submitAllWorkers bounds the log appends SubmitAll runs at once: they
// share the log's group commits, so a batch of events costs a few fsyncs,
// not one each; Segment's and PostHog's SDKs send at most 15 to 100 events a
// request, each one or two records.
const submitAllWorkers = 64

// SubmitAll queues several inserts, of one or several tenants and tables,
// each as its own write-ahead log record, appended concurrently so that
// they share the log's group commits. It returns once every record is
// durable (or, without a log, buffered), never waiting for DuckDB;
// Request.Wait is ignored. The tracking API uses it to store each event
// with its own idempotency key (its messageId) without an fsync per event.
//
// Each record is acknowledged on its own. On error (ErrLogUnavailable)
// some records may be durable all the same: their keys are accepted as by
// Submit, so a retry of the whole set finds them and skips them, and the
// keys of the others stay reserved for the caller to release with
// AbortIdempotent (which leaves accepted keys alone).
func (b *Batcher) SubmitAll(reqs []Request) error {
	var size int64
	var nrows int
	for _, r := range reqs {
		size += r.Rows.Size
		nrows += r.Rows.Len()
	}
	if nrows == 0 {
		return nil
	}
	if b.remote() {
		return b.submitAllLog(reqs)
	}
	if n := b.buffered.Add(size); n > b.cfg.MaxBufferedBytes {
		b.buffered.Add(-size)
		return fmt.Errorf("%w: %d bytes buffered, limit %d", ErrBufferFull, n-size, b.cfg.MaxBufferedBytes)
	}
	b.bufferedRows.Add(int64(nrows))
	now := time.Now()
	ws := make([]*writer, len(reqs))
	for i, r := range reqs {
		w, err := b.writer(r.Tenant)
		if err != nil {
			b.uncharge(size, nrows)
			return err
		}
		ws[i] = w
	}
	if b.cfg.WAL == nil {
		for i, r := range reqs {
			if r.Rows.Len() == 0 {
				continue
			}
			p := &pending{rows: r.Rows, durable: true}
			if r.IdempotencyKey != "" {
				b.idem.accept(r.Tenant, r.IdempotencyKey, r.Response, now)
				p.rec = &record{tenant: r.Tenant, idemKey: r.IdempotencyKey, response: r.Response, at: now.Unix()}
			}
			ws[i].add(r.Table, p, false)
		}
		return nil
	}

	ps := make([]*pending, len(reqs))
	recs := make([]*record, len(reqs))
	n := 0
	for i, r := range reqs {
		if r.Rows.Len() == 0 {
			continue
		}
		ps[i] = &pending{rows: r.Rows}
		ws[i].add(r.Table, ps[i], false) // numbers ps[i]; not flushable until durable
		recs[i] = &record{tenant: r.Tenant, table: r.Table, seq: ps[i].seq, at: now.Unix(),
			idemKey: r.IdempotencyKey, response: r.Response, rows: r.Rows}
		n++
	}
	b.walMu.Lock()
	floor := b.cfg.WAL.Floor()
	b.segCount[floor] += n
	b.walMu.Unlock()

	errs := make([]error, len(reqs))
	appendOne := func(i int) {
		buf := recordPool.Get().(*[]byte)
		*buf = encodeRecord((*buf)[:0], recs[i])
		_, errs[i] = b.cfg.WAL.Append(*buf)
		if cap(*buf) <= 1<<20 {
			recordPool.Put(buf)
		}
	}
	var wg sync.WaitGroup
	for w := range min(submitAllWorkers, len(reqs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(reqs); i += submitAllWorkers {
				if recs[i] != nil {
					appendOne(i)
				}
			}
		}()
	}
	wg.Wait()

	var first error
	failed := 0
	for i, p := range ps {
		if p == nil {
			continue
		}
		r := reqs[i]
		if errs[i] != nil {
			b.releaseFloor(floor)
			ws[i].markFailed(p)
			b.uncharge(r.Rows.Size, r.Rows.Len())
			failed++
			if first == nil {
				first = errs[i]
			}
			continue
		}
		p.floor = floor
		if r.IdempotencyKey != "" {
			b.idem.accept(r.Tenant, r.IdempotencyKey, r.Response, now)
			recs[i].rows = nil
			p.rec = recs[i]
		}
		ws[i].markDurable(r.Table, p, false)
	}
	if failed > 0 {
		b.stats.LogErrors.Add(1)
		return fmt.Errorf("%w: %d of %d records not written: %v", ErrLogUnavailable, failed, n, first)
	}
	return nil
}
