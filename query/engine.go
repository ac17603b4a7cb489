package query

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	duckdb "github.com/duckdb/duckdb-go/v2"
	"go.uber.org/zap"

	"duckgate/tenantdb"
)

// Config configures an Engine. Zero fields take their defaults.
type Config struct {
	// Timeout is the default and the longest per-query timeout; a request
	// may ask for less. It covers waiting for a slot, running and streaming.
	// Default 30s.
	Timeout time.Duration
	// MaxRows is the most rows one result may have; reaching it ends the
	// stream with the error marker. Default 10,000,000.
	MaxRows int64
	// MaxBytes is the most bytes of one encoded result. Default 1 GiB.
	MaxBytes int64
	// MaxExecuting is the most queries DuckDB executes at once across all
	// tenants; more wait, served fairly between tenants (see
	// MaxExecutingPerTenant and fair.go). The slot is held until the first
	// chunk of the result is fetched: by then DuckDB has run what must end
	// before a row can come out (sorts, aggregates, the build side of
	// joins); the rest of a streamed result (scans, filters, projections)
	// is produced as the client reads it, paced by the client, outside the
	// slot, so that a slow client does not hold one. Bounding it keeps a hundred
	// tenants' queries from thrashing a few cores: measured with 100
	// clients on 2 cores, p95 fell from 431 ms to 251 ms at the same
	// throughput. Default 2 × the number of CPUs.
	MaxExecuting int
	// MaxExecutingPerTenant is the most of the MaxExecuting slots one
	// tenant holds at once, even on an idle server: DuckDB cannot preempt
	// a query, so the slots it leaves free are what lets another tenant's
	// query start at once while this one runs long queries. A freed slot
	// goes to the waiting tenant holding the fewest. Default half of
	// MaxExecuting (at least 1): one tenant's queries, each on the plan's
	// DuckDB threads, still keep every core busy.
	MaxExecutingPerTenant int
	// MaxConcurrent is the most queries running at once per tenant, so that
	// queries cannot starve ingestion of the tenant's database. Excess
	// queries wait up to their timeout, then get ErrBusy. Default 4.
	MaxConcurrent int
	// Attached names the databases besides a connection's own that a query
	// may name (the operator query's snapshots, attached under their
	// tenant ids); tenants' engines have none.
	Attached []string
	// MaxSQLBytes is the longest SQL text accepted; longer is
	// ErrSQLTooLarge. Default DefaultMaxSQLBytes.
	MaxSQLBytes int
	// Metrics is the set the engine registers its series on; nil skips them.
	Metrics *metrics.Set
	// Cache bounds the result cache of HandleQuery (cache.go); it is used
	// only with Versions.
	Cache CacheConfig
	// Versions gives the tenants' data versions the result cache checks
	// (the batcher); nil turns the cache off.
	Versions Versioner
}

// Defaults of Config.
const (
	DefaultTimeout       = 30 * time.Second
	DefaultMaxRows       = 10_000_000
	DefaultMaxBytes      = 1 << 30
	DefaultMaxConcurrent = 4
	// DefaultMaxSQLBytes bounds the time DuckDB spends before a query can
	// be interrupted: measured on 2 cores, a 1 MiB IN list of 500,000
	// items takes 0.6 s to parse and 1.3 s to prepare, a 4 MiB one 14 s.
	DefaultMaxSQLBytes = 1 << 20
)

// Flusher makes a tenant's buffered rows visible (the batcher implements it).
type Flusher interface {
	Flush(ctx context.Context, tenantID string) error
}

// Request is one query.
type Request struct {
	// SQL is exactly one SELECT statement.
	SQL string
	// Params are bound to the statement's ? or $n placeholders.
	Params []any
	// Format is the encoding of the result.
	Format Format
	// Timeout, if positive and below Config.Timeout, shortens the timeout.
	Timeout time.Duration
	// Flush makes the tenant's buffered rows visible before the query runs.
	Flush bool
	// ScratchFile, if set, is the path of a file of the tenant's scratch
	// directory that the SQL may read with read_parquet('<path>'), which the
	// sandbox refuses otherwise: share snapshots. Server code sets it for
	// SQL it writes itself; it is never taken from a request.
	ScratchFile string

	fill *cacheFill // set by HandleQuery when the result may be cached
}

// Engine runs tenants' read-only queries and streams the results.
type Engine struct {
	cfg     Config
	pool    *tenantdb.Pool
	flusher Flusher
	cache   *resultCache // nil when off
	log     *zap.Logger
	slots   slotTable
	// executing holds a slot per query DuckDB is executing (MaxExecuting),
	// fair between tenants.
	executing *fairSlots
	metrics   struct {
		bytes, rows, cut *metrics.Counter             // streamed results (Parquet files excluded)
		stream           *metrics.PrometheusHistogram // time to stream a result
	}
}

