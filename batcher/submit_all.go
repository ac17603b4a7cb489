package batcher

import (
	"fmt"
	"time"
)

// SubmitAll queues several inserts, of one or several tenants and tables,
// with one write-ahead log write: the records share one group commit and
// one fsync, and either all are acknowledged or, on error, none. It
// returns once they are durable (or, without a log, buffered), never
// waiting for DuckDB; Request.Wait is ignored. The tracking API uses it to
// store each event as its own record with its own idempotency key (its
// messageId) without an fsync per event.
//
// Each record is replayed on its own, so a crash that tears the log's last
// write may keep some of the records and not others; none was
// acknowledged then, and a retry stores the missing ones, skipping those
// whose key was replayed.
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
	ps := make([]*pending, len(reqs))
	if b.cfg.WAL == nil {
		for i, r := range reqs {
			if r.Rows.Len() == 0 {
				continue
			}
			ps[i] = &pending{rows: r.Rows, durable: true}
			if r.IdempotencyKey != "" {
				b.idem.accept(r.Tenant, r.IdempotencyKey, r.Response, now)
				ps[i].rec = &record{tenant: r.Tenant, idemKey: r.IdempotencyKey, response: r.Response, at: now.Unix()}
			}
			ws[i].add(r.Table, ps[i], false)
		}
		return nil
	}

	recs := make([][]byte, 0, len(reqs))
	kept := make([]*record, len(reqs))
	for i, r := range reqs {
		if r.Rows.Len() == 0 {
			continue
		}
		ps[i] = &pending{rows: r.Rows}
		ws[i].add(r.Table, ps[i], false) // numbers ps[i]; not flushable until durable
		kept[i] = &record{tenant: r.Tenant, table: r.Table, seq: ps[i].seq, at: now.Unix(),
			idemKey: r.IdempotencyKey, response: r.Response, rows: r.Rows}
		recs = append(recs, encodeRecord(nil, kept[i]))
	}
	b.walMu.Lock()
	floor := b.cfg.WAL.Floor()
	b.segCount[floor] += len(recs)
	b.walMu.Unlock()
	_, err := b.cfg.WAL.AppendBatch(recs)
	if err != nil {
		for i, p := range ps {
			if p != nil {
				b.releaseFloor(floor)
				ws[i].markFailed(p)
			}
		}
		b.uncharge(size, nrows)
		b.stats.LogErrors.Add(1)
		return fmt.Errorf("%w: %v", ErrLogUnavailable, err)
	}
	for i, p := range ps {
		if p == nil {
			continue
		}
		r := reqs[i]
		p.floor = floor
		if r.IdempotencyKey != "" {
			b.idem.accept(r.Tenant, r.IdempotencyKey, r.Response, now)
			kept[i].rows = nil
			p.rec = kept[i]
		}
		ws[i].markDurable(r.Table, p, false)
	}
	return nil
}
