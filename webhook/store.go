package webhook

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	json "github.com/goccy/go-json"

	"duckgate/atomicfile"
)

// Errors of this package, wrapped with detail; test with errors.Is.
var (
	// ErrNotFound means no endpoint has this id, or it belongs to another
	// tenant: the two are not told apart.
	ErrNotFound = errors.New("webhook endpoint not found")
	// ErrLimit means the tenant has Config.MaxPerTenant endpoints already.
	ErrLimit = errors.New("too many webhook endpoints")
	// ErrKey means webhook.key is missing, unreadable or does not open the
	// sealed secrets of webhooks.json.
	ErrKey = errors.New("webhook key")
)

// File names in Config.Dir.
const (
	EndpointsFile = "webhooks.json"
	KeyFile       = "webhook.key"
	SeenFile      = "webhook_seen.log"
)

const (
	// DefaultDedupWindow is how long a delivery id is remembered: Stripe
	// retries for up to 3 days and GitHub redeliveries are manual, so a week
	// covers every automatic retry with room to spare.
	DefaultDedupWindow = 7 * 24 * time.Hour
	// DefaultMaxPerTenant bounds a tenant's endpoints: one per provider
	// account and table is the normal use; 100 leaves room and keeps a
	// hostile tenant from growing the registry without bound.
	DefaultMaxPerTenant = 100
	// idBytes is the randomness of an endpoint id: 128 bits.
	idBytes = 16
	// idPrefix marks endpoint ids in logs and URLs.
	idPrefix = "wh_"
	// minCompact is the fewest appended lines that trigger a compaction of
	// the seen log while running.
	minCompact = 4096
)

// StoreConfig configures a Store.
type StoreConfig struct {
	// Dir is the data directory holding the three files. Required.
	Dir string
	// DedupWindow is how long a stored delivery id is remembered. Default
	// DefaultDedupWindow.
	DedupWindow time.Duration
	// MaxPerTenant is the most endpoints one tenant may have. Default
	// DefaultMaxPerTenant.
	MaxPerTenant int
	// Now returns the current time; nil means time.Now. Tests set it.
	Now func() time.Time
	// Key is the 32-byte key that seals the endpoints' secrets; nil means
	// webhook.key in Dir, made on first start. Every node of a cluster must
	// seal with the same key: give each the same Key, or the same file.
	Key []byte
	// Shared, if set, keeps the endpoints in a store the nodes of a cluster
	// share (cluster/kv) instead of webhooks.json: an endpoint registered
	// on one node takes deliveries on all. See Shared.
	Shared Shared
}

// Endpoint is a registered webhook endpoint, without its secret.
type Endpoint struct {
	ID       string    `json:"id"`
	TenantID string    `json:"tenant_id"`
	Provider Provider  `json:"provider"`
	Table    string    `json:"table"`
	Created  time.Time `json:"created"`
}

// record is an endpoint as webhooks.json keeps it.
type record struct {
	Endpoint
	// Sealed is base64(nonce || AES-256-GCM ciphertext of the secret).
	Sealed string `json:"sealed_secret"`
}

// entry is an endpoint in memory.
type entry struct {
	Endpoint
	sealed string
	secret string
}

// Store is the registry of webhook endpoints and the dedup log. It is safe
// for concurrent use.
//
// Lock order: reg's before mu; logMu before seenMu; mu is never held with
// logMu or seenMu. No lock but reg's and logMu, which only serialize
// writers of one file, is held across a write or an fsync.
type Store struct {
	cfg  StoreConfig
	aead cipher.AEAD

	reg       atomicfile.Registry // webhooks.json, written outside mu in the order of the changes
	mu        sync.RWMutex
	endpoints map[string]*entry // by id; guarded by mu

	seenMu   sync.Mutex
	seen     map[[32]byte]int64         // pair hash -> unix seconds stored; guarded by seenMu
	inflight map[[32]byte]chan struct{} // pairs being stored, closed when settled; guarded by seenMu

	logMu    sync.Mutex // serializes the seen log's appends and compactions
	log      *os.File   // webhook_seen.log, append only; guarded by logMu
	appended int        // lines appended since the last compaction; guarded by logMu
}

