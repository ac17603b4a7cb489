package batcher

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"duckgate/schema"
)

// QuarantineTable holds what could not be stored as sent, one entry per
// row, each with its reason and an id: rows of batches that failed to
// flush too many times (column_name NULL), and values that did not fit a
// pinned column (column_name, value and expected_type set; the rest of
// their row was stored). Nothing is lost: entries are listed, replayed and
// discarded through the quarantine API, and read with the query API.
const QuarantineTable = "_duckgate_quarantine"

// quarantineColumns are the quarantine table's columns, in order; the
// first four are those of the table before entries had ids, which
// ensureQuarantine upgrades.
const quarantineColumns = `table_name VARCHAR, error VARCHAR, quarantined_at TIMESTAMPTZ, "row" JSON,
	id BIGINT, column_name VARCHAR, "value" JSON, expected_type VARCHAR, replayed_from BIGINT`

// ensureQuarantine creates the quarantine table, or adds the columns of
// ids and pinned values to one made before them (its entries get negative
// ids, which new ids, from nextSeq, never are).
func ensureQuarantine(ctx context.Context, conn *sql.Conn) error {
	var n int
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM duckdb_columns() WHERE database_name = current_database()
		AND schema_name = 'main' AND table_name = ? AND column_name = 'replayed_from'`, QuarantineTable).Scan(&n); err != nil {
		return fmt.Errorf("look for %s: %w", QuarantineTable, err)
	}
	if n > 0 {
		return nil
	}
	old, err := hasTable(ctx, conn, QuarantineTable)
	if err != nil {
		return fmt.Errorf("look for %s: %w", QuarantineTable, err)
	}
	stmts := []string{"CREATE TABLE IF NOT EXISTS " + QuarantineTable + " (" + quarantineColumns + ")"}
	if old {
		stmts = []string{
			"ALTER TABLE " + QuarantineTable + " ADD COLUMN IF NOT EXISTS id BIGINT",
			"ALTER TABLE " + QuarantineTable + " ADD COLUMN IF NOT EXISTS column_name VARCHAR",
			"ALTER TABLE " + QuarantineTable + ` ADD COLUMN IF NOT EXISTS "value" JSON`,
			"ALTER TABLE " + QuarantineTable + " ADD COLUMN IF NOT EXISTS expected_type VARCHAR",
			"ALTER TABLE " + QuarantineTable + " ADD COLUMN IF NOT EXISTS replayed_from BIGINT",
			"UPDATE " + QuarantineTable + " SET id = -(rowid + 1) WHERE id IS NULL",
		}
	}
	for _, q := range stmts {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// replayKeyPrefix begins the idempotency key of a replayed quarantine
// entry. The NUL byte keeps it apart from every key a client can send in a
// header.
const replayKeyPrefix = "\x00quarantine:"

// QuarantineReplayKey is the idempotency key under which the entry id is
// replayed: the same entry is stored at most once however often its replay
// is asked for, and the flush that commits it deletes the entry in the
// same transaction.
func QuarantineReplayKey(id int64) string {
	return replayKeyPrefix + strconv.FormatInt(id, 10)
}

// replayedFrom returns the quarantine entry p replays, if it is one.
func replayedFrom(p *pending) (int64, bool) {
	if p.rec == nil {
		return 0, false
	}
	s, ok := strings.CutPrefix(p.rec.idemKey, replayKeyPrefix)
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(s, 10, 64)
	return id, err == nil
}

// misfit is a cell left out of its row because its pinned column does not
// take its kind: items[item].rows.Cells[cell], of the row Cells[start:end].
type misfit struct {
	item       int
	start, end uint32
	cell       uint32
}

// settleQuarantine, inside a flush's transaction, deletes the quarantine
// entries that items replay (they are stored now, or set aside again
// below) and quarantines the values of aside with their reason.
func (w *writer) settleQuarantine(ctx context.Context, conn *sql.Conn, table string, tbl *schema.Table, items []*pending, aside []misfit) error {
	var ids []int64
	for _, p := range items {
		if id, ok := replayedFrom(p); ok {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 && len(aside) == 0 {
		return nil
	}
	if err := ensureQuarantine(ctx, conn); err != nil {
		return err
	}
	if len(ids) > 0 {
		if _, err := conn.ExecContext(ctx, "DELETE FROM "+QuarantineTable+" WHERE id IN ("+idList(ids)+")"); err != nil {
			return fmt.Errorf("delete replayed quarantine entries: %w", err)
		}
	}
	if len(aside) == 0 {
		return nil
	}
	now := time.Now().UTC()
	cols := tbl.Columns()
	err := conn.Raw(func(dc any) error {
		a, err := duckdb.NewAppender(dc.(driver.Conn), "", "", QuarantineTable)
		if err != nil {
			return err
		}
		var obj []byte
		for _, m := range aside {
			p := items[m.item]
			r := p.rows
			c := &r.Cells[m.cell]
			key := r.Keys[c.Key]
			ci, _ := tbl.Lookup(key)
			typ := cols[ci].Type
			obj = rowObject(obj[:0], r, m.start, m.end)
			why := fmt.Sprintf("value of kind %s does not fit column %s pinned as %s", c.Kind, cols[ci].Name, typ)
			var from any
			if id, ok := replayedFrom(p); ok {
				from = id
			}
			if err := a.AppendRow(table, why, now, json.RawMessage(obj), int64(w.b.nextSeq()), cols[ci].Name,
				json.RawMessage(jsonText(c)), typ.String(), from); err != nil {
				_ = a.Close()
				return err
			}
		}
		return a.Close()
	})
	if err != nil {
		return fmt.Errorf("quarantine values of pinned columns: %w", err)
	}
	// Counted before the commit: a flush that fails after this point and
	// is retried counts its values again (the metric may run ahead).
	w.b.stats.Quarantined.Add(int64(len(aside)))
	return nil
}

// rowObject appends the row r.Cells[start:end] as one JSON object.
func rowObject(dst []byte, r *Rows, start, end uint32) []byte {
	for i := start; i < end; i++ {
		dst = appendOverflow(dst, r.Keys[r.Cells[i].Key], &r.Cells[i])
	}
	if len(dst) == 0 {
		dst = append(dst, '{')
	}
	return append(dst, '}')
}

// idList renders ids for an IN list (integers need no quoting).
func idList(ids []int64) string {
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(id, 10))
	}
	return b.String()
}

// quarantine stores items as JSON rows in QuarantineTable, marking them
// applied, in one transaction.
func (w *writer) quarantine(ctx context.Context, table string, items []*pending, cause error) error {
	return w.withConn(ctx, func(conn *sql.Conn) (err error) {
		if _, err := conn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
			return err
		}
		defer endTx(ctx, conn, &err)
		// Entries replayed by these items are replaced by the new ones.
		if err := w.settleQuarantine(ctx, conn, table, nil, items, nil); err != nil {
			return err
		}
		if err := ensureQuarantine(ctx, conn); err != nil {
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
				var from any
				if id, ok := replayedFrom(p); ok {
					from = id
				}
				start := uint32(0)
				for _, end := range r.Ends {
					obj = rowObject(obj[:0], r, start, end)
					if err := a.AppendRow(table, msg, now, json.RawMessage(obj), int64(w.b.nextSeq()), nil, nil, nil, from); err != nil {
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
	})
}

// QuarantineEntry is one quarantined row or value.
type QuarantineEntry struct {
	ID    int64           `json:"id"`
	Table string          `json:"table"`
	Error string          `json:"error"`
	At    time.Time       `json:"quarantined_at"`
	Row   json.RawMessage `json:"row"`
	// Column, Value and ExpectedType are set for a value that did not fit
	// a pinned column; the rest of its row was stored.
	Column       string          `json:"column,omitempty"`
	Value        json.RawMessage `json:"value,omitempty"`
	ExpectedType string          `json:"expected_type,omitempty"`
	// ReplayedFrom is the entry this one replaced when its replay did not
	// fit either.
	ReplayedFrom int64 `json:"replayed_from,omitempty"`
}

// Replay is what a replay of the entry sends through ingest: the value
// alone under its column for a value entry, the row for a row entry.
func (e *QuarantineEntry) Replay() []byte {
	if e.Column == "" {
		return e.Row
	}
	k, _ := json.Marshal(e.Column)
	out := append([]byte{'{'}, k...)
	out = append(out, ':')
	out = append(out, e.Value...)
	return append(out, '}')
}

// QuarantineSelector chooses entries: all of a tenant's, a table's, or
// those with the given ids (Table and IDs may combine).
type QuarantineSelector struct {
	Table string
	IDs   []int64
}

// where renders sel as a condition with its arguments.
func (sel QuarantineSelector) where() (string, []any) {
	cond, args := "true", []any(nil)
	if sel.Table != "" {
		cond += " AND table_name = ?"
		args = append(args, sel.Table)
	}
	if sel.IDs != nil {
		if len(sel.IDs) == 0 {
			return "false", nil
		}
		cond += " AND id IN (" + idList(sel.IDs) + ")"
	}
	return cond, args
}

// quarantineDB opens the tenant's database for reading the quarantine;
// nil, nil when the tenant never stored anything (its file does not exist)
// or nothing was ever quarantined.
func (b *Batcher) quarantineDB(ctx context.Context, tenant string) (*sql.Conn, func(), error) {
	if _, err := os.Stat(b.pool.Path(tenant)); errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	h, err := b.pool.Acquire(ctx, tenant)
	if err != nil {
		return nil, nil, err
	}
	conn, err := h.DB.Conn(ctx)
	if err != nil {
		h.Release()
		return nil, nil, err
	}
	release := func() { _ = conn.Close(); h.Release() }
	ok, err := hasTable(ctx, conn, QuarantineTable)
	if err != nil || !ok {
		release()
		return nil, nil, err
	}
	var n int
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM duckdb_columns() WHERE database_name = current_database()
		AND schema_name = 'main' AND table_name = ? AND column_name = 'replayed_from'`, QuarantineTable).Scan(&n); err != nil || n == 0 {
		// A quarantine from before entries had ids: its writer upgrades
		// it on the next quarantine or discard; until then list nothing.
		release()
		if err == nil {
			err = b.do(ctx, tenant, func(ctx context.Context, w *writer) error { return w.upgradeQuarantine(ctx) })
			if err == nil {
				return b.quarantineDB(ctx, tenant)
			}
		}
		return nil, nil, err
	}
	return conn, release, nil
}

