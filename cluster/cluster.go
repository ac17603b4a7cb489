package cluster

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Names of what duckgate keeps in JetStream.
const (
	// StreamName is the one stream of all inserts: subjects
	// duckgate.p.<partition>.
	StreamName    = "DUCKGATE"
	subjectPrefix = "duckgate.p."
	// LeaseBucket holds one key per partition, p<n>, whose value is the
	// name of the node that writes it; the bucket's TTL expires the lease
	// of a node that stops renewing it.
	LeaseBucket = "duckgate_leases"
	// NodeBucket holds one key per live node: its HTTP address and
	// partitions, renewed with the leases.
	NodeBucket = "duckgate_nodes"
	// ManifestBucket holds, per partition, the position its snapshots
	// cover and the snapshot object of each tenant; owners write it with
	// compare-and-set on its revision.
	ManifestBucket = "duckgate_manifests"
	// SnapshotBucket is the object store of tenant database snapshots.
	SnapshotBucket = "duckgate_snapshots"
	// ctlCommitted is the request subject that asks a partition's writer
	// to commit a tenant up to a position (insert ?wait=true on another
	// node): duckgate.ctl.committed.<partition>.
	ctlCommitted = "duckgate.ctl.committed."
)

// Config configures cluster mode. Zero fields take the documented
// defaults; URLs and Node are required.
type Config struct {
	// URLs are the NATS servers to connect to (any of them will do: the
	// client learns the others).
	URLs []string
	// Node names this node, unique in the cluster: letters, digits, '-'
	// and '_'.
	Node string
	// HTTPAddr is the host:port other nodes reach this node's HTTP API on,
	// for queries they forward to it.
	HTTPAddr string
	// Replicas of the stream, buckets and object store: 0 means 3 when the
	// client knows at least 3 NATS servers, else 1.
	Replicas int
	// Partitions is the number of partitions, fixed when the stream is
	// first created. Default 16: enough to spread the writes of a few
	// dozen nodes, few enough that each has a cheap consumer.
	Partitions int
	// LeaseTTL is how long a partition's lease lives without renewal: a
	// dead node's partitions move after it. Default 10 s (renewed every
	// LeaseTTL/5).
	LeaseTTL time.Duration
	// SnapshotInterval is how often a writer stores snapshots of the
	// tenants it changed, after which the stream is purged up to them.
	// Default 1 min.
	SnapshotInterval time.Duration
	// MaxBytes caps the stream; an insert beyond it is refused with 503
	// (nothing acknowledged is ever dropped to make room). Default 10 GiB.
	MaxBytes int64
	// DedupWindow is JetStream's duplicate window for Nats-Msg-Id (the
	// idempotency keys, webhook delivery ids and tracking message ids).
	// Default 10 min.
	DedupWindow time.Duration
	// PublishTimeout bounds one publish, retries across a NATS leader
	// election included; past it the insert gets 503. Default 5 s.
	PublishTimeout time.Duration
}

// errConfig is a setup error that retrying cannot fix.
var errConfig = errors.New("cluster configuration")

var nodeName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func (c *Config) setDefaults() error {
	if len(c.URLs) == 0 {
		return errors.New("cluster: no NATS server URL")
	}
	if !nodeName.MatchString(c.Node) {
		return fmt.Errorf("cluster: node name %q: use 1 to 64 letters, digits, '-' or '_'", c.Node)
	}
	if c.Partitions <= 0 {
		c.Partitions = 16
	}
	if c.Partitions > 1024 {
		return fmt.Errorf("cluster: %d partitions; at most 1024", c.Partitions)
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = 10 * time.Second
	}
	if c.LeaseTTL < time.Second {
		return fmt.Errorf("cluster: lease TTL %s; at least 1s", c.LeaseTTL)
	}
	if c.SnapshotInterval <= 0 {
		c.SnapshotInterval = time.Minute
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 10 << 30
	}
	if c.DedupWindow <= 0 {
		c.DedupWindow = 10 * time.Minute
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = 5 * time.Second
	}
	return nil
}

// Conn is the connection of a node to the cluster's NATS servers, with
// the stream, buckets and object store made ready. cmd hands JS to every
// package that keeps state in JetStream.
type Conn struct {
	// NC is the NATS connection.
	NC *nats.Conn
	// JS is its JetStream context.
	JS jetstream.JetStream

	cfg       Config
	log       *zap.Logger
	stream    jetstream.Stream
	leases    jetstream.KeyValue
	nodes     jetstream.KeyValue
	manifests jetstream.KeyValue
	snapshots jetstream.ObjectStore
}

