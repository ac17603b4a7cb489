package query

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"duckgate/tenantdb"
)

// TestExportRSS measures the server's peak RSS (VmHWM of /proc/self/status)
// while a client reads a 10M-row and a 50M-row NDJSON export of benchQuery
// through HTTP. Each size runs in a child process of its own (this test
// binary again, serving HandleQuery with fasthttp on 127.0.0.1), so that
// each peak is that export's alone and the client's memory is not counted.
// It takes a few minutes:
//
//	DUCKGATE_LONG=1 go test -run TestExportRSS -v -timeout 30m ./query/
//
// The goal (peaks within 10% of each other, under 400 MB) is reported, not
// asserted; the test fails only if the 50M-row peak is half again the
// 10M-row one, which means the result is being held in memory.
func TestExportRSS(t *testing.T) {
	if dir := os.Getenv("DUCKGATE_RSS_SERVER"); dir != "" {
		serveForRSS(t, dir)
		return
	}
	if os.Getenv("DUCKGATE_LONG") == "" {
		t.Skip("set DUCKGATE_LONG=1 to export 10M and 50M rows")
	}
	peaks := map[int]int64{}
	for _, rows := range []int{10_000_000, 50_000_000} {
		peak, size, d := exportInChild(t, rows)
		peaks[rows] = peak
		t.Logf("%dM rows: %d MB of NDJSON in %s (%.0f rows/s); server peak RSS (VmHWM) %d MB",
			rows/1_000_000, size>>20, d.Round(time.Millisecond), float64(rows)/d.Seconds(), peak>>20)
	}
	ratio := float64(peaks[50_000_000]) / float64(peaks[10_000_000])
	t.Logf("peak RSS 50M / 10M = %.2f", ratio)
	if ratio > 1.5 {
		t.Errorf("the 50M-row export peaks at %.2f× the 10M-row one: the result is held in memory", ratio)
	}
}

// exportInChild starts a server process, streams rows rows from it and
// returns its peak RSS in bytes, the body's size and the time it took.
func exportInChild(t *testing.T, rows int) (peak, size int64, d time.Duration) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestExportRSS$", "-test.timeout=60m")
	cmd.Env = append(os.Environ(), "DUCKGATE_RSS_SERVER="+t.TempDir())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = stdin.Close() // the child shuts down when its stdin closes
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "ADDR ")
	if err != nil || !ok {
		t.Fatalf("child said %q: %v", line, err)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()

	start := time.Now()
	resp, err := http.Get("http://" + addr + "/api/data/query?" + url.Values{"query": {benchQuery(rows)}, "format": {"ndjson"}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	lines, size, last, err := countLines(resp.Body)
	_ = resp.Body.Close()
	d = time.Since(start)
	if err != nil || resp.StatusCode != 200 || lines != int64(rows) || bytes.HasPrefix(last, []byte(`{"error"`)) {
		t.Fatalf("status %d, %d lines, last %q: %v", resp.StatusCode, lines, last, err)
	}
	resp, err = http.Get("http://" + addr + "/vmhwm")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	kb, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatalf("VmHWM %q: %v", b, err)
	}
	return kb << 10, size, d
}

// countLines reads r to its end: its lines, its size and its last line.
func countLines(r io.Reader) (lines, size int64, last []byte, err error) {
	buf := make([]byte, 256<<10)
	var tail []byte
	for {
		n, rerr := r.Read(buf)
		chunk := buf[:n]
		size += int64(n)
		lines += int64(bytes.Count(chunk, []byte{'\n'}))
		if n > 0 {
			tail = append(tail[:0], chunk[max(0, n-512):]...)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return lines, size, nil, rerr
		}
	}
	tail = bytes.TrimRight(tail, "\n")
	if i := bytes.LastIndexByte(tail, '\n'); i >= 0 {
		tail = tail[i+1:]
	}
	return lines, size, tail, nil
}

// serveForRSS is the child of TestExportRSS: it serves tenant t1's queries
// in dir and its own VmHWM until its stdin closes.
func serveForRSS(t *testing.T, dir string) {
	pool, err := tenantdb.New(tenantdb.Config{Dir: dir}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	e := New(Config{MaxRows: 1 << 40, MaxBytes: 1 << 50, Timeout: time.Hour}, pool, nil, zap.NewNop())
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		switch string(ctx.Path()) {
		case "/api/data/query":
			if err := e.HandleQuery(ctx, "t1"); err != nil {
				ctx.Error(err.Error(), statusOf(err))
			}
		case "/vmhwm":
			status, err := os.ReadFile("/proc/self/status")
			if err != nil {
				ctx.Error(err.Error(), 500)
				return
			}
			for l := range strings.SplitSeq(string(status), "\n") {
				if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
					ctx.SetBodyString(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
				}
			}
		default:
			ctx.NotFound()
		}
	}, Logger: silentLogger{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	fmt.Printf("ADDR %s\n", ln.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.ShutdownWithContext(ctx)
}
