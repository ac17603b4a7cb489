package api

import (
	"errors"
	"strconv"

	json "github.com/goccy/go-json"
	"github.com/valyala/fasthttp"

	"duckgate/admin"
	"duckgate/batcher"
	"duckgate/cluster"
	"duckgate/ingest"
	"duckgate/query"
	"duckgate/share"
	"duckgate/tenant"
	"duckgate/webhook"
)

// Errors of the HTTP front itself.
var (
	// errNotFound means no such route, or a feature that is off (404).
	errNotFound = errors.New("not found")
	// errForbidden means the key's scope or the tenant's status forbids
	// the call (403).
	errForbidden = errors.New("forbidden")
	// errBadRequest is a request fasthttp could not parse (400).
	errBadRequest = errors.New("bad request")
	// errAdminKey is a missing or unknown key on an admin route (401).
	errAdminKey = errors.New("missing or invalid admin key: send it in X-API-KEY or Authorization: Bearer")
	// errTenantKey is a tenant's key on an admin route (401, naming the
	// admin key).
	errTenantKey = errors.New("this route needs the admin key (send it in X-API-KEY); a tenant's API key was sent")
	// errStarting is any request before recovery has finished (503).
	errStarting = errors.New("starting: recovering the write-ahead log; retry in a second")
)

// methodError is a method the route does not serve (405 with Allow).
type methodError struct{ allow string }

func (e *methodError) Error() string { return "method not allowed: use " + e.allow }

func methodNotAllowed(allow string) error { return &methodError{allow: allow} }

// statusOf maps an error to its HTTP status: client faults are 4xx (do not
// retry as is), overload is 503 (retry later), the rest 500. It is the one
// place where an error of any package becomes a status.
func statusOf(err error) int {
	var me *methodError
	switch {
	case errors.As(err, &me):
		return fasthttp.StatusMethodNotAllowed
	case errors.Is(err, query.ErrNotReadOnly), errors.Is(err, query.ErrNotAllowed), errors.Is(err, share.ErrSuspended),
		errors.Is(err, share.ErrRefused):
		return fasthttp.StatusForbidden
	case errors.Is(err, query.ErrSQLTooLarge):
		return fasthttp.StatusRequestEntityTooLarge
	case errors.Is(err, query.ErrBadQuery), errors.Is(err, query.ErrMultipleStatements), errors.Is(err, query.ErrBadRequest),
		errors.Is(err, share.ErrBadRequest):
		return fasthttp.StatusBadRequest
	case errors.Is(err, query.ErrNoTable), errors.Is(err, share.ErrNotFound):
		return fasthttp.StatusNotFound
	case errors.Is(err, share.ErrGone):
		return fasthttp.StatusGone
	case errors.Is(err, share.ErrTooMany):
		return fasthttp.StatusConflict
	case errors.Is(err, share.ErrQueryFailed), errors.Is(err, query.ErrTooLarge):
		return fasthttp.StatusUnprocessableEntity
	case errors.Is(err, query.ErrTimeout):
		return fasthttp.StatusGatewayTimeout
	case errors.Is(err, query.ErrBusy), errors.Is(err, query.ErrCanceled):
		return fasthttp.StatusServiceUnavailable
	case errors.Is(err, ingest.ErrBadBody), errors.Is(err, ingest.ErrBadTable), errors.Is(err, ingest.ErrBadRequest),
		errors.Is(err, errBadRequest), errors.Is(err, tenant.ErrInvalid), errors.Is(err, admin.ErrBadRequest),
		errors.Is(err, webhook.ErrBadRequest), errors.Is(err, webhook.ErrMalformedBody), errors.Is(err, webhook.ErrLimit):
		return fasthttp.StatusBadRequest
	case errors.Is(err, admin.ErrCSRF):
		return fasthttp.StatusForbidden
	case errors.Is(err, tenant.ErrUnauthorized), errors.Is(err, errAdminKey), errors.Is(err, errTenantKey),
		errors.Is(err, admin.ErrSignIn), errors.Is(err, admin.ErrNoSession),
		errors.Is(err, webhook.ErrMissingSignature), errors.Is(err, webhook.ErrMalformedSignature),
		errors.Is(err, webhook.ErrBadSignature), errors.Is(err, webhook.ErrStaleTimestamp):
		return fasthttp.StatusUnauthorized
	case errors.Is(err, errForbidden), errors.Is(err, ingest.ErrQuota), errors.Is(err, webhook.ErrForbidden):
		return fasthttp.StatusForbidden
	case errors.Is(err, errNotFound), errors.Is(err, tenant.ErrNotFound), errors.Is(err, webhook.ErrNotFound),
		errors.Is(err, batcher.ErrNotPinned), errors.Is(err, ingest.ErrNoTable):
		return fasthttp.StatusNotFound
	case errors.Is(err, tenant.ErrExists), errors.Is(err, batcher.ErrInProgress), errors.Is(err, batcher.ErrPinConflict),
		errors.Is(err, ingest.ErrExportBusy):
		return fasthttp.StatusConflict
	case errors.Is(err, ingest.ErrTooLarge):
		return fasthttp.StatusRequestEntityTooLarge
	case errors.Is(err, webhook.ErrEncoding):
		return fasthttp.StatusUnsupportedMediaType
	case errors.Is(err, ingest.ErrQuarantined):
		return fasthttp.StatusUnprocessableEntity
	case errors.Is(err, errTrackKey): // apart from the 401s above: its message names where a tracking key goes
		return fasthttp.StatusUnauthorized
	case errors.Is(err, ingest.ErrRateLimited):
		return fasthttp.StatusTooManyRequests
	case errors.Is(err, batcher.ErrBufferFull), errors.Is(err, batcher.ErrClosed), errors.Is(err, batcher.ErrLogUnavailable),
		errors.Is(err, webhook.ErrBusy), errors.Is(err, errStarting), errors.Is(err, ingest.ErrInFlight),
		errors.Is(err, cluster.ErrNoWriter):
		return fasthttp.StatusServiceUnavailable
	case errors.Is(err, ingest.ErrWaitTimeout):
		return fasthttp.StatusGatewayTimeout
	}
	return fasthttp.StatusInternalServerError
}

