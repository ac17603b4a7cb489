package query

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql/driver"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"duckgate/jsonstr"
)

// streamBufSize is the bufio.Writer size of a result stream: rows are sent
// to the client each time this much is encoded (fasthttp writes one HTTP
// chunk per flush).
const streamBufSize = 64 << 10

var streamBufPool sync.Pool // of *bufio.Writer of streamBufSize

func getStreamBuf(w io.Writer) *bufio.Writer {
	if v := streamBufPool.Get(); v != nil {
		bw := v.(*bufio.Writer)
		bw.Reset(w)
		return bw
	}
	return bufio.NewWriterSize(w, streamBufSize)
}

func putStreamBuf(bw *bufio.Writer) {
	bw.Reset(nil)
	streamBufPool.Put(bw)
}

var rowBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// Stream runs req and makes the encoded result ctx's response: status
// 200, Content-Type, and a body that fasthttp encodes as it sends it.
// filename != "" sets Content-Disposition: attachment.
//
// The query runs and its first row is fetched before Stream returns, so
// that an error of running it is Stream's error: then nothing of the
// response is written, and the caller answers the error (see errors.go for
// the statuses). The rest is encoded when fasthttp sends the body, after the
// handler returned; an error then ends the stream with the error marker of
// the format and cuts the connection (see the package comment). Parquet is
// written whole by DuckDB before Stream returns.
func (e *Engine) Stream(ctx *fasthttp.RequestCtx, tenantID string, req Request, filename string) error {
	if req.Format == FormatParquet {
		qctx, cancel := context.WithTimeout(context.Background(), e.timeoutOf(req))
		defer cancel()
		f, size, err := e.runParquet(qctx, tenantID, req)
		if err != nil {
			return err
		}
		setResultHeaders(ctx, req.Format, filename)
		ctx.Response.SetBodyStream(f, int(size)) // fasthttp closes f
		return nil
	}
	// The body is sent after the handler returns: the query's context is
	// not the request's, and only the timeout bounds it.
	rows, err := e.Rows(context.Background(), tenantID, req)
	if err != nil {
		return err
	}
	setResultHeaders(ctx, req.Format, filename)
	var body io.Reader = newResultStream(rows, req.Format, e.cfg.MaxBytes)
	if req.fill != nil {
		body = req.fill.wrap(body)
	}
	ctx.Response.SetBodyStream(body, -1)
	return nil
}

func setResultHeaders(ctx *fasthttp.RequestCtx, f Format, filename string) {
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType(f.ContentType())
	ctx.Response.Header.Set("Cache-Control", "no-store")
	if filename != "" {
		ctx.Response.Header.Set("Content-Disposition", `attachment; filename="`+sanitizeFilename(filename)+`"`)
	}
}

// sanitizeFilename keeps a file name safe inside a quoted header value.
func sanitizeFilename(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == '"' || r == '\\' || r == 0x7f || r >= 0x80 {
			return '_'
		}
		return r
	}, s)
}

// begin takes a slot, flushes if asked, opens a connection, checks the SQL
// and starts a read-only transaction. On error nothing is left held.
func (e *Engine) begin(ctx context.Context, tenantID string, req Request) (*session, error) {
	if err := checkText(req.SQL, e.cfg.MaxSQLBytes); err != nil {
		return nil, err
	}
	params, err := bindParams(req.Params)
	if err != nil {
		return nil, err
	}
	if req.Flush && e.flusher != nil {
		if err := e.flusher.Flush(ctx, tenantID); err != nil {
			return nil, wrapRunError(ctx, fmt.Errorf("flush buffered rows: %w", err))
		}
	}
	release, err := e.slots.acquire(ctx, tenantID, e.cfg.MaxConcurrent)
	if err != nil {
		return nil, err
	}
	free, err := e.executing.acquire(ctx, tenantID)
	if err != nil {
		release()
		return nil, wrapRunError(ctx, fmt.Errorf("waiting for a free core: %w", err))
	}
	executed := sync.OnceFunc(free)
	s, err := e.open(ctx, tenantID)
	if err != nil {
		executed()
		release()
		return nil, err
	}
	s.release, s.executed = release, executed
	var maybeJSON bool
	if err := s.bounded(ctx, func() error {
		return checkSQL(ctx, s.conn, req.SQL, req.ScratchFile, e.cfg.Attached, func(st *duckdb.Stmt) error {
			if n := st.NumInput(); n > len(params) {
				return fmt.Errorf("%w: the query has %d placeholders and %d params were given", ErrBadQuery, n, len(params))
			}
			maybeJSON = mayHoldJSON(st)
			return nil
		})
	}); err != nil {
		s.close()
		return nil, err
	}
	s.maybeJSON = maybeJSON
	// Defence in depth: the SELECT runs in a read-only transaction, so even
	// a table function with a side effect cannot change the database.
	if _, err := s.conn.ExecContext(ctx, "BEGIN TRANSACTION READ ONLY"); err != nil {
		s.close()
		return nil, wrapRunError(ctx, fmt.Errorf("begin read-only transaction: %w", err))
	}
	s.params = params
	return s, nil
}

