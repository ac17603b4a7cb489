package tenant

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	json "github.com/goccy/go-json"

	"duckgate/atomicfile"
)

// Errors of this package. The HTTP layer maps them to status codes.
var (
	// ErrUnauthorized means the key is missing, unknown, revoked or belongs
	// to a deleted tenant. It carries no detail on purpose.
	ErrUnauthorized = errors.New("missing or invalid API key")
	// ErrNotFound means no tenant or key has that id.
	ErrNotFound = errors.New("not found")
	// ErrInvalid means a name, plan or scope is not acceptable.
	ErrInvalid = errors.New("invalid request")
	// ErrExists means a tenant of that name exists already.
	ErrExists = errors.New("already exists")
)

// Scope says what a key may do.
type Scope string

// Key scopes.
const (
	// ScopeIngest keys may only insert: safe to ship inside an app.
	ScopeIngest Scope = "ingest"
	// ScopeQuery keys may query, list tables and make share links.
	ScopeQuery Scope = "query"
	// ScopeFull keys may do both.
	ScopeFull Scope = "full"
)

// Allows reports whether a key of scope s may act within need.
func (s Scope) Allows(need Scope) bool {
	return s == ScopeFull || s == need
}

// ParseScope checks a scope name.
func ParseScope(s string) (Scope, error) {
	switch Scope(s) {
	case ScopeIngest, ScopeQuery, ScopeFull:
		return Scope(s), nil
	}
	return "", fmt.Errorf("%w: scope %q: use ingest, query or full", ErrInvalid, s)
}

// Status values of a tenant.
const (
	StatusActive    = "active"
	StatusSuspended = "suspended"
)

// Tenant is one customer with its own database.
type Tenant struct {
	ID      string    `json:"tenant_id"`
	Name    string    `json:"name"`
	Plan    string    `json:"plan"`
	Status  string    `json:"status"`
	Created time.Time `json:"created"`
	// AllowedOrigins are the web origins ("https://app.example") whose pages
	// may post tracking events with the tenant's keys; empty allows any.
	AllowedOrigins []string `json:"allowed_origins,omitempty"`
}

// AllowsOrigin reports whether a browser page of origin may post events for
// the tenant: any origin when AllowedOrigins is empty, else one of them
// (ASCII case aside).
func (t Tenant) AllowsOrigin(origin []byte) bool {
	if len(t.AllowedOrigins) == 0 {
		return true
	}
	for _, o := range t.AllowedOrigins {
		if strings.EqualFold(o, string(origin)) {
			return true
		}
	}
	return false
}

// Key is an API key's record; the key itself is never stored.
type Key struct {
	ID       string    `json:"key_id"`
	TenantID string    `json:"tenant_id"`
	Scope    Scope     `json:"scope"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used,omitzero"`
	Hash     string    `json:"hash"` // hex SHA-256 of the key

	sum    [32]byte  // Hash decoded, for the comparison on every request
	stored time.Time // with Config.Shared: LastUsed as the shared record holds it
}

// Config configures a Store.
type Config struct {
	// Path is the registry file, usually <data>/meta.json.
	Path string
	// Plans are the plans tenants may have; nil means DefaultPlans. A
	// tenant's plan is part of its record; the plans themselves are this
	// configuration, so every node of a cluster must be given the same.
	Plans map[string]Plan
	// Shared, if set, keeps the registry in a store the nodes of a cluster
	// share (cluster/kv) instead of Path's file: a tenant or key made on one
	// node works on all, a revoked key stops on all, within the store's
	// delivery delay (milliseconds). Path's file, if there is one, is then
	// only read once, to seed an empty shared registry.
	Shared Shared
}

// Store is the registry. It is safe for concurrent use.
type Store struct {
	cfg Config
	// plansDiffer is set by Open in shared mode: see PlansDiffer.
	plansDiffer bool

	// reg writes the registry file in the order of the changes, with mu
	// released: requests authenticate while an admin change is fsynced.
	reg atomicfile.Registry

	mu        sync.RWMutex
	tenants   map[string]*Tenant // by id; guarded by mu
	keys      map[string]*Key    // by id; guarded by mu
	byHash    map[[32]byte]*Key  // guarded by mu
	adminHash string             // guarded by mu
	dirty     bool               // last-used times not yet saved; guarded by mu
}

