package tenantdb

import (
	"context"
	"strings"
	"testing"
)

// TestMemoryCapRefusesValuesBuiltOutsideMemoryLimit runs, on a database
// with a 256MB memory_limit, statements that build single values of 256 MB
// and more (which DuckDB allocates outside its memory_limit: through
// jemalloc for the string heap and through malloc for replace's buffer),
// under a 128 MiB cap: each fails with DuckDB's out-of-memory error, the
// refusals are counted, and the same database answers afterwards.
func TestMemoryCapRefusesValuesBuiltOutsideMemoryLimit(t *testing.T) {
	p := newPool(t, 4)
	p.cfg.LimitsOf = func(string) Limits { return Limits{MemoryLimit: "256MB", Threads: 2} }
	if err := SetMemoryCap(128 << 20); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = SetMemoryCap(0) })
	h, err := p.Acquire(context.Background(), "bomb")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	for _, q := range []string{
		// 25,600 characters each replaced by 10,000: one 256 MB value.
		"select length(replace(repeat('a', 25600), 'a', repeat('b', 10000)))",
		"select length(regexp_replace(repeat('a', 25600), 'a', repeat('b', 10000), 'g'))",
		// 10 MB values, 2,048 of them in each vector: 20 GB a vector.
		"select sum(length(replace(repeat('a', 1000) || i, 'a', repeat('b', 10000)))) from range(100000) t(i)",
	} {
		before := MemoryRefusals()
		var n int64
		err := h.DB.QueryRow(q).Scan(&n)
		if err == nil || !strings.Contains(err.Error(), "Out of Memory") {
			t.Errorf("%s: got %d, %v; want an out-of-memory error", q, n, err)
		}
		if MemoryRefusals() == before {
			t.Errorf("%s: no allocation was refused", q)
		}
		if used := MemoryUsed(); used > 128<<20 {
			t.Errorf("%s: %d bytes counted after the statement, over the 128 MiB cap", q, used)
		}
		var one int
		if err := h.DB.QueryRow("select 41 + 1").Scan(&one); err != nil || one != 42 {
			t.Fatalf("after %s: select 41 + 1 = %d, %v", q, one, err)
		}
	}
}

func TestDefaultMemoryCap(t *testing.T) {
	total := memTotal()
	if total <= 0 {
		t.Skip("no /proc/meminfo")
	}
	if c := DefaultMemoryCap(); c <= 0 || c > total/2 {
		t.Fatalf("DefaultMemoryCap() = %d, want in (0, %d]", c, total/2)
	}
}
