package batcher

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
	"go.uber.org/zap"

	"duckgate/jsonstr"
	"duckgate/schema"
	"duckgate/tenantdb"
)

// pending is one Insert waiting in a table's buffer.
type pending struct {
	rows   *Rows
	ticket *Ticket // nil unless the client waits for the commit
	seq    uint64  // set by writer.add
	floor  uint64  // log segment noted for the record; 0 without a log
	rec    *record // set when the insert carries an Idempotency-Key
	done   func()  // Apply's callback, called once committed; nil otherwise
	key    string  // Apply's idempotency key, checked against keysTable

	// Guarded by writer.mu: a pending is flushable once durable; a failed
	// one (its log write failed) is dropped.
	durable, failed bool
}

// tableBuf is the buffer of one table.
type tableBuf struct {
	items   []*pending
	rows    int
	bytes   int64
	since   time.Time // arrival of the oldest item
	urgent  bool      // a client waits: flush now
	fails   int       // consecutive failed flushes
	retryAt time.Time // no flush before this after a failure
	flow    flow      // how fast rows arrive; see adaptive.go
}

// writer owns all writes to one tenant's database.
type writer struct {
	b      *Batcher
	tenant string
	log    *zap.Logger
	wake   chan struct{} // 1-slot: "look at the buffers"
	quit   chan struct{} // closed by quitOnce: flush once more and return
	done   chan struct{} // closed when run returns
	// ctx bounds every wait and statement of the writer goroutine; it is
	// canceled when whoever stops the writer gives up waiting.
	ctx     context.Context
	cancel  context.CancelFunc
	quitter sync.Once // closes quit

	mu     sync.Mutex
	tables map[string]*tableBuf // guarded by mu
	reqs   []chan error         // flushAll callers waiting; guarded by mu
	ops    []*op                // work for the writer goroutine (ops.go); guarded by mu

	// Owned by the writer goroutine.
	schemas      map[string]*schema.Table // known table schemas; nil entry = unknown
	appliedReady bool                     // appliedTable exists
	keysReady    bool                     // keysTable exists
	keysPruned   time.Time                // last deletion of old keys from keysTable
	appliedRows  map[string]bool          // tables whose appliedTable row was written (see markApplied)
	ret          retentionState           // settings calls and sweeps (retention.go)
}

func newWriter(b *Batcher, tenant string) *writer {
	ctx, cancel := context.WithCancel(b.ctx)
	return &writer{
		ctx:     ctx,
		cancel:  cancel,
		b:       b,
		tenant:  tenant,
		log:     b.log.With(zap.String("tenant", tenant)),
		wake:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
		tables:  make(map[string]*tableBuf),
		schemas: make(map[string]*schema.Table),
	}
}

func (w *writer) signal() {
	select {
	case w.wake <- struct{}{}:
	default: // the writer is already awake
	}
}

// add queues p on table's buffer, numbering it, and wakes the writer when
// the buffer is new (to arm its age timer), full, or urgent.
func (w *writer) add(table string, p *pending, urgent bool) {
	cfg := &w.b.cfg
	w.mu.Lock()
	buf := w.tables[table]
	if buf == nil {
		buf = &tableBuf{}
		w.tables[table] = buf
	}
	if len(buf.items) == 0 {
		buf.since = time.Now()
	}
	if p.seq == 0 { // a replayed insert keeps its number
		p.seq = w.b.nextSeq()
	}
	buf.items = append(buf.items, p)
	buf.rows += p.rows.Len()
	buf.bytes += p.rows.Size
	buf.urgent = buf.urgent || urgent
	wake := len(buf.items) == 1 || urgent || buf.rows >= cfg.FlushRows || buf.bytes >= cfg.FlushBytes
	w.mu.Unlock()
	if wake {
		w.signal()
	}
}

