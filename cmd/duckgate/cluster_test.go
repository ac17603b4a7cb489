package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"duckgate/cluster"
	"duckgate/cluster/clustertest"
)

// TestClusterFailover runs three NATS servers in-process and three
// duckgate nodes as child processes. Clients send events with unique ids
// to all three nodes at once; the node that writes the tenant's partition
// is killed with SIGKILL, then a NATS server is stopped, and the clients
// keep sending. At the end a query on a surviving node must find every
// acknowledged id exactly once and no id twice, and no insert may have
// been refused except with 503 (during the election).
//
// DUCKGATE_LONG=1 go test -run TestClusterFailover -v ./cmd/duckgate/
// runs the long version: DUCKGATE_CLUSTER_ROUNDS (default 10) rounds of
// killing and restarting a random node and stopping and restarting a
// random NATS server, under load.
func TestClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	long := os.Getenv("DUCKGATE_LONG") != ""
	rounds := 1
	if long {
		rounds = 10
		if s := os.Getenv("DUCKGATE_CLUSTER_ROUNDS"); s != "" {
			rounds, _ = strconv.Atoi(s)
		}
	}
	// Every node seals webhook secrets with the same key (children inherit
	// the environment).
	t.Setenv("DUCKGATE_WEBHOOK_KEY", strings.Repeat("5a", 32))
	nats := clustertest.Start(t, 3)
	bin := binary(t)
	dir := t.TempDir()

	// The first node makes the demo tenant in the shared registry (KV
	// buckets, package cluster/kv) and prints its key; the others find it.
	nodes := make([]*server, 3)
	for i := range nodes {
		nodes[i] = &server{t: t, bin: bin, data: filepath.Join(dir, fmt.Sprintf("n%d", i)), addr: freeAddr(t),
			args: []string{"-nats", strings.Join(nats.URLs(), ","), "-node", fmt.Sprintf("n%d", i),
				"-cluster.lease-ttl", "3s", "-cluster.snapshot-interval", "2s", "-cluster.max-bytes", "256MiB"}}
		if i > 0 {
			nodes[i].tenantID, nodes[i].key = nodes[0].tenantID, nodes[0].key
		}
		nodes[i].start()
	}
	seed := nodes[0]
	defer func() {
		for _, n := range nodes {
			if n.cmd != nil && n.cmd.ProcessState == nil {
				n.stop()
			}
		}
	}()
	partition := cluster.Partition(seed.tenantID, 16)

	// Read-your-writes across nodes: an insert with ?wait=true answered by
	// one node is visible, without flush, to a query on another; an
	// Idempotency-Key sent to two nodes stores its rows once.
	for i, n := range nodes {
		id := fmt.Sprintf("wait-%d", i)
		if status, body := post(t, n, seed.key, "/api/data/insert/events?wait=true", `{"id":"`+id+`"}`, ""); status != 200 {
			t.Fatalf("insert with wait=true on n%d: %d %s", i, status, body)
		}
		if got := queryIDs(t, nodes[(i+1)%3], seed.key, false); got[id] != 1 {
			t.Fatalf("id %s committed with wait=true on n%d, not visible on n%d: %v", id, i, (i+1)%3, got)
		}
	}
	for i := range 2 {
		if status, body := post(t, nodes[i], seed.key, "/api/data/insert/events", `{"id":"idem"}`, "key-1"); status != 200 {
			t.Fatalf("insert with an Idempotency-Key on n%d: %d %s", i, status, body)
		}
	}

	var (
		mu       sync.Mutex
		acked    = map[string]bool{"wait-0": true, "wait-1": true, "wait-2": true, "idem": true}
		refused  = map[int]int{} // status → count, 200 excluded
		bodies   []string
		down     = make([]bool, 3) // guarded by mu: the node is killed, its clients stand by
		requests int
	)
	client := &http.Client{Timeout: 15 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for c := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			node := c % 3
			for n := 0; ctx.Err() == nil && n < 1_000_000; n++ {
				mu.Lock()
				isDown := down[node]
				mu.Unlock()
				if isDown {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				var body bytes.Buffer
				var ids []string
				for i := range 1 + n%4*3 {
					id := fmt.Sprintf("c%d-n%d-i%d", c, n, i)
					ids = append(ids, id)
					fmt.Fprintf(&body, `{"id":%q,"node":%d}`+"\n", id, node)
				}
				req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+nodes[node].addr+"/api/data/insert/events", &body)
				req.Header.Set("X-API-KEY", seed.key)
				resp, err := client.Do(req)
				if err != nil {
					continue // killed or gone: not acknowledged
				}
				msg, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				mu.Lock()
				requests++
				if resp.StatusCode == 200 {
					for _, id := range ids {
						acked[id] = true
					}
				} else {
					refused[resp.StatusCode]++
					if len(bodies) < 5 {
						bodies = append(bodies, fmt.Sprintf("%d %s", resp.StatusCode, msg))
					}
				}
				mu.Unlock()
			}
		}()
	}
	waitAcked := func(more int) {
		t.Helper()
		mu.Lock()
		target := len(acked) + more
		mu.Unlock()
		deadline := time.Now().Add(60 * time.Second)
		for {
			mu.Lock()
			n := len(acked)
			mu.Unlock()
			if n >= target {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("only %d of %d ids acknowledged after 60 s", n, target)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	setDown := func(i int, v bool) {
		mu.Lock()
		down[i] = v
		mu.Unlock()
	}

	rng := rand.New(rand.NewPCG(11, uint64(time.Now().UnixNano())))
	waitAcked(2000)
	for round := range rounds {
		// Kill the tenant's writer (in the long version, a random node
		// every other round).
		victim := -1
		if w := writerOf(t, nodes, partition); w >= 0 && (round%2 == 0 || !long) {
			victim = w
		} else {
			victim = rng.IntN(3)
		}
		t.Logf("round %d: SIGKILL node n%d (partition %d's writer: n%d)", round, victim, partition, writerOf(t, nodes, partition))
		setDown(victim, true)
		killed := time.Now()
		nodes[victim].kill()
		for w := writerOf(t, nodes, partition); w < 0 || w == victim; w = writerOf(t, nodes, partition) {
			if time.Since(killed) > 30*time.Second {
				t.Fatalf("partition %d has no new writer 30 s after its writer was killed", partition)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("round %d: partition %d has a new writer %s after the kill (lease TTL 3s)", round, partition, time.Since(killed).Round(100*time.Millisecond))
		waitAcked(2000) // the others go on
		stopped := rng.IntN(3)
		if !long {
			stopped = 0
		}
		t.Logf("round %d: stop NATS server %d", round, stopped)
		nats.Stop(stopped)
		waitAcked(2000)
		if long {
			nats.Restart(stopped)
			nodes[victim].start()
			setDown(victim, false)
			waitAcked(2000)
		}
	}
	cancel()
	wg.Wait()

	// Read back through a surviving node: the query is forwarded to the
	// partition's writer, and flush=true covers every acknowledged insert.
	var via *server
	for i, n := range nodes {
		if !down[i] {
			via = n
			break
		}
	}
	stored := queryIDs(t, via, seed.key, true)
	lost, dup := exactlyOnce(t, acked, stored)
	for status, n := range refused {
		if status != 503 {
			t.Errorf("%d inserts refused with %d; only 503 is allowed (during an election): %v", n, status, bodies)
		}
	}
	t.Logf("%d rounds, %d requests, %d acknowledged ids, %d stored ids, %d lost, %d duplicated, refused %v", rounds, requests, len(acked), len(stored), lost, dup, refused)
	if len(acked) == 0 {
		t.Fatal("no insert was acknowledged: the test tested nothing")
	}

	// A share link made through one node opens through every node: its
	// check, page and downloads run where the tenant's database is written.
	var live []*server
	for i, n := range nodes {
		if !down[i] {
			live = append(live, n)
		}
	}
	status, body := post(t, live[len(live)-1], seed.key, "/api/data/query/share", `{"query":"SELECT count(DISTINCT id) AS n FROM events"}`, "")
	var link struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(body), &link); status != 201 || err != nil || link.ID == "" {
		t.Fatalf("create a share link: %d %s %v", status, body, err)
	}
	want := fmt.Sprintf("n\r\n%d\r\n", len(stored))
	for _, n := range live {
		// The link reaches the other nodes' shared state within a second.
		var status int
		var got []byte
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			resp, err := http.Get("http://" + n.addr + "/share/" + link.ID + "/data.csv")
			if err != nil {
				t.Fatal(err)
			}
			got, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if status = resp.StatusCode; status != 404 || time.Now().After(deadline) {
				break
			}
		}
		if status != 200 || string(got) != want {
			t.Errorf("share download through %s: %d %q, want %q", n.addr, status, got, want)
		}
	}

	// So do a tenant's admin calls: its tables as its writer holds them.
	for _, n := range live {
		req, _ := http.NewRequest("GET", "http://"+n.addr+"/api/admin/tenants/"+seed.tenantID+"/tables", nil)
		req.Header.Set("Authorization", "Bearer crash-admin")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var tables struct {
			Tables []struct {
				Name string `json:"name"`
				Rows int64  `json:"rows"`
			} `json:"tables"`
		}
		err = json.NewDecoder(resp.Body).Decode(&tables)
		resp.Body.Close()
		var rows int64
		for _, tb := range tables.Tables {
			if tb.Name == "events" {
				rows = tb.Rows
			}
		}
		if resp.StatusCode != 200 || err != nil || rows < int64(len(stored)) {
			t.Errorf("admin tables through %s: %d %v, events has %d rows, want at least %d", n.addr, resp.StatusCode, err, rows, len(stored))
		}
	}
}

// writerOf asks a live node which node writes partition p; -1 for none.
func writerOf(t *testing.T, nodes []*server, p int) int {
	t.Helper()
	for _, n := range nodes {
		if n.cmd == nil || n.cmd.ProcessState != nil {
			continue
		}
		req, _ := http.NewRequest("GET", "http://"+n.addr+"/api/admin/cluster", nil)
		req.Header.Set("Authorization", "Bearer crash-admin")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			continue
		}
		var st cluster.Status
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET /api/admin/cluster: %d %v", resp.StatusCode, err)
		}
		for i := range nodes {
			if st.Partitions[p] == fmt.Sprintf("n%d", i) {
				return i
			}
		}
		return -1
	}
	return -1
}

