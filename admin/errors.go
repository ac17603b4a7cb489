package admin

import "errors"

// ErrBadRequest means an admin request the handler cannot accept: not
// JSON, nothing to change, a delete without confirm=true (package api
// answers 400). The registry's own errors (tenant.ErrNotFound,
// tenant.ErrInvalid, tenant.ErrExists) pass through unchanged.
var ErrBadRequest = errors.New("bad admin request")

// truncate cuts client input quoted in an error message to 64 bytes.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
