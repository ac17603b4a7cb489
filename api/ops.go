package api

import (
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/pprofhandler"
)

// serveMetrics serves /metrics: Prometheus text format, no key (it carries
// no tenant data and no tenant label), also while the log is recovered.
func (s *Server) serveMetrics(ctx *fasthttp.RequestCtx, method string) {
	if method != fasthttp.MethodGet {
		writeError(ctx, methodNotAllowed("GET"))
		return
	}
	ctx.SetContentType("text/plain; version=0.0.4; charset=utf-8")
	s.cfg.Metrics.WritePrometheus(ctx)
	metrics.WriteProcessMetrics(ctx)
}

// pprofProfiles are the profiles /debug/pprof/ serves besides its index.
var pprofProfiles = map[string]bool{
	"cmdline": true, "profile": true, "symbol": true, "trace": true,
	"allocs": true, "block": true, "goroutine": true, "heap": true, "mutex": true, "threadcreate": true,
}

// servePprof serves Go's profiles; the caller checked the admin key.
// /debug/pprof/ serves the index (/debug/pprof redirects there); an
// unknown profile is a JSON 404 like every other error.
func (s *Server) servePprof(ctx *fasthttp.RequestCtx, path string) {
	name := strings.TrimPrefix(strings.TrimPrefix(path, "/debug/pprof"), "/")
	if name != "" && !pprofProfiles[name] {
		writeError(ctx, errNotFound)
		return
	}
	if name == "" {
		if !strings.HasSuffix(path, "/") {
			// The index's links are relative to /debug/pprof/.
			ctx.Redirect("/debug/pprof/", fasthttp.StatusMovedPermanently)
			return
		}
		// fasthttp's handler answers 404 to a trailing slash and serves
		// the index for any path it does not know.
		ctx.URI().SetPath("/debug/pprof")
	}
	pprofhandler.PprofHandler(ctx)
}

// serverMetrics are the HTTP front's series. Status labels are bounded (the
// HTTP status codes); there is no tenant label.
type serverMetrics struct {
	inserts        statusCounters
	queries        statusCounters
	queryFirstByte *metrics.Histogram
}

func newServerMetrics(set *metrics.Set) serverMetrics {
	return serverMetrics{
		inserts:        statusCounters{set: set, name: "duckgate_insert_requests_total"},
		queries:        statusCounters{set: set, name: "duckgate_query_requests_total"},
		queryFirstByte: set.NewHistogram("duckgate_query_first_byte_seconds"),
	}
}

// statusCounters counts requests by HTTP status without formatting a
// label on every request.
type statusCounters struct {
	set      *metrics.Set
	name     string
	counters [600]atomic.Pointer[metrics.Counter]
}

func (c *statusCounters) inc(status int) {
	if status < 100 || status >= len(c.counters) {
		status = 599
	}
	m := c.counters[status].Load()
	if m == nil {
		m = c.set.GetOrCreateCounter(c.name + `{status="` + strconv.Itoa(status) + `"}`)
		c.counters[status].Store(m)
	}
	m.Inc()
}
