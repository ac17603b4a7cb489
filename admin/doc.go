// Package admin serves the operator's API: tenants, keys and plans, tenant
// statistics (tables, rows, bytes on disk, last ingest), and operator
// queries across tenants over snapshots of their databases; and the
// dashboard at /admin: an embedded page (ui/, ServeUI) whose sign-in
// exchanges the admin key for an in-memory session (session.go: Login,
// Session, CheckSession, Logout), after which package api routes
// /admin/api/... to the same handlers.
//
// Package api checks the admin key and routes /api/admin/... here. Handlers
// return a value (answered as JSON) or an error: the registry's errors
// (tenant.ErrNotFound, ErrInvalid, ErrExists) and ErrBadRequest. Work that
// outlives a request (removing a deleted tenant's files a second time, in
// case a straggling insert recreated them; deleting an operator query's
// snapshots once its result is sent) runs on goroutines that Close stops and
// waits for.
package admin