// end rolls the read-only transaction back and closes the session. A
// connection that cannot roll back is discarded rather than reused.
func (s *session) end() {
	if _, err := s.conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
		_ = s.conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	s.close()
}

// runParquet has DuckDB write the result to a Parquet file in the tenant's
// scratch directory and returns the file, already unlinked (it is deleted
// when closed), and its size.
func (e *Engine) runParquet(ctx context.Context, tenantID string, req Request) (*os.File, int64, error) {
	s, err := e.begin(ctx, tenantID, req)
	if err != nil {
		return nil, 0, err
	}
	defer s.end()
	var rnd [12]byte
	_, _ = rand.Read(rnd[:])
	path := filepath.Join(e.pool.ScratchDir(tenantID), "query-"+hex.EncodeToString(rnd[:])+".parquet")
	defer os.Remove(path)
	n, err := e.copyParquet(ctx, s, tenantID, req.SQL, path)
	if err != nil {
		return nil, 0, err
	}
	if n > e.cfg.MaxRows {
		return nil, 0, fmt.Errorf("%w: %d rows, the limit is %d", ErrTooLarge, n, e.cfg.MaxRows)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("open parquet result: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, 0, fmt.Errorf("stat parquet result: %w", err)
	}
	if st.Size() > e.cfg.MaxBytes {
		_ = f.Close()
		return nil, 0, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, st.Size(), e.cfg.MaxBytes)
	}
	return f, st.Size(), nil
}

// trimStatement drops trailing white space and semicolons.
func trimStatement(q string) string {
	return strings.TrimRight(q, " \t\r\n;")
}

// column is a result column as the encoders need it.
type column struct {
	jsonKey []byte // `"name":`, escaped
	csvName []byte // the header field
	kind    kind
	fast    bool // encoded from the vector (vectors_encode.go)
}

// resultStream is a response body that encodes rows as fasthttp writes it.
// fasthttp calls WriteTo (see fasthttp.BodyWriterTo) on its connection
// goroutine and closes the connection when WriteTo returns an error, so a
// failed result is never taken for a complete one; then it calls Close.
// It is used by one goroutine at a time.
type resultStream struct {
	rows     *Rows
	format   Format
	maxBytes int64
	cols     []column

	pipe *io.PipeReader // set if the body is read through Read
}

// newResultStream encodes rows in format f; it owns rows.
func newResultStream(rows *Rows, f Format, maxBytes int64) *resultStream {
	r := &resultStream{rows: rows, format: f, maxBytes: maxBytes, cols: make([]column, len(rows.cols))}
	seen := make(map[string]int, len(rows.cols))
	for i, c := range rows.cols {
		name := c.Name
		r.cols[i].csvName = appendCSVField(nil, name, kindOther)
		// Duplicate names (select 1 a, 2 a) would collide in a JSON object.
		if n := seen[name]; n > 0 {
			seen[name] = n + 1
			name = fmt.Sprintf("%s_%d", name, n)
		} else {
			seen[name] = 1
		}
		r.cols[i].jsonKey = append(jsonstr.Append(nil, name), ':')
		r.cols[i].kind = rows.kinds[i]
		r.cols[i].fast = rows.res.cols[i].fastEncoded()
	}
	return r
}

// SupportsBodyWriteTo tells fasthttp to call WriteTo.
func (r *resultStream) SupportsBodyWriteTo() bool { return true }

// WriteTo encodes the whole result into w. An error (of the query, a limit,
// or w) ends it: the error marker is written if w still works, and the
// error is returned so that fasthttp cuts the connection.
func (r *resultStream) WriteTo(w io.Writer) (written int64, err error) {
	e := r.rows.e
	defer r.rows.finish()
	start := time.Now()
	var n int64
	defer func() {
		m := &e.metrics
		m.bytes.Add(int(written))
		m.rows.Add(int(n))
		m.stream.UpdateDuration(start)
		if err != nil {
			m.cut.Inc()
		}
	}()
	cw := &countWriter{w: w}
	bw := getStreamBuf(cw)
	defer putStreamBuf(bw)
	bp := rowBufPool.Get().(*[]byte)
	defer rowBufPool.Put(bp)
	b := (*bp)[:0]

	b = r.appendHeader(b)
	var total int64
	rows := r.rows
	rows.raw = true
	for rows.Next() {
		// The row is read from DuckDB's vectors, under the lock that keeps
		// a Close from another goroutine from freeing them meanwhile.
		rows.mu.Lock()
		if rows.done || rows.closed.Load() {
			rows.mu.Unlock()
			continue // closed meanwhile: Next ends the result with its error
		}
		b = r.appendVectorRow(b, rows.res, n)
		rows.mu.Unlock()
		total += int64(len(b))
		if _, err = bw.Write(b); err != nil {
			break
		}
		b = b[:0]
		n++
		if total > r.maxBytes {
			err = fmt.Errorf("%w: more than %d bytes", ErrTooLarge, r.maxBytes)
			break
		}
	}
	if err == nil {
		err = r.rows.Err()
	}
	*bp = b[:0]
	if err == nil {
		b = r.appendFooter(b, n)
		_, _ = bw.Write(b)
		*bp = b[:0]
		if ferr := bw.Flush(); ferr != nil {
			return cw.n, ferr
		}
		return cw.n, nil
	}
	if cw.err == nil {
		b = r.appendMarker(b, err)
		_, _ = bw.Write(b)
		*bp = b[:0]
		_ = bw.Flush()
	}
	if cw.err != nil {
		e.log.Debug("query result not delivered", zap.String("tenant", r.rows.tenant), zap.Error(cw.err))
		return cw.n, cw.err
	}
	e.log.Info("query result cut short", zap.String("tenant", r.rows.tenant), zap.Int64("rows", n), zap.Error(err))
	return cw.n, err
}

