package api

import (
	"fmt"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"duckgate/query"
)

// TestLoadTenantMonthlyRevenue is issue #6's multi-tenant read load: 100
// tenants with a year of daily orders each (~50,000 rows), 100 concurrent
// clients, each querying its own tenant's daily revenue for one month
// through the HTTP query API. It runs only with DUCKGATE_BENCH=1 and logs
// its figures:
//
//	DUCKGATE_BENCH=1 go test ./api -run TestLoadTenantMonthlyRevenue -v -timeout 30m
//
// By default the result cache is off (cold: every query runs in DuckDB).
// DUCKGATE_BENCH_CACHE=1 turns it on and asks every distinct query once,
// untimed, before the timed run (warm: every timed query is a hit, which
// the test checks with the X-Duckgate-Cache header). The tenants' databases
// are small, so they run on one DuckDB thread (tenantdb.SingleThreadBelow);
// DUCKGATE_BENCH_THREADS=plan gives them their plan's two. DUCKGATE_BENCH_TENANTS, DUCKGATE_BENCH_ROWS and DUCKGATE_BENCH_QUERIES
// (default 3,000) change its size. The rows go in through the HTTP insert
// API first (not timed). The clients share the process with the server
// (in-memory listener), so their CPU is included. Peak memory is the
// process's peak RSS while the queries run (VmHWM is reset before them).
// It is a test, not a testing.B benchmark, because percentiles need every
// latency of one fixed run.
func TestLoadTenantMonthlyRevenue(t *testing.T) {
	if os.Getenv("DUCKGATE_BENCH") != "1" {
		t.Skip("set DUCKGATE_BENCH=1 to run the multi-tenant query load")
	}
	tenants, rows := envInt("DUCKGATE_BENCH_TENANTS", 100), envInt("DUCKGATE_BENCH_ROWS", 50_000)
	queries := envInt("DUCKGATE_BENCH_QUERIES", 3000)
	cache := os.Getenv("DUCKGATE_BENCH_CACHE") == "1"
	ac := adminEnvConfig{maxOpen: tenants + 8}
	if cache {
		ac.cacheBytes = 256 << 20
	}
	plan := os.Getenv("DUCKGATE_BENCH_THREADS") == "plan"
	if plan {
		ac.singleThreadBelow = -1
	}
	e := newAdminEnv(t, ac)
	keys := loadOrders(t, e, tenants, rows)
	monthly := func(month int) string {
		return fmt.Sprintf(`SELECT date_trunc('day', created_at) AS day, count(*) AS orders, sum(amount) AS revenue `+
			`FROM orders WHERE created_at >= TIMESTAMPTZ '2025-%02d-01' AND created_at < TIMESTAMPTZ '2025-%02d-01' + INTERVAL 1 MONTH `+
			`GROUP BY 1 ORDER BY 1`, month, month)
	}
	if cache {
		for i := range min(queries, tenants*12) {
			c := i % tenants
			if r := e.do("GET", "/api/data/query?query="+url.QueryEscape(monthly(1+(c+i/tenants)%12)), nil, "X-API-KEY", keys[c]); r.status != 200 {
				t.Fatalf("warm-up query of tenant %d: %d %.300s", c, r.status, r.body)
			}
		}
	}
	runtime.GC()
	resetPeakRSS()
	rssBefore := peakRSS()
	var next atomic.Int64
	lat := make([][]time.Duration, tenants)
	var failed atomic.Int64
	var heapPeak atomic.Uint64
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapInuse > heapPeak.Load() {
				heapPeak.Store(m.HeapInuse)
			}
		}
	}()
	cpu0 := processCPU()
	start := time.Now()
	var wg sync.WaitGroup
	for c := range tenants {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(queries) {
					return
				}
				q := monthly(1 + int(i)%12)
				t0 := time.Now()
				r := e.do("GET", "/api/data/query?query="+url.QueryEscape(q), nil, "X-API-KEY", keys[c])
				lat[c] = append(lat[c], time.Since(t0))
				if r.status != 200 || strings.Count(string(r.body), `"day"`) < 28 || (cache && r.header[query.CacheHeader] != "hit") {
					if failed.Add(1) == 1 {
						t.Errorf("query of tenant %d: %d %.300s", c, r.status, r.body)
					}
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := processCPU() - cpu0
	close(stop)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	pct := func(p float64) time.Duration { return all[min(len(all)-1, int(p*float64(len(all))))] }
	t.Logf("cache %v, plan threads %v: %d tenants x %d orders, %d clients, %d queries in %s: %.0f queries/s; latency p50 %s p95 %s p99 %s max %s; "+
		"process CPU %s per query (DuckDB, server and clients; on a shared machine steadier than the latency); "+
		"peak RSS %d MiB (%d MiB before the queries), peak Go heap %d MiB, open databases %d, failed %d",
		cache, plan, tenants, rows, tenants, len(all), elapsed.Round(time.Millisecond), float64(len(all))/elapsed.Seconds(),
		pct(0.50).Round(10*time.Microsecond), pct(0.95).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), all[len(all)-1].Round(10*time.Microsecond),
		(cpu / time.Duration(len(all))).Round(time.Microsecond),
		peakRSS()>>20, rssBefore>>20, heapPeak.Load()>>20, e.pool.OpenCount(), failed.Load())
}

// loadOrders makes tenants with a year of orders each, through the HTTP
// insert API, and returns their keys.
func loadOrders(t *testing.T, e *env, tenants, rows int) []string {
	keys := make([]string, tenants)
	t0 := time.Now()
	step := 365 * 24 * time.Hour / time.Duration(rows)
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.NumCPU()*2)
	for i := range tenants {
		// Enterprise: no ingest rate limit, so loading is not throttled.
		_, _, key, err := e.tenants.CreateTenant(fmt.Sprintf("shop-%03d", i), "enterprise")
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = key
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var body []byte
			for j := range rows {
				at := base.Add(time.Duration(j) * step)
				body = fmt.Appendf(body, `{"order_id":%d,"created_at":"%s","customer":"c%d","amount":%d.%02d,"status":"paid"}`+"\n",
					j, at.Format(time.RFC3339), (j*7919+i)%5000, 5+(j*31+i)%300, (j*17)%100)
				if len(body) > 1<<20 || j == rows-1 {
					r := e.do("POST", "/api/data/insert/orders?wait=true", body, "X-API-KEY", keys[i])
					if r.status != 200 {
						t.Errorf("load tenant %d: %d %s", i, r.status, r.body)
						return
					}
					body = body[:0]
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("loaded %d tenants x %d orders through the insert API in %s", tenants, rows, time.Since(t0).Round(time.Millisecond))
	return keys
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// resetPeakRSS resets the kernel's peak RSS (VmHWM) of this process.
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS is VmHWM in bytes, 0 if unknown.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
