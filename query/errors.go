package query

import (
	"context"
	"errors"

	"github.com/valyala/fasthttp"
)

// The errors of this package. Wrapped errors carry the detail; StatusOf maps
// them to an HTTP status.
var (
	// ErrBadQuery means DuckDB refused the SQL: a syntax error, an unknown
	// table or column, a failure while running it. Status 400.
	ErrBadQuery = errors.New("bad query")

	// ErrNotReadOnly means the statement is not a SELECT. It comes wrapped
	// in a message naming the statement type DuckDB found: "INSERT
	// statements are not allowed: only one read-only SELECT per request".
	// Status 403.
	ErrNotReadOnly = errors.New("only one read-only SELECT per request")

	// ErrMultipleStatements means the SQL holds more (or fewer) than exactly
	// one statement. Nothing of it has run. Status 400.
	ErrMultipleStatements = errors.New("exactly one SQL statement per request is allowed")

	// ErrTimeout means the query ran longer than its timeout and was
	// interrupted. Status 504 (Gateway Timeout: DuckDB behind the gateway
	// did not answer in time), so that it is not confused with ErrBusy's 503.
	ErrTimeout = errors.New("query timed out: narrow the query or raise its timeout")

	// ErrTooLarge means the result exceeded Config.MaxRows or
	// Config.MaxBytes. Known before the first byte (Parquet) it is status
	// 422; later it is the end-of-stream error marker.
	ErrTooLarge = errors.New("result too large: add a LIMIT or narrow the query")

	// ErrBusy means the tenant already runs Config.MaxConcurrent queries and
	// none finished within the query's timeout. Status 503 with Retry-After.
	ErrBusy = errors.New("too many concurrent queries for this tenant: retry later, or raise the per-tenant query concurrency")

	// ErrBadRequest means a request parameter is invalid: the format, the
	// timeout, the params, an empty query, a malformed JSON body. Status 400.
	ErrBadRequest = errors.New("bad request")

	// ErrNoTable means the table does not exist (or is internal). Status 404.
	ErrNoTable = errors.New("no such table")
)

// StatusOf maps an error of this package to its HTTP status. Errors it does
// not know are 500.
func StatusOf(err error) int {
	switch {
	case err == nil:
		return fasthttp.StatusOK
	case errors.Is(err, ErrNotReadOnly):
		return fasthttp.StatusForbidden
	case errors.Is(err, ErrBadQuery), errors.Is(err, ErrMultipleStatements), errors.Is(err, ErrBadRequest):
		return fasthttp.StatusBadRequest
	case errors.Is(err, ErrNoTable):
		return fasthttp.StatusNotFound
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return fasthttp.StatusGatewayTimeout
	case errors.Is(err, ErrTooLarge):
		return fasthttp.StatusUnprocessableEntity
	case errors.Is(err, ErrBusy):
		return fasthttp.StatusServiceUnavailable
	default:
		return fasthttp.StatusInternalServerError
	}
}