// errorBody is every error answer: {"error": "<what to do>"}.
type errorBody struct {
	Error string `json:"error"`
}

// writeError answers err as JSON {"error": "..."} with its status. A 401 for
// an API key carries no detail; a 503 says when to retry.
func writeError(ctx *fasthttp.RequestCtx, err error) {
	status := statusOf(err)
	var rej *ingest.RejectedError
	if errors.As(err, &rej) {
		writeJSON(ctx, status, struct {
			Error string `json:"error"`
			ingest.InsertResponse
		}{err.Error(), rej.Response})
		return
	}
	var trej *ingest.TrackRejectedError
	if errors.As(err, &trej) {
		writeJSON(ctx, status, struct {
			Error string `json:"error"`
			ingest.TrackResponse
		}{err.Error(), trej.Response})
		return
	}
	msg := err.Error()
	switch status {
	case fasthttp.StatusMethodNotAllowed:
		var me *methodError
		errors.As(err, &me)
		ctx.Response.Header.Set("Allow", me.allow)
	case fasthttp.StatusUnauthorized:
		if errors.Is(err, tenant.ErrUnauthorized) {
			msg = "missing or invalid API key: send it in X-API-KEY, Authorization: Bearer or ?api_key="
		}
	case fasthttp.StatusServiceUnavailable:
		ctx.Response.Header.Set("Retry-After", "1")
		switch {
		case errors.Is(err, batcher.ErrBufferFull):
			msg += ": the server is ingesting as fast as DuckDB takes rows; retry after a second, or raise -batcher.max-buffered"
		case errors.Is(err, batcher.ErrLogUnavailable):
			msg += ": nothing was stored; retry after a second (the operator should check the data disk, or the NATS servers in cluster mode)"
		}
	case fasthttp.StatusTooManyRequests:
		if rl := (*ingest.RateLimitError)(nil); errors.As(err, &rl) {
			ctx.Response.Header.Set("Retry-After", strconv.Itoa(rl.RetryAfter))
		}
	case fasthttp.StatusInternalServerError:
		msg = "internal error: " + msg
	}
	writeJSON(ctx, status, errorBody{Error: msg})
}

// writeResult answers what a handler returned: its error through
// writeError, or v as JSON with the status the handler set (200 unless it
// set another). A nil v with a nil error means the handler wrote the
// answer itself.
func writeResult(ctx *fasthttp.RequestCtx, v any, err error) {
	switch {
	case err != nil:
		writeError(ctx, err)
	case v != nil:
		writeJSON(ctx, ctx.Response.StatusCode(), v)
	}
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
