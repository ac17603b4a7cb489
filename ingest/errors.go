package ingest

import "errors"

// Errors of this package, wrapped with detail; test with errors.Is. Package
// api maps them to HTTP status; the status each one gets is in its comment.
var (
	// ErrBadBody means nothing in the body could be stored: not JSON,
	// empty, a top-level scalar, or every element invalid (400). When some
	// elements were examined, the error is a *RejectedError listing them.
	ErrBadBody = errors.New("bad request body")
	// ErrBadTable means the table name is not acceptable (400).
	ErrBadTable = errors.New("bad table name")
	// ErrBadRequest is any other malformed request: an unknown
	// Content-Encoding, an over-long Idempotency-Key (400).
	ErrBadRequest = errors.New("bad request")
	// ErrTooLarge means the body exceeds the size limit after
	// decompression (413).
	ErrTooLarge = errors.New("request body too large")
	// ErrRateLimited means the tenant inserts more rows per second than its
	// plan allows (429 with Retry-After). It comes as a *RateLimitError.
	ErrRateLimited = errors.New("ingest rate limit reached")
	// ErrQuota means the tenant's database reached its plan's storage
	// quota (403: retrying does not help until the operator moves the
	// tenant to a larger plan; 507 would invite retries, 413 is about the
	// request's own size).
	ErrQuota = errors.New("storage quota reached")
	// ErrWaitTimeout means an insert with ?wait=true was not committed in
	// time; its rows are durable and stay queued (504).
	ErrWaitTimeout = errors.New("the rows were not committed in time")
	// ErrQuarantined means an insert with ?wait=true ended in the
	// quarantine table after its batch kept failing (422).
	ErrQuarantined = errors.New("the batch was quarantined")
	// ErrInFlight means a tracking event's messageId or uuid is being
	// stored by another request right now (an SDK's retry racing its first
	// try): nothing of this request was stored, and a retry in a second
	// either finds the event stored or stores it (503 with Retry-After,
	// which the SDKs retry).
	ErrInFlight = errors.New("an event of this batch is being stored by another request")
	// ErrNoTable means the tenant has no table of that name (404).
	ErrNoTable = errors.New("no such table")
	// ErrExportBusy means an export of the tenant is being made or sent
	// now; one runs at a time (409).
	ErrExportBusy = errors.New("an export of this tenant is already running")
)

// RateLimitError is ErrRateLimited with the time after which the client may
// retry.
type RateLimitError struct {
	// RetryAfter is whole seconds, at least 1.
	RetryAfter int
	msg        string
}

// Error returns the message for the client.
func (e *RateLimitError) Error() string { return e.msg }

// Unwrap makes errors.Is(err, ErrRateLimited) true.
func (e *RateLimitError) Unwrap() error { return ErrRateLimited }

// RejectedError is a body with nothing storable (ErrBadBody) whose elements
// were examined: the answer lists why each was refused.
type RejectedError struct {
	// Response is the answer's counts and per-element errors.
	Response InsertResponse
	err      error
}

// Error returns the message for the client.
func (e *RejectedError) Error() string { return e.err.Error() }

// Unwrap makes errors.Is(err, ErrBadBody) true.
func (e *RejectedError) Unwrap() error { return e.err }
