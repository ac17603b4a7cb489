package ingest

import (
	"fmt"

	"github.com/valyala/fasthttp"
)

// routeAdmin serves /api/admin/...; the caller checked the admin key.
func (s *Server) routeAdmin(ctx *fasthttp.RequestCtx, method, path string) {
	switch {
	case path == "/api/admin/tenants" && method == fasthttp.MethodPost:
		s.handleCreateTenant(ctx)
	default:
		writeError(ctx, fmt.Errorf("%w: no admin route for %s %s", ErrNotFound, method, path))
	}
}