// file is the registry's on-disk form.
type file struct {
	AdminHash string    `json:"admin_hash"`
	Tenants   []*Tenant `json:"tenants"`
	Keys      []*Key    `json:"keys"`
}

// Open loads the registry, or starts an empty one if the file is missing.
func Open(cfg Config) (*Store, error) {
	if cfg.Plans == nil {
		cfg.Plans = DefaultPlans()
	}
	s := &Store{cfg: cfg, tenants: map[string]*Tenant{}, keys: map[string]*Key{}, byHash: map[[32]byte]*Key{}}
	s.reg.Path = cfg.Path
	if cfg.Shared != nil {
		if err := s.openShared(); err != nil {
			return nil, err
		}
		return s, nil
	}
	b, err := os.ReadFile(cfg.Path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read tenant registry: %w", err)
	}
	var f file
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("parse tenant registry %s: %w", cfg.Path, err)
	}
	s.adminHash = f.AdminHash
	for _, t := range f.Tenants {
		s.tenants[t.ID] = t
	}
	for _, k := range f.Keys {
		h, err := parseHash(k.Hash)
		if err != nil {
			return nil, fmt.Errorf("tenant registry %s: key %s: %w", cfg.Path, k.ID, err)
		}
		s.keys[k.ID] = k
		k.sum = h
		s.byHash[h] = k
	}
	return s, nil
}

// Empty reports whether the registry has no tenant (a first start).
func (s *Store) Empty() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.tenants) == 0
}

// HasAdminKey reports whether an admin key hash is stored.
func (s *Store) HasAdminKey() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.adminHash != ""
}

// SetAdminKey stores the admin key's hash, replacing any earlier one.
func (s *Store) SetAdminKey(key string) error {
	h := sha256.Sum256([]byte(key))
	if s.cfg.Shared != nil {
		b := mustJSON(sharedAdmin{Hash: hex.EncodeToString(h[:])})
		return s.cfg.Shared.Modify(adminRecord, func([]byte) ([]byte, error) { return b, nil })
	}
	return s.change(func() (func(), error) {
		old := s.adminHash
		s.adminHash = hex.EncodeToString(h[:])
		return func() { s.adminHash = old }, nil
	})
}