// markDurable makes p flushable once its log record is fsynced.
func (w *writer) markDurable(table string, p *pending, urgent bool) {
	w.mu.Lock()
	p.durable = true
	buf := w.tables[table]
	buf.urgent = buf.urgent || urgent
	wake := urgent || buf.rows >= w.b.cfg.FlushRows || buf.bytes >= w.b.cfg.FlushBytes
	w.mu.Unlock()
	if wake {
		w.signal()
	}
}

// markFailed drops p: its log write failed, so it was never acknowledged.
func (w *writer) markFailed(p *pending) {
	w.mu.Lock()
	p.failed = true
	w.mu.Unlock()
}

// flushAll asks the writer to flush every buffer and waits for it until ctx
// ends.
func (w *writer) flushAll(ctx context.Context) error {
	return w.waitFlush(ctx, w.requestFlush())
}

// requestFlush asks the writer to flush every buffer; waitFlush waits for
// the answer on the returned channel.
func (w *writer) requestFlush() chan error {
	ch := make(chan error, 1) // the writer never blocks on a caller gone
	w.mu.Lock()
	w.reqs = append(w.reqs, ch)
	w.mu.Unlock()
	w.signal()
	return ch
}

func (w *writer) waitFlush(ctx context.Context, ch chan error) error {
	select {
	case err := <-ch:
		return err
	case <-w.done:
		select {
		case err := <-ch: // answered by its last flush
			return err
		default:
			return fmt.Errorf("flush tenant %s: %w", w.tenant, ErrClosed)
		}
	case <-ctx.Done():
		return fmt.Errorf("flush tenant %s: %w", w.tenant, ctx.Err())
	}
}

// quitOnce tells the writer to flush once more and return; stopWriters
// waits for it.
func (w *writer) quitOnce() {
	w.quitter.Do(func() { close(w.quit) })
}

// run is the writer goroutine; its starter closes done when it returns.
func (w *writer) run() {
	defer w.cancel()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-w.wake:
		case <-timer.C:
		case <-w.quit:
			w.flushDue(true)
			w.runOps()
			return
		}
		w.runOps()
		if next := w.flushDue(false); next > 0 {
			timer.Reset(next)
		}
		w.retentionStep() // one bounded step between flushes
	}
}

// batch is one table's items taken out of its buffer for a flush.
type batch struct {
	table string
	items []*pending
	buf   *tableBuf
}

// flushDue flushes the buffers that are due (all of them if force or a
// flushAll is waiting) and returns how long until the next one is due, 0 if
// no buffer is waiting.
func (w *writer) flushDue(force bool) time.Duration {
	cfg := &w.b.cfg
	now := time.Now()
	interval := w.interval()
	load := w.b.load.pressure()
	w.mu.Lock()
	reqs := w.reqs
	w.reqs = nil
	all := force || len(reqs) > 0
	var due []batch
	for name, buf := range w.tables {
		if len(buf.items) == 0 {
			continue
		}
		if !all && now.Before(buf.retryAt) {
			continue
		}
		if all || buf.urgent || buf.fails > 0 || buf.rows >= cfg.FlushRows || buf.bytes >= cfg.FlushBytes || now.Sub(buf.since) >= w.dueAfterLocked(buf, interval, load) {
			if items := takeLocked(buf, now); len(items) > 0 {
				buf.flow.note(items, now)
				due = append(due, batch{table: name, items: items, buf: buf})
			}
		}
	}
	w.mu.Unlock()

	var errs []error
	for _, bt := range due {
		if err := w.flushTable(bt); err != nil {
			errs = append(errs, err)
		}
	}
	err := errors.Join(errs...)
	if err == nil && len(reqs) > 0 && w.blocked() {
		// An acknowledged insert still waits behind one whose log write is
		// in flight: a flushAll must not return before it is committed.
		// Ask again on the next round (in about a millisecond).
		w.mu.Lock()
		w.reqs = append(reqs, w.reqs...)
		w.mu.Unlock()
		reqs = nil
	}
	for _, ch := range reqs {
		ch <- err
	}
	return w.nextDue()
}

