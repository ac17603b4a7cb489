package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestResourceBombs sends issue 12's resource bombs to the real server:
// each runs on a fresh server with a free-plan tenant (memory_limit 256MB)
// and -duckdb.max-memory 1GiB. Every bomb must be refused (no 200) and the
// process must survive and answer a query after it; the test logs the
// answers and the server's peak RSS (VmHWM of /proc/<pid>/status) before
// and after, the figures the README's security section gives.
//
//	DUCKGATE_RSS=1 go test -run TestResourceBombs -v -timeout 20m ./cmd/duckgate/
func TestResourceBombs(t *testing.T) {
	if os.Getenv("DUCKGATE_RSS") == "" {
		t.Skip("set DUCKGATE_RSS=1 to send resource bombs to the real server and record its peak RSS")
	}
	inList := "select count(*) from range(10) t(i) where i in (" + strings.Repeat("1,", 1_990_000) + "1)"
	bombs := []struct {
		name    string
		sql     string
		timeout string // the request's timeout=, seconds
		n       int    // sent at once
	}{
		{"repeat 2e9", "select length(repeat('x', 2000000000))", "15", 1},
		{"repeat 2e9, two at once", "select length(repeat('x', 2000000000))", "15", 2},
		{fmt.Sprintf("IN list of 1,990,001 items (%d bytes of SQL)", len(inList)), inList, "1", 1},
		{"count(*) of range(1e12)", "select count(*) from range(1e12::BIGINT)", "15", 1},
		{"list_resize([1], 3e8)", "select len(list_resize([1], 300000000))", "15", 1},
		{"string_agg over range(1e8)", "select length(string_agg('xxxxxxxxxx', '')) from range(100000000)", "15", 1},
		{"list(i) over range(1e8)", "select len(list(i)) from range(100000000) t(i)", "15", 1},
		{"a string doubled 31 times in a recursive CTE", "with recursive r(s, n) as (select 'x', 0 union all select s || s, n + 1 from r where n < 31) select max(length(s)) from r", "15", 1},
		{"replace: 100,000 characters each made 10,000 (1 GB)", "select length(replace(repeat('a', 100000), 'a', repeat('b', 10000)))", "15", 1},
		{"replace 1 GB, four at once", "select length(replace(repeat('a', 100000), 'a', repeat('b', 10000)))", "15", 4},
		{"regexp_replace to 1 GB", "select length(regexp_replace(repeat('a', 100000), 'a', repeat('b', 10000), 'g'))", "15", 1},
		{"replace over 100,000 rows, 10 MB each", "select sum(length(replace(repeat('a', 1000) || i, 'a', repeat('b', 10000)))) from range(100000) t(i)", "15", 1},
	}
	bin := binary(t)
	for _, b := range bombs {
		srv := &server{t: t, bin: bin, data: filepath.Join(t.TempDir(), "data"), addr: freeAddr(t), args: []string{"-duckdb.max-memory", "1GiB"}}
		srv.start()
		key := freeTenant(t, srv, "bomb")
		if st, body, _ := runQuery(srv.addr, key, "select 1", ""); st != 200 {
			t.Fatalf("%s: select 1 before the bomb: %d %s", b.name, st, body)
		}
		pid := srv.cmd.Process.Pid
		before := vmHWM(pid)
		// VmHWM is gone once the process exits: keep the last one read.
		var peak atomic.Int64
		stopSampling := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				if v := vmHWM(pid); v > peak.Load() {
					peak.Store(v)
				}
				select {
				case <-stopSampling:
					return
				case <-tick.C:
				}
			}
		}()

		var wg sync.WaitGroup
		var answered200 atomic.Bool
		results := make([]string, b.n)
		for i := range b.n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				st, body, err := runQuery(srv.addr, key, b.sql, b.timeout)
				if err != nil {
					results[i] = fmt.Sprintf("error %v after %s", err, time.Since(start).Round(100*time.Millisecond))
					return
				}
				if st == 200 {
					answered200.Store(true)
				}
				if len(body) > 160 {
					body = body[:160] + "…"
				}
				results[i] = fmt.Sprintf("%d after %s: %s", st, time.Since(start).Round(100*time.Millisecond), strings.TrimSpace(body))
			}()
		}
		wg.Wait()
		close(stopSampling)
		<-sampled
		after, body, err := runQuery(srv.addr, key, "select 1", "")
		alive := err == nil && after == 200
		t.Logf("%s (timeout=%s, ×%d): answers %q; peak RSS %d MiB before, %d MiB after the bomb; alive and answering select 1: %v (%d %s %v)",
			b.name, b.timeout, b.n, results, before>>20, peak.Load()>>20, alive, after, strings.Join(strings.Fields(body), " "), err)
		if answered200.Load() {
			t.Errorf("%s: answered 200, want a refusal", b.name)
		}
		if !alive {
			t.Errorf("%s: the server did not survive", b.name)
		}
		if alive {
			srv.stop()
		} else {
			srv.kill()
		}
	}
}

// freeTenant creates a tenant on the free plan and returns its key.
func freeTenant(t *testing.T, srv *server, name string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+srv.addr+"/api/admin/tenants", strings.NewReader(`{"name":"`+name+`","plan":"free"}`))
	req.Header.Set("X-API-KEY", "crash-admin")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct {
		Plan   string `json:"plan"`
		APIKey string `json:"api_key"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != 201 || v.Plan != "free" {
		t.Fatalf("create tenant: %d %+v %v", resp.StatusCode, v, err)
	}
	return v.APIKey
}

// runQuery POSTs sql as the body to the query API with timeout= if set.
func runQuery(addr, key, sql, timeout string) (int, string, error) {
	u := "http://" + addr + "/api/data/query"
	if timeout != "" {
		u += "?" + url.Values{"timeout": {timeout}}.Encode()
	}
	req, _ := http.NewRequest("POST", u, bytes.NewReader([]byte(sql)))
	req.Header.Set("X-API-KEY", key)
	req.Header.Set("Content-Type", "text/plain")
	client := &http.Client{Timeout: 3 * time.Minute}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// vmHWM is the peak resident set size of process pid in bytes, or -1 if it
// cannot be read (the process is gone).
func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return -1
			}
			return kb << 10
		}
	}
	return -1
}