// upgradeQuarantine gives the entries of an old quarantine table their ids.
func (w *writer) upgradeQuarantine(ctx context.Context) error {
	return w.withConn(ctx, func(conn *sql.Conn) error { return ensureQuarantine(ctx, conn) })
}

// Quarantined lists up to limit entries of sel with an id above after, in
// id order.
func (b *Batcher) Quarantined(ctx context.Context, tenant string, sel QuarantineSelector, after int64, limit int) ([]QuarantineEntry, error) {
	out := []QuarantineEntry{}
	conn, release, err := b.quarantineDB(ctx, tenant)
	if err != nil || conn == nil {
		return out, err
	}
	defer release()
	cond, args := sel.where()
	args = append(args, after, limit)
	rows, err := conn.QueryContext(ctx, `SELECT id, table_name, coalesce(error, ''), quarantined_at, CAST("row" AS VARCHAR),
		coalesce(column_name, ''), CAST("value" AS VARCHAR), coalesce(expected_type, ''), coalesce(replayed_from, 0)
		FROM `+QuarantineTable+` WHERE `+cond+` AND id > ? ORDER BY id LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("list quarantined rows: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e QuarantineEntry
		var row, val sql.NullString
		if err := rows.Scan(&e.ID, &e.Table, &e.Error, &e.At, &row, &e.Column, &val, &e.ExpectedType, &e.ReplayedFrom); err != nil {
			return nil, fmt.Errorf("list quarantined rows: %w", err)
		}
		e.Row = json.RawMessage(orNull(row))
		if val.Valid {
			e.Value = json.RawMessage(val.String)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

func orNull(s sql.NullString) string {
	if !s.Valid || s.String == "" {
		return "null"
	}
	return s.String
}

// QuarantineReason is one table's entries that share a reason.
type QuarantineReason struct {
	Table string    `json:"table"`
	Error string    `json:"error"`
	Rows  int64     `json:"rows"`
	Last  time.Time `json:"last"`
}

// maxQuarantineReasons bounds QuarantineSummary.
const maxQuarantineReasons = 200

// QuarantineSummary counts a tenant's entries by table and reason (at most
// 200 groups, by table, the largest first) and in all.
func (b *Batcher) QuarantineSummary(ctx context.Context, tenant string) (total int64, reasons []QuarantineReason, err error) {
	reasons = []QuarantineReason{}
	conn, release, err := b.quarantineDB(ctx, tenant)
	if err != nil || conn == nil {
		return 0, reasons, err
	}
	defer release()
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM "+QuarantineTable).Scan(&total); err != nil {
		return 0, nil, fmt.Errorf("count quarantined rows: %w", err)
	}
	rows, err := conn.QueryContext(ctx, `SELECT table_name, coalesce(error, ''), count(*), max(quarantined_at) FROM `+QuarantineTable+`
		GROUP BY table_name, error ORDER BY table_name, 3 DESC LIMIT `+strconv.Itoa(maxQuarantineReasons))
	if err != nil {
		return 0, nil, fmt.Errorf("summarize quarantined rows: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r QuarantineReason
		if err := rows.Scan(&r.Table, &r.Error, &r.Rows, &r.Last); err != nil {
			return 0, nil, fmt.Errorf("summarize quarantined rows: %w", err)
		}
		reasons = append(reasons, r)
	}
	return total, reasons, rows.Err()
}

// ReplayProgress says, of the entries ids a replay sent, how many are
// still in the quarantine (their replay is not committed yet) and how many
// new entries replaced them (their replay did not fit either).
func (b *Batcher) ReplayProgress(ctx context.Context, tenant string, ids []int64) (waiting, replaced int64, err error) {
	if len(ids) == 0 {
		return 0, 0, nil
	}
	conn, release, err := b.quarantineDB(ctx, tenant)
	if err != nil || conn == nil {
		return 0, 0, err
	}
	defer release()
	list := idList(ids)
	err = conn.QueryRowContext(ctx, "SELECT count(*) FILTER (WHERE id IN ("+list+")), count(*) FILTER (WHERE replayed_from IN ("+list+")) FROM "+QuarantineTable).Scan(&waiting, &replaced)
	if err != nil {
		return 0, 0, fmt.Errorf("count replayed entries: %w", err)
	}
	return waiting, replaced, nil
}

// DiscardQuarantined deletes the entries of sel and returns how many.
func (b *Batcher) DiscardQuarantined(ctx context.Context, tenant string, sel QuarantineSelector) (int64, error) {
	if _, err := os.Stat(b.pool.Path(tenant)); errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	var n int64
	err := b.do(ctx, tenant, func(ctx context.Context, w *writer) error {
		return w.withConn(ctx, func(conn *sql.Conn) error {
			if ok, err := hasTable(ctx, conn, QuarantineTable); err != nil || !ok {
				return err
			}
			if err := ensureQuarantine(ctx, conn); err != nil {
				return err
			}
			cond, args := sel.where()
			res, err := conn.ExecContext(ctx, "DELETE FROM "+QuarantineTable+" WHERE "+cond, args...)
			if err != nil {
				return fmt.Errorf("discard quarantined rows: %w", err)
			}
			n, _ = res.RowsAffected()
			return nil
		})
	})
	return n, err
}
