package batcher

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"duckgate/schema"
)

// Retention: rows older than their table's retention, by the table's time
// column, are deleted by the tenant's writer goroutine, which owns the
// database's writes. A sweep is a sequence of steps, each one bounded
// statement (a DELETE of at most Config.SweepBatchRows rows, a CHECKPOINT,
// the rewrite of one table), run by the writer between two looks at its
// buffers: a due flush waits for one step at most, never for a whole sweep.
//
// Settings live in the tenant's own database, in retentionTable, like the
// other _duckgate_* tables: they travel and vanish with the data they rule
// (a deleted tenant takes them along, the database file is the whole
// truth), are written by the goroutine that already owns the writes, and
// change in the same store as the rows a sweep deletes. The writer caches
// them after its first read.

// Errors of retention settings.
var (
	// ErrNoTable means the tenant has no table of that name (404).
	ErrNoTable = errors.New("no such table")
	// ErrBadRetention is a retention setting the table cannot take: a time
	// column it lacks or whose type is not a time (400).
	ErrBadRetention = errors.New("bad retention setting")
)

// retentionTable holds the tables' own retention settings.
const retentionTable = "_duckgate_retention"

// compactTable is the name a table is rewritten under during compaction.
const compactTable = "_duckgate_compact"

// Default time columns, in order of preference, for a table without an
// explicit one: the tracking API's received_at and the webhook tables'
// _received_at (duckgate's clock when the request arrived). A plain insert
// adds no time column: such a table is swept once a time_column is set.
var defaultTimeColumns = []string{"received_at", "_received_at"}

// RetentionSetting is a table's own retention setting. Zero fields fall
// back: Retention to the plan's, TimeColumn to the default time column.
type RetentionSetting struct {
	Retention  time.Duration
	TimeColumn string
}

// TableRetention is what applies to a table.
type TableRetention struct {
	// Table is the table's name as stored.
	Table string
	// Setting is the table's own setting.
	Setting RetentionSetting
	// Plan is the plan's retention, the bound of Setting.Retention; 0 is
	// none.
	Plan time.Duration
	// Effective is the retention the sweep applies: the table's, capped by
	// the plan's, else the plan's; 0 keeps rows forever.
	Effective time.Duration
	// TimeColumn is the column the sweep compares ("" if none: no sweep).
	TimeColumn string
	// TimeColumnSource says how it was chosen: "setting", "default" or
	// "none".
	TimeColumnSource string
}

// SweepStats say what one sweep did.
type SweepStats struct {
	// Tables is the number of tables with a retention and a time column.
	Tables int
	// Deleted is the number of rows deleted, in Batches statements.
	Deleted int64
	Batches int
	// Compacted is the number of tables rewritten to give their space
	// back (see compactMinFree).
	Compacted int
	// Checkpointed is true when the sweep ended with a CHECKPOINT.
	Checkpointed bool
}

// retentionState is the writer's part in retention. Fields marked so are
// guarded by writer.mu; the rest belong to the writer goroutine.
type retentionState struct {
	waiters []chan sweepResult // Sweep callers for the next sweep; guarded by writer.mu
	kicked  bool               // a sweep is asked for; guarded by writer.mu

	loaded   bool                        // settings read from the database
	settings map[string]RetentionSetting // by schema.FoldName(table)
	run      *sweepRun                   // the sweep in progress, nil if none
}

type sweepResult struct {
	stats SweepStats
	err   error
}

// sweepTarget is one table a sweep deletes from.
type sweepTarget struct {
	table, column string
	cutoff        time.Time
	deleted       int64
}

// sweepRun is a sweep in progress.
type sweepRun struct {
	waiters []chan sweepResult
	targets []sweepTarget
	next    int // index of the target being swept
	phase   int // sweepDelete, sweepCheckpoint, sweepCompact, sweepFinalCheckpoint
	compact []string
	stats   SweepStats
	err     error
}

const (
	sweepDelete = iota
	sweepCheckpoint
	sweepCompact
	sweepFinalCheckpoint
	sweepDone
)

