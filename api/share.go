package api

import (
	"fmt"
	"strings"

	"github.com/valyala/fasthttp"

	"duckgate/tenant"
)

// routeShare serves /api/data/query/share... (the tenant's links, query
// scope) and the public /share/{id} pages and downloads (no key: the id is
// the secret). Package share does the work.
func (s *Server) routeShare(ctx *fasthttp.RequestCtx, method, path string) {
	if s.cfg.Share == nil {
		writeError(ctx, fmt.Errorf("%w: share links are not enabled", errNotFound))
		return
	}
	if rest, ok := strings.CutPrefix(path, "/share/"); ok {
		s.cfg.Share.HandlePublic(ctx, rest)
		return
	}
	rest, ok := strings.CutPrefix(path, "/api/data/query/share")
	if !ok || (rest != "" && !strings.HasPrefix(rest, "/")) {
		writeError(ctx, fmt.Errorf("%w: no route for %s %s", errNotFound, method, truncate(path)))
		return
	}
	ref := strings.TrimPrefix(rest, "/")
	switch {
	case ref == "" && method == fasthttp.MethodPost:
		s.withTenant(ctx, tenant.ScopeQuery, func(t tenant.Tenant) (any, error) { s.cfg.Share.HandleCreate(ctx, t.ID); return nil, nil })
	case ref == "" && method == fasthttp.MethodGet:
		s.withTenant(ctx, tenant.ScopeQuery, func(t tenant.Tenant) (any, error) { s.cfg.Share.HandleList(ctx, t.ID); return nil, nil })
	case ref == "":
		writeError(ctx, methodNotAllowed("GET, POST"))
	case strings.Contains(ref, "/"):
		writeError(ctx, fmt.Errorf("%w: use /api/data/query/share/{link_id}", errNotFound))
	case method == fasthttp.MethodDelete:
		s.withTenant(ctx, tenant.ScopeQuery, func(t tenant.Tenant) (any, error) { s.cfg.Share.HandleRevoke(ctx, t.ID, ref); return nil, nil })
	default:
		writeError(ctx, methodNotAllowed("DELETE"))
	}
}
