package webhook

import (
	"errors"
	"fmt"

	json "github.com/goccy/go-json"
)

// Shared is a store of records that the nodes of a cluster share (package
// cluster/kv implements it on a JetStream key-value bucket). With
// StoreConfig.Shared set, the endpoints live there, one record per endpoint
// with its sealed secret, instead of in webhooks.json; the in-memory map
// stays the read path and every node's changes reach it through Watch. The
// dedup log of delivery ids stays on each node.
type Shared interface {
	// Watch calls apply with every stored record (value nil for a deleted
	// one), returns once those are applied, and then calls apply, from one
	// goroutine, with every change made by any node. An error from apply
	// means a malformed record: it is logged and skipped.
	Watch(apply func(key string, value []byte) error) error
	// Modify changes one record: f gets the stored value (nil: none) and
	// returns the new one (nil deletes it). It is a compare-and-set: if the
	// record changes meanwhile, f runs again on the new value. f's error is
	// returned as is. Modify returns once Watch's apply has applied the
	// change on this node.
	Modify(key string, f func(old []byte) ([]byte, error)) error
}

// keyCheckRecord is the shared record that holds keyCheckText sealed under
// the cluster's webhook key: a node started with another key refuses to
// start (ErrKey) rather than skip every endpoint it cannot open.
const (
	keyCheckRecord = "keycheck"
	keyCheckText   = "duckgate webhook key check"
)

// openShared checks this node's key against the cluster's, then loads the
// shared endpoints and keeps following them.
func (s *Store) openShared() error {
	check := Endpoint{ID: keyCheckRecord}
	err := s.cfg.Shared.Modify(keyCheckRecord, func(old []byte) ([]byte, error) {
		if old == nil {
			return []byte(s.seal(check, keyCheckText)), nil
		}
		if got, err := s.open(check, string(old)); err != nil || got != keyCheckText {
			return nil, fmt.Errorf("%w: this node's webhook key is not the one the cluster's endpoints are sealed with: "+
				"give every node the same key (the same 64 hex digits in $DUCKGATE_WEBHOOK_KEY, or the same %s)", ErrKey, KeyFile)
		}
		return old, nil
	})
	if err != nil {
		return fmt.Errorf("webhook store: %w", err)
	}
	if err := s.cfg.Shared.Watch(s.apply); err != nil {
		return fmt.Errorf("webhook store: load the shared endpoints: %w", err)
	}
	return nil
}

// apply applies one shared record to the endpoints: the watcher of every
// node calls it, for its own changes and the others'.
func (s *Store) apply(key string, value []byte) error {
	if key == keyCheckRecord {
		return nil
	}
	if value == nil {
		s.mu.Lock()
		delete(s.endpoints, key)
		s.mu.Unlock()
		return nil
	}
	var r record
	if err := json.Unmarshal(value, &r); err != nil {
		return err
	}
	if r.ID != key {
		return fmt.Errorf("the record holds endpoint %q", truncate(r.ID))
	}
	if !r.Provider.known() || r.TenantID == "" || r.Table == "" {
		return errors.New("the record lacks a provider, tenant or table")
	}
	secret, err := s.open(r.Endpoint, r.Sealed)
	if err != nil {
		return fmt.Errorf("%w: the sealed secret does not open: %v", ErrKey, err)
	}
	s.mu.Lock()
	s.endpoints[key] = &entry{Endpoint: r.Endpoint, sealed: r.Sealed, secret: secret}
	s.mu.Unlock()
	return nil
}

// createShared stores a new endpoint. The limit per tenant is checked on
// this node's view: two nodes adding the last endpoint at once both may.
func (s *Store) createShared(en *entry) error {
	s.mu.RLock()
	n := 0
	for _, x := range s.endpoints {
		if x.TenantID == en.TenantID {
			n++
		}
	}
	s.mu.RUnlock()
	if n >= s.cfg.MaxPerTenant {
		return fmt.Errorf("%w: tenant %s has %d; delete unused ones with DELETE /api/webhooks/{id}", ErrLimit, en.TenantID, n)
	}
	b, err := json.Marshal(record{Endpoint: en.Endpoint, Sealed: en.sealed})
	if err != nil {
		return fmt.Errorf("webhook store: encode endpoint: %w", err)
	}
	return s.cfg.Shared.Modify(en.ID, func(old []byte) ([]byte, error) {
		if old != nil {
			return nil, fmt.Errorf("webhook store: endpoint id %s is taken", en.ID)
		}
		return b, nil
	})
}

// deleteShared deletes tenantID's endpoint id from the shared store.
func (s *Store) deleteShared(tenantID, id string) error {
	return s.cfg.Shared.Modify(id, func(old []byte) ([]byte, error) {
		var r record
		if old == nil || id == keyCheckRecord || json.Unmarshal(old, &r) != nil || r.TenantID != tenantID {
			return nil, fmt.Errorf("%w: %q", ErrNotFound, truncate(id))
		}
		return nil, nil
	})
}

// deleteTenantShared deletes every endpoint of tenantID this node knows of.
func (s *Store) deleteTenantShared(tenantID string) (int, error) {
	s.mu.RLock()
	var ids []string
	for id, e := range s.endpoints {
		if e.TenantID == tenantID {
			ids = append(ids, id)
		}
	}
	s.mu.RUnlock()
	n := 0
	for _, id := range ids {
		err := s.deleteShared(tenantID, id)
		switch {
		case err == nil:
			n++
		case errors.Is(err, ErrNotFound): // deleted by another node meanwhile
		default:
			return n, err
		}
	}
	return n, nil
}