// blocked reports whether a durable insert waits in a buffer behind one
// whose log write is in flight.
func (w *writer) blocked() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, buf := range w.tables {
		if buf.urgent {
			return true
		}
	}
	return false
}

// takeLocked removes the flushable head of buf: every item up to the first
// whose log write is still in flight, so that the items committed are
// always all those numbered up to the last one. Failed items are dropped.
func takeLocked(buf *tableBuf, now time.Time) []*pending {
	n := 0
	for n < len(buf.items) && (buf.items[n].durable || buf.items[n].failed) {
		n++
	}
	var out []*pending
	for _, p := range buf.items[:n] {
		buf.rows -= p.rows.Len()
		buf.bytes -= p.rows.Size
		if !p.failed {
			out = append(out, p)
		}
	}
	// The flushed items must not stay reachable through the buffer's
	// backing array, which the next appends reuse: clear their slots.
	clear(buf.items[:n])
	buf.items = buf.items[n:]
	// Durable items left behind an in-flight one are flushed as soon as it
	// settles (a millisecond or so), not an interval later.
	buf.urgent = false
	for _, p := range buf.items {
		if p.durable {
			buf.urgent = true
			break
		}
	}
	if len(buf.items) > 0 {
		buf.since = now
	}
	return out
}

// flushTable flushes one batch, settles its tickets on success and puts it
// back at the head of its buffer on failure, to be retried with backoff.
func (w *writer) flushTable(bt batch) error {
	cfg := &w.b.cfg
	start := time.Now()
	n, size, err := w.commitInSlot(bt)
	var ticketErr error
	if err != nil && w.ctx.Err() == nil && bt.buf.fails+1 >= cfg.QuarantineAfter {
		// The batch keeps failing: move it aside rather than block the
		// table forever. Nothing is dropped; the rows wait, as JSON, in
		// _duckgate_quarantine with the error.
		if qerr := w.quarantineInSlot(bt, err); qerr != nil {
			err = errors.Join(err, fmt.Errorf("quarantine: %w", qerr))
		} else {
			w.log.Error("batch quarantined after repeated flush failures", zap.String("table", bt.table),
				zap.Int("rows", n), zap.Int("attempts", bt.buf.fails+1), zap.Error(err))
			w.b.stats.Quarantined.Add(int64(n))
			ticketErr = fmt.Errorf("rows moved to table %s after %d failed flushes: %w", QuarantineTable, bt.buf.fails+1, err)
			err = nil
		}
	}
	if err != nil {
		w.b.stats.FlushErrors.Add(1)
		w.mu.Lock()
		buf := bt.buf
		buf.items = append(bt.items, buf.items...)
		buf.rows, buf.bytes = 0, 0
		for _, p := range buf.items {
			buf.rows += p.rows.Len()
			buf.bytes += p.rows.Size
		}
		if w.ctx.Err() == nil { // an aborted flush is no failure of the batch
			buf.fails++
		}
		backoff := cfg.RetryBackoff << min(max(buf.fails, 1)-1, 10)
		backoff = min(backoff, 30*time.Second)
		buf.retryAt = time.Now().Add(backoff)
		w.mu.Unlock()
		w.log.Error("flush failed; batch kept for retry", zap.String("table", bt.table),
			zap.Int("rows", n), zap.Int("attempt", bt.buf.fails), zap.Duration("retry_in", backoff), zap.Error(err))
		return err
	}
	w.mu.Lock()
	bt.buf.fails = 0
	bt.buf.retryAt = time.Time{}
	w.mu.Unlock()
	w.finish(bt.items, size, ticketErr)
	w.b.stats.RowsCommitted.Add(int64(n))
	w.b.stats.Flushes.Add(1)
	w.b.metrics.flushSeconds.UpdateDuration(start)
	w.b.metrics.flushRows.Update(float64(n))
	w.log.Debug("flushed", zap.String("table", bt.table), zap.Int("rows", n), zap.Duration("took", time.Since(start)))
	return nil
}

