package cluster

import (
	"fmt"
	"testing"
)

// The mapping is pinned: a change would send a tenant's new inserts to
// another partition than its old ones, out of order and to another writer.
func TestPartitionStable(t *testing.T) {
	f := func(tenant string, n, want int) {
		t.Helper()
		if got := Partition(tenant, n); got != want {
			t.Fatalf("Partition(%q, %d) = %d; want %d", tenant, n, got, want)
		}
	}
	f("", 16, 5)
	f("t_0001", 16, 7)
	f("t_3f9c0a1b2c3d4e5f", 16, 1)
	f("demo", 16, 6)
	f("anything", 1, 0)
	f("anything", 0, 0)
}

// Tenants spread over the partitions: with 16 partitions and 16,000
// tenants each partition gets between half and twice its share.
func TestPartitionSpread(t *testing.T) {
	const n, tenants = 16, 16_000
	counts := make([]int, n)
	for i := range tenants {
		p := Partition(fmt.Sprintf("t_%016x", i*7919), n)
		if p < 0 || p >= n {
			t.Fatalf("partition %d out of range", p)
		}
		counts[p]++
	}
	for p, c := range counts {
		if c < tenants/n/2 || c > tenants/n*2 {
			t.Fatalf("partition %d has %d tenants of %d: %v", p, c, tenants, counts)
		}
	}
}
