package api

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"duckgate/admin"
)

// fdCount is the number of open file descriptors of this process.
func fdCount(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count file descriptors: %v", err)
	}
	return len(ents)
}

// TestManyTenants ingests round-robin into many tenants through the HTTP
// API with a pool far smaller than the tenant count: every insert is
// acknowledged at once, every row lands (counted after a restart), the
// pool never holds more than MaxOpen databases and the file descriptors
// stay bounded. DUCKGATE_LONG=1 runs the full size: 1,000 tenants,
// MaxOpen 64.
func TestManyTenants(t *testing.T) {
	tenants, maxOpen, rounds, rowsPer := 200, 16, 3, 10
	if os.Getenv("DUCKGATE_LONG") == "1" {
		tenants, maxOpen = 1000, 64
	} else if testing.Short() {
		t.Skip("-short")
	}
	cfg := adminEnvConfig{maxOpen: maxOpen, noQuery: true}
	e := newAdminEnv(t, cfg)
	fdBase := fdCount(t)
	ids := make([]string, tenants)
	keys := make([]string, tenants)
	for i := range ids {
		ids[i], keys[i] = e.tenant(fmt.Sprintf("tenant-%04d", i))
	}

	var peakOpen, peakFD atomic.Int64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if n := int64(e.pool.OpenCount()); n > peakOpen.Load() {
				peakOpen.Store(n)
			}
			if n := int64(fdCount(t)); n > peakFD.Load() {
				peakFD.Store(n)
			}
		}
	}()

	body := rowsJSON(rowsPer)
	start := time.Now()
	var slowest atomic.Int64
	work := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				t0 := time.Now()
				r := e.do("POST", "/api/data/insert/events", []byte(body), "X-API-KEY", keys[i%tenants])
				if d := int64(time.Since(t0)); d > slowest.Load() {
					slowest.Store(d)
				}
				if r.status != 200 {
					t.Errorf("insert into tenant %d: %d %s", i%tenants, r.status, r.body)
				}
			}
		}()
	}
	for i := range rounds * tenants {
		work <- i
	}
	close(work)
	wg.Wait()
	elapsed := time.Since(start)
	e.stop() // flushes every buffer
	close(stop)
	sampler.Wait()
	t.Logf("%d tenants, MaxOpen %d: %d inserts in %s, slowest ack %s; peak open %d, fds %d → peak %d",
		tenants, maxOpen, rounds*tenants, elapsed.Round(time.Millisecond), time.Duration(slowest.Load()).Round(time.Millisecond),
		peakOpen.Load(), fdBase, peakFD.Load())
	if peakOpen.Load() > int64(maxOpen) {
		t.Errorf("pool held %d databases open, cap %d", peakOpen.Load(), maxOpen)
	}
	// A DuckDB database holds its file and its write-ahead log open.
	if limit := int64(fdBase + 3*maxOpen + 32); peakFD.Load() > limit {
		t.Errorf("file descriptors peaked at %d, want <= %d", peakFD.Load(), limit)
	}

	e = startAdminEnv(t, e.dir, cfg)
	r := e.admin("GET", "/api/admin/tenants", "")
	wantStatus(t, r, 200, "list after restart")
	list := decodeBody[struct{ Tenants []admin.TenantInfo }](t, r)
	if len(list.Tenants) != tenants {
		t.Fatalf("%d tenants after restart, want %d", len(list.Tenants), tenants)
	}
	for _, ti := range list.Tenants {
		if ti.Rows != int64(rounds*rowsPer) || ti.Tables != 1 || ti.StatsError != "" {
			t.Fatalf("tenant %s after restart: %d rows in %d tables (%s), want %d", ti.ID, ti.Rows, ti.Tables, ti.StatsError, rounds*rowsPer)
		}
	}
	if n := e.pool.OpenCount(); n > maxOpen {
		t.Fatalf("open after listing: %d", n)
	}
}
