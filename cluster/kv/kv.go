package kv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Bucket names, one per kind of shared state.
const (
	TenantsBucket  = "duckgate_tenants"
	SharesBucket   = "duckgate_shares"
	WebhooksBucket = "duckgate_webhooks"
)

// Defaults of Config.
const (
	// DefaultTimeout bounds one request to JetStream: a KV get or put is a
	// round trip of a millisecond on a LAN, a leader election a few seconds.
	DefaultTimeout = 5 * time.Second
	// maxBackoff is the longest pause before a compare-and-set is tried
	// again. Each failed attempt means another change of the same record
	// landed first, so some change makes progress on every round; the
	// random pause spreads the writers out. Retries stop at Config.Timeout.
	maxBackoff = 20 * time.Millisecond
	// maxValueSize is the largest record: a tenant with a thousand keys is
	// about 200 KiB. NATS's default max_payload is 1 MiB as well.
	maxValueSize = 1 << 20
)

// Config configures Open.
type Config struct {
	// Replicas is the number of NATS servers holding each bucket: 3 when the
	// cluster has at least three, so that losing one loses nothing. Default
	// 1. It applies when a bucket is created; an existing bucket keeps its
	// own (change it with `nats kv edit`).
	Replicas int
	// Timeout bounds each request to JetStream, and the wait for a change to
	// come back through this node's watcher. Default DefaultTimeout.
	Timeout time.Duration
	// Log gets the records skipped as malformed. Nil logs nothing.
	Log *zap.Logger
}

// Stores are the three buckets of a cluster's shared state. Pass them as
// tenant.Config.Shared, share.Config.Shared and webhook.StoreConfig.Shared.
type Stores struct {
	Tenants  *Bucket
	Shares   *Bucket
	Webhooks *Bucket
}

// Open creates (or opens) the three buckets on js. Close the Stores after
// the packages using them are closed.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Stores, error) {
	var s Stores
	var err error
	if s.Tenants, err = OpenBucket(ctx, js, TenantsBucket, cfg); err != nil {
		return nil, err
	}
	if s.Shares, err = OpenBucket(ctx, js, SharesBucket, cfg); err != nil {
		return nil, err
	}
	if s.Webhooks, err = OpenBucket(ctx, js, WebhooksBucket, cfg); err != nil {
		return nil, err
	}
	return &s, nil
}

// Close stops the watchers of the three buckets.
func (s *Stores) Close() error {
	return errors.Join(s.Tenants.Close(), s.Shares.Close(), s.Webhooks.Close())
}

// Bucket is one JetStream key-value bucket of records, watched by one
// goroutine that applies every change to its owner's memory. It is safe
// for concurrent use.
type Bucket struct {
	js      jetstream.JetStream
	kv      jetstream.KeyValue
	name    string
	timeout time.Duration
	log     *zap.Logger

	mu      sync.Mutex
	watcher jetstream.ConsumeContext // set by Watch once loaded; guarded by mu
	revs    map[string]uint64        // the revision of each key the watcher applied; guarded by mu
	changed chan struct{}            // closed and replaced when the watcher applies an entry; guarded by mu
	done    chan struct{}            // closed when the watcher's goroutine returns; nil before Watch; set under mu
}

// OpenBucket creates the bucket name, with cfg's replicas, or opens it if
// it exists already (with whatever configuration it has).
func OpenBucket(ctx context.Context, js jetstream.JetStream, name string, cfg Config) (*Bucket, error) {
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:       name,
		Description:  "duckgate shared state (cluster/kv)",
		History:      1,
		Replicas:     cfg.Replicas,
		Storage:      jetstream.FileStorage,
		MaxValueSize: maxValueSize,
	})
	if errors.Is(err, jetstream.ErrBucketExists) {
		// Made by another node with another configuration: use it as it is.
		kv, err = js.KeyValue(ctx, name)
	}
	if err != nil {
		return nil, fmt.Errorf("kv: open bucket %s (%d replicas): %w", name, cfg.Replicas, err)
	}
	return &Bucket{js: js, kv: kv, name: name, timeout: cfg.Timeout, log: cfg.Log.With(zap.String("bucket", name)),
		revs: map[string]uint64{}, changed: make(chan struct{})}, nil
}

