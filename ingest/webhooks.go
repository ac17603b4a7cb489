package ingest

import (
	"fmt"

	"github.com/valyala/fasthttp"
)

// routeWebhooks serves /api/webhooks and /api/webhooks/{id}.
func (s *Server) routeWebhooks(ctx *fasthttp.RequestCtx, method, path string) {
	writeError(ctx, fmt.Errorf("%w: no route for %s %s", ErrNotFound, method, path))
}