// IsAdmin reports whether key is the admin key, in constant time.
func (s *Store) IsAdmin(key []byte) bool {
	if len(key) == 0 {
		return false
	}
	h := sha256.Sum256(key)
	s.mu.RLock()
	want := s.adminHash
	s.mu.RUnlock()
	got := hex.EncodeToString(h[:])
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// Authenticate returns the tenant and key record a key belongs to.
// Suspended tenants are returned too: the caller decides (403).
func (s *Store) Authenticate(key []byte) (Tenant, Key, error) {
	if len(key) == 0 || len(key) > 256 {
		return Tenant{}, Key{}, ErrUnauthorized
	}
	h := sha256.Sum256(key)
	s.mu.RLock()
	k, ok := s.byHash[h]
	var t *Tenant
	if ok {
		t = s.tenants[k.TenantID]
	}
	s.mu.RUnlock()
	if !ok || t == nil {
		return Tenant{}, Key{}, ErrUnauthorized
	}
	// The map lookup already matched the hash; compare again in constant
	// time so no timing of the comparison depends on the key.
	if subtle.ConstantTimeCompare(h[:], k.sum[:]) != 1 {
		return Tenant{}, Key{}, ErrUnauthorized
	}
	// Last use is kept to the second: the write lock is taken once per key
	// per second, not on every request.
	now := time.Now().UTC().Truncate(time.Second)
	s.mu.RLock()
	tc, kc := *t, *k
	s.mu.RUnlock()
	if !kc.LastUsed.Equal(now) {
		s.mu.Lock()
		k.LastUsed = now
		s.dirty = true
		s.mu.Unlock()
		kc.LastUsed = now
	}
	return tc, kc, nil
}

// CreateTenant registers a tenant with a full-scope key, and returns the
// tenant, the key's record and the key itself (shown once).
func (s *Store) CreateTenant(name, plan string) (Tenant, Key, string, error) {
	if err := validName(name); err != nil {
		return Tenant{}, Key{}, "", err
	}
	if plan == "" {
		plan = DefaultPlan
	}
	if _, ok := s.cfg.Plans[plan]; !ok {
		return Tenant{}, Key{}, "", fmt.Errorf("%w: unknown plan %q: use one of %s", ErrInvalid, plan, strings.Join(s.PlanNames(), ", "))
	}
	if s.cfg.Shared != nil {
		// Names are checked against this node's view: two nodes creating
		// the same name within the delivery delay both succeed.
		if err := s.nameFree(name); err != nil {
			return Tenant{}, Key{}, "", err
		}
		tp := newTenant(name, plan)
		kp, secret := newKey(tp.ID, ScopeFull)
		if err := s.createShared(tp, kp); err != nil {
			return Tenant{}, Key{}, "", err
		}
		return *tp, *kp, secret, nil
	}
	var t Tenant
	var k Key
	var key string
	err := s.change(func() (func(), error) {
		if err := s.nameFreeLocked(name); err != nil {
			return nil, err
		}
		tp := newTenant(name, plan)
		s.tenants[tp.ID] = tp
		kp, secret := s.newKeyLocked(tp.ID, ScopeFull)
		t, k, key = *tp, *kp, secret
		return func() {
			delete(s.tenants, tp.ID)
			s.deleteKeyLocked(kp)
		}, nil
	})
	if err != nil {
		return Tenant{}, Key{}, "", err
	}
	return t, k, key, nil
}

// nameFree checks that no tenant has the name.
func (s *Store) nameFree(name string) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.nameFreeLocked(name)
}

func (s *Store) nameFreeLocked(name string) error {
	for _, t := range s.tenants {
		if t.Name == name {
			return fmt.Errorf("%w: a tenant named %q exists (id %s)", ErrExists, name, t.ID)
		}
	}
	return nil
}

func newTenant(name, plan string) *Tenant {
	return &Tenant{ID: "t_" + randomHex(8), Name: name, Plan: plan, Status: StatusActive, Created: time.Now().UTC().Truncate(time.Second)}
}

// CreateKey adds a key of the given scope to a tenant.
func (s *Store) CreateKey(tenantID string, scope Scope) (Key, string, error) {
	if s.cfg.Shared != nil {
		kp, secret := newKey(tenantID, scope)
		err := s.modifyShared(tenantID, func(r *sharedTenant) error {
			r.Keys = append(r.Keys, kp)
			return nil
		})
		if err != nil {
			return Key{}, "", err
		}
		return *kp, secret, nil
	}
	var k Key
	var key string
	err := s.change(func() (func(), error) {
		if _, ok := s.tenants[tenantID]; !ok {
			return nil, fmt.Errorf("tenant %s: %w", tenantID, ErrNotFound)
		}
		kp, secret := s.newKeyLocked(tenantID, scope)
		k, key = *kp, secret
		return func() { s.deleteKeyLocked(kp) }, nil
	})
	if err != nil {
		return Key{}, "", err
	}
	return k, key, nil
}

// Keys lists a tenant's keys, oldest first.
func (s *Store) Keys(tenantID string) ([]Key, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if _, ok := s.tenants[tenantID]; !ok {
		return nil, fmt.Errorf("tenant %s: %w", tenantID, ErrNotFound)
	}
	var out []Key
	for _, k := range s.keys {
		if k.TenantID == tenantID {
			out = append(out, *k)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Created.Before(out[j].Created) || out[i].Created.Equal(out[j].Created) && out[i].ID < out[j].ID
	})
	return out, nil
}

// RevokeKey deletes a key; it stops working at once.
func (s *Store) RevokeKey(tenantID, keyID string) error {
	if s.cfg.Shared != nil {
		return s.revokeShared(tenantID, keyID)
	}
	return s.change(func() (func(), error) {
		k, ok := s.keys[keyID]
		if !ok || k.TenantID != tenantID {
			return nil, fmt.Errorf("key %s: %w", keyID, ErrNotFound)
		}
		s.deleteKeyLocked(k)
		return func() { s.addKeyLocked(k) }, nil
	})
}

