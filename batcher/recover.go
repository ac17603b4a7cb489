package batcher

import (
	"context"
	"fmt"
	"sort"

	"go.uber.org/zap"

	"duckgate/wal"
)

// RecoveryStats says what Recover found in the write-ahead log.
type RecoveryStats struct {
	// Records is the number of intact records in the log.
	Records int
	// Replayed records were not yet committed and were queued again.
	Replayed int
	// Skipped records were already committed in DuckDB.
	Skipped int
	// Dropped records belonged to deleted tenants or could not be decoded.
	Dropped int
	// Rows is the number of rows replayed.
	Rows int
	// TornTail is true when the newest log segment ended in a damaged
	// record: a write cut by a crash, or damage to a tail that may have
	// been acknowledged (the log cannot tell the two apart). TornBytes
	// were cut away.
	TornTail  bool
	TornBytes int64
	// Corrupt, when not empty, says where replay stopped at a damaged
	// record; what came before it was recovered.
	Corrupt string
	// FlushErrors counts tenants whose replayed rows could not be committed
	// at start; they stay queued and durable, and are retried.
	FlushErrors int
}

// Recover replays the write-ahead log: inserts not yet committed in DuckDB
// are queued again in their original order and flushed; inserts already
// committed (their number is at or below the one their table recorded in
// the same transaction as the rows) are skipped, so nothing is lost and
// nothing is stored twice. Call it once, after New and before serving.
func (b *Batcher) Recover(ctx context.Context) (RecoveryStats, error) {
	var st RecoveryStats
	l := b.cfg.WAL
	if l == nil {
		return st, nil
	}
	applied := make(map[string]map[string]uint64)
	type item struct {
		rec   *record
		floor uint64
	}
	var items []item
	var keys []*record // idempotency keys of committed records, to save again
	rs, err := l.Replay(func(pos wal.Position, raw []byte) error {
		rec, err := decodeRecord(raw)
		if err != nil {
			st.Dropped++
			b.log.Error("dropping an undecodable log record", zap.Stringer("position", pos), zap.Error(err))
			return nil
		}
		if b.cfg.TenantExists != nil && !b.cfg.TenantExists(rec.tenant) {
			st.Dropped++
			return nil
		}
		ap, ok := applied[rec.tenant]
		if !ok {
			if ap, err = b.loadApplied(ctx, rec.tenant); err != nil {
				return err
			}
			applied[rec.tenant] = ap
		}
		if rec.idemKey != "" {
			b.idem.accept(rec.tenant, rec.idemKey, rec.response, timeUnix(rec.at))
		}
		if rec.seq <= ap[rec.table] {
			st.Skipped++
			if rec.idemKey != "" {
				keys = append(keys, rec)
			}
			return nil
		}
		items = append(items, item{rec: rec, floor: pos.Segment})
		return nil
	})
	st.Records, st.TornTail, st.TornBytes = rs.Records, rs.TornTail, rs.TornBytes
	if rs.Corrupt != nil {
		st.Corrupt = fmt.Sprintf("%s: %v", rs.Corrupt, rs.CorruptErr)
	}
	if err != nil {
		return st, fmt.Errorf("replay write-ahead log: %w", err)
	}
	if err := b.idem.persist(ctx, keys); err != nil {
		return st, err
	}
	// A table's inserts must enter its buffer in number order.
	sort.SliceStable(items, func(i, j int) bool { return items[i].rec.seq < items[j].rec.seq })
	for _, it := range items {
		w, err := b.writer(it.rec.tenant)
		if err != nil {
			return st, err
		}
		p := &pending{rows: it.rec.rows, seq: it.rec.seq, floor: it.floor, durable: true}
		if it.rec.idemKey != "" {
			p.rec = it.rec
		}
		b.walMu.Lock()
		b.segCount[it.floor]++
		b.walMu.Unlock()
		b.buffered.Add(it.rec.rows.Size)
		b.bufferedRows.Add(int64(it.rec.rows.Len()))
		w.add(it.rec.table, p, false)
		st.Replayed++
		st.Rows += it.rec.rows.Len()
	}
	// Commit what was replayed before serving, all tenants at once (at most
	// MaxConcurrentFlushes flushes at a time), and let the log go.
	b.mu.Lock()
	ws := make([]*writer, 0, len(b.writers))
	for _, w := range b.writers {
		ws = append(ws, w)
	}
	b.mu.Unlock()
	for i, err := range flushWriters(ctx, ws) {
		// A batch DuckDB refuses stays in its buffer (and in the log): the
		// writer retries it with backoff and quarantines it in the end. It
		// must not keep the whole server from starting, nor must a tenant
		// whose flush outlasts ctx.
		if err != nil {
			st.FlushErrors++
			b.log.Error("replayed rows not committed yet; the writer keeps retrying", zap.String("tenant", ws[i].tenant), zap.Error(err))
		}
	}
	b.releaseLog()
	return st, nil
}

// loadApplied reads the numbers of the last committed insert per table.
func (b *Batcher) loadApplied(ctx context.Context, tenant string) (map[string]uint64, error) {
	out := make(map[string]uint64)
	h, err := b.pool.Acquire(ctx, tenant)
	if err != nil {
		return nil, fmt.Errorf("recover tenant %s: %w", tenant, err)
	}
	defer h.Release()
	var n int
	if err := h.DB.QueryRowContext(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' AND table_name = ?`, appliedTable).Scan(&n); err != nil {
		return nil, fmt.Errorf("recover tenant %s: %w", tenant, err)
	}
	if n == 0 {
		return out, nil
	}
	rows, err := h.DB.QueryContext(ctx, "SELECT tbl, seq FROM "+appliedTable)
	if err != nil {
		return nil, fmt.Errorf("recover tenant %s: %w", tenant, err)
	}
	defer rows.Close()
	for rows.Next() {
		var t string
		var s uint64
		if err := rows.Scan(&t, &s); err != nil {
			return nil, fmt.Errorf("recover tenant %s: %w", tenant, err)
		}
		out[t] = s
	}
	return out, rows.Err()
}
