package admin

import "errors"

// ErrBadRequest means an admin request the handler cannot accept: not
// JSON, nothing to change, a delete without confirm=true (package api
// answers 400). The registry's own errors (tenant.ErrNotFound,
// tenant.ErrInvalid, tenant.ErrExists) pass through unchanged.
var ErrBadRequest = errors.New("bad admin request")
