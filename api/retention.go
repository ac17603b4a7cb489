package api

import (
	"github.com/valyala/fasthttp"

	"duckgate/tenant"
)

// Data lifecycle routes: a table's retention and the whole-tenant export.

// routeRetention serves /api/tables/{table}/retention: reading it needs a
// query key, changing it (rows will be deleted) a full key.
func (s *Server) routeRetention(ctx *fasthttp.RequestCtx, method, table string) {
	h := s.cfg.Ingest
	switch method {
	case fasthttp.MethodGet:
		s.withTenant(ctx, tenant.ScopeQuery, func(t tenant.Tenant) (any, error) { return h.GetRetention(ctx, t, table) })
	case fasthttp.MethodPut:
		s.withTenant(ctx, tenant.ScopeFull, func(t tenant.Tenant) (any, error) { return h.PutRetention(ctx, t, table) })
	case fasthttp.MethodDelete:
		s.withTenant(ctx, tenant.ScopeFull, func(t tenant.Tenant) (any, error) { return h.DeleteRetention(ctx, t, table) })
	default:
		writeError(ctx, methodNotAllowed("GET, PUT, DELETE"))
	}
}

// routeExport serves GET /api/export: all of a tenant's data, so a full
// key.
func (s *Server) routeExport(ctx *fasthttp.RequestCtx, method string) {
	if method != fasthttp.MethodGet {
		writeError(ctx, methodNotAllowed("GET"))
		return
	}
	s.withTenant(ctx, tenant.ScopeFull, func(t tenant.Tenant) (any, error) {
		return nil, s.cfg.Ingest.Export(ctx, t)
	})
}
