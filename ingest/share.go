package ingest

import (
	"fmt"

	"github.com/valyala/fasthttp"
)

// routeShare serves /api/data/query/share... and the public /share/{id} pages.
func (s *Server) routeShare(ctx *fasthttp.RequestCtx, method, path string) {
	writeError(ctx, fmt.Errorf("%w: no route for %s %s", ErrNotFound, method, path))
}
