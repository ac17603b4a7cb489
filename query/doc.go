// Package query runs tenants' read-only SQL over their DuckDB databases:
// a Go row API (Engine.Rows) and the HTTP handlers that stream results as
// JSON, NDJSON, CSV or Parquet.
//
// Data flow. Engine.Rows refuses SQL text over Config.MaxSQLBytes
// (ErrSQLTooLarge) or holding a NUL byte, takes one of the tenant's
// MaxConcurrent slots, optionally flushes the tenant's buffered rows
// (Flusher), waits for one of the engine's MaxExecuting slots (at most
// MaxExecutingPerTenant per tenant; a freed slot goes to the waiting
// tenant holding the fewest: fair.go), takes a dedicated connection of the
// tenant's sandboxed database (tenantdb.Pool) and runs the sandbox check
// (sandbox.go): DuckDB parses the SQL with json_serialize_sql, binding
// nothing, and the tree must hold exactly one SELECT whose every function,
// table function, table and type the allow-list (sandbox_names.txt)
// permits, and whose calls that set the size of the value they build
// (repeat, lpad, list_resize, ...) have constant size arguments within the
// bounds of sandbox_size.go, since DuckDB allocates such values outside
// the plan's memory_limit; then DuckDB prepares it and its statement type
// must be SELECT.
// The allow-list's rules for deciding a name: a function may compute a
// value from its arguments, the rows, the clock and randomness, nothing
// else (no files, network, settings, variables, server paths, logging,
// profiling, checkpoints, extensions, SQL given as text, sleeping,
// sequences); DuckDB's own macros and views are judged by what their
// definitions do; a name DuckDB adds later is refused until someone lists
// it. The SELECT runs in a read-only transaction, under the shorter of the
// request's timeout and Config.Timeout, on top of the caller's context;
// the timeout covers the check too (a check DuckDB is still parsing at the
// deadline is answered at once and finished in the background, holding the
// session). The first row is fetched before Rows returns, so that
// errors of running the query are Rows' error; the executing slot is then
// given back, the tenant slot and the connection when the Rows is closed.
// Package share reads its previews through Rows.
//
// Streaming. Results are not materialised: duckdb-go prepares the SELECT
// and binds its params, then it runs with DuckDB's streaming execution
// (duckdb_pending_prepared_streaming; stream_exec.go, using the driver's C
// connection and statement, duckraw.go) and each chunk of up to 2,048 rows
// is fetched when the encoder has written the previous one, so DuckDB
// produces rows as the client reads them and the server's memory does not
// grow with the result. The rows are read from DuckDB's vectors
// (vectors.go) into the Go values duckdb-go gives, every type; the stream
// encoders write the common scalar types (integers, floats, booleans,
// VARCHAR, ENUM, DECIMAL, HUGEINT, timestamps) straight from the vectors
// with the same bytes (vectors_encode.go), others through those values.
// Once the query's context ends (the timeout, Rows.Close) a watcher calls
// duckdb_interrupt, and a result abandoned mid-stream (the row or byte cap,
// a client gone) is interrupted before it is destroyed, so DuckDB stops
// mid-query or mid-stream. Measured on 2 shared cores (README,
// Measured): the first byte of a million-row JSON result after 6 to 7 ms
// (823 ms materialised); the server's peak RSS 56 MB for a 10M-row NDJSON
// export and 58 MB for 50M rows (535 MB and 2.9 GB materialised); 2.8 to 4.5
// times the rows/s of DuckDB's own COPY ... TO for JSON and CSV (1.4 to 1.6
// materialised, in the same conditions).
//
// HTTP. The router (package api; ingest today) authenticates the request
// and calls HandleQuery, HandleTables or HandleColumns with the tenant id.
// HandleQuery parses the request into a Request and calls Stream, which
// runs it through Rows and hands fasthttp a body that encodes the rows by
// hand into a 64 KiB buffer as it is sent, one HTTP chunk per flush; the
// query is released when the body ends, fails or the client goes away.
// Parquet is written by DuckDB (COPY ... TO the tenant's scratch directory)
// and sent as a file.
//
// Cache. With Config.Versions (the batcher) and Config.Cache.MaxBytes,
// HandleQuery keeps encoded JSON, NDJSON and CSV answers (cache.go), keyed
// by tenant, format, params and SQL, under the tenant's data version read
// before the query ran; an answer is served only while that version is
// still the tenant's, so it is what DuckDB would answer now. SQL whose
// answer may change without a commit (the clock, randomness, sampling,
// catalog ids) is recognised from its text and never kept, nor is a result
// that failed, was cut or exceeds Config.Cache.MaxEntryBytes. The header
// X-Duckgate-Cache says hit or miss.
//
// Errors. A handler that fails before the first byte of its response has
// written nothing and returns an error wrapping a sentinel of errors.go,
// whose comment gives the HTTP status; the caller writes the answer (a 503
// for ErrBusy with Retry-After). This package maps no status itself.
//
// Values keep their types: numbers are JSON numbers, BIGINT, HUGEINT and
// DECIMAL exactly (from their integer or decimal text, never float64); NaN
// and ±Inf doubles are null in JSON (NaN, +Inf, -Inf in CSV); JSON columns
// are nested JSON taken from DuckDB's text, so key order and every digit
// stay (see rawjson.go; a CSV cell holds the text as stored); LIST and
// ARRAY are arrays; STRUCT is an object with its fields sorted by name; MAP
// is an object in DuckDB's order with keys as text; TIMESTAMPTZ is RFC 3339
// in UTC with microseconds ("2024-01-02T03:04:05.123456Z"); TIMESTAMP the
// same without a zone; DATE "2024-01-02"; TIME "03:04:05.123456"; INTERVAL
// an ISO 8601 duration ("P1Y2M3DT4H5M6.5S"); UUID its canonical text; BLOB
// base64; NULL is null in JSON and an empty field in CSV (where the empty
// string is ""). Duplicate column names get a suffix in JSON objects (a,
// a_1). Rows.Values gives the Go values duckdb-go's rows give; Rows.AppendText
// their text as a CSV field holds it.
//
// Errors after the first byte. A result that fails once streaming began
// (a limit, an interrupted query, a failing row) never passes for a
// complete one. The stream ends with a marker and the connection is then cut
// without the end of the chunked body, so every HTTP client reports a broken
// transfer:
//
//   - json: the array is left unclosed; a newline and {"error":"..."} follow,
//     so a JSON parser fails and a human reading the body sees why.
//   - ndjson: a last line {"error":"..."} (a row never has only an "error"
//     key unless the query names a column so: check for the cut transfer).
//   - csv: a last line "#error: ...".
//   - parquet: the file is complete before the first byte, so its errors are
//     always Stream's error.
package query
