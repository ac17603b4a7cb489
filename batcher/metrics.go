package batcher

import (
	"io"

	"github.com/VictoriaMetrics/metrics"
)

// batcherMetrics are the batcher's series on the server's metrics set. No
// tenant label: per-tenant figures belong to the admin API.
type batcherMetrics struct {
	flushSeconds *metrics.PrometheusHistogram // duration of successful flushes
	flushRows    *metrics.PrometheusHistogram // rows per successful flush (batch size)
}

// registerMetrics puts the batcher's series on set: Prometheus histograms
// (le buckets), counters written from the batcher's own Stats at each
// scrape, and gauges.
func (b *Batcher) registerMetrics(set *metrics.Set) {
	b.metrics.flushSeconds = set.NewPrometheusHistogram("duckgate_flush_duration_seconds")
	b.metrics.flushRows = set.NewPrometheusHistogramExt("duckgate_flush_rows", metrics.ExponentialBuckets(1, 4, 12))
	st := &b.stats
	l := b.cfg.WAL
	set.RegisterMetricsWriter(func(w io.Writer) {
		metrics.WriteCounterUint64(w, "duckgate_rows_committed_total", uint64(st.RowsCommitted.Load()))
		metrics.WriteCounterUint64(w, "duckgate_flushes_total", uint64(st.Flushes.Load()))
		metrics.WriteCounterUint64(w, "duckgate_flush_errors_total", uint64(st.FlushErrors.Load()))
		metrics.WriteCounterUint64(w, "duckgate_schema_changes_total", uint64(st.SchemaChanges.Load()))
		metrics.WriteCounterUint64(w, "duckgate_rows_quarantined_total", uint64(st.Quarantined.Load()))
		metrics.WriteCounterUint64(w, "duckgate_retention_rows_deleted_total", uint64(st.RetentionDeleted.Load()))
		metrics.WriteCounterUint64(w, "duckgate_wal_append_errors_total", uint64(st.LogErrors.Load()))
		metrics.WriteGaugeFloat64(w, "duckgate_flush_slot_utilization", b.load.utilization())
		metrics.WriteGaugeFloat64(w, "duckgate_flush_cpu_pressure", b.load.pressure())
		if l != nil {
			metrics.WriteCounterUint64(w, "duckgate_wal_fsyncs_total", uint64(l.Stats().Fsyncs))
		}
	})
	set.NewGauge("duckgate_buffered_bytes", func() float64 { return float64(b.buffered.Load()) })
	set.NewGauge("duckgate_buffered_rows", func() float64 { return float64(b.bufferedRows.Load()) })
	if l != nil {
		set.NewGauge("duckgate_wal_size_bytes", func() float64 { return float64(l.Size()) })
	}
}