// compactMinFree: after a sweep's CHECKPOINT, the swept tables are
// rewritten when at least this share of the file's blocks is free and the
// free blocks are at least compactMinFreeBlocks. DuckDB reuses free blocks
// but truncates the file only when its last blocks are free, and a sweep
// frees the oldest rows, which lie at the start: measured on 2M rows with
// 82% deleted, the file stayed 23.6 MB after CHECKPOINT; rewriting the
// table (CREATE TABLE AS, which fills the free blocks at the start, DROP,
// RENAME) and a CHECKPOINT brought it to 4.7 MB.
const (
	compactMinFree       = 0.5
	compactMinFreeBlocks = 8
)

// Sweep runs a whole retention sweep of the tenant's tables now, through
// its writer, and returns what it did. Rows whose time is older than the
// clock (Config.Now) minus their table's retention when the sweep starts
// are deleted. Ingest is not held up: the writer flushes between steps.
func (b *Batcher) Sweep(ctx context.Context, tenant string) (SweepStats, error) {
	w, err := b.writer(tenant)
	if err != nil {
		return SweepStats{}, err
	}
	ch := make(chan sweepResult, 1)
	w.mu.Lock()
	w.ret.waiters = append(w.ret.waiters, ch)
	w.ret.kicked = true
	w.mu.Unlock()
	w.signal()
	select {
	case r := <-ch:
		return r.stats, r.err
	case <-w.done:
		return SweepStats{}, fmt.Errorf("sweep tenant %s: %w", tenant, ErrClosed)
	case <-ctx.Done():
		return SweepStats{}, fmt.Errorf("sweep tenant %s: %w", tenant, ctx.Err())
	}
}

// Retention returns what applies to table. An unknown table is ErrNoTable.
func (b *Batcher) Retention(ctx context.Context, tenant, table string) (TableRetention, error) {
	var tr TableRetention
	if !b.pool.Exists(tenant) { // no database: no table, and none made by asking
		return tr, fmt.Errorf("table %q: %w", table, ErrNoTable)
	}
	err := b.retentionJob(ctx, tenant, func(w *writer) (err error) {
		tr, err = w.tableRetention(table)
		return err
	})
	return tr, err
}

// SetRetention stores table's own setting (the zero setting removes it)
// and returns what applies now. The table's buffered rows are flushed
// first, so a table just inserted into exists. An unknown table is
// ErrNoTable; a time column the table lacks, or not of a time type, is
// ErrBadRetention. The plan's bound is the caller's to check.
func (b *Batcher) SetRetention(ctx context.Context, tenant, table string, s RetentionSetting) (TableRetention, error) {
	if err := b.Flush(ctx, tenant); err != nil {
		return TableRetention{}, err
	}
	var tr TableRetention
	if !b.pool.Exists(tenant) {
		return tr, fmt.Errorf("table %q: %w", table, ErrNoTable)
	}
	err := b.retentionJob(ctx, tenant, func(w *writer) (err error) {
		if err := w.storeRetention(table, s); err != nil {
			return err
		}
		tr, err = w.tableRetention(table)
		return err
	})
	return tr, err
}

// retentionJob runs fn on the tenant's writer goroutine (an op, see
// ops.go) and waits for it.
func (b *Batcher) retentionJob(ctx context.Context, tenant string, fn func(*writer) error) error {
	err := b.do(ctx, tenant, func(_ context.Context, w *writer) error { return fn(w) })
	if err != nil && !errors.Is(err, ErrNoTable) && !errors.Is(err, ErrBadRetention) {
		return fmt.Errorf("retention of tenant %s: %w", tenant, err)
	}
	return err
}

// kickSweep asks the writer for a sweep, nobody waiting.
func (w *writer) kickSweep() {
	w.mu.Lock()
	w.ret.kicked = true
	w.mu.Unlock()
	w.signal()
}

// sweepStepHook, when set by a test, is called on the writer goroutine
// before each step of a sweep with what the sweep has done so far.
var sweepStepHook func(SweepStats)

