package admin

import (
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

func TestHistorySamplesRatesAndLevels(t *testing.T) {
	set := metrics.NewSet()
	rows := set.NewCounter("duckgate_rows_accepted_total")
	ok := set.NewCounter(`duckgate_insert_requests_total{status="200"}`)
	throttled := set.NewCounter(`duckgate_insert_requests_total{status="429"}`)
	bad := set.NewCounter(`duckgate_insert_requests_total{status="400"}`)
	wal := set.NewGauge("duckgate_wal_size_bytes", nil)
	flush := set.NewPrometheusHistogram("duckgate_flush_duration_seconds")
	hs := newHistory(set, 5*time.Second)

	t0 := time.Unix(1_700_000_000, 0)
	rows.Add(1000) // before the first sample: not a rate
	hs.sample(t0)
	rows.Add(500)
	ok.Add(10)
	throttled.Add(5)
	bad.Add(5)
	wal.Set(4096)
	flush.Update(0.02)
	flush.Update(0.04)
	hs.sample(t0.Add(5 * time.Second))

	h := &Handler{history: hs}
	v, _ := h.Node(nil)
	got := v.(NodeHistory)
	if got.IntervalSeconds != 5 || len(got.Samples) != 1 {
		t.Fatalf("history %+v", got)
	}
	s := got.Samples[0]
	want := Sample{At: t0.Add(5 * time.Second).UTC(), RowsPerSec: 100, WALBytes: 4096, FlushMs: 30, QueryFirstByteMs: -1,
		Inserts: map[string]float64{"2xx": 2, "429": 1, "4xx": 1, "5xx": 0}}
	if !s.At.Equal(want.At) || s.RowsPerSec != want.RowsPerSec || s.WALBytes != want.WALBytes ||
		s.FlushMs < 29.999 || s.FlushMs > 30.001 || s.QueryFirstByteMs != -1 {
		t.Fatalf("sample %+v, want %+v", s, want)
	}
	for k, w := range want.Inserts {
		if s.Inserts[k] != w {
			t.Fatalf("inserts %v, want %v", s.Inserts, want.Inserts)
		}
	}
}

func TestHistoryKeepsAnHour(t *testing.T) {
	hs := newHistory(metrics.NewSet(), 5*time.Second)
	t0 := time.Unix(1_700_000_000, 0)
	for i := range 1000 {
		hs.sample(t0.Add(time.Duration(i) * 5 * time.Second))
	}
	if len(hs.samples) != 720 {
		t.Fatalf("%d samples, want 720 (an hour)", len(hs.samples))
	}
	if last := hs.samples[719].At; !last.Equal(t0.Add(999 * 5 * time.Second)) {
		t.Fatalf("newest sample at %s", last)
	}
}
