package tenant

import (
	"fmt"
	"os"
	"runtime"
	"sort"

	json "github.com/goccy/go-json"
)

// Plan is what a tenant may use.
type Plan struct {
	// MemoryLimit is the tenant database's DuckDB memory_limit, e.g. "256MB".
	MemoryLimit string `json:"memory_limit"`
	// Threads is the tenant database's DuckDB threads, capped by the
	// machine's cores when the database opens.
	Threads int `json:"threads"`
	// RowsPerSecond is the sustained ingest rate; 0 means unlimited.
	RowsPerSecond int `json:"rows_per_second"`
	// StorageBytes is the quota on the tenant's database file; 0 means unlimited.
	StorageBytes int64 `json:"storage_bytes"`
}

// DefaultPlan is the plan of a tenant created without one, the demo tenant
// included: no rate limit and no quota, so that the embedded default never
// throttles its own user.
const DefaultPlan = "default"

// DefaultPlans are the built-in plans: DefaultPlan, and free, pro and
// enterprise for operators who sell plans. Memory and threads follow the
// multi-tenant DuckDB design duckgate grew from; rates and quotas are ours.
func DefaultPlans() map[string]Plan {
	return map[string]Plan{
		DefaultPlan:  {MemoryLimit: "256MB", Threads: 2, RowsPerSecond: 0, StorageBytes: 0},
		"free":       {MemoryLimit: "256MB", Threads: 2, RowsPerSecond: 10_000, StorageBytes: 1 << 30},
		"pro":        {MemoryLimit: "1GB", Threads: 4, RowsPerSecond: 100_000, StorageBytes: 50 << 30},
		"enterprise": {MemoryLimit: "4GB", Threads: 8, RowsPerSecond: 0, StorageBytes: 0},
	}
}

// LoadPlans reads plans from a JSON file ({"free":{"memory_limit":"256MB",...},...}).
func LoadPlans(path string) (map[string]Plan, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read plans: %w", err)
	}
	var plans map[string]Plan
	if err := json.Unmarshal(b, &plans); err != nil {
		return nil, fmt.Errorf("parse plans %s: %w", path, err)
	}
	if len(plans) == 0 {
		return nil, fmt.Errorf("plans %s: no plan defined", path)
	}
	return plans, nil
}

// PlanNames lists the plan names, sorted.
func (s *Store) PlanNames() []string {
	names := make([]string, 0, len(s.cfg.Plans))
	for n := range s.cfg.Plans {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// PlanOf returns the plan of a tenant, with threads capped by the machine's
// cores. An unknown tenant or plan gets the zero Plan (DuckDB defaults).
func (s *Store) PlanOf(tenantID string) Plan {
	s.mu.RLock()
	t, ok := s.tenants[tenantID]
	var p Plan
	if ok {
		p = s.cfg.Plans[t.Plan]
	}
	s.mu.RUnlock()
	if n := runtime.NumCPU(); p.Threads > n {
		p.Threads = n
	}
	return p
}

// Plan returns the plan of that name. The plans are fixed when the Store
// opens, so this takes no lock: the ingest hot path calls it per request.
func (s *Store) Plan(name string) (Plan, bool) {
	p, ok := s.cfg.Plans[name]
	return p, ok
}