// retentionStep runs on the writer goroutine after each look at the
// buffers: one step of the sweep in progress (starting one if asked). It
// wakes the writer again while the sweep has steps left.
func (w *writer) retentionStep() {
	w.mu.Lock()
	start := w.ret.kicked && w.ret.run == nil
	var waiters []chan sweepResult
	if start {
		w.ret.kicked = false
		waiters = w.ret.waiters
		w.ret.waiters = nil
	}
	w.mu.Unlock()
	if start {
		w.ret.run = &sweepRun{waiters: waiters}
		if err := w.startSweep(w.ret.run); err != nil {
			w.ret.run.err = err
			w.ret.run.phase = sweepDone
		}
	}
	run := w.ret.run
	if run == nil {
		return
	}
	if run.phase != sweepDone {
		if sweepStepHook != nil {
			sweepStepHook(run.stats)
		}
		if err := w.sweepStep(run); err != nil {
			run.err = err
			run.phase = sweepDone
		}
	}
	if run.phase != sweepDone {
		w.signal()
		return
	}
	w.ret.run = nil
	if run.err != nil {
		w.log.Warn("retention sweep failed", zap.Error(run.err))
	} else if run.stats.Deleted > 0 {
		w.log.Info("retention sweep", zap.Int64("deleted", run.stats.Deleted), zap.Int("batches", run.stats.Batches),
			zap.Int("compacted", run.stats.Compacted))
	}
	w.b.stats.RetentionDeleted.Add(run.stats.Deleted)
	for _, ch := range run.waiters {
		ch <- sweepResult{stats: run.stats, err: run.err}
	}
	w.mu.Lock()
	again := w.ret.kicked
	w.mu.Unlock()
	if again {
		w.signal()
	}
}

