package query

import "errors"

// The errors of this package. Every error a handler or the row API returns
// before the first byte of a response wraps one of them, except faults of
// the server (a broken database file, a driver failure), which the caller
// answers as 500. The comment of each says the HTTP status the caller
// should answer; package query maps none itself.
var (
	// ErrBadQuery means DuckDB refused the SQL: a syntax error, an unknown
	// table or column, a wrong number of params, a failure while running
	// it. Status 400.
	ErrBadQuery = errors.New("bad query")

	// ErrNotReadOnly means the statement is not a SELECT. It comes wrapped
	// in a message naming the statement type DuckDB found: "INSERT
	// statements are not allowed: only one read-only SELECT per request".
	// Status 403.
	ErrNotReadOnly = errors.New("only one read-only SELECT per request")

	// ErrNotAllowed means the statement calls a function or table function,
	// or reads a table, that the sandbox's allow-list does not hold (see
	// sandbox_names.txt); the message names it: "function enable_logging is
	// not allowed in a query: ...". Nothing of the statement has run.
	// Status 403.
	ErrNotAllowed = errors.New("the sandbox allows only the functions, table functions and tables of its allow-list (see the README's security section)")

	// ErrSQLTooLarge means the SQL text is longer than Config.MaxSQLBytes.
	// Status 413.
	ErrSQLTooLarge = errors.New("query text too long: shorten it (a long IN list can be a join with a table), or raise -query.max-sql")

	// ErrMultipleStatements means the SQL holds more (or fewer) than exactly
	// one statement. Nothing of it has run. Status 400.
	ErrMultipleStatements = errors.New("exactly one SQL statement per request is allowed")

	// ErrTimeout means the query ran longer than its timeout (or its
	// context's deadline) and was interrupted; it comes wrapped with
	// context.DeadlineExceeded. Status 504 (Gateway Timeout: DuckDB behind
	// the gateway did not answer in time), so that it is not confused with
	// ErrBusy's 503.
	ErrTimeout = errors.New("query timed out: narrow the query or raise its timeout")

	// ErrCanceled means the caller's context was canceled while the query
	// waited or ran; it comes wrapped with context.Canceled. The caller
	// gave up, so an answer is rarely read; status 503.
	ErrCanceled = errors.New("query canceled")

	// ErrTooLarge means the result exceeded Config.MaxRows or
	// Config.MaxBytes. Known before the first byte (Parquet) it is status
	// 422; later it is the end-of-stream error marker.
	ErrTooLarge = errors.New("result too large: add a LIMIT or narrow the query")

	// ErrBusy means the tenant already runs Config.MaxConcurrent queries and
	// none finished within the query's timeout. Status 503 with
	// Retry-After: 1.
	ErrBusy = errors.New("too many concurrent queries for this tenant: retry later, or raise the per-tenant query concurrency")

	// ErrBadRequest means a request parameter is invalid: the format, the
	// timeout, the params, an empty query, SQL text holding a NUL byte, a
	// malformed JSON body. Status 400.
	ErrBadRequest = errors.New("bad request")

	// ErrNoTable means the table does not exist (or is internal). Status 404.
	ErrNoTable = errors.New("no such table")
)
