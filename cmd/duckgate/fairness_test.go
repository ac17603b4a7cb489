package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestFairQueriesServer is issue 12's starvation scenario on the real
// binary: tenant A sends as many
// "select count(*) from range(1e12) t(i) where i%7=3" as it may run at once
// (-query.max-concurrent, 4) with timeout=30, and once they execute, tenant
// B sends select 1 queries one after another; the test logs B's latency.
// Both tenants are on the free plan (2 DuckDB threads). It runs with the
// default flags, then with -query.max-executing-per-tenant=4 (one tenant
// may take every slot, as before the fair limit) for comparison.
//
//	DUCKGATE_BENCH=1 go test -run TestFairQueriesServer -v ./cmd/duckgate/
func TestFairQueriesServer(t *testing.T) {
	if os.Getenv("DUCKGATE_BENCH") == "" {
		t.Skip("set DUCKGATE_BENCH=1 to measure")
	}
	t.Run("default", func(t *testing.T) { fairQueriesServer(t, "2", 500) })
	t.Run("one queue", func(t *testing.T) {
		fairQueriesServer(t, "4", 20, "-query.max-executing", "4", "-query.max-executing-per-tenant", "4")
	})
}

// fairQueriesServer runs the scenario; aHolds is how many executing slots
// A's queries take (the gauge duckgate_query_executing).
func fairQueriesServer(t *testing.T, aHolds string, n int, args ...string) {
	srv := &server{t: t, bin: binary(t), data: t.TempDir(), addr: freeAddr(t), args: args}
	srv.start()
	defer srv.stop()
	keyA, keyB := freeTenant(t, srv, "a"), freeTenant(t, srv, "b")
	if st, body, err := runQuery(srv.addr, keyB, "select 1", ""); st != 200 {
		t.Fatalf("b: %d %s %v", st, body, err)
	}
	const hogs = 4
	var wg sync.WaitGroup
	hogAnswers := make([]string, hogs)
	hogsStarted := time.Now()
	for i := range hogs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, body, err := runQuery(srv.addr, keyA, "select count(*) from range(1e12::BIGINT) t(i) where i%7=3", "30")
			hogAnswers[i] = fmt.Sprintf("%d %v after %s", st, err, time.Since(hogsStarted).Round(100*time.Millisecond))
			_ = body
		}()
	}
	// Until A's queries hold the executing slots they may hold: the
	// gauge in /metrics.
	for executing := ""; executing != aHolds; executing = metric(t, srv.addr, "duckgate_query_executing") {
		if time.Since(hogsStarted) > 20*time.Second {
			t.Fatalf("a's queries are not executing: duckgate_query_executing %s", executing)
		}
		time.Sleep(10 * time.Millisecond)
	}
	lat := make([]time.Duration, 0, n)
	failed := 0
	for range n {
		start := time.Now()
		st, _, err := runQuery(srv.addr, keyB, "select 1", "")
		lat = append(lat, time.Since(start))
		if err != nil || st != 200 {
			failed++
		}
	}
	stillExecuting := metric(t, srv.addr, "duckgate_query_executing")
	wg.Wait()
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))].Round(10 * time.Microsecond) }
	t.Logf("flags %q: b's select 1 ×%d while a runs %d hogs: p50 %v, p99 %v, max %v, failed %d; executing slots after b's last: %s; a's answers %q",
		args, n, hogs, q(0.5), q(0.99), lat[n-1].Round(10*time.Microsecond), failed, stillExecuting, hogAnswers)
}

// metric is the value of a series without labels in the server's /metrics.
func metric(t *testing.T, addr, name string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}