// commitInSlot commits bt once a flush slot is free (see
// MaxConcurrentFlushes).
func (w *writer) commitInSlot(bt batch) (rows int, size int64, err error) {
	select {
	case w.b.flushSlots <- struct{}{}:
	case <-w.ctx.Done():
		for _, p := range bt.items {
			rows += p.rows.Len()
			size += p.rows.Size
		}
		return rows, size, fmt.Errorf("flush %s.%s: wait for a flush slot: %w", w.tenant, bt.table, w.ctx.Err())
	}
	defer func() { <-w.b.flushSlots }()
	defer w.b.load.end(w.b.load.begin())
	return w.commit(w.ctx, bt.table, bt.items)
}

// quarantineInSlot quarantines bt once a flush slot is free.
func (w *writer) quarantineInSlot(bt batch, cause error) error {
	select {
	case w.b.flushSlots <- struct{}{}:
	case <-w.ctx.Done():
		return fmt.Errorf("wait for a flush slot: %w", w.ctx.Err())
	}
	defer func() { <-w.b.flushSlots }()
	return w.quarantine(w.ctx, bt.table, bt.items, cause)
}

// finish settles committed items: their idempotency keys are made durable
// first, then their log records are released, then waiting clients learn.
func (w *writer) finish(items []*pending, size int64, ticketErr error) {
	var recs []*record
	for _, p := range items {
		if p.rec != nil {
			recs = append(recs, p.rec)
		}
	}
	keysSaved := true
	if err := w.b.idem.persist(w.ctx, recs); err != nil {
		// Keep the log records: a restart replays their keys.
		keysSaved = false
		w.log.Error("save idempotency keys", zap.Error(err))
	}
	if w.b.cfg.WAL != nil {
		for _, p := range items {
			if p.rec == nil || keysSaved {
				w.b.releaseFloor(p.floor)
			}
		}
		w.b.releaseLog()
	}
	n := 0
	for _, p := range items {
		n += p.rows.Len()
	}
	w.b.uncharge(size, n)
	for _, p := range items {
		if p.done != nil {
			p.done()
		}
		if p.ticket != nil {
			p.ticket.err = ticketErr
			close(p.ticket.done)
		}
	}
}

// interval is how old a buffer may grow before it is flushed: longer while
// flushing would mean opening the tenant's database in a full pool.
func (w *writer) interval() time.Duration {
	if w.b.pool.Cold(w.tenant) {
		return w.b.cfg.ColdFlushInterval
	}
	return w.b.cfg.FlushInterval
}

// nextDue is the time until the earliest buffer is due.
func (w *writer) nextDue() time.Duration {
	interval := w.interval()
	load := w.b.load.pressure()
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	next := time.Duration(0)
	for _, buf := range w.tables {
		if len(buf.items) == 0 {
			continue
		}
		after := w.dueAfterLocked(buf, interval, load)
		due := buf.since.Add(after)
		if buf.urgent {
			due = now
		}
		if buf.fails > 0 {
			due = buf.retryAt // a failed batch is retried after its backoff, not FlushInterval
		}
		d := max(due.Sub(now), time.Millisecond)
		if buf.fails == 0 && after > w.b.cfg.MinFlushInterval && w.smallLocked(buf, interval) {
			d = min(d, loadRecheck) // held back by the load: look again soon
		}
		if next == 0 || d < next {
			next = d
		}
	}
	return next
}

