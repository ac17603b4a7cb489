package share

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	json "github.com/goccy/go-json"
	"go.uber.org/zap"
)

// Shared is a store of records that the nodes of a cluster share (package
// cluster/kv implements it on a JetStream key-value bucket). With
// Config.Shared set, each link is one record, keyed by the hex SHA-256 of
// its id (the id itself is never stored), instead of a line of Path's file;
// the in-memory map stays the read path and every node's changes reach it
// through Watch. A snapshot link's file stays in the scratch directory of
// the node that made it.
type Shared interface {
	// Watch calls apply with every stored record (value nil for a deleted
	// one), returns once those are applied, and then calls apply, from one
	// goroutine, with every change made by any node. An error from apply
	// means a malformed record: it is logged and skipped.
	Watch(apply func(key string, value []byte) error) error
	// Modify changes one record: f gets the stored value (nil: none) and
	// returns the new one (nil deletes it). It is a compare-and-set: if the
	// record changes meanwhile, f runs again on the new value, so no
	// concurrent change (a download count, a revocation) is lost. f's error
	// is returned as is. Modify returns once Watch's apply has applied the
	// change on this node.
	Modify(key string, f func(old []byte) ([]byte, error)) error
}

// loadShared loads the shared links and keeps following them.
func (s *Service) loadShared() error {
	if err := s.cfg.Shared.Watch(s.apply); err != nil {
		return fmt.Errorf("share: load the shared links: %w", err)
	}
	return nil
}

// apply applies one shared record to the links: the watcher of every node
// calls it, for its own changes and the others'. Of a link already known,
// only what may change after its creation is taken.
func (s *Service) apply(key string, value []byte) error {
	h, err := hex.DecodeString(key)
	if err != nil || len(h) != sha256.Size {
		return errors.New("the key is not the hex SHA-256 of a link id")
	}
	hash := [32]byte(h)
	if value == nil {
		s.mu.Lock()
		delete(s.byHash, hash)
		s.mu.Unlock()
		return nil
	}
	var r record
	if err := json.Unmarshal(value, &r); err != nil {
		return err
	}
	if r.Hash != key || r.Tenant == "" || r.SQL == "" {
		return errors.New("the record lacks its hash, tenant or SQL")
	}
	nl, err := linkOf(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.byHash[hash]
	if l == nil {
		s.byHash[hash] = nl
		return nil
	}
	l.snapshot, l.revoked, l.refused = nl.snapshot, nl.revoked, nl.refused
	l.downloads.Store(r.Downloads + l.unsaved.Load())
	return nil
}

// modifyShared changes l's shared record with f, a compare-and-set: f may
// run more than once, each time on the latest record, and returns false to
// delete the record. A record gone meanwhile is left gone.
func (s *Service) modifyShared(l *link, f func(r *record) (keep bool)) error {
	return s.cfg.Shared.Modify(hex.EncodeToString(l.hash[:]), func(old []byte) ([]byte, error) {
		if old == nil {
			return nil, nil
		}
		var r record
		if err := json.Unmarshal(old, &r); err != nil {
			return nil, fmt.Errorf("share: link %s: its shared record is malformed: %w", l.linkID, err)
		}
		if !f(&r) {
			return nil, nil
		}
		return json.Marshal(r)
	})
}

// createShared stores a new link.
func (s *Service) createShared(l *link) error {
	b, err := json.Marshal(recordOf(l))
	if err != nil {
		return fmt.Errorf("share: encode link: %w", err)
	}
	return s.cfg.Shared.Modify(hex.EncodeToString(l.hash[:]), func(old []byte) ([]byte, error) {
		if old != nil {
			return nil, errors.New("share: a link with this id exists") // 192 random bits: never
		}
		return b, nil
	})
}

// revokeShared revokes the tenant's link ref and deletes its snapshot if
// it is on this node; otherwise the record keeps the file's name and the
// node that has it deletes it at its next sweep.
func (s *Service) revokeShared(tenantID, ref string) (linkInfo, error) {
	s.mu.Lock()
	l := s.findLocked(tenantID, ref)
	var file string
	if l != nil {
		file = l.snapshot
	}
	s.mu.Unlock()
	if l == nil {
		return linkInfo{}, ErrNotFound
	}
	if !s.hasSnapshot(tenantID, file) {
		file = ""
	}
	now := s.cfg.Now().UTC().Truncate(time.Second)
	err := s.modifyShared(l, func(r *record) bool {
		if r.Revoked == nil {
			r.Revoked = &now
		}
		if file != "" && r.File == file {
			r.File = ""
		}
		return true
	})
	if err != nil {
		return linkInfo{}, err
	}
	s.removeSnapshot(tenantID, file)
	s.mu.Lock()
	info := infoOf(l, s.cfg.Now())
	s.mu.Unlock()
	s.log.Info("share link revoked", zap.String("tenant", tenantID), zap.String("link_id", l.linkID))
	return info, nil
}

// dropTenantShared deletes every link of a deleted tenant that this node
// knows of.
func (s *Service) dropTenantShared(tenantID string) error {
	s.mu.Lock()
	var links []*link
	for _, l := range s.byHash {
		if l.tenant == tenantID {
			links = append(links, l)
		}
	}
	s.mu.Unlock()
	var errs []error
	for _, l := range links {
		if err := s.modifyShared(l, func(*record) bool { return false }); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// sweepShared is sweep with the links shared: it deletes the snapshot
// files of expired and revoked links that are on this node and clears them
// in the records, drops links expired more than KeepExpired ago and adds
// the downloads counted here to the records. Every node sweeps; a file's
// name is cleared only by the node that has the file, so none is left
// behind; every change is a compare-and-set.
func (s *Service) sweepShared() error {
	now := s.cfg.Now()
	type change struct {
		l         *link
		drop      bool
		file      string // a snapshot to delete and clear
		downloads int64
	}
	var changes []change
	s.mu.Lock()
	for _, l := range s.byHash {
		expired := !now.Before(l.expires)
		c := change{l: l, downloads: l.unsaved.Load(), drop: expired && now.Sub(l.expires) >= s.cfg.KeepExpired}
		if l.snapshot != "" && (expired || !l.revoked.IsZero()) {
			c.file = l.snapshot
		}
		if c.drop || c.file != "" || c.downloads > 0 {
			changes = append(changes, c)
		}
	}
	s.mu.Unlock()
	var errs []error
	for _, c := range changes {
		if !s.hasSnapshot(c.l.tenant, c.file) {
			c.file = "" // another node's, or deleted already
		}
		if !c.drop && c.file == "" && c.downloads == 0 {
			continue
		}
		s.removeSnapshot(c.l.tenant, c.file)
		err := s.modifyShared(c.l, func(r *record) bool {
			if c.drop {
				return false
			}
			if c.file != "" && r.File == c.file {
				r.File = ""
			}
			r.Downloads += c.downloads
			return true
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		// The record now holds them: apply counted them twice meanwhile.
		c.l.unsaved.Add(-c.downloads)
		c.l.downloads.Add(-c.downloads)
	}
	return errors.Join(errs...)
}

// hasSnapshot reports whether the snapshot file of a link of the tenant is
// on this node.
func (s *Service) hasSnapshot(tenantID, file string) bool {
	if file == "" {
		return false
	}
	_, err := os.Stat(filepath.Join(s.engine.ScratchDir(tenantID), file))
	return err == nil
}