// Get returns a tenant by id.
func (s *Store) Get(id string) (Tenant, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t, ok := s.tenants[id]
	if !ok {
		return Tenant{}, fmt.Errorf("tenant %s: %w", id, ErrNotFound)
	}
	return *t, nil
}

// List returns every tenant, oldest first.
func (s *Store) List() []Tenant {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Tenant, 0, len(s.tenants))
	for _, t := range s.tenants {
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Created.Before(out[j].Created) || out[i].Created.Equal(out[j].Created) && out[i].ID < out[j].ID
	})
	return out
}

// SetStatus suspends or resumes a tenant.
func (s *Store) SetStatus(id, status string) (Tenant, error) {
	if status != StatusActive && status != StatusSuspended {
		return Tenant{}, fmt.Errorf("%w: status %q", ErrInvalid, status)
	}
	return s.update(id, func(t *Tenant) { t.Status = status })
}

// SetPlan changes a tenant's plan.
func (s *Store) SetPlan(id, plan string) (Tenant, error) {
	if _, ok := s.cfg.Plans[plan]; !ok {
		return Tenant{}, fmt.Errorf("%w: unknown plan %q: use one of %s", ErrInvalid, plan, strings.Join(s.PlanNames(), ", "))
	}
	return s.update(id, func(t *Tenant) { t.Plan = plan })
}

// maxOrigins bounds a tenant's allowed origins.
const maxOrigins = 100

// SetAllowedOrigins sets the web origins whose pages may post tracking
// events with the tenant's keys; an empty list allows any. Each must be an
// origin as browsers send it: http or https, a host, an optional port, no
// path ("https://app.example", "http://localhost:3000").
func (s *Store) SetAllowedOrigins(id string, origins []string) (Tenant, error) {
	if len(origins) > maxOrigins {
		return Tenant{}, fmt.Errorf("%w: %d allowed origins; at most %d", ErrInvalid, len(origins), maxOrigins)
	}
	clean := make([]string, 0, len(origins))
	for _, o := range origins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || len(o) > 255 {
			shown := o
			if len(shown) > 64 {
				shown = shown[:64] + "…"
			}
			return Tenant{}, fmt.Errorf("%w: allowed origin %q: give scheme://host[:port], for example https://app.example", ErrInvalid, shown)
		}
		clean = append(clean, strings.ToLower(u.Scheme+"://"+u.Host))
	}
	if len(clean) == 0 {
		clean = nil
	}
	return s.update(id, func(t *Tenant) { t.AllowedOrigins = clean })
}

// update changes a tenant with f and saves the registry.
func (s *Store) update(id string, f func(*Tenant)) (Tenant, error) {
	var out Tenant
	if s.cfg.Shared != nil {
		err := s.modifyShared(id, func(r *sharedTenant) error {
			f(&r.Tenant)
			out = r.Tenant
			return nil
		})
		if err != nil {
			return Tenant{}, err
		}
		return out, nil
	}
	err := s.change(func() (func(), error) {
		t, ok := s.tenants[id]
		if !ok {
			return nil, fmt.Errorf("tenant %s: %w", id, ErrNotFound)
		}
		old := *t
		f(t)
		out = *t
		return func() { *t = old }, nil
	})
	if err != nil {
		return Tenant{}, err
	}
	return out, nil
}

// Delete removes a tenant and its keys from the registry. Its files are the
// caller's to remove.
func (s *Store) Delete(id string) error {
	if s.cfg.Shared != nil {
		return s.deleteShared(id)
	}
	return s.change(func() (func(), error) {
		t, ok := s.tenants[id]
		if !ok {
			return nil, fmt.Errorf("tenant %s: %w", id, ErrNotFound)
		}
		delete(s.tenants, id)
		var gone []*Key
		for _, k := range s.keys {
			if k.TenantID == id {
				s.deleteKeyLocked(k)
				gone = append(gone, k)
			}
		}
		return func() {
			s.tenants[id] = t
			for _, k := range gone {
				s.addKeyLocked(k)
			}
		}, nil
	})
}

