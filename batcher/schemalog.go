package batcher

import (
	"sync"
	"time"
)

// maxSchemaChanges is how many schema changes are kept per tenant.
const maxSchemaChanges = 50

// SchemaChange is a committed change of a tenant's table: a table created,
// a column added or widened.
type SchemaChange struct {
	At    time.Time `json:"at"`
	Table string    `json:"table"`
	// SQL is the DDL that made it.
	SQL string `json:"sql"`
}

// schemaLog keeps each tenant's latest schema changes since the process
// started, for the operator's dashboard; the database itself is the record
// of what the schema is.
type schemaLog struct {
	mu sync.Mutex
	m  map[string][]SchemaChange // by tenant, oldest first; guarded by mu
}

// note records the DDL of a committed flush.
func (l *schemaLog) note(tenant, table string, ddl []string, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = make(map[string][]SchemaChange)
	}
	cs := l.m[tenant]
	for _, q := range ddl {
		cs = append(cs, SchemaChange{At: at.UTC(), Table: table, SQL: q})
	}
	if n := len(cs) - maxSchemaChanges; n > 0 {
		cs = append(cs[:0:0], cs[n:]...)
	}
	l.m[tenant] = cs
}

// forget drops a tenant's changes.
func (l *schemaLog) forget(tenant string) {
	l.mu.Lock()
	delete(l.m, tenant)
	l.mu.Unlock()
}

// SchemaChanges returns the tenant's latest schema changes since the
// process started (at most 50), newest first.
func (b *Batcher) SchemaChanges(tenant string) []SchemaChange {
	b.schemaLog.mu.Lock()
	defer b.schemaLog.mu.Unlock()
	cs := b.schemaLog.m[tenant]
	out := make([]SchemaChange, len(cs))
	for i, c := range cs {
		out[len(cs)-1-i] = c
	}
	return out
}
