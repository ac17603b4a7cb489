package tenant

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	json "github.com/goccy/go-json"
)

// Shared is a store of records that the nodes of a cluster share (package
// cluster/kv implements it on a JetStream key-value bucket). With
// Config.Shared set, the registry lives there instead of in Config.Path's
// file: the in-memory maps stay the read path, and every change of any node
// reaches them through Watch.
type Shared interface {
	// Watch calls apply with every stored record (value nil for a deleted
	// one), returns once those are applied, and then calls apply, from one
	// goroutine, with every change made by any node. An error from apply
	// means a malformed record: it is logged and skipped.
	Watch(apply func(key string, value []byte) error) error
	// Modify changes one record: f gets the stored value (nil: none) and
	// returns the new one (nil deletes it). It is a compare-and-set: if the
	// record changes meanwhile, f runs again on the new value, so no
	// concurrent change is lost. f's error is returned as is. Modify returns
	// once Watch's apply has applied the change on this node.
	Modify(key string, f func(old []byte) ([]byte, error)) error
}

// adminRecord is the shared record of the admin key's hash, plansRecord
// the plan table's; the others are tenants, keyed by tenant id.
const (
	adminRecord = "admin"
	plansRecord = "plans"
)

// sharedTenant is a tenant as the shared store keeps it: the tenant and its
// keys in one record, so that a change to either, or the deletion of the
// tenant with its keys, is one compare-and-set. Keys are hashes only.
type sharedTenant struct {
	Tenant
	Keys []*Key `json:"keys"`
}

// sharedAdmin is the admin record.
type sharedAdmin struct {
	Hash string `json:"admin_hash"`
}

// openShared loads the shared registry and keeps following it. A registry
// file left by a single node seeds an empty shared registry, so that a
// node's tenants and keys carry over when it joins a new cluster.
func (s *Store) openShared() error {
	if err := s.cfg.Shared.Watch(s.apply); err != nil {
		return fmt.Errorf("load the shared tenant registry: %w", err)
	}
	if err := s.agreePlans(); err != nil {
		return err
	}
	if s.cfg.Path == "" || !s.Empty() || s.HasAdminKey() {
		return nil
	}
	b, err := os.ReadFile(s.cfg.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read tenant registry: %w", err)
	}
	var f file
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("parse tenant registry %s: %w", s.cfg.Path, err)
	}
	recs := map[string]*sharedTenant{}
	for _, t := range f.Tenants {
		recs[t.ID] = &sharedTenant{Tenant: *t}
	}
	for _, k := range f.Keys {
		if r := recs[k.TenantID]; r != nil {
			r.Keys = append(r.Keys, k)
		}
	}
	for id, r := range recs {
		if _, err := decodeShared(id, mustJSON(r)); err != nil {
			return fmt.Errorf("tenant registry %s: tenant %s: %w", s.cfg.Path, id, err)
		}
		if err := s.cfg.Shared.Modify(id, createOnly(mustJSON(r))); err != nil {
			return fmt.Errorf("seed the shared tenant registry from %s: %w", s.cfg.Path, err)
		}
	}
	if f.AdminHash != "" {
		if err := s.cfg.Shared.Modify(adminRecord, createOnly(mustJSON(sharedAdmin{Hash: f.AdminHash}))); err != nil {
			return fmt.Errorf("seed the shared tenant registry from %s: %w", s.cfg.Path, err)
		}
	}
	return nil
}

