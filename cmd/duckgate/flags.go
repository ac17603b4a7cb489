package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"duckgate/cluster"
)

// byteSize is a flag of a number of bytes: a plain number, or one with a
// unit: KiB, MiB, GiB, TiB (powers of 1024) or KB, MB, GB, TB (powers of
// 1000), in any letter case, with an optional space ("64MiB", "1 GiB").
type byteSize int64

// byteUnits are the units byteSize accepts, longest first so that "MiB" is
// not read as "B".
var byteUnits = []struct {
	suffix string
	mult   int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"b", 1},
}

// parseByteSize parses a byte size as byteSize describes it.
func parseByteSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range byteUnits {
		if num, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a byte size: use a whole number of bytes, or one with a unit such as 64MiB or 1GiB", s)
	}
	if n > 0 && mult > 1<<62/n {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * mult, nil
}

// bytesFlag defines a byte-size flag on fs with a default in bytes.
func bytesFlag(fs *flag.FlagSet, name string, def int64, usage string) *int64 {
	v := byteSize(def)
	fs.Var(&v, name, usage)
	return (*int64)(&v)
}

// String formats the size with the largest binary unit that divides it.
func (b *byteSize) String() string {
	n := int64(*b)
	for _, u := range []struct {
		name string
		mult int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

// Set parses a byte size.
func (b *byteSize) Set(s string) error {
	n, err := parseByteSize(s)
	if err != nil {
		return err
	}
	*b = byteSize(n)
	return nil
}

// listenAddr turns the -listen forms duckgate accepts, "127.0.0.1:8080",
// ":8080" and "http://127.0.0.1:8080/", into the host:port to listen on.
func listenAddr(s string) (string, error) {
	hostport := strings.TrimSuffix(s, "/")
	if rest, ok := strings.CutPrefix(hostport, "http://"); ok {
		hostport = rest
	} else if strings.Contains(hostport, "://") {
		return "", fmt.Errorf("-listen %q: duckgate serves plain HTTP; put TLS in a proxy in front and give host:port or http://host:port", s)
	}
	if strings.Contains(hostport, "/") || !strings.Contains(hostport, ":") {
		return "", fmt.Errorf("-listen %q: give host:port, for example 127.0.0.1:8080 or http://127.0.0.1:8080", s)
	}
	return hostport, nil
}

// serverURL turns the -addr forms the CLI accepts, the same as -listen's
// plus https://, into a base URL without a trailing slash.
func serverURL(s string) string {
	s = strings.TrimRight(s, "/")
	if strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") {
		return s
	}
	return "http://" + s
}

// clusterFlags are the flags of cluster mode (-nats and -cluster.*).
type clusterFlags struct {
	nats, node, advertise   string
	partitions, replicas    int
	leaseTTL, snapshotEvery time.Duration
	dedupWindow             time.Duration
	maxBytes                *int64
}

// addClusterFlags defines the cluster-mode flags on fs.
func addClusterFlags(fs *flag.FlagSet) *clusterFlags {
	c := &clusterFlags{}
	host, _ := os.Hostname()
	fs.StringVar(&c.nats, "nats", "", "NATS server URLs, comma separated (nats://a:4222,nats://b:4222): join a duckgate cluster on NATS JetStream instead of running alone with the local write-ahead log")
	fs.StringVar(&c.node, "node", host, "with -nats: this node's name, unique in the cluster (letters, digits, '-', '_'); default the host name")
	fs.StringVar(&c.advertise, "cluster.advertise", "", "with -nats: host:port other nodes reach this node's HTTP API on, to forward queries; default the -listen address (with the host name when it listens on all interfaces)")
	fs.IntVar(&c.partitions, "cluster.partitions", 16, "with -nats: partitions of the tenants (a hash of the tenant id); fixed when the cluster's stream is created, the same on every node")
	fs.IntVar(&c.replicas, "cluster.replicas", 0, "with -nats: replicas of the stream, buckets and snapshots; 0 means 3 when at least 3 NATS servers are known, else 1")
	fs.DurationVar(&c.leaseTTL, "cluster.lease-ttl", 10*time.Second, "with -nats: a partition's lease lives this long unrenewed: a dead node's partitions move to the others after it")
	fs.DurationVar(&c.snapshotEvery, "cluster.snapshot-interval", time.Minute, "with -nats: how often a writer stores snapshots of the tenant databases it changed in the object store, and purges the stream up to them: the replay a new writer does after a failover")
	fs.DurationVar(&c.dedupWindow, "cluster.dedup-window", 10*time.Minute, "with -nats: JetStream's duplicate window for idempotency keys, webhook delivery ids and tracking message ids sent to any node")
	c.maxBytes = bytesFlag(fs, "cluster.max-bytes", 10<<30, "with -nats: bytes of inserts the stream holds that no snapshot holds yet; beyond it inserts get 503")
	return c
}

// enabled reports whether -nats was given.
func (c *clusterFlags) enabled() bool { return strings.TrimSpace(c.nats) != "" }

// config builds the cluster's Config; listen is the -listen address.
func (c *clusterFlags) config(listen string) (cluster.Config, error) {
	var urls []string
	for _, u := range strings.Split(c.nats, ",") {
		if u = strings.TrimSpace(u); u != "" {
			urls = append(urls, u)
		}
	}
	adv := c.advertise
	if adv == "" {
		host, port, err := net.SplitHostPort(listen)
		if err != nil {
			return cluster.Config{}, fmt.Errorf("-listen %q: %w", listen, err)
		}
		if host == "" || host == "0.0.0.0" || host == "::" {
			if host, err = os.Hostname(); err != nil {
				return cluster.Config{}, fmt.Errorf("-cluster.advertise: no host name (%w); set it", err)
			}
		}
		adv = net.JoinHostPort(host, port)
	}
	return cluster.Config{URLs: urls, Node: c.node, HTTPAddr: adv, Partitions: c.partitions, Replicas: c.replicas,
		LeaseTTL: c.leaseTTL, SnapshotInterval: c.snapshotEvery, DedupWindow: c.dedupWindow, MaxBytes: *c.maxBytes}, nil
}
