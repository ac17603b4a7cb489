package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"duckgate/batcher"
	"duckgate/tenantdb"
)

// Errors of cluster mode.
var (
	// ErrNoWriter means the tenant's partition has no writer right now (a
	// node died and its lease has not expired yet, or the partition is
	// moving): retry in a second (503).
	ErrNoWriter = errors.New("the tenant's partition has no writer right now")
	// ErrStale means this node lost a partition while working on it.
	ErrStale = errors.New("this node no longer writes the partition")
)

// errDeliveryGap means a consumer skipped deliveries (see consume).
var errDeliveryGap = errors.New("a delivery of the partition's consumer was lost")

// Node is one duckgate node of a cluster. It is the batcher's Log
// (Append publishes to the stream), holds leases on partitions, and for
// each partition it holds runs the partition's consumer, which hands
// inserts to the batcher (Apply) and acknowledges them after their commit.
// Create it with New before the batcher, and Start it after.
type Node struct {
	c   *Conn
	cfg Config
	log *zap.Logger

	b    *batcher.Batcher // set by Start
	pool *tenantdb.Pool   // set by Start

	parts []*part

	mu     sync.Mutex
	owners map[int]string    // lease holder of each partition at the last tick; guarded by mu
	addrs  map[string]string // HTTP address of each live node; guarded by mu
	live   []string          // live nodes, sorted; guarded by mu

	publishSeconds *metrics.PrometheusHistogram
	pending        atomic.Int64 // messages not yet delivered, owned partitions, at the last tick
	ackPending     atomic.Int64 // messages delivered and not yet committed, idem
	connected      atomic.Bool

	client *fasthttp.Client // forwards queries to other nodes

	sub    *nats.Subscription
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the lease loop and the partition goroutines
}

// part is the state of one partition on this node.
type part struct {
	n int

	mu       sync.Mutex
	owned    bool                // this node holds the lease; guarded by mu
	rev      uint64              // the lease's revision; guarded by mu
	renewed  time.Time           // last successful renewal; guarded by mu
	tenure   int                 // number of times acquired; guarded by mu
	handed   uint64              // highest stream position handed to the batcher; guarded by mu
	changed  chan struct{}       // closed when handed moves; guarded by mu
	dirty    map[string]struct{} // tenants handed since the last snapshot round; guarded by mu
	tenants  map[string]struct{} // tenants handed since the partition was acquired; guarded by mu
	stop     context.CancelFunc  // stops the partition's goroutine; guarded by mu
	done     chan struct{}       // closed when the last goroutine of the partition returned; guarded by mu
	consumer jetstream.Consumer  // the current consumer; guarded by mu

	snapNow chan chan error // asks the partition's snapshot goroutine for a round now
}

// New returns the node of c. It publishes (Append) at once; Start makes it
// a writer.
func New(c *Conn, set *metrics.Set, log *zap.Logger) *Node {
	if set == nil {
		set = metrics.NewSet()
	}
	n := &Node{c: c, cfg: c.cfg, log: log.With(zap.String("node", c.cfg.Node)), owners: map[int]string{}, addrs: map[string]string{},
		client: &fasthttp.Client{Name: "duckgate-forward", ReadTimeout: forwardTimeout, NoDefaultUserAgentHeader: true, DisablePathNormalizing: true}}
	for i := range c.cfg.Partitions {
		done := make(chan struct{})
		close(done)
		n.parts = append(n.parts, &part{n: i, changed: make(chan struct{}), done: done, snapNow: make(chan chan error)})
	}
	n.publishSeconds = set.NewPrometheusHistogramExt("duckgate_cluster_publish_seconds", metrics.ExponentialBuckets(0.0001, 2, 18))
	set.NewGauge("duckgate_cluster_consumer_pending", func() float64 { return float64(n.pending.Load()) })
	set.NewGauge("duckgate_cluster_consumer_ack_pending", func() float64 { return float64(n.ackPending.Load()) })
	set.NewGauge("duckgate_cluster_partitions_owned", func() float64 { return float64(len(n.Owned())) })
	set.NewGauge("duckgate_cluster_connected", func() float64 {
		if c.NC.IsConnected() {
			return 1
		}
		return 0
	})
	n.ctx, n.cancel = context.WithCancel(context.Background())
	return n
}

