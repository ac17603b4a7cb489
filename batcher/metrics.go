package batcher

import "github.com/VictoriaMetrics/metrics"

// batcherMetrics are the batcher's series on the server's metrics set. No
// tenant label: per-tenant figures belong to the admin API.
type batcherMetrics struct {
	flushSeconds *metrics.Histogram // duration of successful flushes
	flushRows    *metrics.Histogram // rows per successful flush (batch size)
}

// registerMetrics puts the batcher's series on set. Histograms use
// VictoriaMetrics' vmrange buckets, which Prometheus scrapes as plain series.
func (b *Batcher) registerMetrics(set *metrics.Set) {
	b.metrics.flushSeconds = set.NewHistogram("duckgate_flush_duration_seconds")
	b.metrics.flushRows = set.NewHistogram("duckgate_flush_rows")
	st := &b.stats
	set.NewGauge("duckgate_rows_committed_total", func() float64 { return float64(st.RowsCommitted.Load()) })
	set.NewGauge("duckgate_flushes_total", func() float64 { return float64(st.Flushes.Load()) })
	set.NewGauge("duckgate_flush_errors_total", func() float64 { return float64(st.FlushErrors.Load()) })
	set.NewGauge("duckgate_schema_changes_total", func() float64 { return float64(st.SchemaChanges.Load()) })
	set.NewGauge("duckgate_rows_quarantined_total", func() float64 { return float64(st.Quarantined.Load()) })
	set.NewGauge("duckgate_wal_append_errors_total", func() float64 { return float64(st.LogErrors.Load()) })
	set.NewGauge("duckgate_buffered_bytes", func() float64 { return float64(b.buffered.Load()) })
	set.NewGauge("duckgate_buffered_rows", func() float64 { return float64(b.bufferedRows.Load()) })
	if l := b.cfg.WAL; l != nil {
		set.NewGauge("duckgate_wal_size_bytes", func() float64 { return float64(l.Size()) })
		set.NewGauge("duckgate_wal_fsyncs_total", func() float64 { return float64(l.Stats().Fsyncs) })
	}
}
