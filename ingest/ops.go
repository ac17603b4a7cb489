package ingest

import (
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/pprofhandler"
)

// routeOps serves /metrics (Prometheus text format, no key: it carries no
// tenant data and no tenant label) and /debug/pprof (admin key).
func (s *Server) routeOps(ctx *fasthttp.RequestCtx, method, path string) {
	if strings.HasPrefix(path, "/debug/pprof") {
		s.withAdmin(ctx, func() { pprofhandler.PprofHandler(ctx) })
		return
	}
	if method != fasthttp.MethodGet {
		methodNotAllowed(ctx, "GET")
		return
	}
	ctx.SetContentType("text/plain; version=0.0.4; charset=utf-8")
	s.metrics.set.WritePrometheus(ctx)
	metrics.WriteProcessMetrics(ctx)
}

// serverMetrics are the HTTP front's series. Status labels are bounded (the
// HTTP status codes); there is no tenant label.
type serverMetrics struct {
	set            *metrics.Set
	inserts        statusCounters
	queries        statusCounters
	rowsAccepted   *metrics.Counter
	rowsRejected   *metrics.Counter
	bytesAccepted  *metrics.Counter
	bytesRejected  *metrics.Counter
	queryFirstByte *metrics.Histogram
}

func newServerMetrics(set *metrics.Set) serverMetrics {
	if set == nil {
		set = metrics.NewSet()
	}
	return serverMetrics{
		set:            set,
		inserts:        statusCounters{set: set, name: "duckgate_insert_requests_total"},
		queries:        statusCounters{set: set, name: "duckgate_query_requests_total"},
		rowsAccepted:   set.NewCounter("duckgate_rows_accepted_total"),
		rowsRejected:   set.NewCounter("duckgate_rows_rejected_total"),
		bytesAccepted:  set.NewCounter("duckgate_insert_bytes_accepted_total"),
		bytesRejected:  set.NewCounter("duckgate_insert_bytes_rejected_total"),
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