// agreePlans makes every node of a cluster use one plan table, so that a
// tenant's plan means the same limits on every node: the first node to
// start stores its own (Config.Plans: built in, or -plans), and the others
// take the stored one instead of theirs (PlansDiffer says whether they
// did). The table is read once, at Open: a changed -plans takes effect
// in a cluster when the record is deleted and a node starts again.
func (s *Store) agreePlans() error {
	local := mustJSON(s.cfg.Plans)
	var stored []byte
	err := s.cfg.Shared.Modify(plansRecord, func(old []byte) ([]byte, error) {
		stored = old
		if old != nil {
			return old, nil
		}
		return local, nil
	})
	if err != nil {
		return fmt.Errorf("agree on the cluster's plans: %w", err)
	}
	if stored == nil {
		return nil
	}
	var plans map[string]Plan
	if err := json.Unmarshal(stored, &plans); err != nil || len(plans) == 0 {
		return fmt.Errorf("the cluster's shared plans record is malformed (%v): delete it (key %q of the tenants bucket) and start a node with the right -plans", err, plansRecord)
	}
	if string(mustJSON(plans)) != string(local) {
		s.plansDiffer = true
	}
	s.cfg.Plans = plans
	return nil
}

// PlansDiffer reports whether this node's own plans (Config.Plans) differ
// from the table the cluster shares, which it uses instead.
func (s *Store) PlansDiffer() bool { return s.plansDiffer }

// createOnly stores b unless the record exists already.
func createOnly(b []byte) func([]byte) ([]byte, error) {
	return func(old []byte) ([]byte, error) {
		if old != nil {
			return old, nil
		}
		return b, nil
	}
}

// mustJSON encodes records of this package, which always encode.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("tenant: encode %T: %v", v, err))
	}
	return b
}

// apply applies one shared record to the maps: the watcher of every node
// calls it, for its own changes and the others'.
func (s *Store) apply(key string, value []byte) error {
	if key == plansRecord {
		return nil // read once, by agreePlans
	}
	if key == adminRecord {
		hash := ""
		if value != nil {
			var a sharedAdmin
			if err := json.Unmarshal(value, &a); err != nil {
				return fmt.Errorf("admin record: %w", err)
			}
			if _, err := parseHash(a.Hash); err != nil {
				return fmt.Errorf("admin record: %w", err)
			}
			hash = a.Hash
		}
		s.mu.Lock()
		s.adminHash = hash
		s.mu.Unlock()
		return nil
	}
	if !ValidID(key) {
		return errors.New("not a tenant id nor the admin record")
	}
	var rec *sharedTenant
	if value != nil {
		var err error
		if rec, err = decodeShared(key, value); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if rec != nil {
		for _, k := range rec.Keys {
			if o := s.keys[k.ID]; o != nil && o.TenantID != key {
				return fmt.Errorf("key %s belongs to tenant %s already", k.ID, o.TenantID)
			}
			if o := s.byHash[k.sum]; o != nil && o.TenantID != key {
				return fmt.Errorf("key %s: tenant %s has the same key", k.ID, o.TenantID)
			}
		}
	}
	s.replaceLocked(key, rec)
	return nil
}

// decodeShared decodes and checks tenant id's shared record.
func decodeShared(id string, b []byte) (*sharedTenant, error) {
	var r sharedTenant
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	switch {
	case r.ID != id:
		return nil, fmt.Errorf("the record holds tenant %q", r.ID)
	case validName(r.Name) != nil:
		return nil, errors.New("bad tenant name")
	case r.Status != StatusActive && r.Status != StatusSuspended:
		return nil, fmt.Errorf("bad status %q", r.Status)
	}
	ids, hashes := map[string]bool{}, map[[32]byte]bool{}
	for _, k := range r.Keys {
		if k == nil || k.ID == "" {
			return nil, errors.New("a key without an id")
		}
		h, err := parseHash(k.Hash)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", k.ID, err)
		}
		if ids[k.ID] || hashes[h] {
			return nil, fmt.Errorf("key %s twice", k.ID)
		}
		ids[k.ID], hashes[h] = true, true
		if _, err := ParseScope(string(k.Scope)); err != nil {
			return nil, fmt.Errorf("key %s: %w", k.ID, err)
		}
		if k.TenantID != id {
			return nil, fmt.Errorf("key %s belongs to tenant %q", k.ID, k.TenantID)
		}
		k.sum, k.stored = h, k.LastUsed
	}
	return &r, nil
}