// New returns an Engine over the tenant databases of pool. flusher may be nil.
func New(cfg Config, pool *tenantdb.Pool, flusher Flusher, log *zap.Logger) *Engine {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxRows <= 0 {
		cfg.MaxRows = DefaultMaxRows
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	if cfg.MaxExecuting <= 0 {
		cfg.MaxExecuting = 2 * runtime.NumCPU()
	}
	if cfg.MaxExecutingPerTenant <= 0 {
		cfg.MaxExecutingPerTenant = max(1, cfg.MaxExecuting/2)
	}
	cfg.MaxExecutingPerTenant = min(cfg.MaxExecutingPerTenant, cfg.MaxExecuting)
	if cfg.MaxSQLBytes <= 0 {
		cfg.MaxSQLBytes = DefaultMaxSQLBytes
	}
	if log == nil {
		log = zap.NewNop()
	}
	e := &Engine{cfg: cfg, pool: pool, flusher: flusher, log: log, slots: slotTable{m: make(map[string]*slot)}}
	set := cfg.Metrics
	if set == nil {
		set = metrics.NewSet()
	}
	e.executing = newFairSlots(cfg.MaxExecuting, cfg.MaxExecutingPerTenant, set.NewCounter("duckgate_query_executing_waits_total"))
	set.NewGauge("duckgate_query_executing", func() float64 { return float64(e.executing.executing()) })
	e.metrics.bytes = set.NewCounter("duckgate_query_bytes_streamed_total")
	e.metrics.rows = set.NewCounter("duckgate_query_rows_streamed_total")
	e.metrics.cut = set.NewCounter("duckgate_query_results_cut_total")
	e.metrics.stream = set.NewPrometheusHistogram("duckgate_query_stream_seconds")
	if cfg.Cache.MaxBytes > 0 && cfg.Versions != nil {
		e.cache = newResultCache(cfg.Cache, set)
	}
	return e
}

// timeoutOf is the timeout of req.
func (e *Engine) timeoutOf(req Request) time.Duration {
	if req.Timeout > 0 && req.Timeout < e.cfg.Timeout {
		return req.Timeout
	}
	return e.cfg.Timeout
}

// Check runs the sandbox check of req.SQL (see sandbox.go) in the
// tenant's database without running it, under the request's timeout. It
// returns ErrSQLTooLarge, ErrNotAllowed, ErrNotReadOnly,
// ErrMultipleStatements, ErrTimeout or a wrapped ErrBadQuery (syntax,
// unknown table) or ErrBadRequest (empty, a NUL byte). Share links use it
// when they are created.
func (e *Engine) Check(ctx context.Context, tenantID string, req Request) error {
	if err := checkText(req.SQL, e.cfg.MaxSQLBytes); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, e.timeoutOf(req))
	defer cancel()
	s, err := e.open(ctx, tenantID)
	if err != nil {
		return err
	}
	defer s.close()
	return s.bounded(ctx, func() error { return checkSQL(ctx, s.conn, req.SQL, req.ScratchFile, e.cfg.Attached, nil) })
}

// MaxSQLBytes is the longest SQL text the engine accepts (Config.MaxSQLBytes).
func (e *Engine) MaxSQLBytes() int { return e.cfg.MaxSQLBytes }

// errMultiStatement is how duckdb-go's non-context Prepare refuses SQL that
// does not hold exactly one statement.
const errMultiStatement = "missing context for multi-statement query"

// checkOne makes DuckDB parse and bind q on conn and refuses anything but
// exactly one statement of type want (SELECT for tenant SQL). Nothing of q
// runs.
//
// It must use the driver's Prepare, not PrepareContext: duckdb-go's
// PrepareContext (like QueryContext) executes every statement but the last
// one while preparing, so "drop table t; select 1" would drop the table.
// Prepare refuses more than one statement before executing anything.
//
// Preparing binds the statement, and DuckDB's binder of EXPORT DATABASE
// already creates the target directory. The sandbox confines that to the
// tenant's own scratch directory; a parse-only check (json_serialize_sql)
// would avoid it but refuses valid SELECTs such as PIVOT.
func checkOne(conn *sql.Conn, q string, want duckdb.StmtType) error {
	return checkOneInspect(conn, q, want, nil)
}

