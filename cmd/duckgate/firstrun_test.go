package main

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// binary builds the duckgate binary once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "duckgate-bin")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "duckgate")
		if out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput(); err != nil {
			buildErr = err
			t.Logf("%s", out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build: %v", buildErr)
	}
	return builtBin
}

// TestFirstRun tries the README as a new user would: help exits 0 and shows
// no secret; -listen takes a URL; byte sizes take units; a stop is clean.
func TestFirstRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := binary(t)
	const secret = "dga_do-not-print-me-0123456789"
	run := func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "DUCKGATE_ADMIN_KEY="+secret)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, args := range [][]string{{"-h"}, {"serve", "-h"}, {"tenant", "list", "-h"}} {
		out, err := run(args...)
		if strings.Contains(out, secret) {
			t.Errorf("duckgate %s prints the admin key", strings.Join(args, " "))
		}
		if args[0] != "tenant" && err != nil {
			t.Errorf("duckgate %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if out, _ := run("serve", "-h"); !strings.Contains(out, "64MiB") {
		t.Errorf("serve -h does not show byte sizes with units:\n%s", out)
	}

	addr := freeAddr(t)
	cmd := exec.Command(bin, "serve", "-listen", "http://"+addr+"/", "-data", t.TempDir(),
		"-ingest.max-body", "1KiB", "-batcher.max-buffered", "64MiB", "-log-level", "warn")
	cmd.Env = append(os.Environ(), "DUCKGATE_ADMIN_KEY="+secret)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	healthy := false
	for deadline := time.Now().Add(60 * time.Second); !healthy && time.Now().Before(deadline); {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			healthy = resp.StatusCode == 200
			resp.Body.Close()
		}
		if !healthy {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if !healthy {
		_ = cmd.Process.Kill()
		t.Fatalf("not healthy on %s:\n%s", addr, stderr.String())
	}
	resp, err := http.Post("http://"+addr+"/api/data/insert/t?api_key=x", "application/json", strings.NewReader(strings.Repeat(" ", 2048)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Errorf("a 2 KiB body with -ingest.max-body 1KiB: %d, want 413", resp.StatusCode)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("clean stop: %v\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("did not stop within 60 s")
	}
	if strings.Contains(stdout.String()+stderr.String(), secret) {
		t.Error("the server printed the admin key")
	}
	if !strings.Contains(stdout.String(), "demo tenant") {
		t.Errorf("no demo tenant line:\n%s", stdout.String())
	}
}

// TestMain removes the binary built for the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if builtBin != "" {
		_ = os.RemoveAll(filepath.Dir(builtBin))
	}
	os.Exit(code)
}
