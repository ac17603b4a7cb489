package api

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"duckgate/admin"
	"duckgate/tenant"
)

func limitPlans() map[string]tenant.Plan {
	return map[string]tenant.Plan{
		"free":  {MemoryLimit: "128MB", Threads: 1, RowsPerSecond: 10},
		"small": {MemoryLimit: "128MB", Threads: 1, StorageBytes: 1},
		"big":   {MemoryLimit: "256MB", Threads: 1},
	}
}

func rowsJSON(n int) string {
	var b strings.Builder
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"i":%d}`, i)
	}
	return b.String() + "]"
}

func TestRateLimitPerPlan(t *testing.T) {
	e := newAdminEnv(t, adminEnvConfig{plans: limitPlans()})
	id, key := e.tenantOn("limited", "free") // plan free: 10 rows per second
	_, other := e.tenantOn("other", "free")
	// A batch beyond one second of rows passes when the bucket is full...
	wantStatus(t, e.insert(key, "ev", rowsJSON(25)), 200, "first batch")
	// ...and the next waits until the debt is paid.
	r := e.insert(key, "ev", rowsJSON(1))
	wantStatus(t, r, 429, "over the rate")
	ra, err := strconv.Atoi(r.header["Retry-After"])
	if err != nil || ra < 1 || ra > 2 {
		t.Fatalf("Retry-After = %q", r.header["Retry-After"])
	}
	if !strings.Contains(string(r.body), "10 rows per second") || !strings.Contains(string(r.body), `\"free\"`) {
		t.Fatalf("429 body: %s", r.body)
	}
	// Buckets are per tenant.
	wantStatus(t, e.insert(other, "ev", rowsJSON(5)), 200, "other tenant")
	// A plan without a rate has no limit.
	wantStatus(t, e.admin("PATCH", "/api/admin/tenants/"+id, `{"plan":"big"}`), 200, "patch")
	for range 5 {
		wantStatus(t, e.insert(key, "ev", rowsJSON(100)), 200, "unlimited plan")
	}
}

func TestStorageQuota(t *testing.T) {
	e := newAdminEnv(t, adminEnvConfig{plans: limitPlans()})
	r := e.admin("POST", "/api/admin/tenants", `{"name":"q","plan":"small"}`)
	wantStatus(t, r, 201, "create")
	c := decodeBody[admin.CreateTenantResponse](t, r)
	wantStatus(t, e.insert(c.APIKey, "ev", rowsJSON(3)), 200, "below quota")
	// The size is measured again once QuotaCheckInterval (1 ms) has passed.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if r = e.insert(c.APIKey, "ev", rowsJSON(1)); r.status != 200 || time.Now().After(deadline) {
			break
		}
	}
	wantStatus(t, r, 403, "over quota")
	if !strings.Contains(string(r.body), "storage quota of 1 bytes reached") {
		t.Fatalf("quota body: %s", r.body)
	}
	// Reads go on; a larger plan lifts the quota.
	wantStatus(t, e.get(c.APIKey, sqlURI(`SELECT count(*) FROM ev`)), 200, "query over quota")
	wantStatus(t, e.admin("PATCH", "/api/admin/tenants/"+c.TenantID, `{"plan":"big"}`), 200, "patch")
	wantStatus(t, e.insert(c.APIKey, "ev", rowsJSON(1)), 200, "after upgrade")
}

