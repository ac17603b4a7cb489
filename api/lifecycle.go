package api

import (
	"strings"

	"github.com/valyala/fasthttp"

	"duckgate/tenant"
)

// Routes of the data lifecycle (pins, freezes, the quarantine). Changing
// how a table stores data, and replaying or discarding quarantined rows,
// needs a "full" key: an "ingest" key ships inside apps, and a "query" key
// is read-only. Reading the rules and the quarantine needs a "query" key,
// as reading the data does.
//
//	GET    /api/tables/{table}                   query scope: its pins and frozen flag
//	PUT    /api/tables/{table}                   full scope:  {"frozen":true|false}
//	PUT    /api/tables/{table}/columns/{column}  full scope:  {"type":"BIGINT"} pins
//	DELETE /api/tables/{table}/columns/{column}  full scope:  unpins
//	GET    /api/quarantine                       query scope: entries, counts by table and reason
//	POST   /api/quarantine/replay                full scope:  {"all":true} | {"table":…} | {"ids":[…]}
//	DELETE /api/quarantine                       full scope:  the same selectors

// routeTableRules serves the table routes above and reports whether path
// was one of them; /api/tables and /api/tables/{table}/columns are
// routeTables'.
func (s *Server) routeTableRules(ctx *fasthttp.RequestCtx, method, path string) bool {
	rest, ok := strings.CutPrefix(path, "/api/tables/")
	if !ok || rest == "" {
		return false
	}
	parts := strings.Split(rest, "/")
	h := s.cfg.Ingest
	switch {
	case len(parts) == 1:
		table := parts[0]
		switch method {
		case fasthttp.MethodGet:
			s.withTenant(ctx, tenant.ScopeQuery, func(t tenant.Tenant) (any, error) { return h.TableRules(ctx, t, table) })
		case fasthttp.MethodPut:
			s.withTenant(ctx, tenant.ScopeFull, func(t tenant.Tenant) (any, error) { return h.SetTable(ctx, t, table) })
		default:
			writeError(ctx, methodNotAllowed("GET, PUT"))
		}
		return true
	case len(parts) == 3 && parts[1] == "columns":
		table, column := parts[0], parts[2]
		switch method {
		case fasthttp.MethodPut:
			s.withTenant(ctx, tenant.ScopeFull, func(t tenant.Tenant) (any, error) { return h.PinColumn(ctx, t, table, column) })
		case fasthttp.MethodDelete:
			s.withTenant(ctx, tenant.ScopeFull, func(t tenant.Tenant) (any, error) { return h.UnpinColumn(ctx, t, table, column) })
		default:
			writeError(ctx, methodNotAllowed("PUT, DELETE"))
		}
		return true
	}
	return false
}

// routeQuarantine serves /api/quarantine and /api/quarantine/replay.
func (s *Server) routeQuarantine(ctx *fasthttp.RequestCtx, method, path string) {
	h := s.cfg.Ingest
	if path == "/api/quarantine/replay" {
		if method != fasthttp.MethodPost {
			writeError(ctx, methodNotAllowed("POST"))
			return
		}
		s.withTenant(ctx, tenant.ScopeFull, func(t tenant.Tenant) (any, error) { return h.ReplayQuarantine(ctx, t) })
		return
	}
	switch method {
	case fasthttp.MethodGet:
		s.withTenant(ctx, tenant.ScopeQuery, func(t tenant.Tenant) (any, error) { return h.ListQuarantine(ctx, t) })
	case fasthttp.MethodDelete:
		s.withTenant(ctx, tenant.ScopeFull, func(t tenant.Tenant) (any, error) { return h.DiscardQuarantine(ctx, t) })
	default:
		writeError(ctx, methodNotAllowed("GET, DELETE"))
	}
}