// post sends an insert to node and returns the status and body.
func post(t *testing.T, node *server, key, path, body, idemKey string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+node.addr+path, strings.NewReader(body))
	req.Header.Set("X-API-KEY", key)
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// queryIDs counts the stored ids through node's query API, retrying while
// the partition has no writer (503).
func queryIDs(t *testing.T, node *server, key string, flush bool) map[string]int {
	t.Helper()
	q := url.Values{"query": {"SELECT id, count(*) AS n FROM events GROUP BY id"}, "flush": {strconv.FormatBool(flush)}, "format": {"ndjson"}}
	deadline := time.Now().Add(60 * time.Second)
	for {
		req, _ := http.NewRequest("GET", "http://"+node.addr+"/api/data/query?"+q.Encode(), nil)
		req.Header.Set("X-API-KEY", key)
		resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 503 && time.Now().Before(deadline) {
			t.Logf("query: %d %s; retrying", resp.StatusCode, body)
			time.Sleep(200 * time.Millisecond)
			continue
		}
		if resp.StatusCode != 200 {
			t.Fatalf("query: %d %s", resp.StatusCode, body)
		}
		out := map[string]int{}
		dec := json.NewDecoder(bytes.NewReader(body))
		cut := ""
		for dec.More() {
			var row struct {
				ID    string `json:"id"`
				N     int    `json:"n"`
				Error string `json:"error"`
			}
			if err := dec.Decode(&row); err != nil {
				t.Fatalf("query answer: %v", err)
			}
			if row.Error != "" {
				cut = row.Error // the result was cut (the error marker): not all rows came
				break
			}
			out[row.ID] = row.N
		}
		if cut != "" {
			if time.Now().After(deadline) {
				t.Fatalf("query answer cut after %d rows: %s", len(out), cut)
			}
			t.Logf("query answer cut after %d rows: %s; retrying", len(out), cut)
			continue
		}
		return out
	}
}