// checkOneInspect is checkOne that, if the statement passes, hands the
// prepared statement to inspect (when not nil) before closing it, and
// returns inspect's error. inspect may run the statement.
func checkOneInspect(conn *sql.Conn, q string, want duckdb.StmtType, inspect func(*duckdb.Stmt) error) error {
	return conn.Raw(func(dc any) error {
		c, ok := dc.(driver.Conn)
		if !ok {
			return fmt.Errorf("driver connection %T cannot prepare", dc)
		}
		st, err := c.Prepare(q)
		if err != nil {
			msg := err.Error()
			switch {
			case strings.Contains(msg, errMultiStatement):
				return ErrMultipleStatements
			case strings.Contains(msg, "empty query"):
				return fmt.Errorf("%w: the query holds no statement", ErrMultipleStatements)
			}
			return fmt.Errorf("%w: %s", ErrBadQuery, cleanDuckDBError(err))
		}
		defer st.Close()
		ds, ok := st.(*duckdb.Stmt)
		if !ok {
			return fmt.Errorf("driver statement %T is not a DuckDB statement", st)
		}
		typ, err := ds.StatementType()
		if err != nil {
			return fmt.Errorf("%w: %s", ErrBadQuery, cleanDuckDBError(err))
		}
		if typ != want {
			return fmt.Errorf("%s statements are not allowed: %w", stmtTypeName(typ), ErrNotReadOnly)
		}
		if inspect != nil {
			return inspect(ds)
		}
		return nil
	})
}

var stmtTypeNames = map[duckdb.StmtType]string{
	duckdb.STATEMENT_TYPE_INSERT:       "INSERT",
	duckdb.STATEMENT_TYPE_UPDATE:       "UPDATE",
	duckdb.STATEMENT_TYPE_EXPLAIN:      "EXPLAIN",
	duckdb.STATEMENT_TYPE_DELETE:       "DELETE",
	duckdb.STATEMENT_TYPE_PREPARE:      "PREPARE",
	duckdb.STATEMENT_TYPE_CREATE:       "CREATE",
	duckdb.STATEMENT_TYPE_EXECUTE:      "EXECUTE",
	duckdb.STATEMENT_TYPE_ALTER:        "ALTER",
	duckdb.STATEMENT_TYPE_TRANSACTION:  "TRANSACTION",
	duckdb.STATEMENT_TYPE_COPY:         "COPY",
	duckdb.STATEMENT_TYPE_ANALYZE:      "ANALYZE",
	duckdb.STATEMENT_TYPE_VARIABLE_SET: "SET VARIABLE",
	duckdb.STATEMENT_TYPE_CREATE_FUNC:  "CREATE FUNCTION",
	duckdb.STATEMENT_TYPE_DROP:         "DROP",
	duckdb.STATEMENT_TYPE_EXPORT:       "EXPORT",
	duckdb.STATEMENT_TYPE_PRAGMA:       "PRAGMA",
	duckdb.STATEMENT_TYPE_VACUUM:       "VACUUM",
	duckdb.STATEMENT_TYPE_CALL:         "CALL",
	duckdb.STATEMENT_TYPE_SET:          "SET",
	duckdb.STATEMENT_TYPE_LOAD:         "LOAD",
	duckdb.STATEMENT_TYPE_RELATION:     "RELATION",
	duckdb.STATEMENT_TYPE_EXTENSION:    "EXTENSION",
	duckdb.STATEMENT_TYPE_LOGICAL_PLAN: "LOGICAL PLAN",
	duckdb.STATEMENT_TYPE_ATTACH:       "ATTACH",
	duckdb.STATEMENT_TYPE_DETACH:       "DETACH",
	duckdb.STATEMENT_TYPE_MULTI:        "MULTI",
}

func stmtTypeName(t duckdb.StmtType) string {
	if n, ok := stmtTypeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("statement type %d", t)
}

// cleanDuckDBError is DuckDB's message without Go wrapping noise.
func cleanDuckDBError(err error) string {
	var de *duckdb.Error
	if errors.As(err, &de) {
		return de.Msg
	}
	return err.Error()
}

// session is one tenant connection held for one query: the pool handle, a
// dedicated connection and the tenant's concurrency slot.
type session struct {
	h       *tenantdb.Handle
	conn    *sql.Conn
	release func() // frees the concurrency slot; nil if none was taken
	// executed frees the engine's executing slot once the first row is
	// fetched (or the session ends); nil if none was taken. Runs once.
	executed func()
	params   []any // the request's params, converted for the driver
	// maybeJSON is set by begin if the prepared SELECT has a VARCHAR column
	// (DuckDB's JSON type is a VARCHAR to the C API) or types that stay
	// unknown until the params are bound: the result may hold a JSON column.
	maybeJSON bool
	// pending, if not nil, delivers the result of a check that was still
	// running in DuckDB when the query's timeout ran out (see bounded):
	// the connection is given back only once it has finished.
	pending chan error
	once    sync.Once
}