// commit writes items into table in one transaction: schema changes, then
// every row through the Appender. It returns the rows and bytes written.
func (w *writer) commit(ctx context.Context, table string, items []*pending) (rows int, size int64, err error) {
	defer w.b.versions.bump(w.tenant) // last, after COMMIT or ROLLBACK: see DataVersion
	for _, p := range items {
		rows += p.rows.Len()
		size += p.rows.Size
	}
	h, err := w.b.pool.Acquire(ctx, w.tenant)
	if err != nil {
		return rows, size, fmt.Errorf("flush %s.%s: %w", w.tenant, table, err)
	}
	defer h.Release()
	conn, err := h.DB.Conn(ctx)
	if err != nil {
		return rows, size, fmt.Errorf("flush %s.%s: %w", w.tenant, table, err)
	}
	defer conn.Close()
	if w.b.remote() {
		// Fence: inserts at or below the position the table recorded are
		// in the database already (a redelivery, or the log read again by
		// a writer that got the tenant back): commit only the others. The
		// tenant's writer goroutine is the only one that writes the table,
		// so the recorded position cannot move under us.
		if items, err = w.unapplied(ctx, conn, table, items); err != nil {
			return rows, size, fmt.Errorf("flush %s.%s: %w", w.tenant, table, err)
		}
		if items, err = w.unseenKeys(ctx, conn, items); err != nil {
			return rows, size, fmt.Errorf("flush %s.%s: %w", w.tenant, table, err)
		}
		if len(items) == 0 {
			return rows, size, nil
		}
	}

	tbl, exists, err := w.tableSchema(ctx, conn, table)
	if err != nil {
		return rows, size, fmt.Errorf("flush %s.%s: read schema: %w", w.tenant, table, err)
	}
	// From here on the cached schema may run ahead of the database: forget
	// it unless the transaction commits.
	delete(w.schemas, table)

	seen, keyIdx := mergeKeys(items)
	for _, p := range items {
		if p.rows.Dups {
			// Some row names a column twice: its later values need the
			// overflow column (an invalid name always overflows).
			seen = append(seen, schema.Seen{Key: schema.OverflowColumn, Kinds: schema.KindJSON})
			break
		}
	}
	if err := markBigInts(ctx, conn, table, tbl, seen); err != nil {
		return rows, size, fmt.Errorf("flush %s.%s: %w", w.tenant, table, err)
	}
	changes, overflow := tbl.Plan(seen, w.b.cfg.MaxColumns)
	accept := misfitKinds(tbl, seen) // nil unless a pinned column gets values it does not take
	if tbl.Len() == 0 {
		// Only nulls and empty objects so far, but a table needs a column:
		// the overflow column, which the server may add anyway.
		tbl.Plan([]schema.Seen{{Key: schema.OverflowColumn, Kinds: schema.KindJSON}}, w.b.cfg.MaxColumns)
	}

	if _, err := conn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
		return rows, size, fmt.Errorf("flush %s.%s: begin: %w", w.tenant, table, err)
	}
	var ddl []string
	defer func() {
		if err != nil {
			if rbErr := rollback(ctx, conn); rbErr != nil {
				err = errors.Join(err, rbErr)
			}
			return
		}
		if _, cErr := conn.ExecContext(ctx, "COMMIT"); cErr != nil {
			err = fmt.Errorf("flush %s.%s: commit: %w", w.tenant, table, cErr)
			_ = rollback(ctx, conn) // in case the transaction is still open
			return
		}
		w.schemas[table] = tbl
		w.appliedReady = w.b.logged()
		if len(ddl) > 0 {
			w.b.schemaLog.note(w.tenant, table, ddl, time.Now())
		}
	}()

	if !exists {
		ddl = append(ddl, schema.CreateSQL(table, tbl.Columns()))
	} else {
		for _, c := range changes {
			ddl = append(ddl, c.SQL(table))
		}
	}
	for _, q := range ddl {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return rows, size, fmt.Errorf("flush %s.%s: %s: %w", w.tenant, table, q, err)
		}
	}
	if len(ddl) > 0 {
		w.b.stats.SchemaChanges.Add(int64(len(ddl)))
		w.log.Info("schema changed", zap.String("table", table), zap.Strings("ddl", ddl))
	}

	var aside []misfit
	err = conn.Raw(func(dc any) (err error) {
		aside, err = appendRows(dc.(driver.Conn), tbl, table, items, seen, keyIdx, overflow, accept)
		return err
	})
	if err != nil {
		return rows, size, fmt.Errorf("flush %s.%s: append: %w", w.tenant, table, err)
	}
	if err := w.settleQuarantine(ctx, conn, table, tbl, items, aside); err != nil {
		return rows, size, fmt.Errorf("flush %s.%s: %w", w.tenant, table, err)
	}
	if err := w.markApplied(ctx, conn, table, items[len(items)-1].seq); err != nil {
		return rows, size, fmt.Errorf("flush %s.%s: %w", w.tenant, table, err)
	}
	if w.b.remote() {
		if err := w.saveKeys(ctx, conn, items); err != nil {
			return rows, size, fmt.Errorf("flush %s.%s: %w", w.tenant, table, err)
		}
	}
	return rows, size, nil
}

