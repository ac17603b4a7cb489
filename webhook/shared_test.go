package webhook

import (
	"testing"
)

// FuzzApplySharedRecord feeds hostile endpoint records to the shared
// store's apply, as a watcher would deliver them: no panic; a refused
// record leaves the endpoints as they were; a taken one opens its secret.
func FuzzApplySharedRecord(f *testing.F) {
	s, err := Open(StoreConfig{Dir: f.TempDir()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = s.Close() })
	e := Endpoint{ID: "wh_x", TenantID: "t_0123456789abcdef", Provider: GitHub, Table: "events"}
	good := `{"id":"wh_x","tenant_id":"t_0123456789abcdef","provider":"github","table":"events","created":"2026-01-01T00:00:00Z","sealed_secret":"` + s.seal(e, "s3cret") + `"}`
	f.Add("wh_x", []byte(good))
	f.Add("wh_y", []byte(good))
	f.Add("wh_x", []byte(`{"id":"wh_x","tenant_id":"t","provider":"gitlab","table":"x","sealed_secret":""}`))
	f.Add("keycheck", []byte(`anything`))
	f.Add("wh_x", []byte(nil))
	f.Add("wh_x", []byte(`[`))
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		s.endpoints = map[string]*entry{"wh_keep": {Endpoint: Endpoint{ID: "wh_keep"}}}
		err := s.apply(key, value)
		if err != nil {
			if len(s.endpoints) != 1 || s.endpoints["wh_keep"] == nil {
				t.Fatalf("a refused record changed the endpoints: %v", s.endpoints)
			}
			return
		}
		if value != nil && key != keyCheckRecord {
			en := s.endpoints[key]
			if en == nil || en.ID != key || !en.Provider.known() {
				t.Fatalf("record %q taken as %+v", key, en)
			}
			if got, err := s.open(en.Endpoint, en.sealed); err != nil || got != en.secret {
				t.Fatalf("record %q taken with a secret that does not open", key)
			}
		}
	})
}