// Connect connects to the NATS servers of cfg and creates (or checks) the
// stream, the lease, node and manifest buckets and the snapshot object
// store. It retries until ctx ends, so that nodes may start before NATS.
func Connect(ctx context.Context, cfg Config, log *zap.Logger) (*Conn, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	nc, err := nats.Connect(strings.Join(cfg.URLs, ","),
		nats.Name("duckgate "+cfg.Node),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(250*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("disconnected from NATS", zap.Error(err))
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("reconnected to NATS", zap.String("server", nc.ConnectedUrlRedacted()))
		}))
	if err != nil {
		return nil, fmt.Errorf("connect to NATS %s: %w", strings.Join(cfg.URLs, ","), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	c := &Conn{NC: nc, JS: js, cfg: cfg, log: log}
	for {
		err = c.setup(ctx)
		if err == nil {
			return c, nil
		}
		if errors.Is(err, errConfig) {
			nc.Close()
			return nil, err
		}
		log.Warn("cluster setup failed; retrying", zap.Error(err))
		select {
		case <-ctx.Done():
			nc.Close()
			return nil, fmt.Errorf("cluster setup: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(time.Second):
		}
	}
}

// Config returns the configuration with its defaults filled in.
func (c *Conn) Config() Config { return c.cfg }

// Replicas is the replica count of the stream and buckets: cfg.Replicas,
// or 3 when the client knows at least 3 NATS servers, else 1. Packages that
// make their own buckets on JS use it too.
func (c *Conn) Replicas() int {
	if c.cfg.Replicas > 0 {
		return c.cfg.Replicas
	}
	if len(c.NC.Servers()) >= 3 {
		return 3
	}
	return 1
}

// setup creates or updates the stream and buckets.
func (c *Conn) setup(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	r := c.Replicas()
	// The partition count is fixed when the stream is made: a node started
	// with another one would send a tenant's inserts to another subject.
	if s, err := c.JS.Stream(ctx, StreamName); err == nil {
		if got := s.CachedInfo().Config.Metadata["duckgate_partitions"]; got != "" && got != fmt.Sprint(c.cfg.Partitions) {
			return fmt.Errorf("%w: stream %s was created with %s partitions, not %d: start every node with the same -cluster.partitions", errConfig, StreamName, got, c.cfg.Partitions)
		}
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("stream %s: %w", StreamName, err)
	}
	var err error
	c.stream, err = c.JS.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamName,
		Description: "duckgate inserts, one subject per partition",
		Subjects:    []string{subjectPrefix + "*"},
		Retention:   jetstream.LimitsPolicy,
		// Nothing acknowledged is dropped to make room: a full stream
		// refuses new inserts (503), and snapshots purge what they hold.
		Discard:    jetstream.DiscardNew,
		MaxBytes:   c.cfg.MaxBytes,
		Storage:    jetstream.FileStorage,
		Replicas:   r,
		Duplicates: c.cfg.DedupWindow,
		// No direct gets: a read-your-writes check asks the stream's leader
		// for a partition's last position, which a follower may not have.
		AllowDirect: false,
		Metadata:    map[string]string{"duckgate_partitions": fmt.Sprint(c.cfg.Partitions)},
	})
	if err != nil {
		return fmt.Errorf("stream %s: %w", StreamName, err)
	}
	if c.leases, err = c.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: LeaseBucket, TTL: c.cfg.LeaseTTL, Replicas: r, Storage: jetstream.FileStorage}); err != nil {
		return fmt.Errorf("bucket %s: %w", LeaseBucket, err)
	}
	if c.nodes, err = c.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: NodeBucket, TTL: c.cfg.LeaseTTL, Replicas: r, Storage: jetstream.FileStorage}); err != nil {
		return fmt.Errorf("bucket %s: %w", NodeBucket, err)
	}
	if c.manifests, err = c.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: ManifestBucket, Replicas: r, Storage: jetstream.FileStorage}); err != nil {
		return fmt.Errorf("bucket %s: %w", ManifestBucket, err)
	}
	if c.snapshots, err = c.JS.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: SnapshotBucket, Replicas: r, Storage: jetstream.FileStorage}); err != nil {
		return fmt.Errorf("object store %s: %w", SnapshotBucket, err)
	}
	return nil
}

// Close drains and closes the NATS connection.
func (c *Conn) Close() {
	if err := c.NC.Drain(); err != nil {
		c.NC.Close()
	}
}
