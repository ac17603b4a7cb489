package cluster

import (
	"hash/fnv"
	"strconv"
)

// Partition returns the partition of a tenant among n: FNV-1a of the
// tenant id, modulo n. It is stable across processes, versions and
// machines, so every node routes a tenant's inserts to the same subject
// and the same writer. Changing the number of partitions of a running
// cluster moves tenants; it is fixed when the stream is created.
func Partition(tenantID string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(tenantID))
	return int(h.Sum32() % uint32(n))
}

// Subject is the stream subject of partition p.
func Subject(p int) string { return subjectPrefix + strconv.Itoa(p) }

// leaseKey is the lease bucket's key of partition p.
func leaseKey(p int) string { return "p" + strconv.Itoa(p) }
