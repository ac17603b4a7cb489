package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"go.uber.org/zap"
)

// manifest is a partition's value in ManifestBucket: every insert of the
// partition at or below Seq is in the snapshot of its tenant, so a new
// writer restores the snapshots and reads the stream from Seq+1, and the
// stream is purged up to Seq.
type manifest struct {
	Seq       uint64            `json:"seq"`
	Snapshots map[string]string `json:"snapshots"` // tenant id → object name in SnapshotBucket
	Node      string            `json:"node"`
	At        time.Time         `json:"at"`
}

// manifestState is the manifest a writer holds and the revision it last
// wrote or read: its fencing token. Owned by the partition's goroutines.
type manifestState struct {
	manifest
	rev uint64
}

// restore takes over partition p's manifest (writing it again with
// compare-and-set, so that a stale writer's next manifest write fails)
// and replaces the database of every tenant in it with its snapshot.
func (n *Node) restore(ctx context.Context, p int) (*manifestState, error) {
	key := leaseKey(p)
	m := &manifestState{manifest: manifest{Snapshots: map[string]string{}}}
	e, err := n.c.manifests.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		m.Node, m.At = n.cfg.Node, time.Now().UTC()
		raw, _ := json.Marshal(m.manifest)
		if m.rev, err = n.c.manifests.Create(ctx, key, raw); err != nil {
			return nil, fmt.Errorf("create manifest of partition %d: %w", p, err)
		}
		return m, nil
	case err != nil:
		return nil, fmt.Errorf("read manifest of partition %d: %w", p, err)
	}
	if err := json.Unmarshal(e.Value(), &m.manifest); err != nil {
		return nil, fmt.Errorf("manifest of partition %d: %w", p, err)
	}
	if m.Snapshots == nil {
		m.Snapshots = map[string]string{}
	}
	m.Node, m.At = n.cfg.Node, time.Now().UTC()
	raw, _ := json.Marshal(m.manifest)
	if m.rev, err = n.c.manifests.Update(ctx, key, raw, e.Revision()); err != nil {
		return nil, fmt.Errorf("take over manifest of partition %d: %w", p, err)
	}
	// Every tenant is restored, also one this node's registry does not
	// know (yet): dropping it would lose what its snapshot holds.
	for tenant, obj := range m.Snapshots {
		if err := n.restoreTenant(ctx, tenant, obj); err != nil {
			return nil, err
		}
	}
	n.log.Info("partition restored from snapshots", zap.Int("partition", p), zap.Uint64("position", m.Seq), zap.Int("tenants", len(m.Snapshots)))
	return m, nil
}

// restoreTenant replaces the tenant's database file with the snapshot obj.
func (n *Node) restoreTenant(ctx context.Context, tenant, obj string) error {
	if err := n.b.Forget(ctx, tenant); err != nil {
		return fmt.Errorf("restore tenant %s: %w", tenant, err)
	}
	if err := n.pool.Evict(tenant, 30*time.Second); err != nil {
		return fmt.Errorf("restore tenant %s: %w", tenant, err)
	}
	path := n.pool.Path(tenant)
	tmp := path + ".restore"
	if err := n.download(ctx, obj, tmp); err != nil {
		return fmt.Errorf("restore tenant %s: %w", tenant, err)
	}
	_ = os.Remove(path + ".wal")
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("restore tenant %s: %w", tenant, err)
	}
	n.b.Changed(tenant) // the file holds what other writers committed
	return nil
}

// download copies object obj into the file path, fsynced.
func (n *Node) download(ctx context.Context, obj, path string) error {
	r, err := n.c.snapshots.Get(ctx, obj)
	if err != nil {
		return fmt.Errorf("get snapshot %s: %w", obj, err)
	}
	defer r.Close()
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("download snapshot %s: %w", obj, err)
	}
	return nil
}

