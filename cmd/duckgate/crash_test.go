package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
)

// TestCrashRecovery runs the real binary, sends events with unique ids from
// several clients, kills the server with SIGKILL at random moments,
// restarts it on the same data directory, and checks at the end that every
// acknowledged id is stored exactly once and no id twice.
//
// DUCKGATE_CRASHES=50 go test -run TestCrashRecovery -v ./cmd/duckgate/
// runs the long version.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	crashes := 5
	if s := os.Getenv("DUCKGATE_CRASHES"); s != "" {
		crashes, _ = strconv.Atoi(s)
	}
	dir := t.TempDir()
	bin := binary(t)
	data := filepath.Join(dir, "data")
	addr := freeAddr(t)
	srv := &server{t: t, bin: bin, data: data, addr: addr}
	srv.start()
	tenantID, key := srv.tenantID, srv.key

	var (
		mu    sync.Mutex
		acked = map[string]bool{}
	)
	client := &http.Client{Timeout: 5 * time.Second}
	rng := rand.New(rand.NewPCG(7, uint64(time.Now().UnixNano())))
	for round := 0; round <= crashes; round++ {
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for c := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; ctx.Err() == nil && n < 100_000; n++ {
					// Mix single events and small batches.
					var body bytes.Buffer
					var ids []string
					for i := range 1 + n%3*5 {
						id := fmt.Sprintf("r%d-c%d-n%d-i%d", round, c, n, i)
						ids = append(ids, id)
						fmt.Fprintf(&body, `{"id":%q,"round":%d,"v":%d}`+"\n", id, round, n)
					}
					req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/api/data/insert/events", &body)
					req.Header.Set("X-API-KEY", key)
					resp, err := client.Do(req)
					if err != nil {
						continue // the server is gone: not acknowledged
					}
					_ = resp.Body.Close()
					if resp.StatusCode == 200 {
						mu.Lock()
						for _, id := range ids {
							acked[id] = true
						}
						mu.Unlock()
					}
				}
			}()
		}
		time.Sleep(time.Duration(200+rng.IntN(1300)) * time.Millisecond)
		if round < crashes {
			srv.kill()
		}
		cancel()
		wg.Wait()
		if round < crashes {
			srv.start()
		}
	}
	srv.stop()

	db, err := sql.Open("duckdb", filepath.Join(data, "tenants", tenantID+".duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT id, count(*) FROM events GROUP BY id`)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		stored[id] = n
	}
	rows.Close()
	lost, dup := exactlyOnce(t, acked, stored)
	t.Logf("%d crashes, %d acknowledged ids, %d stored ids, %d lost, %d duplicated", crashes, len(acked), len(stored), lost, dup)
	if len(acked) == 0 {
		t.Fatal("no insert was acknowledged: the test tested nothing")
	}
}

// server is the duckgate binary under test.
type server struct {
	t             *testing.T
	bin, data     string
	addr          string
	cmd           *exec.Cmd
	tenantID, key string
	args          []string // more flags of serve
}

var demoLine = regexp.MustCompile(`demo tenant (\S+) api_key=(\S+)`)

func (s *server) start() {
	s.t.Helper()
	args := append([]string{"serve", "-listen", s.addr, "-data", s.data, "-admin-key", "crash-admin",
		"-batcher.flush-interval", "100ms", "-log-level", "warn"}, s.args...)
	s.cmd = exec.Command(s.bin, args...)
	stdout, _ := s.cmd.StdoutPipe()
	s.cmd.Stderr = os.Stderr
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := demoLine.FindStringSubmatch(sc.Text()); m != nil {
				demoCh <- [2]string{m[1], m[2]}
			}
		}
	}()
	if s.key == "" {
		select {
		case m := <-demoCh:
			s.tenantID, s.key = m[0], m[1]
		case <-time.After(60 * time.Second):
			s.t.Fatal("no demo tenant line on stdout")
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + s.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatal("server did not become healthy")
}

var demoCh = make(chan [2]string, 1)

func (s *server) kill() {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Wait()
}

func (s *server) stop() {
	start := time.Now()
	defer func() { s.t.Logf("clean stop took %s", time.Since(start)) }()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			s.t.Errorf("clean stop: %v", err)
		}
	case <-time.After(60 * time.Second):
		s.kill()
		s.t.Error("server did not stop within 60 s")
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// exactlyOnce reports (the first five of each as errors) the acknowledged
// ids not stored and the ids stored more than once, and counts them.
func exactlyOnce(t *testing.T, acked map[string]bool, stored map[string]int) (lost, dup int) {
	t.Helper()
	for id := range acked {
		if stored[id] == 0 {
			lost++
			if lost <= 5 {
				t.Errorf("acknowledged id %s is missing", id)
			}
		}
	}
	for id, n := range stored {
		if n > 1 {
			dup++
			if dup <= 5 {
				t.Errorf("id %s stored %d times", id, n)
			}
		}
	}
	return lost, dup
}
