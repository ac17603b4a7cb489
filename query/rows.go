package query

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// Column describes a column of a result.
type Column struct {
	// Name is the column's name as the query gives it; two columns may
	// have the same name.
	Name string
	// Type is DuckDB's name of the column's type as the driver reports it:
	// "BIGINT", "VARCHAR", "TIMESTAMPTZ", "DECIMAL(18,3)", "LIST", ...; a
	// JSON column read as its text (see rawjson.go) is "JSON".
	Type string
}

// Rows is the result of a query, read a row at a time like database/sql's
// Rows: Next, then Values, until Next is false; then Err says whether the
// result ended or failed. Close releases the query's connection, its
// tenant slot and its timeout; it is safe to call more than once and from
// another goroutine. Next closes the Rows when it returns false.
//
// A Rows is read by one goroutine at a time.
type Rows struct {
	e      *Engine
	s      *session
	ctx    context.Context // the query's context: the caller's with the timeout
	cancel context.CancelFunc
	res    *streamResult
	tenant string

	cols  []Column
	kinds []kind // by column: how an encoder writes values Go types leave ambiguous
	vals  []any

	maxRows int64
	fetched int64 // rows read from DuckDB
	pending bool  // the first row is in vals and Next has not returned it
	raw     bool  // Next leaves vals alone: the encoder reads the vectors (stream.go)
	done    bool
	err     error

	// mu is held while DuckDB's chunk is read, so that a Close from
	// another goroutine waits for the read before freeing the result.
	mu     sync.Mutex
	closed atomic.Bool // Close was called; it may be called from another goroutine
	once   sync.Once
}

// Rows runs req in the tenant's sandbox and returns its result. It applies
// what the HTTP path applies: the text limits, the sandbox check (exactly
// one SELECT, run in a read-only transaction), the tenant's concurrency
// slot (Config.MaxConcurrent, else ErrBusy), the engine's executing limit
// (Config.MaxExecuting), the timeout (the shorter of req.Timeout and
// Config.Timeout, on top of ctx) and Config.MaxRows (Err is then
// ErrTooLarge). Config.MaxBytes and req.Format apply to encoded results
// only.
//
// The query runs and its first row is fetched before Rows returns, so that
// an error of running it is Rows' error, not a later Err. Errors wrap the
// sentinels of errors.go; the deadline of ctx or of the timeout is
// ErrTimeout, the cancel of ctx ErrCanceled. The caller must Close the
// Rows.
func (e *Engine) Rows(ctx context.Context, tenantID string, req Request) (*Rows, error) {
	ctx, cancel := context.WithTimeout(ctx, e.timeoutOf(req))
	r, err := e.start(ctx, cancel, tenantID, req)
	if err != nil {
		cancel()
		return nil, err
	}
	return r, nil
}

// start runs req and fetches the first row. The Rows takes over cancel.
func (e *Engine) start(ctx context.Context, cancel context.CancelFunc, tenantID string, req Request) (*Rows, error) {
	s, err := e.begin(ctx, tenantID, req)
	if err != nil {
		return nil, err
	}
	q, rawJSON := req.SQL, []bool(nil)
	if s.maybeJSON {
		q, rawJSON = e.rawJSONQuery(ctx, s, tenantID, req.SQL)
	}
	res, err := openStream(ctx, s.conn, q, s.params)
	if err != nil {
		s.end()
		return nil, wrapRunError(ctx, err)
	}
	r := &Rows{e: e, s: s, ctx: ctx, cancel: cancel, res: res, tenant: tenantID, maxRows: e.cfg.MaxRows}
	if err := r.init(rawJSON); err != nil {
		r.finish()
		return nil, err
	}
	// DuckDB has started the query and produced its first chunk; what is
	// left is streaming the rest (see MaxExecuting).
	s.executed()
	return r, nil
}

// init reads the column descriptions and the first row.
func (r *Rows) init(rawJSON []bool) error {
	n := len(r.res.names)
	r.cols = make([]Column, n)
	r.kinds = make([]kind, n)
	for i := range n {
		r.cols[i] = Column{Name: r.res.names[i], Type: r.res.types[i]}
		r.kinds[i] = kindOf(r.cols[i].Type)
		if i < len(rawJSON) && rawJSON[i] {
			r.cols[i].Type, r.kinds[i] = "JSON", kindJSON
		}
	}
	r.vals = make([]any, n)
	if r.fetch() {
		r.pending = true
		return nil
	}
	return r.err
}

// fetch reads the next row into vals. At the end or on an error it
// records Err, releases the query and returns false.
func (r *Rows) fetch() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return false
	}
	if r.closed.Load() {
		r.fail(fmt.Errorf("%w: the rows were closed before the end of the result", ErrCanceled))
		return false
	}
	ok, err := r.res.next()
	if err != nil || !ok {
		if err == nil && r.closed.Load() {
			err = fmt.Errorf("%w: the rows were closed before the end of the result", ErrCanceled)
		}
		r.fail(wrapRunError(r.ctx, err))
		return false
	}
	if r.fetched >= r.maxRows {
		r.fail(fmt.Errorf("%w: more than %d rows", ErrTooLarge, r.maxRows))
		return false
	}
	if !r.raw {
		r.res.values(r.vals)
	}
	r.fetched++
	return true
}

func (r *Rows) fail(err error) {
	r.err, r.done = err, true
	r.finish()
}

// Columns describes the result's columns. The slice is shared: do not
// modify it.
func (r *Rows) Columns() []Column { return r.cols }

// Next makes the next row current and reports whether there is one. False
// means the end of the result, an error (see Err) or a closed Rows.
func (r *Rows) Next() bool {
	if r.pending {
		r.pending = false
		return true
	}
	return r.fetch()
}

// Values is the current row, one value per column, as duckdb-go's rows
// give them (read from DuckDB's vectors: vectors.go): nil for NULL, int64
// (and the other integer types), float64, *big.Int for HUGEINT,
// duckdb.Decimal, bool, string, []byte (BLOB; a UUID's 16 bytes),
// time.Time, duckdb.Interval, []any (LIST, ARRAY), map[string]any
// (STRUCT), duckdb.OrderedMap (MAP), duckdb.Union. A JSON
// column whose Column.Type is "JSON" holds its text, a string. The slice
// and what it holds are valid until the next call to Next.
func (r *Rows) Values() []any { return r.vals }

// Err is the error that ended the result, nil if it ended normally (or
// has not ended). It wraps a sentinel of errors.go where one applies.
func (r *Rows) Err() error { return r.err }

// Close releases the query: its rows, its connection, its tenant slot and
// its timeout. Reading after Close ends the result with ErrCanceled, so
// that a result cut by Close never passes for a complete one.
func (r *Rows) Close() error {
	r.closed.Store(true)
	r.cancel() // a read in progress is interrupted, so the lock comes soon
	r.mu.Lock()
	defer r.mu.Unlock()
	r.finish()
	return nil
}

// finish closes the rows, cancels the query's context and ends the
// session. It runs once.
func (r *Rows) finish() {
	r.once.Do(func() {
		r.res.close() // first: a result read to its end is not interrupted
		r.cancel()
		r.s.end()
	})
}

// AppendText appends the text of the current row's value i as a CSV
// result's field holds it, without CSV's quoting: NULL and the empty string
// are both empty; numbers, times, UUIDs, intervals and BLOBs (base64) are
// written as in the CSV and JSON results; nested values and JSON columns
// are JSON text. It is for showing values to people.
func (r *Rows) AppendText(b []byte, i int) []byte {
	return appendCell(b, r.vals[i], r.kinds[i])
}