// Read serves fasthttp paths that read the body instead of calling WriteTo
// (none today): it runs WriteTo into a pipe.
func (r *resultStream) Read(p []byte) (int, error) {
	if r.pipe == nil {
		pr, pw := io.Pipe()
		r.pipe = pr
		go func() {
			_, err := r.WriteTo(pw)
			_ = pw.CloseWithError(err)
		}()
	}
	return r.pipe.Read(p)
}

// Close releases the query if WriteTo never ran (the client went away
// before the body was sent).
func (r *resultStream) Close() error {
	if r.pipe != nil {
		return r.pipe.Close() // the WriteTo goroutine fails its next write and finishes
	}
	return r.rows.Close()
}

func (r *resultStream) appendHeader(b []byte) []byte {
	switch r.format {
	case FormatJSON:
		return append(b, '[')
	case FormatCSV:
		for i, c := range r.cols {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, c.csvName...)
		}
		return append(b, '\r', '\n')
	}
	return b
}

// appendRow appends the row vals, the n-th of the result.
func (r *resultStream) appendRow(b []byte, vals []any, n int64) []byte {
	b = r.rowStart(b, n)
	for i, v := range vals {
		b = r.fieldStart(b, i)
		if r.format == FormatCSV {
			b = appendCSVField(b, v, r.cols[i].kind)
		} else {
			b = appendJSONValue(b, v, r.cols[i].kind)
		}
	}
	return r.rowEnd(b)
}

// appendVectorRow appends the current row of res, the n-th of the result,
// as appendRow appends its values: the columns of fast types are read from
// DuckDB's vectors (vectors_encode.go), the others through their values.
func (r *resultStream) appendVectorRow(b []byte, res *streamResult, n int64) []byte {
	row := res.row - 1
	b = r.rowStart(b, n)
	for i := range r.cols {
		b = r.fieldStart(b, i)
		c := &r.cols[i]
		switch {
		case r.format == FormatCSV && c.fast:
			b = res.cols[i].appendCSV(b, row, c.kind)
		case r.format == FormatCSV:
			b = appendCSVField(b, res.value(i), c.kind)
		case c.fast:
			b = res.cols[i].appendJSON(b, row, c.kind)
		default:
			b = appendJSONValue(b, res.value(i), c.kind)
		}
	}
	return r.rowEnd(b)
}

// rowStart opens the n-th row: the separator of a JSON array's elements
// and an object's brace.
func (r *resultStream) rowStart(b []byte, n int64) []byte {
	switch r.format {
	case FormatCSV:
		return b
	case FormatJSON:
		if n > 0 {
			b = append(b, ',')
		}
		b = append(b, '\n')
	}
	return append(b, '{')
}

// fieldStart opens the field of column i: a separator, and a JSON key.
func (r *resultStream) fieldStart(b []byte, i int) []byte {
	if i > 0 {
		b = append(b, ',')
	}
	if r.format != FormatCSV {
		b = append(b, r.cols[i].jsonKey...)
	}
	return b
}

// rowEnd closes a row.
func (r *resultStream) rowEnd(b []byte) []byte {
	switch r.format {
	case FormatCSV:
		return append(b, '\r', '\n')
	case FormatNDJSON:
		return append(b, '}', '\n')
	}
	return append(b, '}')
}

func (r *resultStream) appendFooter(b []byte, n int64) []byte {
	if r.format == FormatJSON {
		if n > 0 {
			b = append(b, '\n')
		}
		return append(b, ']', '\n')
	}
	return b
}

// appendMarker writes the error marker that ends a failed result. JSON: the
// array stays unclosed and a line {"error":"..."} follows, so no parser
// takes it for a result. NDJSON: a last line {"error":"..."}. CSV: a last
// line "#error: ...".
func (r *resultStream) appendMarker(b []byte, err error) []byte {
	msg := err.Error()
	switch r.format {
	case FormatCSV:
		b = append(b, "#error: "...)
		b = append(b, strings.NewReplacer("\r", " ", "\n", " ").Replace(msg)...)
		return append(b, '\r', '\n')
	case FormatJSON:
		b = append(b, '\n')
	}
	b = append(b, `{"error":`...)
	b = jsonstr.Append(b, msg)
	return append(b, '}', '\n')
}

// countWriter counts what reaches w and keeps its first error.
type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if err != nil && c.err == nil {
		c.err = err
	}
	return n, err
}
