package ingest

import (
	"fmt"
	"strings"

	"github.com/valyala/fasthttp"

	"duckgate/share"
	"duckgate/tenant"
)

// routeShare serves /api/data/query/share... (the tenant's links, query
// scope) and the public /share/{id} pages and downloads (no key: the id is
// the secret). Package share does the work.
func (s *Server) routeShare(ctx *fasthttp.RequestCtx, method, path string) {
	if s.cfg.Share == nil {
		writeError(ctx, fmt.Errorf("%w: share links are not enabled", ErrNotFound))
		return
	}
	if rest, ok := strings.CutPrefix(path, "/share/"); ok {
		if method != fasthttp.MethodGet && method != fasthttp.MethodHead {
			methodNotAllowed(ctx, "GET, HEAD")
			return
		}
		id, file, isFile := strings.Cut(rest, "/")
		if !isFile {
			if err := s.cfg.Share.HandlePage(ctx, id); err != nil {
				share.WriteErrorPage(ctx, statusOf(err), err)
			}
			return
		}
		if err := s.cfg.Share.HandleDownload(ctx, id, file); err != nil {
			writeError(ctx, err)
		}
		return
	}
	rest, ok := strings.CutPrefix(path, "/api/data/query/share")
	if !ok || (rest != "" && !strings.HasPrefix(rest, "/")) {
		writeError(ctx, fmt.Errorf("%w: no route for %s %s", ErrNotFound, method, path))
		return
	}
	ref := strings.TrimPrefix(rest, "/")
	switch {
	case ref == "" && method == fasthttp.MethodPost:
		s.withTenant(ctx, tenant.ScopeQuery, func(t tenant.Tenant) { s.answer(ctx, s.cfg.Share.HandleCreate(ctx, t.ID)) })
	case ref == "" && method == fasthttp.MethodGet:
		s.withTenant(ctx, tenant.ScopeQuery, func(t tenant.Tenant) { s.answer(ctx, s.cfg.Share.HandleList(ctx, t.ID)) })
	case ref == "":
		methodNotAllowed(ctx, "GET, POST")
	case strings.Contains(ref, "/"):
		writeError(ctx, fmt.Errorf("%w: use /api/data/query/share/{link_id}", ErrNotFound))
	case method == fasthttp.MethodDelete:
		s.withTenant(ctx, tenant.ScopeQuery, func(t tenant.Tenant) { s.answer(ctx, s.cfg.Share.HandleRevoke(ctx, t.ID, ref)) })
	default:
		methodNotAllowed(ctx, "DELETE")
	}
}

// answer writes the error a handler returned, if any; the handler wrote
// nothing then.
func (s *Server) answer(ctx *fasthttp.RequestCtx, err error) {
	if err != nil {
		writeError(ctx, err)
	}
}
