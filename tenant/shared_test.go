package tenant

import (
	"strings"
	"testing"
)

// FuzzApplySharedRecord feeds hostile records to the shared registry's
// apply, as a watcher would deliver them: it must not panic; a record it
// refuses leaves the registry as it was, and one it takes puts the tenant
// and exactly its keys in the maps.
func FuzzApplySharedRecord(f *testing.F) {
	const id = "t_0123456789abcdef"
	hash := strings.Repeat("ab", 32)
	f.Add(id, []byte(`{"tenant_id":"`+id+`","name":"acme","plan":"default","status":"active","keys":[{"key_id":"k_1","tenant_id":"`+id+`","scope":"full","hash":"`+hash+`"}]}`))
	f.Add(id, []byte(`{"tenant_id":"`+id+`","name":"acme","plan":"x","status":"suspended","keys":[{"key_id":"k_1","tenant_id":"`+id+`","scope":"all","hash":"`+hash+`"}]}`))
	f.Add(id, []byte(`{"tenant_id":"`+id+`","name":"","status":"active","keys":[null]}`))
	f.Add("admin", []byte(`{"admin_hash":"`+hash+`"}`))
	f.Add("admin", []byte(`{"admin_hash":7}`))
	f.Add("t_x", []byte(`{}`))
	f.Add(id, []byte(nil))
	f.Add(id, []byte(`{"tenant_id":"`+id+`","name":"a","status":"active","keys":[{"key_id":"k_0","tenant_id":"`+id+`","scope":"full","hash":"`+hash+`"}]}`))
	f.Add(id, []byte(`{"tenant_id":"`+id+`","name":"a","status":"active","keys":[{"key_id":"k_1","tenant_id":"`+id+`","scope":"full","hash":"`+strings.Repeat("cd", 32)+`"}]}`))
	f.Add(id, []byte(`{"tenant_id":"`+id+`","name":"a","status":"active","keys":[{"key_id":"k_1","tenant_id":"t_1111111111111111","scope":"full","hash":"`+hash+`"}]}`))
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		s := &Store{cfg: Config{Plans: DefaultPlans()}, tenants: map[string]*Tenant{}, keys: map[string]*Key{}, byHash: map[[32]byte]*Key{}}
		if err := s.apply("t_fedcba9876543210", []byte(`{"tenant_id":"t_fedcba9876543210","name":"other","plan":"default","status":"active","keys":[{"key_id":"k_0","tenant_id":"t_fedcba9876543210","scope":"full","hash":"`+strings.Repeat("cd", 32)+`"}]}`)); err != nil {
			t.Fatal(err)
		}
		before := len(s.tenants)
		err := s.apply(key, value)
		if err != nil {
			if len(s.tenants) != before || len(s.keys) != 1 || len(s.byHash) != 1 {
				t.Fatalf("a refused record changed the registry: %d tenants, %d keys", len(s.tenants), len(s.keys))
			}
			return
		}
		for _, k := range s.byHash {
			if s.keys[k.ID] != k {
				t.Fatalf("key %s authenticates but is not listed", k.ID)
			}
		}
		for _, k := range s.keys {
			if _, ok := s.tenants[k.TenantID]; !ok || s.byHash[k.sum] == nil {
				t.Fatalf("key %s without its tenant or hash", k.ID)
			}
			if _, err := ParseScope(string(k.Scope)); err != nil {
				t.Fatalf("key %s taken with scope %q", k.ID, k.Scope)
			}
		}
		if value != nil && ValidID(key) {
			if _, ok := s.tenants[key]; !ok {
				t.Fatalf("record %s taken but not in the registry", key)
			}
		}
	})
}