// replaceLocked puts tenant id's record, or its deletion (rec nil), in the
// maps. A key's last use seen here and not yet stored is kept. The old keys
// are found through byHash, the map Authenticate reads, so that none stays
// there even if another tenant's key took its id in keys. The caller holds
// mu.
func (s *Store) replaceLocked(id string, rec *sharedTenant) {
	var old map[string]*Key
	if _, ok := s.tenants[id]; ok {
		old = map[string]*Key{}
		for h, k := range s.byHash {
			if k.TenantID == id {
				old[k.ID] = k
				delete(s.byHash, h)
				if s.keys[k.ID] == k {
					delete(s.keys, k.ID)
				}
			}
		}
	}
	if rec == nil {
		delete(s.tenants, id)
		return
	}
	t := rec.Tenant
	s.tenants[id] = &t
	for _, k := range rec.Keys {
		if o := old[k.ID]; o != nil && o.LastUsed.After(k.LastUsed) {
			k.LastUsed = o.LastUsed
		}
		s.addKeyLocked(k)
	}
}

// modifyShared changes tenant id's shared record with f, a compare-and-set
// (Shared.Modify): f may run more than once, each time on the latest record.
func (s *Store) modifyShared(id string, f func(r *sharedTenant) error) error {
	return s.cfg.Shared.Modify(id, func(old []byte) ([]byte, error) {
		if old == nil {
			return nil, fmt.Errorf("tenant %s: %w", id, ErrNotFound)
		}
		r, err := decodeShared(id, old)
		if err != nil {
			return nil, fmt.Errorf("tenant %s: its shared record is malformed: %w", id, err)
		}
		if err := f(r); err != nil {
			return nil, err
		}
		return json.Marshal(r)
	})
}

// createShared stores a new tenant with its first key.
func (s *Store) createShared(t *Tenant, k *Key) error {
	b := mustJSON(sharedTenant{Tenant: *t, Keys: []*Key{k}})
	return s.cfg.Shared.Modify(t.ID, func(old []byte) ([]byte, error) {
		if old != nil {
			return nil, fmt.Errorf("%w: tenant id %s is taken", ErrExists, t.ID)
		}
		return b, nil
	})
}

// revokeShared deletes a key from its tenant's shared record.
func (s *Store) revokeShared(tenantID, keyID string) error {
	return s.modifyShared(tenantID, func(r *sharedTenant) error {
		i := slices.IndexFunc(r.Keys, func(k *Key) bool { return k.ID == keyID })
		if i < 0 {
			return fmt.Errorf("key %s: %w", keyID, ErrNotFound)
		}
		r.Keys = slices.Delete(r.Keys, i, i+1)
		return nil
	})
}

// deleteShared deletes a tenant's shared record, its keys with it.
func (s *Store) deleteShared(id string) error {
	return s.cfg.Shared.Modify(id, func(old []byte) ([]byte, error) {
		if old == nil {
			return nil, fmt.Errorf("tenant %s: %w", id, ErrNotFound)
		}
		return nil, nil
	})
}

// saveShared stores the last-use times seen on this node and not stored
// yet, a compare-and-set per tenant that keeps the later of two nodes'.
func (s *Store) saveShared() error {
	pending := map[string]map[string]time.Time{}
	s.mu.Lock()
	for _, k := range s.keys {
		if k.LastUsed.After(k.stored) {
			if pending[k.TenantID] == nil {
				pending[k.TenantID] = map[string]time.Time{}
			}
			pending[k.TenantID][k.ID] = k.LastUsed
		}
	}
	s.dirty = false
	s.mu.Unlock()
	var errs []error
	for id, used := range pending {
		err := s.modifyShared(id, func(r *sharedTenant) error {
			for _, k := range r.Keys {
				if t, ok := used[k.ID]; ok && t.After(k.LastUsed) {
					k.LastUsed = t
				}
			}
			return nil
		})
		if err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		s.mu.Lock()
		s.dirty = true
		s.mu.Unlock()
		return fmt.Errorf("save last-use times of keys: %w", errors.Join(errs...))
	}
	return nil
}
