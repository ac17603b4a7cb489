package tenantdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"
)

func TestSnapshotIsAConsistentCopy(t *testing.T) {
	p := newPool(t, 4)
	if p.Exists("t1") {
		t.Fatal("Exists before first use")
	}
	h, err := p.Acquire(context.Background(), "t1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.DB.Exec(`CREATE TABLE ev(a BIGINT, j JSON); INSERT INTO ev SELECT range, '{"x":1}' FROM range(1000)`); err != nil {
		t.Fatal(err)
	}
	h.Release()
	path, err := p.Snapshot(context.Background(), "t1", "snap.duckdb")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Snapshot(context.Background(), "t1", "../x.duckdb"); err == nil {
		t.Fatal("snapshot outside the scratch directory allowed")
	}
	db, err := sql.Open("duckdb", path+"?access_mode=READ_ONLY")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n, sum int64
	if err := db.QueryRow(`SELECT count(*), sum(a) FROM ev`).Scan(&n, &sum); err != nil || n != 1000 || sum != 999*1000/2 {
		t.Fatalf("snapshot: n=%d sum=%d err=%v", n, sum, err)
	}
	if size, err := p.Size("t1"); err != nil || size == 0 {
		t.Fatalf("Size = %d, %v", size, err)
	}
	if size, err := p.Size("never"); err != nil || size != 0 {
		t.Fatalf("Size(never) = %d, %v", size, err)
	}
}

func TestAcquireNeverExceedsMaxOpen(t *testing.T) {
	const maxOpen = 3
	p := newPool(t, maxOpen)
	var peak atomic.Int64
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 3 {
				h, err := p.Acquire(context.Background(), fmt.Sprintf("t%d", (i+j)%12))
				if err != nil {
					t.Error(err)
					return
				}
				// The count only grows in Acquire: look at it while held.
				if n := int64(p.OpenCount()); n > peak.Load() {
					peak.Store(n)
				}
				runtime.Gosched() // let the others reach Acquire while it is held
				h.Release()
			}
		}()
	}
	wg.Wait()
	if peak.Load() > maxOpen {
		t.Fatalf("peak open = %d, want <= %d", peak.Load(), maxOpen)
	}
}

// A crash between Snapshot and the caller moving the copy away leaves it in
// the scratch directory: the next pool deletes it, and nothing else there.
func TestSnapshotLeftoversRemovedAtStart(t *testing.T) {
	dir := t.TempDir()
	p, err := New(Config{Dir: dir}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	h, err := p.Acquire(context.Background(), "t1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.DB.Exec(`CREATE TABLE ev AS SELECT range AS a FROM range(10)`); err != nil {
		t.Fatal(err)
	}
	h.Release()
	left, err := p.Snapshot(context.Background(), "t1", "q1.duckdb")
	if err != nil {
		t.Fatal(err)
	}
	export := filepath.Join(p.ScratchDir("t1"), "export.parquet")
	if err := os.WriteFile(export, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p, err = New(Config{Dir: dir}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := os.Stat(left); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("snapshot copy %s left after restart: %v", left, err)
	}
	if _, err := os.Stat(export); err != nil {
		t.Fatalf("other scratch file removed: %v", err)
	}
	if !p.Exists("t1") {
		t.Fatal("the database itself is gone")
	}
}
