package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/valyala/fastjson"
)

// gateway is the duckgate server under test: a child process this tool
// started, or a running server given with -url.
type gateway struct {
	addr     string // host:port
	adminKey string
	admin    target // with the admin key

	// Set only for a child process.
	cmd     *exec.Cmd
	dataDir string
	logPath string
	exited  chan struct{} // closed when the child has exited
	waitErr error         // the child's exit status; valid after exited is closed
}

// buildServer builds cmd/duckgate of the module in modDir into dir. With a
// rev, it builds that commit instead of the working tree: exported with git
// archive into dir, so a tree that others are editing does not matter.
func buildServer(modDir, dir, rev string) (string, error) {
	bin := filepath.Join(dir, "duckgate")
	src := modDir
	if rev != "" {
		src = filepath.Join(dir, "src")
		if err := os.MkdirAll(src, 0o750); err != nil {
			return "", err
		}
		// modDir may be a subdirectory of the repository: archive from it.
		archive := exec.Command("sh", "-c", `git archive "$1" . | tar -x -C "$2"`, "sh", rev, src)
		archive.Dir = modDir
		archive.Stderr = os.Stderr
		if err := archive.Run(); err != nil {
			return "", fmt.Errorf("git archive %s: %w", rev, err)
		}
	}
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/duckgate")
	cmd.Dir = src
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/duckgate: %w", err)
	}
	return bin, nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startServer runs bin as a child on a free loopback port with a fresh data
// directory under dir, and waits for /healthz.
func startServer(bin, dir, name string, extra []string) (*gateway, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	g := &gateway{
		addr:     "127.0.0.1:" + strconv.Itoa(port),
		adminKey: "bench-admin-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		dataDir:  filepath.Join(dir, "data-"+name),
		logPath:  filepath.Join(dir, "server-"+name+".log"),
		exited:   make(chan struct{}),
	}
	logf, err := os.Create(g.logPath)
	if err != nil {
		return nil, err
	}
	args := append([]string{"serve", "-listen", g.addr, "-data", g.dataDir, "-admin-key", g.adminKey, "-log-level", "warn"}, extra...)
	g.cmd = exec.Command(bin, args...)
	g.cmd.Stdout = logf
	g.cmd.Stderr = logf
	if err := g.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		g.waitErr = g.cmd.Wait()
		logf.Close()
		close(g.exited)
	}()
	g.admin = target{hc: newHostClient(g.addr, 16), key: g.adminKey}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, _, err := get(target{hc: g.admin.hc}, "/healthz")
		if err == nil && code == 200 {
			return g, nil
		}
		select {
		case <-g.exited:
			return nil, fmt.Errorf("server exited during start (%v); log: %s", g.waitErr, tail(g.logPath))
		default:
		}
		if time.Now().After(deadline) {
			g.stop()
			return nil, fmt.Errorf("server not healthy after 30s (last: %d %v); log: %s", code, err, tail(g.logPath))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// remoteServer is a server given with -url.
func remoteServer(rawURL, adminKey string) (*gateway, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("-url %q: want http://host:port", rawURL)
	}
	g := &gateway{addr: u.Host, adminKey: adminKey}
	g.admin = target{hc: newHostClient(g.addr, 16), key: adminKey}
	code, body, err := get(target{hc: g.admin.hc}, "/healthz")
	if err != nil || code != 200 {
		return nil, fmt.Errorf("%s/healthz: %d %s %v", rawURL, code, body, err)
	}
	return g, nil
}

// child reports whether this tool started the server (and can read its
// memory and database files).
func (g *gateway) child() bool { return g.cmd != nil }

// stop sends SIGTERM and waits for a clean exit (it flushes all buffers),
// killing the child after a minute. A remote server is left alone.
func (g *gateway) stop() error {
	if g.cmd == nil {
		return nil
	}
	select {
	case <-g.exited:
		return g.waitErr
	default:
	}
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
		return g.waitErr
	case <-time.After(time.Minute):
		_ = g.cmd.Process.Kill()
		<-g.exited
		return errors.New("server did not stop within a minute of SIGTERM; killed")
	}
}

// createTenant makes a tenant on plan through the admin API and returns its
// id and API key.
func (g *gateway) createTenant(name, plan string) (id, key string, err error) {
	code, body, err := post(g.admin, "/api/admin/tenants", []byte(`{"name":"`+name+`","plan":"`+plan+`"}`), "")
	if err != nil {
		return "", "", fmt.Errorf("create tenant %s: %w", name, err)
	}
	if code != 200 && code != 201 {
		return "", "", fmt.Errorf("create tenant %s: HTTP %d: %s", name, code, body)
	}
	v, err := fastjson.ParseBytes(body)
	if err != nil {
		return "", "", fmt.Errorf("create tenant %s: %w", name, err)
	}
	id, key = string(v.GetStringBytes("tenant_id")), string(v.GetStringBytes("api_key"))
	if id == "" || key == "" {
		return "", "", fmt.Errorf("create tenant %s: no tenant_id or api_key in %s", name, body)
	}
	return id, key, nil
}

// memory returns the child's peak (VmHWM) and current (VmRSS) resident
// memory in bytes.
func (g *gateway) memory() (hwm, rss int64, err error) {
	if g.cmd == nil {
		return 0, 0, errors.New("not a child process")
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", g.cmd.Process.Pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmHWM" && k != "VmRSS") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", k, err)
		}
		if k == "VmHWM" {
			hwm = kb << 10
		} else {
			rss = kb << 10
		}
	}
	return hwm, rss, sc.Err()
}

// cpu is the CPU time (user and system) the child server has used, from
// /proc/<pid>/stat.
func (g *gateway) cpu() (time.Duration, error) {
	if g.cmd == nil {
		return 0, errors.New("not a child process")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", g.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("cannot read /proc/<pid>/stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc/<pid>/stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	const hz = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / hz, nil
}

// tenantDB is the path of a tenant's database file in the child's data
// directory.
func (g *gateway) tenantDB(id string) string {
	return filepath.Join(g.dataDir, "tenants", id+".duckdb")
}

// tail returns the last lines of a log file, for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	b = bytes.TrimSpace(b)
	if len(b) > 1500 {
		b = b[len(b)-1500:]
	}
	return string(b)
}

// openFiles is the number of file descriptors the child server holds.
func (g *gateway) openFiles() (int, error) {
	if g.cmd == nil {
		return 0, errors.New("not a child process")
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", g.cmd.Process.Pid))
	return len(ents), err
}
