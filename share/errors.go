package share

import "errors"

// The errors of this package. A handler that fails before writing returns
// an error wrapping one of them, or one of package query's (ErrBusy,
// ErrTimeout, ErrTooLarge while serving a link; any of them while creating
// one, whose SQL is the caller's own), or a server fault (500). The comment
// of each says the HTTP status the caller should answer; package share maps
// none itself.
var (
	// ErrNotFound means no link has this id, or the caller's tenant has no
	// link with this link id, or the download is not one of data.csv,
	// data.json, data.ndjson and data.parquet. Status 404. A miss says
	// nothing of whether another tenant's link exists.
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

	// ErrQueryFailed means a link's query failed when a visitor downloaded
	// its data: DuckDB refused it (a table was dropped, a cast fails). The
	// error says nothing more, so that a visitor never sees the SQL; the
	// cause is logged. Status 422.
	ErrQueryFailed = errors.New("the shared query cannot run now: ask the owner of the link to check it")

	// ErrRefused means the link's stored query failed the query sandbox's
	// check when the server started (Open checks every live link again: a
	// registry written by an older version, or edited by hand, may hold SQL
	// the sandbox refuses now). The link is not served until a later start
	// finds it allowed; its owner sees why in the list of links. Status 403.
	ErrRefused = errors.New("this share link's query is not allowed by the server's query sandbox, so it is not served: ask the owner of the link to make a new one")
)

// errInternal is a server fault while serving a link, told to a visitor
// without its detail (which is logged). It wraps no sentinel: status 500.
var errInternal = errors.New("the shared data cannot be read now: ask the owner of the link to check it")
