package ingest

import (
	"fmt"

	"github.com/valyala/fasthttp"
)

// routeOps serves /metrics and /debug/pprof.
func (s *Server) routeOps(ctx *fasthttp.RequestCtx, method, path string) {
	writeError(ctx, fmt.Errorf("%w: no route for %s %s", ErrNotFound, method, path))
}
