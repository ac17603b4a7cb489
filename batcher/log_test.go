package batcher

import (
	"context"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"duckgate/tenantdb"
)

// sliceLog is a Log held in memory: the records in order, position = index
// + 1. It stands for the cluster's stream in tests of the batcher's side.
type sliceLog struct {
	mu   sync.Mutex
	recs [][]byte
}

func (l *sliceLog) Append(_ context.Context, _, _ string, rec []byte) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, append([]byte(nil), rec...))
	return uint64(len(l.recs)), nil
}
func (l *sliceLog) Committed(context.Context, string, uint64) error { return nil }
func (l *sliceLog) CaughtUp(context.Context, string) error          { return nil }

func (l *sliceLog) record(pos uint64) []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.recs[pos-1]
}

// openLogBatcher opens a batcher with log over dir's tenant databases.
func openLogBatcher(t *testing.T, dir string, log Log) (*Batcher, *tenantdb.Pool) {
	t.Helper()
	pool, err := tenantdb.New(tenantdb.Config{Dir: filepath.Join(dir, "tenants")}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{FlushInterval: time.Hour, Log: log}, pool, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	return b, pool
}

func closeLogBatcher(t *testing.T, b *Batcher, pool *tenantdb.Pool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pool.Close(); err != nil {
		t.Fatal(err)
	}
}

// A writer that reads the log again from an earlier position (a
// redelivery, a stale writer, a new owner replaying from before what the
// database holds) commits every insert exactly once: the position each
// table recorded in the same transaction as its rows fences the rest, and
// every applied insert is acknowledged (done called) all the same.
func TestApplyFencesByRecordedPosition(t *testing.T) {
	dir := t.TempDir()
	log := &sliceLog{}
	b, pool := openLogBatcher(t, dir, log)
	for i := 1; i <= 7; i++ {
		if _, err := b.Submit(Request{Tenant: "t1", Table: "events", Rows: numbers("id", strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if pool.OpenCount() != 0 {
		t.Fatal("Submit with a Log touched a database: it must only append to the log")
	}
	var acked atomic.Int64
	done := func() { acked.Add(1) }
	apply := func(b *Batcher, from, to uint64) {
		t.Helper()
		for pos := from; pos <= to; pos++ {
			if tenant, err := b.Apply(log.record(pos), pos, done); err != nil || tenant != "t1" {
				t.Fatalf("Apply(%d) = %q, %v", pos, tenant, err)
			}
		}
	}
	apply(b, 1, 5)
	if err := b.Flush(context.Background(), "t1"); err != nil {
		t.Fatal(err)
	}
	if acked.Load() != 5 {
		t.Fatalf("%d inserts acknowledged after their commit, want 5", acked.Load())
	}
	// The same writer gets 4 and 5 again (redelivered): skipped.
	apply(b, 4, 5)
	closeLogBatcher(t, b, pool)
	if acked.Load() != 7 {
		t.Fatalf("%d inserts acknowledged, want 7 (redeliveries too)", acked.Load())
	}

	// A second writer on the same files (the node got the tenant back)
	// reads from position 2: only 6 and 7 are new.
	b2, pool2 := openLogBatcher(t, dir, log)
	apply(b2, 2, 7)
	closeLogBatcher(t, b2, pool2)
	if acked.Load() != 13 {
		t.Fatalf("%d inserts acknowledged, want 13", acked.Load())
	}

	db := openFile(t, filepath.Join(dir, "tenants", "t1.duckdb"))
	if got := column(t, db, "SELECT id FROM events ORDER BY id"); got != "1 2 3 4 5 6 7" {
		t.Fatalf("stored ids %q; want each of 1..7 once", got)
	}
	if got := column(t, db, "SELECT seq FROM "+appliedTable+" WHERE tbl = 'events'"); got != "7" {
		t.Fatalf("applied position %q; want 7", got)
	}
}

// Apply without a Log is refused.
func TestApplyNeedsLog(t *testing.T) {
	tb := newTestBatcher(t)
	if _, err := tb.b.Apply(nil, 1, func() {}); err != ErrNotLogged {
		t.Fatalf("Apply without a Log = %v; want ErrNotLogged", err)
	}
}

// With a Log, the node receiving inserts buffers nothing, so Full never
// refuses; the writer's consumer waits for room (WaitRoom) while applied
// rows fill the buffers, and goes on once they are committed.
func TestWaitRoomWithLog(t *testing.T) {
	dir := t.TempDir()
	log := &sliceLog{}
	pool, err := tenantdb.New(tenantdb.Config{Dir: filepath.Join(dir, "tenants")}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{FlushInterval: time.Hour, MaxBufferedBytes: 1, Log: log}, pool, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer closeLogBatcher(t, b, pool)
	if _, err := b.Submit(Request{Tenant: "t1", Table: "events", Rows: numbers("id", "1")}); err != nil {
		t.Fatal(err)
	}
	if err := b.Full(); err != nil {
		t.Fatalf("Full with a Log = %v; want nil", err)
	}
	if _, err := b.Apply(log.record(1), 1, func() {}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := b.WaitRoom(ctx); err == nil {
		t.Fatal("WaitRoom returned with the buffers over their cap")
	}
	if err := b.Flush(context.Background(), "t1"); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitRoom(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// In cluster mode an idempotency key committed once stops later inserts
// with the same key of the same tenant, in the same batch or a later one,
// beyond JetStream's duplicate window: the key is kept in the tenant's
// database, written in the same transaction as the rows.
func TestApplySkipsCommittedKeys(t *testing.T) {
	dir := t.TempDir()
	log := &sliceLog{}
	b, pool := openLogBatcher(t, dir, log)
	submit := func(tenant, id, key string) uint64 {
		t.Helper()
		if _, err := b.Submit(Request{Tenant: tenant, Table: "events", Rows: numbers("id", id), IdempotencyKey: key}); err != nil {
			t.Fatal(err)
		}
		return uint64(len(log.recs))
	}
	var acked atomic.Int64
	apply := func(pos uint64) {
		t.Helper()
		if _, err := b.Apply(log.record(pos), pos, func() { acked.Add(1) }); err != nil {
			t.Fatal(err)
		}
	}
	flush := func(tenant string) {
		t.Helper()
		if err := b.Flush(context.Background(), tenant); err != nil {
			t.Fatal(err)
		}
	}
	apply(submit("t1", "1", "k1"))
	apply(submit("t1", "2", "k1")) // a retry in the same batch
	apply(submit("t1", "3", ""))
	flush("t1")
	apply(submit("t1", "4", "k1")) // a retry after the commit
	apply(submit("t1", "5", "k2"))
	apply(submit("t2", "6", "k1")) // another tenant's key
	flush("t1")
	flush("t2")
	closeLogBatcher(t, b, pool)
	if acked.Load() != 6 {
		t.Fatalf("%d inserts acknowledged, want 6", acked.Load())
	}
	if got := column(t, openFile(t, filepath.Join(dir, "tenants", "t1.duckdb")), "SELECT id FROM events ORDER BY id"); got != "1 3 5" {
		t.Fatalf("tenant t1 stored %q; want 1 3 5", got)
	}
	if got := column(t, openFile(t, filepath.Join(dir, "tenants", "t2.duckdb")), "SELECT id FROM events ORDER BY id"); got != "6" {
		t.Fatalf("tenant t2 stored %q; want 6", got)
	}
}