// Watch calls apply with every record of the bucket (value nil for a
// deleted one), then returns; from then on it calls apply with every change
// from any node, in the order they were stored, from one goroutine, until
// Close. An error from apply means the value was malformed: it is logged
// and the record skipped. Watch may be called once.
//
// The watcher is an ordered pull consumer with a heartbeat of
// watchHeartbeat: when the NATS server holding it is lost, it is made
// again on another within a few heartbeats and resumes after the last
// change it applied (kv.WatchAll's push consumer takes about 20 s there).
func (b *Bucket) Watch(apply func(key string, value []byte) error) error {
	b.mu.Lock()
	if b.done != nil {
		b.mu.Unlock()
		return fmt.Errorf("kv: bucket %s is watched already", b.name)
	}
	b.done = make(chan struct{})
	b.mu.Unlock()
	// A bucket just made on a cluster that is still electing its leaders
	// takes no consumer for a while: try again until watchStart.
	var w *watching
	var err error
	for deadline := time.Now().Add(watchStart); ; time.Sleep(200 * time.Millisecond) {
		if w, err = b.watch(apply); err == nil || time.Now().After(deadline) {
			break
		}
		b.log.Info("the shared state's watcher could not start yet; trying again", zap.String("bucket", b.name), zap.Error(err))
	}
	if err != nil {
		close(b.done)
		return fmt.Errorf("kv: watch bucket %s: %w", b.name, err)
	}
	go func() {
		<-w.cc.Closed()
		close(b.done)
	}()
	select {
	case <-w.ready:
		b.mu.Lock()
		b.watcher = w.cc
		b.mu.Unlock()
		return nil
	case <-time.After(b.timeout):
		w.cc.Stop()
		return fmt.Errorf("kv: bucket %s: the records did not load within %s", b.name, b.timeout)
	}
}

// watchStart bounds the attempts to start a watcher: a cluster's leader
// elections take seconds, more on a loaded machine.
const watchStart = 30 * time.Second

// watchHeartbeat is how often the server tells the watcher it is there;
// two missed heartbeats make the watcher start again elsewhere.
const watchHeartbeat = time.Second

// watching is a started watcher.
type watching struct {
	cc    jetstream.ConsumeContext
	ready chan struct{} // closed once the records stored at the start are applied
}

func (b *Bucket) watch(apply func(string, []byte) error) (*watching, error) {
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	defer cancel()
	prefix := "$KV." + b.name + "."
	cons, err := b.js.OrderedConsumer(ctx, "KV_"+b.name, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{prefix + ">"},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return nil, err
	}
	w := &watching{ready: make(chan struct{})}
	var once sync.Once
	loaded := func() { once.Do(func() { close(w.ready) }) }
	handle := func(m jetstream.Msg) {
		md, err := m.Metadata()
		if err != nil {
			b.log.Warn("skipped a message without metadata", zap.Error(err))
			return
		}
		key := strings.TrimPrefix(m.Subject(), prefix)
		var value []byte
		if !isDelete(m.Headers()) {
			value = m.Data()
			if value == nil {
				value = []byte{} // a put of nothing is not a delete
			}
		}
		if err := apply(key, value); err != nil {
			b.log.Warn("skipped a malformed record of the shared state", zap.String("key", key),
				zap.Uint64("revision", md.Sequence.Stream), zap.Error(err))
		}
		b.mu.Lock()
		b.revs[key] = md.Sequence.Stream
		close(b.changed)
		b.changed = make(chan struct{})
		b.mu.Unlock()
		if md.NumPending == 0 {
			loaded()
		}
	}
	w.cc, err = cons.Consume(handle, jetstream.PullHeartbeat(watchHeartbeat),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			b.log.Debug("shared state watcher", zap.Error(err)) // it starts again by itself
		}))
	if err != nil {
		return nil, err
	}
	if info := cons.CachedInfo(); info != nil && info.NumPending == 0 {
		loaded() // an empty bucket: no message will say the load is over
	}
	return w, nil
}

