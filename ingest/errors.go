package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"

	json "github.com/goccy/go-json"
	"github.com/valyala/fasthttp"

	"duckgate/batcher"
	"duckgate/query"
	"duckgate/share"
	"duckgate/tenant"
)

// Errors of this package. statusOf maps them, and those of the packages
// ingest calls, to HTTP status in one place.
var (
	// ErrBadBody means nothing in the body could be stored: not JSON,
	// empty, a top-level scalar, or every element invalid.
	ErrBadBody = errors.New("bad request body")
	// ErrBadTable means the table name is not acceptable.
	ErrBadTable = errors.New("bad table name")
	// ErrTooLarge means the body exceeds the size limit after decompression.
	ErrTooLarge = errors.New("request body too large")
	// ErrForbidden means the key's scope or the tenant's status forbids the call.
	ErrForbidden = errors.New("forbidden")
	// ErrBadRequest is any other malformed request.
	ErrBadRequest = errors.New("bad request")
	// ErrNotFound means no such route or resource.
	ErrNotFound = errors.New("not found")
)

// statusOf maps an error to its HTTP status: client faults are 4xx (do not
// retry as is), overload is 503 (retry later), the rest 500.
func statusOf(err error) int {
	if status, ok := queryStatusOf(err); ok {
		return status
	}
	switch {
	case errors.Is(err, ErrBadBody), errors.Is(err, ErrBadTable), errors.Is(err, ErrBadRequest), errors.Is(err, tenant.ErrInvalid):
		return fasthttp.StatusBadRequest
	case errors.Is(err, tenant.ErrUnauthorized):
		return fasthttp.StatusUnauthorized
	case errors.Is(err, ErrForbidden):
		return fasthttp.StatusForbidden
	case errors.Is(err, ErrNotFound), errors.Is(err, tenant.ErrNotFound):
		return fasthttp.StatusNotFound
	case errors.Is(err, tenant.ErrExists):
		return fasthttp.StatusConflict
	case errors.Is(err, ErrTooLarge):
		return fasthttp.StatusRequestEntityTooLarge
	case errors.Is(err, ErrRateLimited):
		return fasthttp.StatusTooManyRequests
	case errors.Is(err, batcher.ErrBufferFull), errors.Is(err, batcher.ErrClosed), errors.Is(err, batcher.ErrLogUnavailable):
		return fasthttp.StatusServiceUnavailable
	case errors.Is(err, batcher.ErrInProgress):
		return fasthttp.StatusConflict
	}
	return fasthttp.StatusInternalServerError
}

// queryStatusOf maps the errors of packages query and share to the
// statuses their errors.go documents. Temporary: package api takes this
// over.
func queryStatusOf(err error) (int, bool) {
	switch {
	case errors.Is(err, query.ErrNotReadOnly), errors.Is(err, share.ErrSuspended):
		return fasthttp.StatusForbidden, true
	case errors.Is(err, query.ErrBadQuery), errors.Is(err, query.ErrMultipleStatements), errors.Is(err, query.ErrBadRequest),
		errors.Is(err, share.ErrBadRequest):
		return fasthttp.StatusBadRequest, true
	case errors.Is(err, query.ErrNoTable), errors.Is(err, share.ErrNotFound):
		return fasthttp.StatusNotFound, true
	case errors.Is(err, share.ErrGone):
		return fasthttp.StatusGone, true
	case errors.Is(err, share.ErrTooMany):
		return fasthttp.StatusConflict, true
	case errors.Is(err, share.ErrQueryFailed):
		return fasthttp.StatusUnprocessableEntity, true
	case errors.Is(err, query.ErrTimeout):
		return fasthttp.StatusGatewayTimeout, true
	case errors.Is(err, query.ErrTooLarge):
		return fasthttp.StatusUnprocessableEntity, true
	case errors.Is(err, query.ErrBusy), errors.Is(err, query.ErrCanceled):
		return fasthttp.StatusServiceUnavailable, true
	}
	return 0, false
}

// writeError answers err as JSON {"error": "..."} with its status. A 401
// carries no detail; a 503 says when to retry.
func writeError(ctx *fasthttp.RequestCtx, err error) {
	status := statusOf(err)
	var rej *rejectedError
	if errors.As(err, &rej) {
		writeJSON(ctx, status, struct {
			Error string `json:"error"`
			InsertResponse
		}{err.Error(), rej.resp})
		return
	}
	msg := err.Error()
	switch status {
	case fasthttp.StatusUnauthorized:
		msg = "missing or invalid API key: send it in X-API-KEY, Authorization: Bearer or ?api_key="
	case fasthttp.StatusServiceUnavailable:
		ctx.Response.Header.Set("Retry-After", "1")
		switch {
		case errors.Is(err, batcher.ErrBufferFull):
			msg += ": the server is ingesting as fast as DuckDB takes rows; retry after a second, or raise -batcher.max-buffered"
		case errors.Is(err, batcher.ErrLogUnavailable):
			msg += ": nothing was stored; retry after a second (the operator should check the data disk)"
		}
	case fasthttp.StatusTooManyRequests:
		if rl := (*RateLimitError)(nil); errors.As(err, &rl) {
			ctx.Response.Header.Set("Retry-After", strconv.Itoa(rl.RetryAfter))
		}
	case fasthttp.StatusInternalServerError:
		msg = "internal error: " + msg
	}
	writeJSON(ctx, status, errorBody{Error: msg})
}

type errorBody struct {
	Error string `json:"error"`
}

// writeJSON answers v as JSON with status.
func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = fasthttp.StatusInternalServerError
		b = []byte(`{"error":"internal error: cannot encode the response"}`)
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '\n'))
}

// decodeJSON decodes a small JSON request body into v.
func decodeJSON(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return fmt.Errorf("%w: the body is empty; send a JSON object", ErrBadRequest)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%w: invalid JSON body: %v", ErrBadRequest, err)
	}
	return nil
}
