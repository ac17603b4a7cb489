package tenantdb

import (
	"context"
	"testing"
)

// Used counts free blocks inside the file as gone until the file grows.
func TestUsedSubtractsNotedFreeBlocks(t *testing.T) {
	p := newPool(t, 4)
	execTenant(t, p, "t1", "CREATE TABLE ev AS SELECT range AS a, md5(range::VARCHAR) AS s FROM range(200000)", "CHECKPOINT",
		"DELETE FROM ev WHERE a < 100000", "CHECKPOINT")
	h, err := p.Acquire(context.Background(), "t1")
	if err != nil {
		t.Fatal(err)
	}
	var blockSize, free int64
	if err := h.DB.QueryRow("SELECT block_size, free_blocks FROM pragma_database_size()").Scan(&blockSize, &free); err != nil {
		t.Fatal(err)
	}
	h.Release()
	if free == 0 {
		t.Fatal("no free blocks after deleting half the rows: nothing to test")
	}
	size, _ := p.Size("t1")
	if used, err := p.Used("t1"); err != nil || used != size {
		t.Fatalf("Used before a note = %d, %v; want Size %d", used, err, size)
	}
	p.NoteFree("t1", free*blockSize)
	if used, err := p.Used("t1"); err != nil || used != size-free*blockSize {
		t.Fatalf("Used = %d, %v; want %d - %d", used, err, size, free*blockSize)
	}
	// Data that outgrows the free blocks lengthens the file: Size again.
	execTenant(t, p, "t1", "INSERT INTO ev SELECT range, md5((range + 1000000)::VARCHAR) FROM range(400000)", "CHECKPOINT")
	size, _ = p.Size("t1")
	if used, err := p.Used("t1"); err != nil || used != size {
		t.Fatalf("Used after the file grew = %d, %v; want Size %d", used, err, size)
	}
	if used, err := p.Used("never"); err != nil || used != 0 {
		t.Fatalf("Used(never) = %d, %v", used, err)
	}
}
