package admin

import (
	"bytes"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
)

const (
	// DefaultHistoryInterval is how often the node's figures are sampled
	// for the dashboard's charts: often enough to see a burst, and an hour
	// is then 720 points, a few tens of KB.
	DefaultHistoryInterval = 5 * time.Second
	// historySpan is how far back the charts look.
	historySpan = time.Hour
)

// Sample is one point of the node's history: rates are per second over
// the interval before At, levels are as read at At. A mean latency is -1
// when nothing was measured in the interval.
type Sample struct {
	At time.Time `json:"t"`
	// RowsPerSec are the rows acknowledged, by any route.
	RowsPerSec float64 `json:"rows_per_s"`
	// QuarantinedPerSec are the rows set aside as unstorable.
	QuarantinedPerSec float64 `json:"quarantined_per_s"`
	// Inserts are the insert and tracking requests answered per second, by
	// status: "2xx", "429", "4xx" (other client faults), "5xx".
	Inserts map[string]float64 `json:"inserts_per_s"`
	// WALBytes is the size of the write-ahead log.
	WALBytes float64 `json:"wal_bytes"`
	// BufferedRows are the rows acknowledged but not yet in DuckDB.
	BufferedRows float64 `json:"buffered_rows"`
	// OpenDatabases are the tenant databases open now.
	OpenDatabases float64 `json:"open_databases"`
	// FlushMs is the mean duration of a flush into DuckDB.
	FlushMs float64 `json:"flush_ms"`
	// QueryFirstByteMs is the mean time to a query's first byte.
	QueryFirstByteMs float64 `json:"query_first_byte_ms"`
}

// history keeps the node's samples of the last historySpan, read from the
// server's own metrics, so that the dashboard needs no Prometheus.
type history struct {
	set      *metrics.Set
	interval time.Duration

	mu      sync.Mutex
	samples []Sample           // oldest first, at most historySpan/interval; guarded by mu
	last    map[string]float64 // the counters at the last sample; guarded by mu
	lastAt  time.Time          // guarded by mu
}

func newHistory(set *metrics.Set, interval time.Duration) *history {
	if interval <= 0 {
		interval = DefaultHistoryInterval
	}
	return &history{set: set, interval: interval}
}

// run samples every interval until stop is closed.
func (hs *history) run(stop <-chan struct{}) {
	t := time.NewTicker(hs.interval)
	defer t.Stop()
	hs.sample(time.Now())
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			hs.sample(now)
		}
	}
}

// sample reads the metrics and appends a point; the first call only sets
// the counters' base.
func (hs *history) sample(now time.Time) {
	var buf bytes.Buffer
	hs.set.WritePrometheus(&buf)
	cur := readSeries(buf.Bytes())
	hs.mu.Lock()
	defer hs.mu.Unlock()
	prev, prevAt := hs.last, hs.lastAt
	hs.last, hs.lastAt = cur, now
	if prev == nil {
		return
	}
	dt := now.Sub(prevAt).Seconds()
	if dt <= 0 {
		return
	}
	// A counter that went down was reset (it cannot here, but a negative
	// rate would be nonsense): count it from zero.
	rate := func(name string) float64 {
		d := cur[name] - prev[name]
		if d < 0 {
			d = cur[name]
		}
		return d / dt
	}
	mean := func(sum, count string) float64 {
		n := cur[count] - prev[count]
		if n <= 0 {
			return -1
		}
		return (cur[sum] - prev[sum]) / n * 1000
	}
	s := Sample{
		At:                now.UTC(),
		RowsPerSec:        rate("duckgate_rows_accepted_total"),
		QuarantinedPerSec: rate("duckgate_rows_quarantined_total"),
		Inserts:           map[string]float64{"2xx": 0, "429": 0, "4xx": 0, "5xx": 0},
		WALBytes:          cur["duckgate_wal_size_bytes"],
		BufferedRows:      cur["duckgate_buffered_rows"],
		OpenDatabases:     cur["duckgate_tenant_databases_open"],
		FlushMs:           mean("duckgate_flush_duration_seconds_sum", "duckgate_flush_duration_seconds_count"),
		QueryFirstByteMs:  mean("duckgate_query_first_byte_seconds_sum", "duckgate_query_first_byte_seconds_count"),
	}
	for name := range cur {
		code, ok := strings.CutPrefix(name, `duckgate_insert_requests_total{status="`)
		if !ok || len(code) < 3 {
			continue
		}
		class := code[:1] + "xx"
		switch {
		case code[:3] == "429":
			class = "429"
		case class != "2xx" && class != "5xx":
			class = "4xx"
		}
		s.Inserts[class] += rate(name)
	}
	max := int(historySpan / hs.interval)
	if len(hs.samples) >= max {
		n := copy(hs.samples, hs.samples[len(hs.samples)-max+1:])
		hs.samples = hs.samples[:n]
	}
	hs.samples = append(hs.samples, s)
}

// readSeries parses the Prometheus text format into series → value; the
// series is the name with its labels as written.
func readSeries(b []byte) map[string]float64 {
	out := make(map[string]float64)
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		i := bytes.LastIndexByte(line, ' ')
		if i <= 0 {
			continue
		}
		v, err := strconv.ParseFloat(string(line[i+1:]), 64)
		if err != nil || math.IsNaN(v) {
			continue
		}
		out[string(line[:i])] = v
	}
	return out
}

// NodeHistory is GET /api/admin/node: the node's samples of the last hour,
// oldest first.
type NodeHistory struct {
	IntervalSeconds float64  `json:"interval_seconds"`
	Samples         []Sample `json:"samples"`
}

// Node serves GET /api/admin/node: the history the dashboard charts. It is
// empty when the handler was built without Config.Metrics.
func (h *Handler) Node(*fasthttp.RequestCtx) (any, error) {
	out := NodeHistory{Samples: []Sample{}}
	if hs := h.history; hs != nil {
		out.IntervalSeconds = hs.interval.Seconds()
		hs.mu.Lock()
		out.Samples = append(out.Samples, hs.samples...)
		hs.mu.Unlock()
	}
	return out, nil
}