// dedupID is the Nats-Msg-Id of an insert with an idempotency key: a hash,
// so that any key (a tracking message id may hold any character) makes a
// valid header, scoped to the tenant.
func dedupID(tenant, key string) string {
	h := sha256.New()
	h.Write([]byte(tenant))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return hex.EncodeToString(h.Sum(nil))
}

// Append publishes one insert to its tenant's partition and returns its
// stream sequence once JetStream acknowledged it (replicated to a majority
// of the stream's servers). A publish that times out, e.g. during an
// election, is retried with the same Nats-Msg-Id until cfg.PublishTimeout,
// so a retry never stores an insert twice; a refusal by JetStream (stream
// full) is returned at once.
func (n *Node) Append(ctx context.Context, tenant, key string, rec []byte) (uint64, error) {
	p := Partition(tenant, n.cfg.Partitions)
	id := nuid.Next()
	if key != "" {
		id = dedupID(tenant, key)
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.PublishTimeout)
	defer cancel()
	start := time.Now()
	for {
		// Each try is bounded: a publish that reached a server as it
		// stopped gets no PubAck, and is sent again (same Nats-Msg-Id).
		msg := &nats.Msg{Subject: Subject(p), Data: rec, Header: nats.Header{}}
		tctx, tcancel := context.WithTimeout(ctx, publishTry)
		ack, err := n.c.JS.PublishMsg(tctx, msg, jetstream.WithMsgID(id), jetstream.WithRetryAttempts(20), jetstream.WithRetryWait(100*time.Millisecond))
		tcancel()
		if err == nil {
			n.publishSeconds.UpdateDuration(start)
			return ack.Sequence, nil
		}
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) {
			return 0, fmt.Errorf("publish to %s: %w", StreamName, err)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("publish to %s: %w (last error: %v)", StreamName, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// publishTry bounds one try of a publish; PubAcks take well under a
// millisecond to a few (BenchmarkAppend), an election a few seconds.
const publishTry = 1500 * time.Millisecond

// committedReq is the body of a request on ctlCommitted.
type committedReq struct {
	Tenant string `json:"tenant"`
	Pos    uint64 `json:"pos"`
}

// Committed waits until the tenant's inserts up to pos are committed: here
// if this node writes the tenant's partition, else by asking its writer.
func (n *Node) Committed(ctx context.Context, tenant string, pos uint64) error {
	p := Partition(tenant, n.cfg.Partitions)
	body, _ := json.Marshal(committedReq{Tenant: tenant, Pos: pos})
	for {
		if n.parts[p].isOwned() {
			err := n.commitLocal(ctx, p, tenant, pos)
			if !errors.Is(err, ErrStale) {
				return err
			}
		} else {
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			resp, err := n.c.NC.RequestWithContext(rctx, ctlCommitted+fmt.Sprint(p), body)
			cancel()
			if err == nil {
				if len(resp.Data) == 0 {
					return nil
				}
				if string(resp.Data) != ErrStale.Error() {
					return fmt.Errorf("commit on the partition's writer: %s", resp.Data)
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for commit of position %d: %w", pos, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// commitLocal waits until the partition's consumer handed pos to the
// batcher and the tenant's buffer is committed.
func (n *Node) commitLocal(ctx context.Context, p int, tenant string, pos uint64) error {
	if err := n.parts[p].waitHanded(ctx, pos); err != nil {
		return err
	}
	return n.b.Commit(ctx, tenant)
}

// CaughtUp waits, on the tenant's writer, until every insert of the
// tenant's partition acknowledged before the call is handed to the
// batcher. On any other node it returns at once.
func (n *Node) CaughtUp(ctx context.Context, tenant string) error {
	p := Partition(tenant, n.cfg.Partitions)
	pt := n.parts[p]
	if !pt.isOwned() {
		return nil
	}
	last, err := n.lastPosition(ctx, p)
	if err != nil {
		return err
	}
	if err := pt.waitHanded(ctx, last); errors.Is(err, ErrStale) {
		// The partition moved while the caller waited: a query retried
		// is forwarded to its new writer.
		return fmt.Errorf("%w: partition %d moved to another node; retry in a second", ErrNoWriter, p)
	} else if err != nil {
		return err
	}
	return nil
}

// lastPosition asks the stream's leader for the position of partition p's
// last insert (0 for none). Each try is bounded: a request that reached a
// server as it stopped, or a leader being elected, gets no answer, and is
// sent again.
func (n *Node) lastPosition(ctx context.Context, p int) (uint64, error) {
	for {
		tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		last, err := n.c.stream.GetLastMsgForSubject(tctx, Subject(p))
		cancel()
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			return 0, nil
		case err == nil:
			return last.Sequence, nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("last position of partition %d: %w (last error: %v)", p, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (pt *part) isOwned() bool {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return pt.owned
}

// waitHanded waits until the partition's consumer handed pos, or the
// partition is lost (ErrStale), or ctx ends.
func (pt *part) waitHanded(ctx context.Context, pos uint64) error {
	for {
		pt.mu.Lock()
		handed, owned, ch := pt.handed, pt.owned, pt.changed
		pt.mu.Unlock()
		if !owned {
			return ErrStale
		}
		if handed >= pos {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("partition %d at position %d, waiting for %d: %w", pt.n, handed, pos, ctx.Err())
		case <-time.After(time.Second): // ownership may have changed
		}
	}
}

// hand records that pos was handed to the batcher for tenant ("" for a
// message dropped).
func (pt *part) hand(pos uint64, tenant string) {
	pt.mu.Lock()
	if pos > pt.handed {
		pt.handed = pos
		close(pt.changed)
		pt.changed = make(chan struct{})
	}
	if tenant != "" {
		pt.dirty[tenant] = struct{}{}
		pt.tenants[tenant] = struct{}{}
	}
	pt.mu.Unlock()
}

// setHanded starts the partition's position at pos (after a restore).
func (pt *part) setHanded(pos uint64) {
	pt.mu.Lock()
	pt.handed = pos
	close(pt.changed)
	pt.changed = make(chan struct{})
	pt.mu.Unlock()
}

// Start makes the node a writer: it joins the lease loop, which takes and
// renews partitions, and answers other nodes' commit waits.
func (n *Node) Start(b *batcher.Batcher, pool *tenantdb.Pool) error {
	n.b, n.pool = b, pool
	sub, err := n.c.NC.Subscribe(ctlCommitted+"*", n.onCommitted)
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", ctlCommitted, err)
	}
	n.sub = sub
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.leaseLoop()
	}()
	return nil
}

// onCommitted answers another node's wait for a commit, if this node
// writes the partition: an empty body for done, else the error.
func (n *Node) onCommitted(m *nats.Msg) {
	var req committedReq
	if json.Unmarshal(m.Data, &req) != nil {
		return
	}
	p := Partition(req.Tenant, n.cfg.Partitions)
	if !n.parts[p].isOwned() {
		return // its writer answers
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		ctx, cancel := context.WithTimeout(n.ctx, 2*time.Second)
		defer cancel()
		var resp []byte
		if err := n.commitLocal(ctx, p, req.Tenant, req.Pos); err != nil {
			resp = []byte(err.Error())
			if errors.Is(err, ErrStale) {
				resp = []byte(ErrStale.Error())
			} else if ctx.Err() != nil {
				return // the asker retries
			}
		}
		_ = m.Respond(resp)
	}()
}

// nodeInfo is a node's value in NodeBucket.
type nodeInfo struct {
	HTTP       string `json:"http"`
	Partitions []int  `json:"partitions"`
}

// leaseLoop renews, takes and gives back partition leases every
// LeaseTTL/5 until Close.
func (n *Node) leaseLoop() {
	every := n.cfg.LeaseTTL / 5
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(n.ctx, every*2)
		n.tick(ctx)
		cancel()
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// tick is one round of the lease loop.
func (n *Node) tick(ctx context.Context) {
	n.connected.Store(n.c.NC.IsConnected())
	info, _ := json.Marshal(nodeInfo{HTTP: n.cfg.HTTPAddr, Partitions: n.Owned()})
	if _, err := n.c.nodes.Put(ctx, n.cfg.Node, info); err != nil {
		n.log.Warn("announce node", zap.Error(err))
	}
	live, addrs := n.liveNodes(ctx)
	if len(live) == 0 {
		live = []string{n.cfg.Node} // NATS unreachable: keep what we hold until the leases lapse
	}
	target := (n.cfg.Partitions + len(live) - 1) / len(live)

	owners := map[int]string{}
	var free []int
	type leaseRev struct {
		p   int
		rev uint64
	}
	var mine []leaseRev
	owned := 0
	for _, pt := range n.parts {
		if n.ctx.Err() != nil {
			return
		}
		key := leaseKey(pt.n)
		pt.mu.Lock()
		isOwned, rev, renewed := pt.owned, pt.rev, pt.renewed
		pt.mu.Unlock()
		if isOwned {
			newRev, err := n.c.leases.Update(ctx, key, []byte(n.cfg.Node), rev)
			var apiErr *jetstream.APIError
			switch {
			case err == nil:
				pt.mu.Lock()
				pt.rev, pt.renewed = newRev, time.Now()
				pt.mu.Unlock()
				owners[pt.n] = n.cfg.Node
				owned++
			case errors.As(err, &apiErr) || errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyNotFound):
				n.log.Warn("partition lease lost", zap.Int("partition", pt.n), zap.Error(err))
				n.drop(pt, false)
			case time.Since(renewed) > n.cfg.LeaseTTL*3/4:
				// Cut off from NATS: another node may hold the lease
				// soon. Stop writing before it can.
				n.log.Warn("partition lease not renewed in time; giving it up", zap.Int("partition", pt.n), zap.Error(err))
				n.drop(pt, false)
			default:
				owners[pt.n] = n.cfg.Node
				owned++
			}
			continue
		}
		e, err := n.c.leases.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			free = append(free, pt.n)
		case err == nil && string(e.Value()) == n.cfg.Node:
			// A lease in our name we do not hold: this node restarted
			// within the TTL, or gave the partition up when it could
			// not renew. Take it back by compare-and-set rather than
			// wait for it to expire.
			mine = append(mine, leaseRev{pt.n, e.Revision()})
		case err == nil:
			owners[pt.n] = string(e.Value())
		}
	}
	for _, l := range mine {
		if owned >= target || n.ctx.Err() != nil {
			break
		}
		rev, err := n.c.leases.Update(ctx, leaseKey(l.p), []byte(n.cfg.Node), l.rev)
		if err != nil {
			continue
		}
		n.acquire(n.parts[l.p], rev)
		owners[l.p] = n.cfg.Node
		owned++
	}
	// Take free partitions up to our share, starting at a place of our
	// own so that nodes do not all race for the same ones.
	off := Partition(n.cfg.Node, n.cfg.Partitions)
	sort.Slice(free, func(i, j int) bool {
		return (free[i]-off+n.cfg.Partitions)%n.cfg.Partitions < (free[j]-off+n.cfg.Partitions)%n.cfg.Partitions
	})
	for _, p := range free {
		if owned >= target || n.ctx.Err() != nil {
			break
		}
		rev, err := n.c.leases.Create(ctx, leaseKey(p), []byte(n.cfg.Node))
		if err != nil {
			continue // another node was faster
		}
		n.acquire(n.parts[p], rev)
		owners[p] = n.cfg.Node
		owned++
	}
	// Give one back per tick when over our share (a node joined).
	if owned > target && len(live) > 1 {
		for i := len(n.parts) - 1; i >= 0; i-- {
			if n.parts[i].isOwned() {
				n.log.Info("giving a partition back to balance the cluster", zap.Int("partition", i), zap.Int("owned", owned), zap.Int("share", target))
				n.drop(n.parts[i], true)
				delete(owners, i)
				break
			}
		}
	}
	n.mu.Lock()
	n.owners, n.addrs, n.live = owners, addrs, live
	n.mu.Unlock()
	n.updateLag(ctx)
}

// liveNodes lists the nodes in NodeBucket and their HTTP addresses.
func (n *Node) liveNodes(ctx context.Context) ([]string, map[string]string) {
	addrs := map[string]string{}
	keys, err := n.c.nodes.Keys(ctx)
	if err != nil {
		return nil, addrs
	}
	var live []string
	for _, k := range keys {
		e, err := n.c.nodes.Get(ctx, k)
		if err != nil {
			continue
		}
		var info nodeInfo
		if json.Unmarshal(e.Value(), &info) == nil {
			addrs[k] = info.HTTP
			live = append(live, k)
		}
	}
	sort.Strings(live)
	return live, addrs
}

// updateLag sums the pending counts of the consumers of owned partitions.
func (n *Node) updateLag(ctx context.Context) {
	var pending, ackPending int64
	for _, pt := range n.parts {
		pt.mu.Lock()
		c, owned := pt.consumer, pt.owned
		pt.mu.Unlock()
		if !owned || c == nil {
			continue
		}
		info, err := c.Info(ctx)
		if err != nil {
			continue
		}
		pending += int64(info.NumPending)
		ackPending += int64(info.NumAckPending)
	}
	n.pending.Store(pending)
	n.ackPending.Store(ackPending)
}

// acquire starts writing partition pt, whose lease this node just took.
func (n *Node) acquire(pt *part, rev uint64) {
	pt.mu.Lock()
	prev := pt.done
	ctx, stop := context.WithCancel(n.ctx)
	done := make(chan struct{})
	pt.owned, pt.rev, pt.renewed, pt.stop, pt.done = true, rev, time.Now(), stop, done
	pt.tenure++
	pt.handed = 0
	pt.dirty, pt.tenants = map[string]struct{}{}, map[string]struct{}{}
	pt.mu.Unlock()
	n.log.Info("partition acquired", zap.Int("partition", pt.n))
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer close(done)
		<-prev // the previous tenure's clean-up
		n.runPartition(ctx, pt, rev)
	}()
}

// drop stops writing partition pt: its consumer stops at once; its
// tenants' buffers are committed and their writers stopped in the
// background. With release, the lease is deleted too, so that another node
// takes the partition without waiting for it to expire.
func (n *Node) drop(pt *part, release bool) {
	pt.mu.Lock()
	if !pt.owned {
		pt.mu.Unlock()
		return
	}
	pt.owned = false
	close(pt.changed) // waiters see !owned
	pt.changed = make(chan struct{})
	stop, prev, rev := pt.stop, pt.done, pt.rev
	tenants := pt.tenants
	done := make(chan struct{})
	pt.done = done
	pt.mu.Unlock()
	stop()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer close(done)
		<-prev
		ctx, cancel := context.WithTimeout(context.WithoutCancel(n.ctx), n.cfg.LeaseTTL)
		defer cancel()
		if release {
			if err := n.c.leases.Delete(ctx, leaseKey(pt.n), jetstream.LastRevision(rev)); err != nil {
				n.log.Warn("give partition lease back", zap.Int("partition", pt.n), zap.Error(err))
			}
		}
		for t := range tenants {
			if err := n.b.Forget(ctx, t); err != nil {
				n.log.Warn("stop writer of a tenant of a dropped partition", zap.Int("partition", pt.n), zap.Error(err))
			}
		}
		n.log.Info("partition dropped", zap.Int("partition", pt.n), zap.Bool("released", release))
	}()
}

// runPartition restores the partition's tenants from their snapshots,
// then consumes the partition from the position the snapshots cover until
// ctx ends, snapshotting every cfg.SnapshotInterval.
func (n *Node) runPartition(ctx context.Context, pt *part, rev uint64) {
	var m *manifestState
	for {
		var err error
		if m, err = n.restore(ctx, pt.n); err == nil {
			break
		}
		n.log.Error("restore partition from its snapshots; retrying", zap.Int("partition", pt.n), zap.Error(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
	pt.setHanded(m.Seq)

	snapDone := make(chan struct{})
	go func() {
		defer close(snapDone)
		t := time.NewTicker(n.cfg.SnapshotInterval)
		defer t.Stop()
		for {
			var reply chan error
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case reply = <-pt.snapNow:
			}
			err := n.snapshotRound(ctx, pt, m)
			if reply != nil {
				reply <- err
			}
			if err != nil && ctx.Err() == nil {
				n.log.Error("snapshot round", zap.Int("partition", pt.n), zap.Error(err))
				if errors.Is(err, ErrStale) {
					n.drop(pt, false)
					return
				}
			}
		}
	}()
	defer func() { <-snapDone }()

	for ctx.Err() == nil {
		pt.mu.Lock()
		from := pt.handed + 1
		pt.mu.Unlock()
		if err := n.consume(ctx, pt, rev, from); err != nil && ctx.Err() == nil {
			n.log.Warn("partition consumer ended; recreating it", zap.Int("partition", pt.n), zap.Error(err))
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
}

// consume creates a consumer of the partition from position from and hands
// its messages to the batcher until ctx ends or the consumer fails.
func (n *Node) consume(ctx context.Context, pt *part, rev, from uint64) error {
	name := fmt.Sprintf("%s_p%d_%d_%s", n.cfg.Node, pt.n, rev, nuid.Next()) // new each time: a Raft group of its own
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	cons, err := n.c.stream.CreateOrUpdateConsumer(cctx, jetstream.ConsumerConfig{
		Name:          name,
		FilterSubject: Subject(pt.n),
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   from,
		AckPolicy:     jetstream.AckExplicitPolicy,
		// A message is acknowledged after its commit, a second or so; a
		// redelivery would only be skipped (see batcher.Apply).
		AckWait:       5 * time.Minute,
		MaxDeliver:    -1,
		MaxAckPending: 50_000,
		// A consumer of a node that died goes away by itself.
		InactiveThreshold: 2*n.cfg.LeaseTTL + time.Minute,
	})
	cancel()
	if err != nil {
		return fmt.Errorf("create consumer: %w", err)
	}
	pt.mu.Lock()
	pt.consumer = cons
	pt.mu.Unlock()
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		_ = n.c.stream.DeleteConsumer(dctx, name)
		cancel()
	}()
	// Short pulls with 1 s heartbeats, and a missing heartbeat is an error:
	// when a NATS server stops, the consumer may lose its leader for good
	// (seen with a consumer created a moment before), and pulls parked on
	// it are lost. After 2 s without a heartbeat the consumer is made
	// again from the next position, with a new name and a new Raft group.
	it, err := cons.Messages(jetstream.PullMaxMessages(1000), jetstream.PullExpiry(4*time.Second), jetstream.PullHeartbeat(time.Second),
		jetstream.WithMessagesErrOnMissingHeartbeat(true))
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	var delivered uint64 // the consumer sequence of the last delivery
	for {
		msg, err := it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return ctx.Err()
		}
		if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrNoHeartbeat) {
			return err
		}
		if err != nil {
			n.log.Debug("partition consumer", zap.Int("partition", pt.n), zap.Error(err))
			continue
		}
		md, err := msg.Metadata()
		if err != nil {
			continue
		}
		// Every delivery must be seen, in order: a pull answer lost on the
		// way (its server stopped) and a consumer leader that moved on
		// would otherwise skip messages, which come back only as
		// redeliveries, below the position already handed over, where
		// they would be taken for duplicates. The consumer numbers its
		// deliveries 1, 2, 3, …: on a gap, start again from the position
		// handed over.
		if md.Sequence.Consumer != delivered+1 {
			return fmt.Errorf("%w: delivery %d after %d", errDeliveryGap, md.Sequence.Consumer, delivered)
		}
		delivered = md.Sequence.Consumer
		pos := md.Sequence.Stream
		pt.mu.Lock()
		seen := pos <= pt.handed
		pt.mu.Unlock()
		if seen {
			// A redelivery of an insert handed over (its commit took
			// longer than AckWait): its first delivery is acknowledged
			// after the commit; this one needs nothing more.
			_ = msg.Ack()
			continue
		}
		if err := n.b.WaitRoom(ctx); err != nil {
			return err
		}
		tenant, err := n.b.Apply(msg.Data(), pos, func() { _ = msg.Ack() })
		if errors.Is(err, batcher.ErrClosed) {
			return err
		}
		if err != nil {
			n.log.Error("dropping an undecodable insert", zap.Int("partition", pt.n), zap.Uint64("position", pos), zap.Error(err))
			_ = msg.Term()
			tenant = ""
		}
		pt.hand(pos, tenant)
	}
}

// snapshotNow runs a snapshot round of partition p now, if this node
// writes it.
func (n *Node) snapshotNow(ctx context.Context, p int) error {
	reply := make(chan error, 1)
	select {
	case n.parts[p].snapNow <- reply:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Owned lists the partitions this node writes.
func (n *Node) Owned() []int {
	var out []int
	for _, pt := range n.parts {
		if pt.isOwned() {
			out = append(out, pt.n)
		}
	}
	return out
}

// Health is the node's cluster state for /healthz.
type Health struct {
	Node       string `json:"node"`
	Connected  bool   `json:"connected"`
	Partitions []int  `json:"partitions"`
}

// Health says whether the node is connected and which partitions it
// writes.
func (n *Node) Health() Health {
	return Health{Node: n.cfg.Node, Connected: n.c.NC.IsConnected(), Partitions: n.Owned()}
}

// Status is the cluster as this node saw it at its last lease round, for
// the admin API.
type Status struct {
	Node       string       `json:"node"`
	Connected  bool         `json:"connected"`
	Server     string       `json:"nats_server"`
	Nodes      []NodeStatus `json:"nodes"`
	Partitions []string     `json:"partitions"` // the writer of each partition, "" for none
}

// NodeStatus is one live node.
type NodeStatus struct {
	Name       string `json:"name"`
	HTTP       string `json:"http"`
	Partitions []int  `json:"partitions"`
}

// Status returns the nodes and the writer of each partition.
func (n *Node) Status() Status {
	n.mu.Lock()
	defer n.mu.Unlock()
	st := Status{Node: n.cfg.Node, Connected: n.c.NC.IsConnected(), Server: n.c.NC.ConnectedUrlRedacted(), Partitions: make([]string, n.cfg.Partitions), Nodes: []NodeStatus{}}
	byNode := map[string][]int{}
	for p := range n.cfg.Partitions {
		st.Partitions[p] = n.owners[p]
		byNode[n.owners[p]] = append(byNode[n.owners[p]], p)
	}
	for _, name := range n.live {
		st.Nodes = append(st.Nodes, NodeStatus{Name: name, HTTP: n.addrs[name], Partitions: slices.Clip(byNode[name])})
	}
	return st
}

// writerOf returns the node that writes partition p and its HTTP address,
// as of the last lease round.
func (n *Node) writerOf(p int) (node, addr string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	node = n.owners[p]
	return node, n.addrs[node]
}

// Close gives back every partition (their buffers are committed first, so
// the next writers replay little), stops the node's goroutines and waits
// for them until ctx ends. Call it before closing the batcher.
func (n *Node) Close(ctx context.Context) error {
	if n.sub != nil {
		_ = n.sub.Unsubscribe()
	}
	n.cancel()
	for _, pt := range n.parts {
		n.drop(pt, true)
	}
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("stop cluster node: %w", ctx.Err())
	}
	ictx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_ = n.c.nodes.Delete(ictx, n.cfg.Node)
	return nil
}

var _ batcher.Log = (*Node)(nil)
