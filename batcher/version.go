package batcher

import (
	"sync"
	"sync/atomic"
)

// versions are the tenants' data versions (DataVersion). A version is taken
// from one clock shared by all tenants, so a tenant never gets a version it
// had before, even across writers that stopped and started again.
type versions struct {
	clock atomic.Uint64
	mu    sync.RWMutex
	m     map[string]uint64 // by tenant; guarded by mu. Entries are never removed: see DataVersion
}

// bump gives the tenant a new version. The writer calls it after every
// transaction on the tenant's database, committed or not (a failed COMMIT
// may still have changed the data).
func (v *versions) bump(tenant string) {
	n := v.clock.Add(1)
	v.mu.Lock()
	if v.m == nil {
		v.m = make(map[string]uint64)
	}
	v.m[tenant] = n
	v.mu.Unlock()
}

// DataVersion is the tenant's data version: it changes after every
// transaction the batcher ran on the tenant's database, and never takes a
// value it had before in this process. 0 means no transaction since the
// process started. A result computed while the version was v is what the
// database answers as long as DataVersion still returns v (package query's
// result cache relies on it). An entry is never removed, since a tenant
// whose version went back to 0 could be served a result older than its
// last commit: it costs a few dozen bytes per tenant written to.
func (b *Batcher) DataVersion(tenant string) uint64 {
	b.versions.mu.RLock()
	defer b.versions.mu.RUnlock()
	return b.versions.m[tenant]
}

// Changed gives the tenant a new data version for a change to its database
// made outside the batcher (cluster mode puts a snapshot in place of its
// file), so that no answer cached before the change is served after it.
func (b *Batcher) Changed(tenant string) { b.versions.bump(tenant) }
