package api

import (
	"fmt"
	"strings"

	"github.com/valyala/fasthttp"

	"duckgate/tenant"
)

// routeShare serves /api/data/query/share... (the tenant's links, query
// scope) and the public /share/{id} pages and downloads (no key: the id is
// the secret). Package share does the work; a page's error is answered as
// an HTML page, for people, a download's as JSON.
func (s *Server) routeShare(ctx *fasthttp.RequestCtx, method, path string) {
	sh := s.cfg.Share
	if sh == nil {
		writeError(ctx, fmt.Errorf("%w: share links are not enabled", errNotFound))
		return
	}
	if rest, ok := strings.CutPrefix(path, "/share/"); ok {
		if method != fasthttp.MethodGet && method != fasthttp.MethodHead {
			writeError(ctx, methodNotAllowed("GET, HEAD"))
			return
		}
		id, file, isFile := strings.Cut(rest, "/")
		if tenantID, ok := sh.TenantOf(id); ok {
			// The link's query runs where the tenant's database is written.
			if forwarded, err := s.forward(ctx, tenantID); forwarded || err != nil {
				switch {
				case err != nil && isFile:
					writeError(ctx, err)
				case err != nil:
					sh.WritePageError(ctx, id, statusOf(err), err)
				}
				return
			}
		}
		if !isFile {
			if err := sh.HandlePage(ctx, id); err != nil {
				sh.WritePageError(ctx, id, statusOf(err), err)
			}
			return
		}
		if err := sh.HandleDownload(ctx, id, file); err != nil {
			writeError(ctx, err)
		}
		return
	}
	rest, ok := strings.CutPrefix(path, "/api/data/query/share")
	if !ok || (rest != "" && !strings.HasPrefix(rest, "/")) {
		writeError(ctx, fmt.Errorf("%w: no route for %s %.64s", errNotFound, method, path))
		return
	}
	ref := strings.TrimPrefix(rest, "/")
	switch {
	case ref == "" && method == fasthttp.MethodPost:
		s.withTenant(ctx, tenant.ScopeQuery, func(t tenant.Tenant) (any, error) { return nil, sh.HandleCreate(ctx, t.ID) })
	case ref == "" && method == fasthttp.MethodGet:
		s.withTenant(ctx, tenant.ScopeQuery, func(t tenant.Tenant) (any, error) { return nil, sh.HandleList(ctx, t.ID) })
	case ref == "":
		writeError(ctx, methodNotAllowed("GET, POST"))
	case strings.Contains(ref, "/"):
		writeError(ctx, fmt.Errorf("%w: use /api/data/query/share/{link_id}", errNotFound))
	case method == fasthttp.MethodDelete:
		s.withTenant(ctx, tenant.ScopeQuery, func(t tenant.Tenant) (any, error) { return nil, sh.HandleRevoke(ctx, t.ID, ref) })
	default:
		writeError(ctx, methodNotAllowed("DELETE"))
	}
}
