package api

import (
	"bytes"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/pprofhandler"
)

// serveMetrics serves /metrics: Prometheus text format, no key (it carries
// no tenant data and no tenant label), also while the log is recovered.
// Every family has # HELP (from metricHelp) and # TYPE lines.
func (s *Server) serveMetrics(ctx *fasthttp.RequestCtx, method string) {
	if method != fasthttp.MethodGet {
		writeError(ctx, methodNotAllowed("GET"))
		return
	}
	var buf bytes.Buffer
	s.cfg.Metrics.WritePrometheus(&buf)
	metrics.WriteProcessMetrics(&buf)
	ctx.SetContentType("text/plain; version=0.0.4; charset=utf-8")
	ctx.SetBody(withHelp(buf.Bytes()))
}

// withHelp fills in the text of the "# HELP <family>" lines the metrics
// library writes empty, and fixes the few process and Go runtime families
// of the library that break Prometheus' naming rules (see libraryFixes).
func withHelp(text []byte) []byte {
	out := make([]byte, 0, len(text)+len(text)/4)
	for line := range bytes.Lines(text) {
		line = fixLibraryLine(line)
		family, ok := bytes.CutPrefix(bytes.TrimSuffix(line, []byte("\n")), []byte("# HELP "))
		if !ok || bytes.IndexByte(family, ' ') >= 0 {
			out = append(out, line...)
			continue
		}
		help := metricHelp[string(family)]
		if help == "" {
			help = strings.ReplaceAll(strings.TrimPrefix(string(family), "duckgate_"), "_", " ")
		}
		out = append(out, "# HELP "...)
		out = append(out, family...)
		out = append(out, ' ')
		out = append(out, help...)
		out = append(out, '\n')
	}
	return out
}

// libraryFixes rename the metrics library's families that Prometheus'
// rules refuse: a counter must end in _total, only histograms and
// summaries may end in _count.
var libraryFixes = []struct{ from, to string }{
	{"go_cgo_calls_count", "go_cgo_calls_total"},
	{"go_gc_forced_count", "go_gc_forced_total"},
	{"go_cpu_count", "go_cpus"},
}

// fixLibraryLine applies libraryFixes to a line of the exposition, and
// types the library's process_io_*_total families, which it writes as
// gauges, as the counters they are.
func fixLibraryLine(line []byte) []byte {
	for _, f := range libraryFixes {
		if i := bytes.Index(line, []byte(f.from)); i >= 0 && (i == 0 || bytes.HasPrefix(line, []byte("# "))) {
			return bytes.Replace(line, []byte(f.from), []byte(f.to), 1)
		}
	}
	if bytes.HasPrefix(line, []byte("# TYPE process_io_")) && bytes.HasSuffix(line, []byte("_total gauge\n")) {
		// A copy: line shares the exposition's buffer with the lines after it.
		return append(append([]byte(nil), bytes.TrimSuffix(line, []byte("gauge\n"))...), "counter\n"...)
	}
	return line
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
	deliveries     deliveryCounters
	queryFirstByte *metrics.PrometheusHistogram
}

func newServerMetrics(set *metrics.Set) serverMetrics {
	return serverMetrics{
		inserts:        statusCounters{set: set, name: "duckgate_insert_requests_total"},
		queries:        statusCounters{set: set, name: "duckgate_query_requests_total"},
		deliveries:     deliveryCounters{set: set},
		queryFirstByte: set.NewPrometheusHistogram("duckgate_query_first_byte_seconds"),
	}
}

// deliveryCounters count webhook deliveries by provider and status,
// refusals included. Both labels are bounded: the four providers (or
// "unknown" for an unknown endpoint) and the HTTP status codes.
type deliveryCounters struct {
	set *metrics.Set
}

func (c *deliveryCounters) inc(provider string, status int) {
	if provider == "" {
		provider = "unknown"
	}
	c.set.GetOrCreateCounter(`duckgate_webhook_deliveries_total{provider="` + provider + `",status="` + strconv.Itoa(status) + `"}`).Inc()
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