// Open loads the endpoints and the seen log from cfg.Dir, creating the
// server key on first start.
func Open(cfg StoreConfig) (*Store, error) {
	if cfg.Dir == "" {
		return nil, errors.New("webhook store: Config.Dir is required")
	}
	if cfg.DedupWindow <= 0 {
		cfg.DedupWindow = DefaultDedupWindow
	}
	if cfg.MaxPerTenant <= 0 {
		cfg.MaxPerTenant = DefaultMaxPerTenant
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("webhook store: %w", err)
	}
	s := &Store{cfg: cfg, endpoints: map[string]*entry{}, seen: map[[32]byte]int64{}, inflight: map[[32]byte]chan struct{}{}}
	s.reg.Path = s.path(EndpointsFile)
	var recs []record
	var err error
	if cfg.Shared == nil {
		if recs, err = s.readEndpoints(); err != nil {
			return nil, err
		}
	}
	key := cfg.Key
	if key == nil {
		if key, err = s.loadKey(len(recs)); err != nil {
			return nil, err
		}
	} else if len(key) != 32 {
		return nil, fmt.Errorf("%w: the key is %d bytes, not 32 (64 hex digits)", ErrKey, len(key))
	}
	block, _ := aes.NewCipher(key) // a 32-byte key cannot fail
	s.aead, _ = cipher.NewGCM(block)
	for _, r := range recs {
		secret, err := s.open(r.Endpoint, r.Sealed)
		if err != nil {
			return nil, fmt.Errorf("%w: %s does not open the secret of endpoint %s in %s (%v): restore the %s that belongs with this %s, or delete %s and register the endpoints again",
				ErrKey, KeyFile, r.ID, EndpointsFile, err, KeyFile, EndpointsFile, EndpointsFile)
		}
		s.endpoints[r.ID] = &entry{Endpoint: r.Endpoint, sealed: r.Sealed, secret: secret}
	}
	if cfg.Shared != nil {
		if err := s.openShared(); err != nil {
			return nil, err
		}
	}
	if err := s.openSeen(); err != nil {
		return nil, err
	}
	return s, nil
}

// Close closes the seen log. The Store must not be used afterwards.
func (s *Store) Close() error {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	if s.log == nil {
		return nil
	}
	err := s.log.Close()
	s.log = nil
	return err
}

func (s *Store) path(name string) string { return filepath.Join(s.cfg.Dir, name) }

