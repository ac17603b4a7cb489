package batcher

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// keysTable keeps, in cluster mode, the idempotency keys (Idempotency-Key,
// webhook delivery ids, tracking message ids) of the inserts committed in
// the tenant's database within Config.IdempotencyWindow. JetStream's
// duplicate window (minutes) stops a retry sent to any node before it is
// stored; this table stops one that comes later, on whichever node writes
// the tenant: the insert is acknowledged to the client (its first answer
// is not kept across nodes) and skipped here, so it is stored once. The
// keys are written in the same transaction as the rows.
const keysTable = "_duckgate_keys"

// keysPruneEvery is how often a writer deletes the keys older than the
// window.
const keysPruneEvery = time.Hour

// unseenKeys drops the items whose idempotency key is in keysTable within
// the window, or was used by an earlier item of the same batch.
func (w *writer) unseenKeys(ctx context.Context, conn *sql.Conn, items []*pending) ([]*pending, error) {
	var keys []string
	for _, p := range items {
		if p.key != "" {
			keys = append(keys, p.key)
		}
	}
	if len(keys) == 0 {
		return items, nil
	}
	if !w.keysReady {
		if _, err := conn.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+keysTable+" (idem_key VARCHAR PRIMARY KEY, committed_at TIMESTAMPTZ NOT NULL)"); err != nil {
			return nil, fmt.Errorf("create %s: %w", keysTable, err)
		}
		w.keysReady = true
	}
	since := time.Now().Add(-w.b.cfg.IdempotencyWindow)
	rows, err := conn.QueryContext(ctx, "SELECT idem_key FROM "+keysTable+" WHERE idem_key IN (SELECT unnest(?::VARCHAR[])) AND committed_at >= ?", keys, since)
	if err != nil {
		return nil, fmt.Errorf("read idempotency keys: %w", err)
	}
	seen := make(map[string]bool)
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read idempotency keys: %w", err)
		}
		seen[k] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read idempotency keys: %w", err)
	}
	out := items[:0:0]
	for _, p := range items {
		if p.key != "" {
			if seen[p.key] {
				continue
			}
			seen[p.key] = true
		}
		out = append(out, p)
	}
	if skipped := len(items) - len(out); skipped > 0 {
		w.log.Debug("skipped inserts whose idempotency key was committed before", zap.Int("inserts", skipped))
	}
	return out, nil
}

// saveKeys records the idempotency keys of items, inside the caller's
// transaction, and now and then deletes the keys older than the window.
func (w *writer) saveKeys(ctx context.Context, conn *sql.Conn, items []*pending) error {
	var keys []string
	for _, p := range items {
		if p.key != "" {
			keys = append(keys, p.key)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	if _, err := conn.ExecContext(ctx, "INSERT OR REPLACE INTO "+keysTable+" SELECT k, now() FROM unnest(?::VARCHAR[]) t(k)", keys); err != nil {
		return fmt.Errorf("save idempotency keys: %w", err)
	}
	if time.Since(w.keysPruned) >= keysPruneEvery {
		if _, err := conn.ExecContext(ctx, "DELETE FROM "+keysTable+" WHERE committed_at < ?", time.Now().Add(-w.b.cfg.IdempotencyWindow)); err != nil {
			return fmt.Errorf("prune idempotency keys: %w", err)
		}
		w.keysPruned = time.Now()
	}
	return nil
}
