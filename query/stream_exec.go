package query

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	bindings "github.com/duckdb/duckdb-go-bindings"
	duckdb "github.com/duckdb/duckdb-go/v2"
)

// A streamed result. duckdb-go's QueryContext runs a query with
// duckdb_pending_prepared: DuckDB materialises the whole result before the
// first row comes back (650 ms before the first byte of a million rows,
// the memory growing with the result). streamResult runs it with
// duckdb_pending_prepared_streaming instead: duckdb_execute_pending returns
// once the pipelines that must finish first (a sort, an aggregate, a hash
// join's build side) have run, and each duckdb_fetch_chunk then has DuckDB
// produce the next chunk of at most 2,048 rows, so rows leave DuckDB as the
// client reads them and memory stays that of a few chunks.
//
// The statement is prepared and its params bound by duckdb-go (the same
// binding rules as before); only the execution and the reading of vectors
// (vectors.go) use the C API directly, with the driver's C handles
// (duckraw.go). A goroutine watches the query's context: once it ends it
// calls duckdb_interrupt, every interruptEvery until the result is
// released, so the deadline and Rows.Close stop DuckDB mid-query or
// mid-stream. It is stopped, and waited for, before the connection runs
// anything else (the ROLLBACK). A result released before its end (the row
// or byte cap, a client that went away) is interrupted once more before it
// is destroyed. DuckDB clears the interrupt when the connection's next
// statement starts: the ROLLBACK after an interrupted stream succeeds
// (checked by hand on the timeout, cap and Close tests; were it to fail,
// session.end would discard the connection rather than reuse it).

// interruptEvery is how often a query whose context ended is interrupted
// again until it gives up (DuckDB clears the flag in some phases).
const interruptEvery = 50 * time.Millisecond

// streamResult is a running streaming query on a session's connection.
type streamResult struct {
	conn   bindings.Connection
	stmt   *duckdb.Stmt // kept open while the result lives
	res    bindings.Result
	hasRes bool
	chunk  bindings.DataChunk
	size   uint64 // rows in chunk
	row    uint64 // next row of chunk
	ended  bool   // the result was read to its end or failed
	cols   []colReader

	names []string
	types []string

	stopped atomic.Bool   // the context ended: the watcher interrupts DuckDB
	stop    chan struct{} // closed to stop the watcher
	watched chan struct{} // closed when the watcher has returned
}

// openStream prepares q on conn, binds params, starts the watcher and
// executes q as a streaming query. On error nothing is left held.
func openStream(ctx context.Context, conn *sql.Conn, q string, params []any) (*streamResult, error) {
	sr := &streamResult{stop: make(chan struct{}), watched: make(chan struct{})}
	var raw bindings.Connection
	var ps bindings.PreparedStatement
	err := conn.Raw(func(dc any) error {
		c, ok := dc.(*duckdb.Conn)
		if !ok {
			return fmt.Errorf("driver connection %T is not a DuckDB connection", dc)
		}
		var err error
		if raw, err = rawConn(c); err != nil {
			return err
		}
		st, err := c.Prepare(q)
		if err != nil {
			return err
		}
		ds, ok := st.(*duckdb.Stmt)
		if !ok {
			_ = st.Close()
			return fmt.Errorf("driver statement %T is not a DuckDB statement", st)
		}
		args := make([]driver.NamedValue, len(params))
		for i, p := range params {
			args[i] = driver.NamedValue{Ordinal: i + 1, Value: p}
		}
		if err := ds.Bind(args); err != nil {
			_ = ds.Close()
			return err
		}
		if ps, err = rawStmt(ds); err != nil {
			_ = ds.Close()
			return err
		}
		sr.stmt = ds
		return nil
	})
	if err != nil {
		close(sr.watched)
		return nil, err
	}
	sr.conn = raw
	go sr.watch(ctx, raw)

	var pending bindings.PendingResult
	if bindings.PendingPreparedStreaming(ps, &pending) == bindings.StateError {
		err := duckError(bindings.PendingError(pending))
		bindings.DestroyPending(&pending)
		sr.close()
		return nil, err
	}
	state := bindings.ExecutePending(pending, &sr.res)
	bindings.DestroyPending(&pending)
	sr.hasRes = true
	if state == bindings.StateError {
		err := duckError(bindings.ResultError(&sr.res))
		sr.close()
		return nil, err
	}
	n := int(bindings.ColumnCount(&sr.res))
	sr.cols = make([]colReader, n)
	sr.names = make([]string, n)
	sr.types = make([]string, n)
	for i := range n {
		sr.names[i] = bindings.ColumnName(&sr.res, bindings.IdxT(i))
		lt := bindings.ColumnLogicalType(&sr.res, bindings.IdxT(i))
		sr.types[i] = typeString(lt)
		sr.cols[i].init(lt, i)
		bindings.DestroyLogicalType(&lt)
	}
	return sr, nil
}

