package batcher

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// QuarantineTable holds batches that failed to flush too many times: one
// row per ingested row, as JSON, with the table it was meant for and the
// error. Users read it with the query API; nothing is lost.
const QuarantineTable = "_duckgate_quarantine"

// quarantine stores items as JSON rows in QuarantineTable, marking them
// applied, in one transaction.
func (w *writer) quarantine(ctx context.Context, table string, items []*pending, cause error) (err error) {
	defer w.b.versions.bump(w.tenant) // last, after COMMIT or ROLLBACK: see DataVersion
	h, err := w.b.pool.Acquire(ctx, w.tenant)
	if err != nil {
		return err
	}
	defer h.Release()
	conn, err := h.DB.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			if rbErr := rollback(ctx, conn); rbErr != nil {
				err = errors.Join(err, rbErr)
			}
			return
		}
		if _, cerr := conn.ExecContext(ctx, "COMMIT"); cerr != nil {
			err = fmt.Errorf("commit: %w", cerr)
			_ = rollback(ctx, conn) // in case the transaction is still open
		}
	}()
	if _, err := conn.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+QuarantineTable+
		" (table_name VARCHAR, error VARCHAR, quarantined_at TIMESTAMPTZ, row JSON)"); err != nil {
		return err
	}
	now := time.Now().UTC()
	msg := cause.Error()
	err = conn.Raw(func(dc any) error {
		a, err := duckdb.NewAppender(dc.(driver.Conn), "", "", QuarantineTable)
		if err != nil {
			return err
		}
		var obj []byte
		for _, p := range items {
			r := p.rows
			start := uint32(0)
			for _, end := range r.Ends {
				obj = obj[:0]
				for i := start; i < end; i++ {
					obj = appendOverflow(obj, r.Keys[r.Cells[i].Key], &r.Cells[i])
				}
				if len(obj) == 0 {
					obj = append(obj, '{')
				}
				obj = append(obj, '}')
				if err := a.AppendRow(table, msg, now, json.RawMessage(obj)); err != nil {
					_ = a.Close()
					return err
				}
				start = end
			}
		}
		return a.Close()
	})
	if err != nil {
		return err
	}
	return w.markApplied(ctx, conn, table, items[len(items)-1].seq)
}
