package tenant

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

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
	// Retention is the longest a row is kept, by its table's time column
	// ("7d", "168h"); 0 (omitted) keeps rows forever. A table may set its
	// own retention, at most this long.
	Retention Retention `json:"retention,omitempty"`
}

// Retention is how long rows are kept. In JSON it is a string: a number
// of days ("7d") or a Go duration ("36h", "90m").
type Retention time.Duration

// Bounds of a retention: shorter than a minute is a typo more likely than
// a wish; past a hundred years a Duration overflows soon.
const (
	MinRetention = time.Minute
	MaxRetention = 100 * 365 * 24 * time.Hour
)

// ErrBadRetention is a retention that is not a number of days or a
// duration, or is outside MinRetention..MaxRetention.
var ErrBadRetention = errors.New("bad retention")

// ParseRetention parses "7d" (whole days) or a Go duration ("72h",
// "90m") between MinRetention and MaxRetention.
func ParseRetention(s string) (time.Duration, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n < 0 || n > int64(MaxRetention/(24*time.Hour)) {
			return 0, fmt.Errorf("%w: %.40q is not a whole number of days (\"7d\") or a duration (\"72h\")", ErrBadRetention, s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%w: %.40q is not a whole number of days (\"7d\") or a duration (\"72h\")", ErrBadRetention, s)
		}
	}
	if d < MinRetention || d > MaxRetention {
		return 0, fmt.Errorf("%w: %.40q is outside %s to %dd", ErrBadRetention, s, MinRetention, MaxRetention/(24*time.Hour))
	}
	return d, nil
}

// FormatRetention writes d as ParseRetention reads it: whole days as
// "7d", anything else as a Go duration ("36h0m0s").
func FormatRetention(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}

// MarshalJSON writes r as FormatRetention does.
func (r Retention) MarshalJSON() ([]byte, error) {
	return []byte(strconv.Quote(FormatRetention(time.Duration(r)))), nil
}

// UnmarshalJSON reads r as ParseRetention does; "" and null are no retention.
func (r *Retention) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*r = 0
		return nil
	}
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return fmt.Errorf("%w: write it as a string, \"7d\" or \"72h\"", ErrBadRetention)
	}
	if s == "" {
		*r = 0
		return nil
	}
	d, err := ParseRetention(s)
	if err != nil {
		return err
	}
	*r = Retention(d)
	return nil
}

// DefaultPlan is the plan of a tenant created without one, the demo tenant
// included: no rate limit and no quota, so that the embedded default never
// throttles its own user.
const DefaultPlan = "default"

// DefaultPlans are the built-in plans: DefaultPlan, and free, pro and
// enterprise for operators who sell plans. Memory and threads follow the
// multi-tenant DuckDB design duckgate grew from, and so does the free
// plan's seven days of history; rates and quotas are ours.
func DefaultPlans() map[string]Plan {
	return map[string]Plan{
		DefaultPlan:  {MemoryLimit: "256MB", Threads: 2, RowsPerSecond: 0, StorageBytes: 0},
		"free":       {MemoryLimit: "256MB", Threads: 2, RowsPerSecond: 10_000, StorageBytes: 1 << 30, Retention: Retention(7 * 24 * time.Hour)},
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