func TestAdminQueryAcrossTenants(t *testing.T) {
	e := newAdminEnv(t, adminEnvConfig{})
	aID, aKey := e.tenant("a")
	bID, bKey := e.tenant("b")
	cID, _ := e.tenant("c") // never ingested
	wantStatus(t, e.insert(aKey, "orders", `[{"amount":1.5},{"amount":2.5}]`), 200, "a")
	wantStatus(t, e.insert(bKey, "orders", `[{"amount":10}]`), 200, "b")
	// Not yet flushed (no wait): the admin query flushes first.
	wantStatus(t, e.do("POST", "/api/data/insert/orders", []byte(`{"amount":100}`), "X-API-KEY", bKey), 200, "b, no wait")

	q := fmt.Sprintf(`SELECT '%[1]s' AS t, count(*) AS n, sum(amount) AS s FROM %[1]s.orders UNION ALL SELECT '%[2]s', count(*), sum(amount) FROM %[2]s.orders ORDER BY t`, aID, bID)
	r := e.admin("POST", "/api/admin/query", fmt.Sprintf(`{"query":%q,"tenants":[%q,%q]}`, q, aID, bID))
	wantStatus(t, r, 200, "admin query")
	want := map[string]string{aID: `"n":2,"s":4`, bID: `"n":2,"s":110`}
	for id, w := range want {
		if !strings.Contains(string(r.body), `"t":"`+id+`","`+w[1:]) {
			t.Fatalf("admin query: %s; want %s %s", r.body, id, w)
		}
	}
	// All tenants when omitted, including one without data; CSV.
	r = e.admin("POST", "/api/admin/query", fmt.Sprintf(`{"query":"SELECT count(*) AS n FROM duckdb_tables() WHERE database_name IN ('%s','%s','%s')","format":"csv"}`, aID, bID, cID))
	wantStatus(t, r, 200, "admin query, all tenants")
	if string(r.body) != "n\r\n2\r\n" || !strings.HasPrefix(r.header["Content-Type"], "text/csv") {
		t.Fatalf("all tenants: %q %v", r.body, r.header)
	}
	// A tenant not listed is not attached; writes are refused.
	r = e.admin("POST", "/api/admin/query", fmt.Sprintf(`{"query":"SELECT * FROM %s.orders","tenants":[%q]}`, bID, aID))
	wantStatus(t, r, 400, "unlisted tenant")
	r = e.admin("POST", "/api/admin/query", fmt.Sprintf(`{"query":"DELETE FROM %s.orders","tenants":[%q]}`, aID, aID))
	wantStatus(t, r, 403, "write")
	// The live databases are untouched and still take rows.
	wantStatus(t, e.insert(aKey, "orders", `{"amount":1}`), 200, "a after admin queries")
	r = e.get(aKey, sqlURI(`SELECT count(*) AS n FROM orders`))
	if !strings.Contains(string(r.body), `"n":3`) {
		t.Fatalf("a after admin queries: %s", r.body)
	}
	// Snapshots are removed once the results are sent.
	deadline := time.Now().Add(5 * time.Second)
	for {
		left, _ := filepath.Glob(filepath.Join(e.dir, "tenants", ".admin_*"))
		scratch, _ := filepath.Glob(filepath.Join(e.dir, "tenants", "*.scratch", "admin_*"))
		if len(left)+len(scratch) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("snapshots left: %v %v", left, scratch)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if entries, _ := os.ReadDir(filepath.Join(e.dir, "tenants")); len(entries) == 0 {
		t.Fatal("tenant databases gone")
	}
}

// TestDefaultPlanNeverThrottles: a tenant created without a plan, like the
// demo tenant, takes 50,000 rows within a second without a 429.
func TestDefaultPlanNeverThrottles(t *testing.T) {
	e := newAdminEnv(t, adminEnvConfig{})
	r := e.admin("POST", "/api/admin/tenants", `{"name":"bench"}`)
	wantStatus(t, r, 201, "create")
	c := decodeBody[admin.CreateTenantResponse](t, r)
	if c.Plan != tenant.DefaultPlan {
		t.Fatalf("plan %q, want %q", c.Plan, tenant.DefaultPlan)
	}
	for i := range 5 {
		wantStatus(t, e.do("POST", "/api/data/insert/ev", []byte(rowsJSON(10_000)), "X-API-KEY", c.APIKey), 200, fmt.Sprintf("batch %d of 10,000 rows", i+1))
	}
}
