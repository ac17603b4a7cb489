// Package clustertest starts NATS servers with JetStream in-process for
// tests of cluster mode: one server, or a cluster of several on loopback
// ports, each on its own temporary directory. Only tests import it.
package clustertest

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Servers is a set of in-process NATS servers.
type Servers struct {
	t    testing.TB
	opts []*server.Options
	srvs []*server.Server
}

// freePorts returns n loopback ports free now.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		_ = ln.Close()
	}
	return ports
}

// Start starts n NATS servers with JetStream (n > 1: clustered over
// routes on loopback) and stops them when the test ends.
func Start(t testing.TB, n int) *Servers {
	t.Helper()
	ports := freePorts(t, 2*n)
	dir := t.TempDir()
	s := &Servers{t: t}
	for i := range n {
		o := &server.Options{
			ServerName: fmt.Sprintf("nats%d", i),
			Host:       "127.0.0.1",
			Port:       ports[i],
			JetStream:  true,
			StoreDir:   filepath.Join(dir, fmt.Sprintf("nats%d", i)),
			// Small limits: a test never stores much, and three servers
			// in one process must not claim the machine's disk and memory.
			JetStreamMaxMemory: 256 << 20,
			JetStreamMaxStore:  2 << 30,
			NoLog:              true,
			NoSigs:             true,
		}
		if n > 1 {
			o.Cluster = server.ClusterOpts{Name: "duckgate-test", Host: "127.0.0.1", Port: ports[n+i]}
			for j := range n {
				if j != i {
					o.Routes = append(o.Routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", ports[n+j])})
				}
			}
		}
		s.opts = append(s.opts, o)
		s.srvs = append(s.srvs, nil)
	}
	for i := range n {
		s.Restart(i)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// URLs are the client URLs of the servers.
func (s *Servers) URLs() []string {
	var out []string
	for _, o := range s.opts {
		out = append(out, fmt.Sprintf("nats://127.0.0.1:%d", o.Port))
	}
	return out
}

// Stop shuts server i down (its store stays, for Restart).
func (s *Servers) Stop(i int) {
	if s.srvs[i] != nil {
		s.srvs[i].Shutdown()
		s.srvs[i].WaitForShutdown()
		s.srvs[i] = nil
	}
}

// Restart starts server i (again) on its ports and store.
func (s *Servers) Restart(i int) {
	s.t.Helper()
	o := *s.opts[i]
	srv, err := server.NewServer(&o)
	if err != nil {
		s.t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(20 * time.Second) {
		s.t.Fatalf("NATS server %d not ready", i)
	}
	s.srvs[i] = srv
}

// Shutdown stops every server.
func (s *Servers) Shutdown() {
	for i := range s.srvs {
		s.Stop(i)
	}
}
