package tenantdb

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

func newPool(t *testing.T, maxOpen int) *Pool {
	t.Helper()
	p, err := New(Config{Dir: t.TempDir(), MaxOpen: maxOpen, LimitsOf: func(string) Limits {
		return Limits{MemoryLimit: "128MB", Threads: 1}
	}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func TestSandboxAndPersistence(t *testing.T) {
	p := newPool(t, 4)
	h, err := p.Acquire("t1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.DB.Exec(`CREATE TABLE ev(a BIGINT); INSERT INTO ev VALUES (42)`); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`SELECT * FROM read_csv('/etc/hostname')`,
		`SET enable_external_access=true`,
		`SET memory_limit='10GB'`,
		`ATTACH '/tmp/other.duckdb' AS o`,
		`INSTALL httpfs`,
		`COPY ev TO '/tmp/x.csv'`,
	} {
		if _, err := h.DB.Exec(q); err == nil {
			t.Errorf("%s: want error, got none", q)
		}
	}
	var tz, mem string
	var threads int
	if err := h.DB.QueryRow(`SELECT current_setting('TimeZone'), current_setting('memory_limit'), current_setting('threads')`).Scan(&tz, &mem, &threads); err != nil {
		t.Fatal(err)
	}
	if tz != "UTC" || threads != 1 || !strings.Contains(mem, "MiB") {
		t.Fatalf("settings: TimeZone=%q memory_limit=%q threads=%d", tz, mem, threads)
	}
	h.Release()
	if err := p.Evict("t1", time.Second); err != nil {
		t.Fatal(err)
	}
	if n := p.OpenCount(); n != 0 {
		t.Fatalf("open after evict = %d", n)
	}
	h, err = p.Acquire("t1")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	var a int64
	if err := h.DB.QueryRow(`SELECT a FROM ev`).Scan(&a); err != nil || a != 42 {
		t.Fatalf("after reopen: a=%d err=%v", a, err)
	}
}

func TestLRUKeepsOpenBounded(t *testing.T) {
	p := newPool(t, 3)
	held, err := p.Acquire("held")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		h, err := p.Acquire(fmt.Sprintf("t%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.DB.Exec(`CREATE TABLE x AS SELECT 1 AS v`); err != nil {
			t.Fatal(err)
		}
		h.Release()
		if n := p.OpenCount(); n > 3 {
			t.Fatalf("open = %d after %d tenants, want <= 3", n, i+1)
		}
	}
	// The held database was never closed under its user.
	if _, err := held.DB.Exec(`SELECT 1`); err != nil {
		t.Fatalf("held handle broken: %v", err)
	}
	held.Release()
}

func TestScratchDirIsTheOnlyWritablePlace(t *testing.T) {
	p := newPool(t, 4)
	h, err := p.Acquire("t1")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	dir := p.ScratchDir("t1")
	if _, err := h.DB.Exec(`COPY (SELECT 1 AS v) TO '` + dir + `/x.parquet' (FORMAT parquet)`); err != nil {
		t.Fatalf("copy into scratch: %v", err)
	}
	for _, q := range []string{
		`COPY (SELECT 1 AS v) TO '` + dir + `/../escape.parquet' (FORMAT parquet)`,
		`SELECT * FROM read_text('` + dir + `/../../../etc/hostname')`,
		`SET allowed_directories=['/']`,
	} {
		if _, err := h.DB.Exec(q); err == nil {
			t.Errorf("%s: want error", q)
		}
	}
}