// open acquires the tenant's database and a connection of it.
func (e *Engine) open(ctx context.Context, tenantID string) (*session, error) {
	h, err := e.pool.Acquire(ctx, tenantID)
	if err != nil {
		if ctx.Err() != nil { // the query's timeout ran out waiting for a database slot
			return nil, wrapRunError(ctx, err)
		}
		return nil, fmt.Errorf("open database of tenant: %w", err)
	}
	conn, err := h.DB.Conn(ctx)
	if err != nil {
		h.Release()
		return nil, wrapRunError(ctx, fmt.Errorf("connect to tenant database: %w", err))
	}
	return &session{h: h, conn: conn}, nil
}

// close returns the connection and the handle and frees the slot. It may be
// called more than once.
func (s *session) close() {
	s.once.Do(func() {
		finish := func() {
			_ = s.conn.Close()
			s.h.Release()
			if s.executed != nil {
				s.executed()
			}
			if s.release != nil {
				s.release()
			}
		}
		if s.pending != nil {
			go func() { <-s.pending; finish() }()
			return
		}
		finish()
	})
}

// bounded runs fn, which uses the session's connection, and returns its
// error, or ErrTimeout (ErrCanceled) once ctx ends (boundedGrace later). DuckDB checks for
// an interrupt while it executes, not while it parses, binds and plans:
// fn then goes on in the background and the session keeps its connection
// and slots until fn returns (Config.MaxSQLBytes bounds how long that is).
// After a timeout the session must only be closed.
func (s *session) bounded(ctx context.Context, fn func() error) error {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		t := time.NewTimer(boundedGrace)
		defer t.Stop()
		select {
		case err := <-done: // a check of a few milliseconds: wait for it
			if err == nil {
				err = wrapRunError(ctx, ctx.Err())
			}
			return err
		case <-t.C:
		}
		s.pending = done
		return wrapRunError(ctx, ctx.Err())
	}
}

// boundedGrace is how long bounded waits, once the context ended, for a
// check to finish before it answers without it: checks of ordinary SQL
// take milliseconds (tens on a loaded machine), and waiting lets the
// session free its slots at once.
const boundedGrace = 200 * time.Millisecond

// wrapRunError classifies an error of running a query: the context's
// deadline is ErrTimeout, its cancel ErrCanceled, anything from DuckDB is
// ErrBadQuery.
func wrapRunError(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrTimeout, context.DeadlineExceeded)
	}
	if errors.Is(err, context.Canceled) || errors.Is(ctx.Err(), context.Canceled) {
		return fmt.Errorf("%w: %w", ErrCanceled, context.Canceled)
	}
	var de *duckdb.Error
	if errors.As(err, &de) {
		return fmt.Errorf("%w: %s", ErrBadQuery, de.Msg)
	}
	return err
}

// slotTable holds each tenant's concurrency semaphore while it is in use.
type slotTable struct {
	mu      sync.Mutex
	m       map[string]*slot // guarded by mu; an entry lives while users > 0
	changed chan struct{}    // closed when a tenant's last user leaves, if a watcher made it; guarded by mu
}

// watch returns the tenants holding or waiting for a slot, and a channel
// closed when one of them leaves the table.
func (t *slotTable) watch() (int, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.changed == nil {
		t.changed = make(chan struct{})
	}
	return len(t.m), t.changed
}

type slot struct {
	ch    chan struct{} // one token per running query
	users int           // queries holding or waiting for a token; guarded by slotTable.mu
}

// acquire waits for one of the tenant's n query slots until ctx is done.
func (t *slotTable) acquire(ctx context.Context, tenantID string, n int) (func(), error) {
	t.mu.Lock()
	s := t.m[tenantID]
	if s == nil {
		s = &slot{ch: make(chan struct{}, n)}
		t.m[tenantID] = s
	}
	s.users++
	t.mu.Unlock()
	done := func() {
		t.mu.Lock()
		s.users--
		if s.users == 0 {
			delete(t.m, tenantID)
			if t.changed != nil {
				close(t.changed)
				t.changed = nil
			}
		}
		t.mu.Unlock()
	}
	select {
	case s.ch <- struct{}{}:
		return func() { <-s.ch; done() }, nil
	default:
	}
	select {
	case s.ch <- struct{}{}:
		return func() { <-s.ch; done() }, nil
	case <-ctx.Done():
		done()
		if errors.Is(ctx.Err(), context.Canceled) {
			return nil, fmt.Errorf("%w while waiting for a query slot: %w", ErrCanceled, context.Canceled)
		}
		return nil, fmt.Errorf("%w (%d running)", ErrBusy, n)
	}
}