// watch interrupts the query once ctx ends, and again every interruptEvery,
// until stop is closed.
func (sr *streamResult) watch(ctx context.Context, conn bindings.Connection) {
	defer close(sr.watched)
	select {
	case <-sr.stop:
		return
	case <-ctx.Done():
	}
	sr.stopped.Store(true)
	t := time.NewTicker(interruptEvery)
	defer t.Stop()
	for {
		bindings.Interrupt(conn)
		select {
		case <-sr.stop:
			return
		case <-t.C:
		}
	}
}

// next makes the next row current, fetching a chunk when the current one
// is read. It returns false at the end of the result; an error of DuckDB
// (an interrupted query among them) is returned as a *duckdb.Error.
func (sr *streamResult) next() (bool, error) {
	for sr.row >= sr.size {
		bindings.DestroyDataChunk(&sr.chunk)
		sr.size, sr.row = 0, 0
		if sr.stopped.Load() {
			return false, context.Canceled // the caller tells the deadline from a cancel
		}
		sr.chunk = bindings.FetchChunk(sr.res)
		if sr.chunk.Ptr == nil {
			sr.ended = true
			if msg := bindings.ResultError(&sr.res); msg != "" {
				return false, duckError(msg)
			}
			return false, nil
		}
		for i := range sr.cols {
			if err := sr.cols[i].firstErr(); err != nil {
				return false, err
			}
			sr.cols[i].bind(bindings.DataChunkGetVector(sr.chunk, bindings.IdxT(i)))
		}
		sr.size = uint64(bindings.DataChunkGetSize(sr.chunk))
	}
	sr.row++
	return true, nil
}

// values stores the current row's values into dst.
func (sr *streamResult) values(dst []any) {
	for i := range sr.cols {
		dst[i] = sr.value(i)
	}
}

// value is the value of column i in the current row.
func (sr *streamResult) value(i int) any {
	c := &sr.cols[i]
	v := c.value(sr.row - 1)
	if b, ok := v.(duckdb.Bit); ok && c.typ == duckdb.TYPE_BIT {
		return b.String() // duckdb-go's rows give a top-level BIT as its text
	}
	return v
}

// close stops the watcher and frees the chunk, the result and the
// statement. It runs once, after which the connection may run statements.
func (sr *streamResult) close() {
	select {
	case <-sr.stop:
		return
	default:
	}
	close(sr.stop)
	<-sr.watched
	if sr.hasRes && !sr.ended {
		// Abandoned mid-stream (the row or byte cap, a client gone, Close):
		// stop DuckDB's work on it before the result is destroyed.
		bindings.Interrupt(sr.conn)
	}
	bindings.DestroyDataChunk(&sr.chunk)
	if sr.hasRes {
		bindings.DestroyResult(&sr.res)
	}
	if sr.stmt != nil {
		_ = sr.stmt.Close()
	}
}

// duckError is DuckDB's error message as duckdb-go reports it.
func duckError(msg string) error {
	if msg == "" {
		msg = "DuckDB failed without a message"
	}
	typ := duckdb.ErrorTypeInvalid
	if strings.HasPrefix(msg, "INTERRUPT Error") {
		typ = duckdb.ErrorTypeInterrupt
	}
	return &duckdb.Error{Type: typ, Msg: msg}
}
