package share

import (
	"errors"

	"github.com/valyala/fasthttp"

	"duckgate/query"
)

// The errors of this package. StatusOf maps them to HTTP statuses; errors of
// package query keep query's status.
var (
	// ErrNotFound means no link has this id, or the caller's tenant has no
	// link with this link id. Status 404. A miss says nothing of whether
	// another tenant's link exists.
	ErrNotFound = errors.New("no such share link")

	// ErrGone means the link expired or was revoked. Status 410. Both give
	// the same message.
	ErrGone = errors.New("this share link has expired or was revoked")

	// ErrSuspended means the tenant that made the link is suspended (or
	// deleted). Status 403.
	ErrSuspended = errors.New("the owner of this share link is suspended: the link works again once they are resumed")

	// ErrBadRequest means a field of the create request is invalid: the
	// body, the name, the duration. Status 400.
	ErrBadRequest = errors.New("bad share request")

	// ErrTooMany means the tenant has Config.MaxLinksPerTenant links
	// (counting revoked and expired ones not yet dropped). Status 409.
	ErrTooMany = errors.New("too many share links: revoke some (DELETE /api/data/query/share/{link_id}) or wait for them to expire")
)

// StatusOf maps an error to its HTTP status: this package's errors first,
// then query.StatusOf.
func StatusOf(err error) int {
	var re *runError
	switch {
	case errors.As(err, &re):
		return re.status
	case errors.Is(err, ErrNotFound):
		return fasthttp.StatusNotFound
	case errors.Is(err, ErrGone):
		return fasthttp.StatusGone
	case errors.Is(err, ErrSuspended):
		return fasthttp.StatusForbidden
	case errors.Is(err, ErrBadRequest):
		return fasthttp.StatusBadRequest
	case errors.Is(err, ErrTooMany):
		return fasthttp.StatusConflict
	}
	return query.StatusOf(err)
}