// isDelete reports whether a bucket's message deletes its key: a delete or
// purge marker, or a marker the server left.
func isDelete(h nats.Header) bool {
	if h == nil {
		return false
	}
	switch h.Get("KV-Operation") {
	case "DEL", "PURGE":
		return true
	}
	switch h.Get(jetstream.MarkerReasonHeader) {
	case "MaxAge", "Purge", "Remove":
		return true
	}
	return false
}

// errConflict means the record changed between the read and the write of a
// Modify attempt.
var errConflict = errors.New("record changed meanwhile")

// Modify changes the record key: f gets its stored value (nil if there is
// none) and returns the new one (nil deletes it; the stored value again
// writes nothing). The write is a compare-and-set on the record's revision:
// if another node changed the record meanwhile, f is called again with the
// new value, so no change is lost; f must therefore be a function of old
// alone. f's error is returned as is, and nothing is written. Once the write
// is stored, Modify waits for this node's watcher to apply it, so the
// change is in its owner's memory when Modify returns.
func (b *Bucket) Modify(key string, f func(old []byte) ([]byte, error)) error {
	deadline := time.Now().Add(b.timeout)
	for attempt := 1; ; attempt++ {
		rev, err := b.try(key, f)
		switch {
		case err == nil:
			return b.waitApplied(key, rev)
		case !errors.Is(err, errConflict):
			return err
		case time.Now().After(deadline):
			return fmt.Errorf("kv: %s/%s changed by others %d times in a row: %w", b.name, key, attempt, err)
		}
		pause := min(maxBackoff, time.Millisecond<<min(attempt, 10))
		time.Sleep(rand.N(pause))
	}
}

// try is one read-change-write of Modify. It returns the revision this
// node's watcher must reach for the key, 0 if nothing was written.
func (b *Bucket) try(key string, f func([]byte) ([]byte, error)) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	defer cancel()
	var old []byte
	var rev uint64
	e, err := b.kv.Get(ctx, key)
	switch {
	case err == nil:
		old, rev = e.Value(), e.Revision()
		if old == nil {
			old = []byte{}
		}
	case errors.Is(err, jetstream.ErrKeyNotFound):
	default:
		return 0, fmt.Errorf("kv: read %s/%s: %w", b.name, key, err)
	}
	nv, err := f(old)
	if err != nil {
		return 0, err
	}
	switch {
	case nv == nil && old == nil, nv != nil && old != nil && bytes.Equal(nv, old):
		return 0, nil
	case nv == nil:
		err = b.kv.Delete(ctx, key, jetstream.LastRevision(rev))
		if err == nil {
			return rev + 1, nil // the delete marker's revision is past rev
		}
	case old == nil:
		if rev, err = b.kv.Create(ctx, key, nv); err == nil {
			return rev, nil
		}
	default:
		if rev, err = b.kv.Update(ctx, key, nv, rev); err == nil {
			return rev, nil
		}
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return 0, errConflict
	}
	return 0, fmt.Errorf("kv: write %s/%s: %w", b.name, key, err)
}

// waitApplied waits until the watcher has applied revision rev of key, or
// a later one. Without a watcher it returns at once.
func (b *Bucket) waitApplied(key string, rev uint64) error {
	if rev == 0 {
		return nil
	}
	deadline := time.NewTimer(b.timeout)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		applied, ch, watching, done := b.revs[key], b.changed, b.watcher != nil, b.done
		b.mu.Unlock()
		if applied >= rev || !watching {
			return nil
		}
		select {
		case <-ch:
		case <-done:
			return fmt.Errorf("kv: %s/%s stored, but this node's watcher stopped before applying it", b.name, key)
		case <-deadline.C:
			return fmt.Errorf("kv: %s/%s stored, but this node's watcher has not applied it within %s", b.name, key, b.timeout)
		}
	}
}

// Close stops the watcher and waits for it. Modify still works
// afterwards, without waiting for a watcher.
func (b *Bucket) Close() error {
	b.mu.Lock()
	w, done := b.watcher, b.done
	b.watcher = nil
	b.mu.Unlock()
	if w == nil {
		return nil
	}
	w.Stop()
	select {
	case <-done:
		return nil
	case <-time.After(b.timeout):
		return fmt.Errorf("kv: bucket %s: the watcher did not stop within %s", b.name, b.timeout)
	}
}