// rollbackTimeout bounds a ROLLBACK, which runs even when the flush's
// context has ended: the connection goes back to the pool and must not stay
// inside the transaction.
const rollbackTimeout = 10 * time.Second

// rollback ends the transaction open on conn.
func rollback(ctx context.Context, conn *sql.Conn) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	return nil
}

// appliedTable records, per table, the sequence number of the last insert
// committed: one row (tbl, seq) per table, updated in place. It is written
// in the same transaction as the rows, so a replay after a crash skips
// exactly what is already stored: no row lost, none twice.
const appliedTable = "_duckgate_applied"

// markApplied records seq as committed for table, inside the caller's
// transaction. Without a log there is nothing to replay, so nothing to mark.
//
// Once the table's row exists it is an UPDATE in place: measured on 2
// shared cores, an INSERT OR REPLACE through the primary key cost about
// 0.5 ms more CPU than the UPDATE, a third of a small flush
// (BenchmarkSmallFlush). An UPDATE that finds no row (a first flush, a
// rolled-back one) falls back to the INSERT OR REPLACE.
func (w *writer) markApplied(ctx context.Context, conn *sql.Conn, table string, seq uint64) error {
	if !w.b.logged() {
		return nil
	}
	if !w.appliedReady {
		if _, err := conn.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+appliedTable+" (tbl VARCHAR PRIMARY KEY, seq UBIGINT NOT NULL)"); err != nil {
			return fmt.Errorf("create %s: %w", appliedTable, err)
		}
	}
	// Literal values: a statement without parameters skips the bind step.
	name, num := schema.QuoteString(table), strconv.FormatUint(seq, 10)
	if w.appliedRows[table] {
		res, err := conn.ExecContext(ctx, "UPDATE "+appliedTable+" SET seq = "+num+" WHERE tbl = "+name)
		if err != nil {
			return fmt.Errorf("mark applied: %w", err)
		}
		if n, err := res.RowsAffected(); err == nil && n == 1 {
			return nil
		}
	}
	if _, err := conn.ExecContext(ctx, "INSERT OR REPLACE INTO "+appliedTable+" VALUES ("+name+", "+num+")"); err != nil {
		return fmt.Errorf("mark applied: %w", err)
	}
	if w.appliedRows == nil {
		w.appliedRows = make(map[string]bool)
	}
	w.appliedRows[table] = true
	return nil
}

// endTx ends the transaction a function began on conn, deferred with the
// function's named error: COMMIT if it is nil, ROLLBACK otherwise (and
// after a failed COMMIT, in case the transaction is still open).
func endTx(ctx context.Context, conn *sql.Conn, err *error) {
	if *err != nil {
		if rbErr := rollback(ctx, conn); rbErr != nil {
			*err = errors.Join(*err, rbErr)
		}
		return
	}
	if _, cErr := conn.ExecContext(ctx, "COMMIT"); cErr != nil {
		*err = fmt.Errorf("commit: %w", cErr)
		_ = rollback(ctx, conn)
	}
}