// loadRetention reads the tables' settings once.
func (w *writer) loadRetention(conn *sql.Conn) error {
	if w.ret.loaded {
		return nil
	}
	settings := make(map[string]RetentionSetting)
	var n int
	if err := conn.QueryRowContext(w.ctx, `SELECT count(*) FROM duckdb_tables()
		WHERE database_name = current_database() AND schema_name = 'main' AND table_name = ?`, retentionTable).Scan(&n); err != nil {
		return fmt.Errorf("read retention settings: %w", err)
	}
	if n > 0 {
		rows, err := conn.QueryContext(w.ctx, "SELECT tbl, retention_ms, time_column FROM "+retentionTable)
		if err != nil {
			return fmt.Errorf("read retention settings: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var tbl string
			var ms sql.NullInt64
			var col sql.NullString
			if err := rows.Scan(&tbl, &ms, &col); err != nil {
				return fmt.Errorf("read retention settings: %w", err)
			}
			settings[schema.FoldName(tbl)] = RetentionSetting{Retention: time.Duration(ms.Int64) * time.Millisecond, TimeColumn: col.String}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read retention settings: %w", err)
		}
	}
	w.ret.settings = settings
	w.ret.loaded = true
	return nil
}

// tableColumns reads the columns of the tenant's own tables, by folded
// table name; duckgate's tables are left out.
func (w *writer) tableColumns(conn *sql.Conn) (map[string][]colType, error) {
	rows, err := conn.QueryContext(w.ctx, `SELECT c.table_name, c.column_name, c.data_type
		FROM duckdb_columns() c JOIN duckdb_tables() t USING (database_name, schema_name, table_name)
		WHERE c.database_name = current_database() AND c.schema_name = 'main' AND NOT t.temporary
		ORDER BY c.table_name, c.column_index`)
	if err != nil {
		return nil, fmt.Errorf("list columns: %w", err)
	}
	defer rows.Close()
	out := make(map[string][]colType)
	for rows.Next() {
		var t, c, typ string
		if err := rows.Scan(&t, &c, &typ); err != nil {
			return nil, fmt.Errorf("list columns: %w", err)
		}
		if schema.IsReserved(t) {
			continue
		}
		out[schema.FoldName(t)] = append(out[schema.FoldName(t)], colType{table: t, name: c, typ: typ})
	}
	return out, rows.Err()
}

type colType struct{ table, name, typ string }

// sameName reports whether two names are one to DuckDB, which folds
// ASCII case only.
func sameName(a, b string) bool { return schema.FoldName(a) == schema.FoldName(b) }

// isTimeType reports whether a column of DuckDB type typ can be compared
// with a point in time.
func isTimeType(typ string) bool {
	switch strings.ToUpper(typ) {
	case "TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ", "TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S", "DATE":
		return true
	}
	return false
}

// resolve works out what applies to a table of columns cols.
func (w *writer) resolve(cols []colType) TableRetention {
	tr := TableRetention{Table: cols[0].table, TimeColumnSource: "none"}
	if w.b.cfg.PlanRetention != nil {
		tr.Plan = w.b.cfg.PlanRetention(w.tenant)
	}
	tr.Setting = w.ret.settings[schema.FoldName(tr.Table)]
	tr.Effective = tr.Plan
	if r := tr.Setting.Retention; r > 0 && (tr.Plan == 0 || r < tr.Plan) {
		tr.Effective = r
	}
	find := func(name string) (string, bool) {
		for _, c := range cols {
			if sameName(c.name, name) && isTimeType(c.typ) {
				return c.name, true
			}
		}
		return "", false
	}
	if tr.Setting.TimeColumn != "" {
		if c, ok := find(tr.Setting.TimeColumn); ok {
			tr.TimeColumn, tr.TimeColumnSource = c, "setting"
		}
		return tr // a set column that is gone or no longer a time: no sweep
	}
	for _, d := range defaultTimeColumns {
		if c, ok := find(d); ok {
			tr.TimeColumn, tr.TimeColumnSource = c, "default"
			break
		}
	}
	return tr
}

// retentionColumns loads the tenant's retention settings and returns
// table's columns, or ErrNoTable.
func (w *writer) retentionColumns(conn *sql.Conn, table string) ([]colType, error) {
	if err := w.loadRetention(conn); err != nil {
		return nil, err
	}
	cols, err := w.tableColumns(conn)
	if err != nil {
		return nil, err
	}
	c := cols[schema.FoldName(table)]
	if len(c) == 0 {
		return nil, fmt.Errorf("table %q: %w", table, ErrNoTable)
	}
	return c, nil
}

// tableRetention answers Retention on the writer goroutine.
func (w *writer) tableRetention(table string) (TableRetention, error) {
	var tr TableRetention
	err := w.withConn(w.ctx, func(conn *sql.Conn) error {
		c, err := w.retentionColumns(conn, table)
		if err != nil {
			return err
		}
		tr = w.resolve(c)
		return nil
	})
	return tr, err
}

// storeRetention stores table's setting on the writer goroutine.
func (w *writer) storeRetention(table string, s RetentionSetting) error {
	return w.withConn(w.ctx, func(conn *sql.Conn) error {
		c, err := w.retentionColumns(conn, table)
		if err != nil {
			return err
		}
		name := c[0].table
		if s.TimeColumn != "" {
			found := false
			for _, col := range c {
				if sameName(col.name, s.TimeColumn) {
					if !isTimeType(col.typ) {
						return fmt.Errorf("%w: column %q of %s is %s; the time column must be a TIMESTAMPTZ, TIMESTAMP or DATE", ErrBadRetention, col.name, name, col.typ)
					}
					s.TimeColumn, found = col.name, true
				}
			}
			if !found {
				return fmt.Errorf("%w: table %s has no column %q", ErrBadRetention, name, s.TimeColumn)
			}
		}
		key := schema.FoldName(name)
		if err := w.writeSetting(conn, name, s); err != nil {
			return fmt.Errorf("store retention of %s: %w", name, err)
		}
		if s == (RetentionSetting{}) {
			delete(w.ret.settings, key)
			return nil
		}
		w.ret.settings[key] = s
		return nil
	})
}

// writeSetting replaces table's row of retentionTable by s (none for the
// zero setting) in one transaction. The table has no key constraint: one
// row per table is this function's doing, and DuckDB's index checks on a
// delete and insert of one key in one transaction are best not relied on.
func (w *writer) writeSetting(conn *sql.Conn, table string, s RetentionSetting) (err error) {
	if _, err := conn.ExecContext(w.ctx, "BEGIN TRANSACTION"); err != nil {
		return err
	}
	defer endTx(w.ctx, conn, &err)
	if _, err := conn.ExecContext(w.ctx, "CREATE TABLE IF NOT EXISTS "+retentionTable+
		" (tbl VARCHAR NOT NULL, retention_ms BIGINT, time_column VARCHAR)"); err != nil {
		return err
	}
	// Table names are ASCII: lower() is schema.FoldName.
	if _, err := conn.ExecContext(w.ctx, "DELETE FROM "+retentionTable+" WHERE lower(tbl) = ?", schema.FoldName(table)); err != nil {
		return err
	}
	if s == (RetentionSetting{}) {
		return nil
	}
	var ms, col any
	if s.Retention > 0 {
		ms = s.Retention.Milliseconds()
	}
	if s.TimeColumn != "" {
		col = s.TimeColumn
	}
	_, err = conn.ExecContext(w.ctx, "INSERT INTO "+retentionTable+" VALUES (?, ?, ?)", table, ms, col)
	return err
}

// startSweep lists what the sweep deletes from. A tenant whose plan and
// tables set no retention is not even opened once its settings are known.
func (w *writer) startSweep(run *sweepRun) error {
	plan := time.Duration(0)
	if w.b.cfg.PlanRetention != nil {
		plan = w.b.cfg.PlanRetention(w.tenant)
	}
	if w.ret.loaded && len(w.ret.settings) == 0 && plan == 0 {
		run.phase = sweepDone
		return nil
	}
	if !w.b.pool.Exists(w.tenant) {
		run.phase = sweepDone
		return nil
	}
	now := w.b.cfg.Now()
	return w.withConn(w.ctx, func(conn *sql.Conn) error {
		if err := w.loadRetention(conn); err != nil {
			return err
		}
		tables, err := w.tableColumns(conn)
		if err != nil {
			return err
		}
		for _, cols := range tables {
			tr := w.resolve(cols)
			if tr.Effective == 0 || tr.TimeColumn == "" {
				continue
			}
			run.targets = append(run.targets, sweepTarget{table: tr.Table, column: tr.TimeColumn, cutoff: now.Add(-tr.Effective).UTC()})
		}
		run.stats.Tables = len(run.targets)
		if len(run.targets) == 0 {
			run.phase = sweepDone
		}
		return nil
	})
}

// sweepStep runs one bounded step of run, in a flush slot (see
// MaxConcurrentFlushes).
func (w *writer) sweepStep(run *sweepRun) error {
	select {
	case w.b.flushSlots <- struct{}{}:
	case <-w.ctx.Done():
		return w.ctx.Err()
	}
	defer func() { <-w.b.flushSlots }()
	return w.withConn(w.ctx, func(conn *sql.Conn) error {
		switch run.phase {
		case sweepDelete:
			t := &run.targets[run.next]
			// The time predicate outside too lets DuckDB skip the row
			// groups with nothing expired (their min/max), so a batch costs
			// about the expired rows, not the table: on 10,000,000 rows with
			// 2,678,400 expired, 54 batches took 1.2 s, the longest step
			// 96 ms (TestRetentionSweep10M); the same DELETEs without the
			// outer predicate, run by hand, 3.6 s and 0.36 s.
			tbl, col := schema.QuoteIdent(t.table), schema.QuoteIdent(t.column)
			q := "DELETE FROM " + tbl + " WHERE " + col + " < ?::TIMESTAMPTZ AND rowid IN (SELECT rowid FROM " + tbl +
				" WHERE " + col + " < ?::TIMESTAMPTZ LIMIT " + fmt.Sprint(w.b.cfg.SweepBatchRows) + ")"
			res, err := conn.ExecContext(w.ctx, q, t.cutoff, t.cutoff)
			if err != nil {
				return fmt.Errorf("retention of %s: %w", t.table, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("retention of %s: %w", t.table, err)
			}
			t.deleted += n
			run.stats.Deleted += n
			run.stats.Batches++
			if n < int64(w.b.cfg.SweepBatchRows) {
				if t.deleted > 0 {
					run.compact = append(run.compact, t.table)
				}
				run.next++
			}
			if run.next == len(run.targets) {
				run.phase = sweepCheckpoint
				if run.stats.Deleted == 0 {
					run.phase = sweepDone
				}
			}
		case sweepCheckpoint:
			if _, err := conn.ExecContext(w.ctx, "CHECKPOINT"); err != nil {
				return fmt.Errorf("checkpoint after retention: %w", err)
			}
			run.stats.Checkpointed = true
			total, free, err := w.noteFree(conn)
			if err != nil {
				return err
			}
			run.phase = sweepDone
			if free >= compactMinFreeBlocks && float64(free) >= compactMinFree*float64(total) && len(run.compact) > 0 {
				run.phase = sweepCompact
			}
		case sweepCompact:
			table := run.compact[0]
			run.compact = run.compact[1:]
			if err := w.compact(conn, table); err != nil {
				return err
			}
			run.stats.Compacted++
			if len(run.compact) == 0 {
				run.phase = sweepFinalCheckpoint
			}
		case sweepFinalCheckpoint:
			if _, err := conn.ExecContext(w.ctx, "CHECKPOINT"); err != nil {
				return fmt.Errorf("checkpoint after compaction: %w", err)
			}
			if _, _, err := w.noteFree(conn); err != nil {
				return err
			}
			run.phase = sweepDone
		}
		return nil
	})
}

// noteFree measures the free blocks of the database file after a
// CHECKPOINT and tells the pool, whose Used (the storage quota's measure)
// then counts them as gone. It returns the file's total and free blocks.
func (w *writer) noteFree(conn *sql.Conn) (total, free int64, err error) {
	var blockSize int64
	if err := conn.QueryRowContext(w.ctx, "SELECT block_size, total_blocks, free_blocks FROM pragma_database_size()").Scan(&blockSize, &total, &free); err != nil {
		return 0, 0, fmt.Errorf("database size: %w", err)
	}
	w.b.pool.NoteFree(w.tenant, free*blockSize)
	return total, free, nil
}

// compact rewrites table in one transaction so that its rows move into
// the free blocks at the start of the file and the next CHECKPOINT can
// truncate the end: CREATE TABLE AS keeps the columns, their types and
// the rows' order (tenant tables have no constraints or defaults).
func (w *writer) compact(conn *sql.Conn, table string) (err error) {
	if _, err := conn.ExecContext(w.ctx, "BEGIN TRANSACTION"); err != nil {
		return fmt.Errorf("compact %s: %w", table, err)
	}
	defer func() {
		if err != nil {
			if rbErr := rollback(w.ctx, conn); rbErr != nil {
				err = errors.Join(err, rbErr)
			}
			return
		}
		if _, cErr := conn.ExecContext(w.ctx, "COMMIT"); cErr != nil {
			err = fmt.Errorf("compact %s: commit: %w", table, cErr)
			_ = rollback(w.ctx, conn)
		}
	}()
	q := schema.QuoteIdent(table)
	for _, s := range []string{
		"CREATE TABLE " + compactTable + " AS SELECT * FROM " + q,
		"DROP TABLE " + q,
		"ALTER TABLE " + compactTable + " RENAME TO " + q,
	} {
		if _, err := conn.ExecContext(w.ctx, s); err != nil {
			return fmt.Errorf("compact %s: %w", table, err)
		}
	}
	return nil
}

// sweeper kicks a sweep of every tenant every Config.SweepInterval: those
// with a writer and, through Config.Tenants, those with a database file.
// Close stops it.
func (b *Batcher) sweeper() {
	defer close(b.sweeperDone)
	t := time.NewTicker(b.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		}
		b.kickSweeps()
	}
}

// kickSweeps asks every tenant's writer for a sweep.
func (b *Batcher) kickSweeps() {
	var ids []string
	if b.cfg.Tenants != nil {
		for _, id := range b.cfg.Tenants() {
			if b.pool.Exists(id) {
				ids = append(ids, id)
			}
		}
	}
	b.mu.RLock()
	for id := range b.writers {
		ids = append(ids, id)
	}
	b.mu.RUnlock()
	for _, id := range ids {
		w, err := b.writer(id)
		if err != nil {
			return // closed
		}
		w.kickSweep()
	}
}
