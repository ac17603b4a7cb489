package query

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

const benchSQL = "select i, i * 2.5 as d, 'name ' || i as s, TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_seconds(i) as ts, i %% 2 = 0 as b from range(%d) t(i)"

func benchQuery(n int) string { return fmt.Sprintf(benchSQL, n) }

// streamAll GETs a query and discards the body, returning its size.
func streamAll(tb testing.TB, env *testEnv, q, format string) int64 {
	req, _ := newGet("/api/data/query?" + url.Values{"query": {q}, "format": {format}}.Encode())
	req.Header.Set("X-Tenant", "t1")
	resp, err := env.client.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || resp.StatusCode != 200 {
		tb.Fatalf("status %d, %v", resp.StatusCode, err)
	}
	return n
}

// BenchmarkResult1M streams a 1-million-row result through the HTTP handler
// and has DuckDB write the same result with COPY ... TO a file, the two
// alternated (gateway, COPY, gateway, COPY, ...) so that a busy machine
// slows both alike. It reports each side's median rows/s and the median of
// the per-pair ratios gateway/COPY (the goal is at least 0.8):
//
//	go test -run '^$' -bench BenchmarkResult1M -benchtime 5x ./query/
func BenchmarkResult1M(b *testing.B) {
	env := newEnv(b, Config{}, nil)
	const rows = 1_000_000
	q := benchQuery(rows)
	for _, format := range []string{"json", "csv"} {
		b.Run(format, func(b *testing.B) {
			path := filepath.Join(env.pool.ScratchDir("t1"), "bench."+format)
			defer os.Remove(path)
			copySQL := "COPY (" + q + ") TO '" + path + "' (FORMAT " + format + ")"
			var gateway, dcopy, ratios []float64
			for b.Loop() {
				start := time.Now()
				streamAll(b, env, q, format)
				g := time.Since(start).Seconds()
				start = time.Now()
				env.exec(b, "t1", copySQL)
				c := time.Since(start).Seconds()
				gateway, dcopy, ratios = append(gateway, rows/g), append(dcopy, rows/c), append(ratios, c/g)
			}
			b.ReportMetric(median(gateway), "gateway-rows/s")
			b.ReportMetric(median(dcopy), "copy-rows/s")
			b.ReportMetric(median(ratios), "gateway/copy")
		})
	}
}

func median(v []float64) float64 {
	slices.Sort(v)
	return v[len(v)/2]
}

// BenchmarkTimeToFirstByte measures a query from request to the first body
// byte, reporting p50 and p99: select 1, a VARCHAR column (which pays for
// the DESCRIBE probe of rawjson.go), a JSON column (the probe and the
// wrapped query), and the first byte of benchQuery's million rows (each
// iteration then reads the rest).
func BenchmarkTimeToFirstByte(b *testing.B) {
	env := newEnv(b, Config{}, nil)
	streamAll(b, env, "select 1", "json") // open the database
	for _, q := range []struct{ name, sql string }{
		{"int", "select 1"},
		{"varchar", "select 'x' as s"},
		{"json", `select '{"a":1}'::JSON as j`},
		{"1m-rows", benchQuery(1_000_000)},
	} {
		b.Run(q.name, func(b *testing.B) { benchFirstByte(b, env, q.sql) })
	}
}

func benchFirstByte(b *testing.B, env *testEnv, q string) {
	var lat []time.Duration
	buf := make([]byte, 1)
	for b.Loop() {
		req, _ := newGet("/api/data/query?" + url.Values{"query": {q}}.Encode())
		req.Header.Set("X-Tenant", "t1")
		start := time.Now()
		resp, err := env.client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// TestStream10M streams 10 million rows as CSV and JSON and reports the peak
// Go heap. It takes about a minute: DUCKGATE_BIG=1 go test -run TestStream10M -v ./query/
func TestStream10M(t *testing.T) {
	if testing.Short() || os.Getenv("DUCKGATE_BIG") == "" {
		t.Skip("set DUCKGATE_BIG=1 to stream 10 million rows")
	}
	env := newEnv(t, Config{}, nil)
	for _, format := range []string{"csv", "json"} {
		runtime.GC()
		var peak atomic.Uint64
		stop := make(chan struct{})
		go func() {
			var ms runtime.MemStats
			for {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > peak.Load() {
					peak.Store(ms.HeapInuse)
				}
			}
		}()
		start := time.Now()
		n := streamAll(t, env, benchQuery(10_000_000), format)
		d := time.Since(start)
		close(stop)
		t.Logf("%s: 10M rows, %d MB in %s (%.0f rows/s, %.0f MB/s), peak Go HeapInuse %d MB",
			format, n>>20, d.Round(time.Millisecond), 1e7/d.Seconds(), float64(n)/1e6/d.Seconds(), peak.Load()>>20)
		if peak.Load() > 256<<20 {
			t.Errorf("peak heap %d MB: the result is being held in memory", peak.Load()>>20)
		}
	}
}