// withConn runs fn on a connection of the tenant's database: everything
// the writer does to the database outside a flush (quarantine, pins and
// freezes, discards, retention sweeps and settings). Once fn has returned
// (its transaction committed or rolled back), the tenant gets a new data
// version, since fn may have changed what queries answer (see
// DataVersion; commit bumps it for flushes).
func (w *writer) withConn(ctx context.Context, fn func(*sql.Conn) error) error {
	defer w.b.versions.bump(w.tenant)
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
	return fn(conn)
}

// unapplied returns the items of table above the position its last commit
// recorded in appliedTable.
func (w *writer) unapplied(ctx context.Context, conn *sql.Conn, table string, items []*pending) ([]*pending, error) {
	if !w.appliedReady {
		var n int
		if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_catalog = current_database() AND table_schema = 'main' AND table_name = ?`, appliedTable).Scan(&n); err != nil {
			return nil, fmt.Errorf("read applied position: %w", err)
		}
		if n == 0 {
			return items, nil
		}
		w.appliedReady = true
	}
	var applied uint64
	err := conn.QueryRowContext(ctx, "SELECT seq FROM "+appliedTable+" WHERE tbl = ?", table).Scan(&applied)
	if errors.Is(err, sql.ErrNoRows) {
		return items, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read applied position: %w", err)
	}
	i := 0
	for i < len(items) && items[i].seq <= applied {
		i++
	}
	if i > 0 {
		w.log.Info("skipped inserts already committed", zap.String("table", table), zap.Int("inserts", i), zap.Uint64("applied", applied))
	}
	return items[i:], nil
}

// mergeKeys folds the keys of all items into one list of schema.Seen (in
// order of first appearance, keys differing in ASCII case merged) and maps
// each item's local key index to its index in that list.
func mergeKeys(items []*pending) ([]schema.Seen, [][]int) {
	var seen []schema.Seen
	index := make(map[string]int)
	keyIdx := make([][]int, len(items))
	for i, p := range items {
		m := make([]int, len(p.rows.Keys))
		for j, k := range p.rows.Keys {
			f := schema.FoldName(k)
			si, ok := index[f]
			if !ok {
				si = len(seen)
				index[f] = si
				seen = append(seen, schema.Seen{Key: k})
			}
			seen[si].Kinds |= p.rows.Kinds[j]
			m[j] = si
		}
		keyIdx[i] = m
	}
	return seen, keyIdx
}

// maxExactInt is 2^53: integers beyond it are not exact as DOUBLE.
const maxExactInt = 1 << 53

// markBigInts adds KindBigInt to a BIGINT column's kinds when a float
// arrives and the column already stores an integer beyond 2^53, so that
// schema.Evolve widens it to VARCHAR rather than to a DOUBLE that would
// round the stored value.
func markBigInts(ctx context.Context, conn tenantdb.Querier, table string, tbl *schema.Table, seen []schema.Seen) error {
	cols := tbl.Columns()
	for i := range seen {
		if seen[i].Kinds&schema.KindFloat == 0 {
			continue
		}
		ci, ok := tbl.Lookup(seen[i].Key)
		if !ok || cols[ci].Type != schema.TypeBigInt {
			continue
		}
		c := schema.QuoteIdent(cols[ci].Name)
		var big bool
		q := fmt.Sprintf("SELECT coalesce(max(%s) > %d OR min(%s) < -%d, false) FROM %s", c, maxExactInt, c, maxExactInt, schema.QuoteIdent(table))
		if err := conn.QueryRowContext(ctx, q).Scan(&big); err != nil {
			return fmt.Errorf("check exactness of %s: %w", cols[ci].Name, err)
		}
		if big {
			seen[i].Kinds |= schema.KindBigInt
		}
	}
	return nil
}

// tableSchema returns the cached schema of table, reading it from the
// database when unknown. exists is false for a table not created yet.
func (w *writer) tableSchema(ctx context.Context, conn *sql.Conn, table string) (*schema.Table, bool, error) {
	if t := w.schemas[table]; t != nil {
		return t, true, nil
	}
	return readSchema(ctx, conn, table)
}

// readSchema reads the columns of table and the rules set on it (see
// rules.go). exists is false for a table not created yet.
func readSchema(ctx context.Context, q tenantdb.Querier, table string) (*schema.Table, bool, error) {
	list, err := tenantdb.Columns(ctx, q, table)
	if err != nil {
		return nil, false, err
	}
	cols := make([]schema.Column, len(list))
	for i, c := range list {
		t, ok := schema.ParseType(c.Type)
		if !ok {
			// A column someone added by hand: treat it as text.
			t = schema.TypeVarchar
		}
		cols[i] = schema.Column{Name: c.Name, Type: t}
	}
	tbl := schema.NewTable(cols)
	rules, err := loadRules(ctx, q, table)
	if err != nil {
		return nil, false, err
	}
	tbl.SetRules(rules)
	return tbl, len(cols) > 0, nil
}

// appendRows appends every row of items through one Appender. Cells whose
// key has no column (beyond the column cap, not a usable name, or a second
// key of the same row in another ASCII case) go into the overflow column as
// one JSON object per row. Cells of a pinned column whose kind its type
// does not take (accept[seen index], nil when there are none) are left out
// and returned, for the quarantine.
func appendRows(dc driver.Conn, tbl *schema.Table, table string, items []*pending, seen []schema.Seen, keyIdx [][]int, overflow []int, accept []schema.Kind) ([]misfit, error) {
	cols := tbl.Columns()
	// colOf maps an index in seen to a column, -1 for the overflow column.
	colOf := make([]int, len(seen))
	for i, s := range seen {
		ci, ok := tbl.Lookup(s.Key)
		if !ok {
			ci = -1
		}
		colOf[i] = ci
	}
	for _, i := range overflow {
		colOf[i] = -1
	}
	ovCol, hasOv := tbl.Lookup(schema.OverflowColumn)
	if !hasOv {
		ovCol = -1
	}

	a, err := duckdb.NewAppender(dc, "", "", table)
	if err != nil {
		return nil, err
	}
	var aside []misfit
	args := make([]driver.Value, len(cols))
	set := make([]bool, len(cols))
	var ov []byte
	for ii, p := range items {
		r := p.rows
		local := keyIdx[ii]
		start := uint32(0)
		for _, end := range r.Ends {
			clear(args)
			clear(set)
			ov = ov[:0]
			rowAside := len(aside)
			for ci := start; ci < end; ci++ {
				c := &r.Cells[ci]
				col := colOf[local[c.Key]]
				if col >= 0 && !set[col] {
					if accept != nil && accept[local[c.Key]] != 0 && c.Kind&accept[local[c.Key]] == 0 {
						aside = append(aside, misfit{item: ii, start: start, end: end, cell: ci})
						continue
					}
					args[col] = value(c, cols[col].Type)
					set[col] = true
					continue
				}
				ov = appendOverflow(ov, r.Keys[c.Key], c)
			}
			if len(ov) > 0 {
				if ovCol < 0 {
					_ = a.Close()
					return nil, errors.New("overflow values but no overflow column")
				}
				args[ovCol] = json.RawMessage(append(ov, '}'))
			}
			if end > start && len(aside)-rowAside == int(end-start) {
				start = end
				continue // nothing of the row fits: it is all in the quarantine
			}
			if err := a.AppendRow(args...); err != nil {
				_ = a.Close()
				return nil, err
			}
			start = end
		}
	}
	// Close flushes: DuckDB reports constraint and conversion errors here.
	return aside, a.Close()
}

// appendOverflow adds "key": value to the overflow object being built.
func appendOverflow(dst []byte, key string, c *Cell) []byte {
	if len(dst) == 0 {
		dst = append(dst, '{')
	} else {
		dst = append(dst, ',')
	}
	dst = jsonstr.Append(dst, key)
	dst = append(dst, ':')
	return append(dst, jsonText(c)...)
}