func (s *Store) readEndpoints() ([]record, error) {
	b, err := os.ReadFile(s.path(EndpointsFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("webhook store: read %s: %w", EndpointsFile, err)
	}
	var f struct {
		Endpoints []record `json:"endpoints"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("webhook store: parse %s: %w", s.path(EndpointsFile), err)
	}
	return f.Endpoints, nil
}

// loadKey reads webhook.key, or makes it when there is no sealed secret it
// would have to open.
func (s *Store) loadKey(sealed int) ([]byte, error) {
	p := s.path(KeyFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		if sealed > 0 {
			return nil, fmt.Errorf("%w: %s is missing but %s holds %d sealed secrets: restore %s from a backup, or delete %s and register the endpoints again",
				ErrKey, p, EndpointsFile, sealed, KeyFile, EndpointsFile)
		}
		key := make([]byte, 32)
		_, _ = rand.Read(key) // never fails (crypto/rand)
		if err := atomicfile.Write(p, []byte(hex.EncodeToString(key)+"\n")); err != nil {
			return nil, fmt.Errorf("webhook store: create %s: %w", p, err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: read %s: %v", ErrKey, p, err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != 32 {
		return nil, fmt.Errorf("%w: %s is not 64 hex digits (a 256-bit key)", ErrKey, p)
	}
	return key, nil
}

// aad binds a sealed secret to its endpoint.
func aad(e Endpoint) []byte {
	return []byte("duckgate webhook secret\x00" + e.ID + "\x00" + e.TenantID)
}

func (s *Store) seal(e Endpoint, secret string) string {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(secret)+s.aead.Overhead())
	_, _ = rand.Read(nonce)
	return base64.StdEncoding.EncodeToString(s.aead.Seal(nonce, nonce, []byte(secret), aad(e)))
}

func (s *Store) open(e Endpoint, sealed string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil {
		return "", err
	}
	n := s.aead.NonceSize()
	if len(b) < n+s.aead.Overhead() {
		return "", errors.New("sealed secret is too short")
	}
	pt, err := s.aead.Open(nil, b[:n], b[n:], aad(e))
	if err != nil {
		return "", err
	}
	return string(pt), nil
}

// Create registers an endpoint for tenantID that stores deliveries of
// provider p, signed with secret, into table. The caller has checked table;
// Create checks the secret with ValidateSecret.
func (s *Store) Create(tenantID string, p Provider, table, secret string) (Endpoint, error) {
	if err := ValidateSecret(p, secret); err != nil {
		return Endpoint{}, err
	}
	var id [idBytes]byte
	_, _ = rand.Read(id[:])
	e := Endpoint{
		ID:       idPrefix + base64.RawURLEncoding.EncodeToString(id[:]),
		TenantID: tenantID,
		Provider: p,
		Table:    table,
		Created:  s.cfg.Now().UTC().Truncate(time.Microsecond),
	}
	en := &entry{Endpoint: e, sealed: s.seal(e, secret), secret: secret}
	if s.cfg.Shared != nil {
		if err := s.createShared(en); err != nil {
			return Endpoint{}, err
		}
		return e, nil
	}

	err := s.change(func() (func(), error) {
		n := 0
		for _, x := range s.endpoints {
			if x.TenantID == tenantID {
				n++
			}
		}
		if n >= s.cfg.MaxPerTenant {
			return nil, fmt.Errorf("%w: tenant %s has %d; delete unused ones with DELETE /api/webhooks/{id}", ErrLimit, tenantID, n)
		}
		s.endpoints[e.ID] = en
		return func() { delete(s.endpoints, e.ID) }, nil
	})
	if err != nil {
		return Endpoint{}, err
	}
	return e, nil
}

// List returns tenantID's endpoints, oldest first.
func (s *Store) List(tenantID string) []Endpoint {
	s.mu.RLock()
	out := []Endpoint{}
	for _, e := range s.endpoints {
		if e.TenantID == tenantID {
			out = append(out, e.Endpoint)
		}
	}
	s.mu.RUnlock()
	sortEndpoints(out)
	return out
}

// Delete removes tenantID's endpoint id. Another tenant's id is ErrNotFound.
func (s *Store) Delete(tenantID, id string) error {
	if s.cfg.Shared != nil {
		return s.deleteShared(tenantID, id)
	}
	return s.change(func() (func(), error) {
		e, ok := s.endpoints[id]
		if !ok || e.TenantID != tenantID {
			return nil, fmt.Errorf("%w: %q", ErrNotFound, truncate(id))
		}
		delete(s.endpoints, id)
		return func() { s.endpoints[id] = e }, nil
	})
}

// DeleteTenant removes every endpoint of tenantID, for when the tenant is
// deleted, and returns how many there were. Their seen ids expire with the
// window.
func (s *Store) DeleteTenant(tenantID string) (int, error) {
	if s.cfg.Shared != nil {
		return s.deleteTenantShared(tenantID)
	}
	var gone []*entry
	err := s.change(func() (func(), error) {
		for id, e := range s.endpoints {
			if e.TenantID == tenantID {
				gone = append(gone, e)
				delete(s.endpoints, id)
			}
		}
		return func() {
			for _, e := range gone {
				s.endpoints[e.ID] = e
			}
		}, nil
	})
	if err != nil {
		return 0, err
	}
	return len(gone), nil
}

// Lookup returns the endpoint id and its secret, for verifying a delivery.
func (s *Store) Lookup(id string) (Endpoint, string, error) {
	s.mu.RLock()
	e, ok := s.endpoints[id]
	s.mu.RUnlock()
	if !ok {
		return Endpoint{}, "", fmt.Errorf("%w: %q", ErrNotFound, truncate(id))
	}
	return e.Endpoint, e.secret, nil
}

// change applies f to the endpoints under mu, then rewrites webhooks.json
// with mu released (atomicfile.Registry), so that deliveries looking up
// their endpoint never wait for the disk. If the write fails, the undo f
// returned restores the endpoints.
func (s *Store) change(f func() (undo func(), err error)) error {
	var refused error // f's or the encoding's error: nothing was written
	err := s.reg.Change(&s.mu, func() ([]byte, func(), error) {
		undo, err := f()
		if err == nil {
			var b []byte
			if b, err = s.encodeLocked(); err == nil {
				return b, undo, nil
			}
			undo()
		}
		refused = err
		return nil, nil, err
	})
	if err != nil && refused == nil {
		return fmt.Errorf("webhook store: save %s: %w", EndpointsFile, err)
	}
	return err
}

// encodeLocked returns webhooks.json's contents. The caller holds mu.
func (s *Store) encodeLocked() ([]byte, error) {
	f := struct {
		Endpoints []record `json:"endpoints"`
	}{Endpoints: make([]record, 0, len(s.endpoints))}
	for _, e := range s.endpoints {
		f.Endpoints = append(f.Endpoints, record{Endpoint: e.Endpoint, Sealed: e.sealed})
	}
	slices.SortFunc(f.Endpoints, func(a, b record) int { return compareEndpoints(a.Endpoint, b.Endpoint) })
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("webhook store: encode endpoints: %w", err)
	}
	return append(b, '\n'), nil
}

func sortEndpoints(es []Endpoint) { slices.SortFunc(es, compareEndpoints) }

func compareEndpoints(a, b Endpoint) int {
	if c := a.Created.Compare(b.Created); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