// Save writes pending last-used times.
func (s *Store) Save() error {
	s.mu.RLock()
	dirty := s.dirty
	s.mu.RUnlock()
	if !dirty {
		return nil
	}
	if s.cfg.Shared != nil {
		return s.saveShared()
	}
	return s.change(func() (func(), error) { return nil, nil })
}

func (s *Store) newKeyLocked(tenantID string, scope Scope) (*Key, string) {
	k, key := newKey(tenantID, scope)
	s.addKeyLocked(k)
	return k, key
}

// newKey makes a key and its record.
func newKey(tenantID string, scope Scope) (*Key, string) {
	secret := make([]byte, 24)
	_, _ = rand.Read(secret)
	key := "dg_" + base64.RawURLEncoding.EncodeToString(secret)
	h := sha256.Sum256([]byte(key))
	return &Key{ID: "k_" + randomHex(6), TenantID: tenantID, Scope: scope, Created: time.Now().UTC().Truncate(time.Second), Hash: hex.EncodeToString(h[:]), sum: h}, key
}

func (s *Store) addKeyLocked(k *Key) {
	s.keys[k.ID] = k
	s.byHash[k.sum] = k
}

func (s *Store) deleteKeyLocked(k *Key) {
	delete(s.keys, k.ID)
	if h, err := parseHash(k.Hash); err == nil {
		delete(s.byHash, h)
	}
}

// change applies f to the registry under mu, then writes the registry it
// leaves (a temporary file, fsync, rename) with mu released, so that
// requests are never held up by the disk. If f fails nothing is written;
// if the write fails, the undo f returned restores the registry and the
// write's error is returned. Changes and their writes are serialized by
// atomicfile.Registry, so the file always follows the order of the changes.
func (s *Store) change(f func() (undo func(), err error)) error {
	var refused error // f's or the encoding's error: nothing was written
	err := s.reg.Change(&s.mu, func() ([]byte, func(), error) {
		undo, err := f()
		if err == nil {
			var b []byte
			if b, err = s.encodeLocked(); err == nil {
				s.dirty = false
				return b, func() {
					if undo != nil {
						undo()
					}
					s.dirty = true // the file lags the last-used times
				}, nil
			}
			if undo != nil {
				undo()
			}
		}
		refused = err
		return nil, nil, err
	})
	if err != nil && refused == nil {
		return fmt.Errorf("save tenant registry: %w", err)
	}
	return err
}

// encodeLocked returns the registry's file contents.
func (s *Store) encodeLocked() ([]byte, error) {
	f := file{AdminHash: s.adminHash}
	for _, t := range s.tenants {
		f.Tenants = append(f.Tenants, t)
	}
	for _, k := range s.keys {
		f.Keys = append(f.Keys, k)
	}
	sort.Slice(f.Tenants, func(i, j int) bool { return f.Tenants[i].ID < f.Tenants[j].ID })
	sort.Slice(f.Keys, func(i, j int) bool { return f.Keys[i].ID < f.Keys[j].ID })
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode tenant registry: %w", err)
	}
	return b, nil
}

func validName(name string) error {
	if name == "" || len(name) > 128 {
		return fmt.Errorf("%w: name must be 1 to 128 characters", ErrInvalid)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: name must not contain control characters", ErrInvalid)
		}
	}
	return nil
}

func parseHash(s string) ([32]byte, error) {
	var h [32]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		return h, errors.New("bad key hash")
	}
	copy(h[:], b)
	return h, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// RandomKey returns a new random secret, for an admin key nobody chose.
func RandomKey() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return "dga_" + base64.RawURLEncoding.EncodeToString(b)
}

// ValidID reports whether id has the shape of the tenant ids this package
// makes: "t_" and 16 lowercase hex digits. Ids name files, so nothing else
// may reach a tenant's database.
func ValidID(id string) bool {
	hex, ok := strings.CutPrefix(id, "t_")
	if !ok || len(hex) != 16 {
		return false
	}
	for _, c := range []byte(hex) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
