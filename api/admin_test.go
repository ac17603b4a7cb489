package api

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"duckgate/admin"
)

func decodeBody[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return v
}

func wantStatus(t *testing.T, r response, status int, what string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: status %d, want %d: %s", what, r.status, status, r.body)
	}
}

func TestAdminTenantLifecycle(t *testing.T) {
	e := newAdminEnv(t, adminEnvConfig{})
	r := e.admin("POST", "/api/admin/tenants", `{"name":"acme","plan":"pro"}`)
	wantStatus(t, r, 201, "create")
	c := decodeBody[admin.CreateTenantResponse](t, r)
	if c.TenantID == "" || c.APIKey == "" || c.KeyID == "" {
		t.Fatalf("create: %s", r.body)
	}
	wantStatus(t, e.insert(c.APIKey, "orders", `[{"id":1},{"id":2},{"id":3}]`), 200, "insert")
	wantStatus(t, e.insert(c.APIKey, "events", `{"x":1}`), 200, "insert")

	r = e.admin("GET", "/api/admin/tenants", "")
	wantStatus(t, r, 200, "list")
	list := decodeBody[struct{ Tenants []admin.TenantInfo }](t, r)
	if len(list.Tenants) != 1 {
		t.Fatalf("list: %s", r.body)
	}
	ti := list.Tenants[0]
	if ti.ID != c.TenantID || ti.Plan != "pro" || ti.Status != "active" || ti.Tables != 2 || ti.Rows != 4 || ti.BytesOnDisk == 0 || ti.LastIngest == nil || ti.Created.IsZero() {
		t.Fatalf("list: %s", r.body)
	}
	r = e.admin("GET", "/api/admin/tenants/"+c.TenantID, "")
	wantStatus(t, r, 200, "get")
	d := decodeBody[admin.TenantDetail](t, r)
	if d.Rows != 4 || d.Limits.MemoryLimit != "1GB" {
		t.Fatalf("get: %s", r.body)
	}

	wantStatus(t, e.admin("POST", "/api/admin/tenants/"+c.TenantID+"/suspend", ""), 200, "suspend")
	wantStatus(t, e.insert(c.APIKey, "orders", `{"id":4}`), 403, "insert while suspended")
	wantStatus(t, e.do("GET", "/api/data/query?query=SELECT+1", nil, "X-API-KEY", c.APIKey), 403, "query while suspended")
	wantStatus(t, e.admin("POST", "/api/admin/tenants/"+c.TenantID+"/resume", ""), 200, "resume")
	wantStatus(t, e.insert(c.APIKey, "orders", `{"id":4}`), 200, "insert after resume")

	r = e.admin("PATCH", "/api/admin/tenants/"+c.TenantID, `{"plan":"free"}`)
	wantStatus(t, r, 200, "patch")
	if p := decodeBody[admin.PatchTenantResponse](t, r); p.Plan != "free" || !p.LimitsApplied {
		t.Fatalf("patch: %s", r.body)
	}
	r = e.do("GET", "/api/data/query?query="+strings.ReplaceAll("SELECT count(*) AS n FROM orders", " ", "+"), nil, "X-API-KEY", c.APIKey)
	wantStatus(t, r, 200, "query after patch")
	if !strings.Contains(string(r.body), `"n":4`) {
		t.Fatalf("after plan change: %s", r.body)
	}
	// The sandbox refuses current_setting to tenants: read the new limit
	// outside it.
	h, err := e.pool.Acquire(context.Background(), c.TenantID)
	if err != nil {
		t.Fatal(err)
	}
	var mem string
	err = h.DB.QueryRow("SELECT current_setting('memory_limit')").Scan(&mem)
	h.Release()
	if err != nil || !strings.Contains(mem, "MiB") {
		t.Fatalf("memory_limit after plan change: %q, %v", mem, err)
	}

	r = e.admin("POST", "/api/admin/tenants/"+c.TenantID+"/keys", `{"scope":"ingest"}`)
	wantStatus(t, r, 201, "create key")
	k := decodeBody[admin.CreateKeyResponse](t, r)
	wantStatus(t, e.insert(k.APIKey, "orders", `{"id":5}`), 200, "insert with ingest key")
	r = e.admin("GET", "/api/admin/tenants/"+c.TenantID+"/keys", "")
	wantStatus(t, r, 200, "list keys")
	if strings.Contains(string(r.body), "hash") || strings.Contains(string(r.body), k.APIKey) || strings.Contains(string(r.body), c.APIKey) {
		t.Fatalf("key list shows secrets: %s", r.body)
	}
	keys := decodeBody[struct{ Keys []admin.KeyInfo }](t, r)
	if len(keys.Keys) != 2 {
		t.Fatalf("keys: %s", r.body)
	}
	for _, ki := range keys.Keys {
		if ki.LastUsed == nil || ki.Created.IsZero() || (ki.ID == k.KeyID) != (ki.Scope == "ingest") || (ki.ID == c.KeyID) != (ki.Scope == "full") {
			t.Fatalf("keys: %s", r.body)
		}
	}
	wantStatus(t, e.admin("DELETE", "/api/admin/tenants/"+c.TenantID+"/keys/"+k.KeyID, ""), 200, "revoke")
	wantStatus(t, e.insert(k.APIKey, "orders", `{"id":6}`), 401, "revoked key")

	wantStatus(t, e.admin("DELETE", "/api/admin/tenants/"+c.TenantID, ""), 400, "delete without confirm")
	wantStatus(t, e.admin("DELETE", "/api/admin/tenants/"+c.TenantID+"?confirm=true", ""), 200, "delete")
	wantStatus(t, e.insert(c.APIKey, "orders", `{"id":7}`), 401, "deleted tenant's key")
	if e.pool.Exists(c.TenantID) {
		t.Fatal("database file remains after delete")
	}
	wantStatus(t, e.admin("GET", "/api/admin/tenants/"+c.TenantID, ""), 404, "get deleted")
}

