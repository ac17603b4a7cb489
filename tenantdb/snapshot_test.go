package tenantdb

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestSnapshotIsAConsistentCopy(t *testing.T) {
	p := newPool(t, 4)
	if p.Exists("t1") {
		t.Fatal("Exists before first use")
	}
	h, err := p.Acquire("t1")
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
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if n := int64(p.OpenCount()); n > peak.Load() {
				peak.Store(n)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 3 {
				h, err := p.Acquire(fmt.Sprintf("t%d", (i+j)%12))
				if err != nil {
					t.Error(err)
					return
				}
				time.Sleep(5 * time.Millisecond) // all held at once
				h.Release()
			}
		}()
	}
	wg.Wait()
	close(stop)
	sampler.Wait()
	if peak.Load() > maxOpen {
		t.Fatalf("peak open = %d, want <= %d", peak.Load(), maxOpen)
	}
}
