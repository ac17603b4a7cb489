package webhook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"

	"duckgate/atomicfile"
)

// Claim is a delivery being stored. Exactly one of Commit and Release must
// be called.
type Claim struct {
	s    *Store
	pair [32]byte
	done chan struct{}
}

// pairKey identifies a delivery: the same provider id sent to two endpoints
// is two deliveries.
func pairKey(endpointID, deliveryID string) [32]byte {
	h := sha256.New()
	h.Write([]byte(endpointID))
	h.Write([]byte{0})
	h.Write([]byte(deliveryID))
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// Claim reserves the delivery deliveryID of endpoint endpointID for storing.
// It returns dup true if the delivery was stored within the dedup window.
// While another Claim of the same delivery is in flight it waits for it to
// settle, until ctx ends.
func (s *Store) Claim(ctx context.Context, endpointID, deliveryID string) (c *Claim, dup bool, err error) {
	k := pairKey(endpointID, deliveryID)
	for {
		s.seenMu.Lock()
		if t, ok := s.seen[k]; ok && s.cfg.Now().Unix()-t < int64(s.cfg.DedupWindow.Seconds()) {
			s.seenMu.Unlock()
			return nil, true, nil
		}
		wait, busy := s.inflight[k]
		if !busy {
			c = &Claim{s: s, pair: k, done: make(chan struct{})}
			s.inflight[k] = c.done
			s.seenMu.Unlock()
			return c, false, nil
		}
		s.seenMu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, false, fmt.Errorf("webhook store: the same delivery is being stored by another request: %w", ctx.Err())
		}
	}
}

// Commit records the delivery as stored: in memory at once, and in the seen
// log, fsynced, before it returns. An error means only the log write failed:
// the delivery is still a duplicate until the process restarts. A waiting
// Claim of the same delivery is released before the fsync: it finds the
// delivery in memory.
func (c *Claim) Commit() error {
	s := c.s
	now := s.cfg.Now().Unix()
	s.seenMu.Lock()
	s.seen[c.pair] = now
	delete(s.inflight, c.pair)
	close(c.done)
	s.seenMu.Unlock()

	s.logMu.Lock()
	defer s.logMu.Unlock()
	if s.log == nil {
		return errors.New("webhook store: the store is closed")
	}
	if _, err := s.log.Write(seenLine(nil, now, c.pair)); err != nil {
		return fmt.Errorf("webhook store: append to %s: %w", SeenFile, err)
	}
	if err := s.log.Sync(); err != nil {
		return fmt.Errorf("webhook store: fsync %s: %w", SeenFile, err)
	}
	s.appended++
	if s.appended >= minCompact {
		s.seenMu.Lock()
		live := len(s.seen)
		s.seenMu.Unlock()
		if s.appended > live {
			return s.compactLocked()
		}
	}
	return nil
}

// Release gives the delivery up unstored: a waiting Claim may take it.
func (c *Claim) Release() {
	s := c.s
	s.seenMu.Lock()
	delete(s.inflight, c.pair)
	close(c.done)
	s.seenMu.Unlock()
}

func seenLine(dst []byte, unix int64, k [32]byte) []byte {
	dst = strconv.AppendInt(dst, unix, 10)
	dst = append(dst, ' ')
	dst = hex.AppendEncode(dst, k[:])
	return append(dst, '\n')
}

// openSeen loads the seen log, dropping expired and torn lines, rewrites it
// and opens it for appending.
func (s *Store) openSeen() error {
	p := s.path(SeenFile)
	b, err := os.ReadFile(p)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("webhook store: read %s: %w", p, err)
	}
	cutoff := s.cfg.Now().Unix() - int64(s.cfg.DedupWindow.Seconds())
	for line := range bytes.Lines(b) {
		unixText, hexKey, ok := bytes.Cut(bytes.TrimSuffix(line, []byte{'\n'}), []byte{' '})
		if !ok || len(hexKey) != 64 {
			continue // a torn write at a crash
		}
		unix, err := strconv.ParseInt(string(unixText), 10, 64)
		if err != nil || unix <= cutoff {
			continue
		}
		var k [32]byte
		if _, err := hex.Decode(k[:], hexKey); err != nil {
			continue
		}
		if unix > s.seen[k] {
			s.seen[k] = unix
		}
	}
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.compactLocked()
}

// compactLocked drops expired ids and rewrites the seen log with the live
// ones, then reopens it for appending. The caller holds logMu, so no append
// is lost: a delivery committed in memory after the snapshot appends its
// line to the new file.
func (s *Store) compactLocked() error {
	cutoff := s.cfg.Now().Unix() - int64(s.cfg.DedupWindow.Seconds())
	var b []byte
	s.seenMu.Lock()
	for k, unix := range s.seen {
		if unix <= cutoff {
			delete(s.seen, k)
			continue
		}
		b = seenLine(b, unix, k)
	}
	s.seenMu.Unlock()
	p := s.path(SeenFile)
	if err := atomicfile.Write(p, b); err != nil {
		return fmt.Errorf("webhook store: compact %s: %w", p, err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("webhook store: open %s: %w", p, err)
	}
	if s.log != nil {
		s.log.Close()
	}
	s.log = f
	s.appended = 0
	return nil
}