// TestAdminRemovesInterruptedSnapshots: an operator query's private
// directory left by a crash is deleted when the server starts.
func TestAdminRemovesInterruptedSnapshots(t *testing.T) {
	dir := t.TempDir()
	left := filepath.Join(dir, "tenants", ".admin_0123456789abcdef")
	if err := os.MkdirAll(left, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(left, "t_0123456789abcdef.duckdb"), []byte("copy"), 0o600); err != nil {
		t.Fatal(err)
	}
	startAdminEnv(t, dir, adminEnvConfig{})
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Fatalf("the interrupted snapshot directory is still there: %v", err)
	}
}

// TestAdminTenantActivity: the tenant list shows each tenant's rows/s of
// the last hour and its quarantined rows; a tenant's tables answer lists
// the schema changes since the server started.
func TestAdminTenantActivity(t *testing.T) {
	hist := func(c *envConfig) { c.ingest.HistoryInterval = 5 * time.Millisecond } // a rate point every 60 ms
	e := newEnv(t, hist)
	id, key := e.tenant("acme")
	wantStatus(t, e.insert(key, "events", `{"n":1}`), 200, "insert")
	wantStatus(t, e.insert(key, "events", `{"n":1.5,"s":"x"}`), 200, "insert")
	type info struct {
		ID          string    `json:"tenant_id"`
		Rates       []float64 `json:"rows_per_s"`
		Quarantined int64     `json:"quarantined_rows"`
	}
	var got info
	for deadline := time.Now().Add(10 * time.Second); ; {
		var list struct {
			Tenants []info `json:"tenants"`
		}
		r := e.admin("GET", "/api/admin/tenants", "")
		wantStatus(t, r, 200, "list")
		if err := json.Unmarshal(r.body, &list); err != nil || len(list.Tenants) != 1 {
			t.Fatalf("list: %s %v", r.body, err)
		}
		got = list.Tenants[0]
		if len(got.Rates) > 0 || time.Now().After(deadline) {
			break
		}
		wantStatus(t, e.insert(key, "events", `{"n":2}`), 200, "insert")
	}
	if len(got.Rates) == 0 || got.Quarantined != 0 {
		t.Fatalf("tenant activity: %+v", got)
	}
	var tables struct {
		Changes []struct {
			Table string `json:"table"`
			SQL   string `json:"sql"`
		} `json:"schema_changes"`
	}
	r := e.admin("GET", "/api/admin/tenants/"+id+"/tables", "")
	wantStatus(t, r, 200, "tables")
	if err := json.Unmarshal(r.body, &tables); err != nil {
		t.Fatal(err)
	}
	if n := len(tables.Changes); n < 2 || !strings.HasPrefix(tables.Changes[n-1].SQL, "CREATE TABLE") || tables.Changes[0].Table != "events" {
		t.Fatalf("schema changes: %s", r.body)
	}

	// Rows a failing batch left in the quarantine table are counted.
	e.stop()
	db := e.openDB(id)
	if _, err := db.Exec(`CREATE TABLE _duckgate_quarantine (table_name VARCHAR, error VARCHAR, quarantined_at TIMESTAMPTZ, row JSON);
		INSERT INTO _duckgate_quarantine SELECT 'events', 'boom', now(), '{}' FROM range(3)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	e = e.restart(hist)
	r = e.admin("GET", "/api/admin/tenants/"+id, "")
	wantStatus(t, r, 200, "get")
	if err := json.Unmarshal(r.body, &got); err != nil || got.Quarantined != 3 {
		t.Fatalf("quarantined after restart: %s %v", r.body, err)
	}
}