// snapshotRound stores a snapshot of every tenant of the partition that
// changed since the last round, writes the manifest (compare-and-set: a
// writer that lost the partition gets ErrStale) and purges the stream up
// to the position the snapshots now cover.
func (n *Node) snapshotRound(ctx context.Context, pt *part, m *manifestState) error {
	pt.mu.Lock()
	pos, dirty := pt.handed, pt.dirty
	pt.dirty = map[string]struct{}{}
	pt.mu.Unlock()
	if len(dirty) == 0 || pos <= m.Seq {
		return nil
	}
	putBack := func() {
		pt.mu.Lock()
		for t := range dirty {
			pt.dirty[t] = struct{}{}
		}
		pt.mu.Unlock()
	}
	next := manifest{Seq: pos, Snapshots: make(map[string]string, len(m.Snapshots)+len(dirty)), Node: n.cfg.Node, At: time.Now().UTC()}
	for t, o := range m.Snapshots {
		next.Snapshots[t] = o
	}
	var replaced, stored []string
	// abort undoes a round that failed before its manifest write: its
	// objects are referenced by nothing. (After a failed manifest write
	// they are kept: a write that timed out may have landed.)
	abort := func() {
		putBack()
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		for _, o := range stored {
			_ = n.c.snapshots.Delete(dctx, o)
		}
	}
	for t := range dirty {
		// Everything handed up to pos is in the tenant's buffer or
		// database: commit the buffer, then copy the database.
		if err := n.b.Commit(ctx, t); err != nil {
			abort()
			return fmt.Errorf("commit tenant %s before its snapshot: %w", t, err)
		}
		// A name of its own: a round retried at the same position must
		// not overwrite an object a new writer may be reading.
		obj := fmt.Sprintf("p%d/%s/%d-%s", pt.n, t, pos, nuid.Next())
		if err := n.snapshotTenant(ctx, t, obj, pos); err != nil {
			abort()
			return err
		}
		stored = append(stored, obj)
		if old, ok := next.Snapshots[t]; ok {
			replaced = append(replaced, old)
		}
		next.Snapshots[t] = obj
	}
	raw, _ := json.Marshal(next)
	rev, err := n.c.manifests.Update(ctx, leaseKey(pt.n), raw, m.rev)
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) || errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("%w: manifest of partition %d changed: %v", ErrStale, pt.n, err)
		}
		putBack()
		return fmt.Errorf("write manifest of partition %d: %w", pt.n, err)
	}
	m.manifest, m.rev = next, rev
	for _, o := range replaced {
		if err := n.c.snapshots.Delete(ctx, o); err != nil {
			n.log.Warn("delete replaced snapshot", zap.Error(err))
		}
	}
	if err := n.c.stream.Purge(ctx, jetstream.WithPurgeSubject(Subject(pt.n)), jetstream.WithPurgeSequence(pos+1)); err != nil {
		n.log.Warn("purge the stream up to the snapshots", zap.Int("partition", pt.n), zap.Error(err))
	}
	n.log.Info("partition snapshotted", zap.Int("partition", pt.n), zap.Uint64("position", pos), zap.Int("tenants", len(dirty)))
	return nil
}

// snapshotTenant copies the tenant's database, consistent as of one
// transaction, into a file of its scratch directory (tenantdb's Snapshot:
// the one place its sandbox may write; a crash's leftover is removed at
// start) and stores it as object obj.
func (n *Node) snapshotTenant(ctx context.Context, tenant, obj string, pos uint64) error {
	file, err := n.pool.Snapshot(ctx, tenant, "cluster-"+strconv.FormatUint(pos, 10)+".duckdb")
	if err != nil {
		return fmt.Errorf("snapshot tenant %s: %w", tenant, err)
	}
	defer os.Remove(file)
	defer os.Remove(file + ".wal")
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("snapshot tenant %s: %w", tenant, err)
	}
	defer f.Close()
	if _, err := n.c.snapshots.Put(ctx, jetstream.ObjectMeta{Name: obj, Metadata: map[string]string{"tenant": tenant, "seq": strconv.FormatUint(pos, 10)}}, f); err != nil {
		return fmt.Errorf("store snapshot of tenant %s: %w", tenant, err)
	}
	return nil
}
