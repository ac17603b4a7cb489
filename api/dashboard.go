package api

import (
	"fmt"
	"strings"

	"github.com/valyala/fasthttp"

	"duckgate/admin"
)

// routeDashboard serves the admin dashboard under /admin. The page and its
// assets need no session; the data does.
//
//	GET  /admin, /admin/                 the page (embedded)
//	GET  /admin/assets/{app.js,app.css}  its script and style sheet
//	POST /admin/login                    admin key (form or JSON) → session cookie
//	GET  /admin/session                  session cookie → CSRF token, plans
//	POST /admin/logout                   session cookie + X-CSRF-Token
//	...  /admin/api/{rest}               session cookie + X-CSRF-Token → /api/admin/{rest}
//
// /admin/api/... is the admin API of routeAdmin, authorized by the session
// instead of the admin key: the page never holds the key.
func (s *Server) routeDashboard(ctx *fasthttp.RequestCtx, method, path string) {
	h := s.cfg.Admin
	if h == nil {
		writeError(ctx, fmt.Errorf("%w: the admin API is not enabled", errNotFound))
		return
	}
	switch {
	case path == "/admin" || path == "/admin/" || strings.HasPrefix(path, "/admin/assets/"):
		if method != fasthttp.MethodGet && method != fasthttp.MethodHead {
			writeError(ctx, methodNotAllowed("GET, HEAD"))
			return
		}
		asset := "" // the page
		if rest, ok := strings.CutPrefix(path, "/admin/assets/"); ok {
			if asset = rest; asset == "" {
				asset = "/"
			}
		}
		if !admin.ServeUI(ctx, asset) {
			writeError(ctx, fmt.Errorf("%w: no dashboard file %.64s", errNotFound, path))
		}
	case path == "/admin/login":
		if method != fasthttp.MethodPost {
			writeError(ctx, methodNotAllowed("POST"))
			return
		}
		v, err := h.Login(ctx)
		writeResult(ctx, v, err)
	case path == "/admin/session":
		if method != fasthttp.MethodGet {
			writeError(ctx, methodNotAllowed("GET"))
			return
		}
		v, err := h.Session(ctx)
		writeResult(ctx, v, err)
	case path == "/admin/logout":
		if method != fasthttp.MethodPost {
			writeError(ctx, methodNotAllowed("POST"))
			return
		}
		v, err := h.Logout(ctx)
		writeResult(ctx, v, err)
	case strings.HasPrefix(path, "/admin/api/"):
		if err := h.CheckSession(ctx); err != nil {
			writeError(ctx, err)
			return
		}
		ctx.Response.Header.Set("Cache-Control", "no-store")
		s.routeAdmin(ctx, method, "/api/admin/"+strings.TrimPrefix(path, "/admin/api/"))
	default:
		writeError(ctx, fmt.Errorf("%w: no dashboard route for %s %.64s", errNotFound, method, path))
	}
}
