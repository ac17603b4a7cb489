package batcher

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"duckgate/atomicfile"
	"duckgate/jsonstr"
)

// ErrInProgress means an insert with the same Idempotency-Key is being
// handled right now: the client should retry shortly (409).
var ErrInProgress = errors.New("an insert with this Idempotency-Key is in progress")

// idemStore remembers, per tenant and Idempotency-Key, the response of an
// accepted insert for a window of time.
//
// A key becomes durable with its rows: it travels in the insert's log
// record, and once the rows are committed the writer appends it to the
// store's file (one fsync per flush) before the log segment can go. On
// start the file is read back, dropping keys older than the window, and the
// log replay re-adds keys of records not yet in the file.
type idemStore struct {
	path   string
	window time.Duration

	mu      sync.Mutex
	entries map[string]*idemEntry // by tenant + "\x00" + key; guarded by mu
	f       *os.File              // append-only file; guarded by mu
	lines   int                   // lines in the file; guarded by mu
}

type idemEntry struct {
	resp []byte    // nil while in progress
	at   time.Time // when accepted
}

// idemLine is one line of the store's file.
type idemLine struct {
	Tenant string          `json:"t"`
	Key    string          `json:"k"`
	At     int64           `json:"at"`
	Resp   json.RawMessage `json:"r"`
}

func idemID(tenant, key string) string { return tenant + "\x00" + key }

// openIdemStore loads path, keeping keys younger than window, and rewrites
// it compacted. An empty path keeps keys in memory only.
func openIdemStore(path string, window time.Duration) (*idemStore, error) {
	s := &idemStore{path: path, window: window, entries: make(map[string]*idemEntry)}
	if path == "" {
		return s, nil
	}
	if f, err := os.Open(path); err == nil {
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		cutoff := time.Now().Add(-window)
		for sc.Scan() {
			var l idemLine
			if json.Unmarshal(sc.Bytes(), &l) != nil {
				continue // a line torn by a crash
			}
			if at := time.Unix(l.At, 0); at.After(cutoff) {
				s.entries[idemID(l.Tenant, l.Key)] = &idemEntry{resp: l.Resp, at: at}
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("read idempotency keys: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("open idempotency keys: %w", err)
	}
	if err := s.compact(); err != nil {
		return nil, err
	}
	return s, nil
}

// compact rewrites the file with the entries kept, atomically.
func (s *idemStore) compact() error {
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("compact idempotency keys: %w", err)
	}
	w := bufio.NewWriter(f)
	var line []byte
	s.lines = 0
	for id, e := range s.entries {
		if e.resp == nil {
			continue
		}
		tenant, key, _ := cutID(id)
		line = appendIdemLine(line[:0], tenant, key, e)
		_, _ = w.Write(line)
		s.lines++
	}
	err = w.Flush()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.path)
	}
	if err != nil {
		return fmt.Errorf("compact idempotency keys: %w", err)
	}
	_ = atomicfile.SyncDir(filepath.Dir(s.path))
	s.f, err = os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open idempotency keys: %w", err)
	}
	return nil
}

func cutID(id string) (tenant, key string, ok bool) {
	for i := 0; i < len(id); i++ {
		if id[i] == 0 {
			return id[:i], id[i+1:], true
		}
	}
	return id, "", false
}

func appendIdemLine(dst []byte, tenant, key string, e *idemEntry) []byte {
	dst = append(dst, `{"t":`...)
	dst = jsonstr.Append(dst, tenant)
	dst = append(dst, `,"k":`...)
	dst = jsonstr.Append(dst, key)
	dst = append(dst, `,"at":`...)
	dst = strconv.AppendInt(dst, e.at.Unix(), 10)
	dst = append(dst, `,"r":`...)
	dst = append(dst, e.resp...)
	return append(dst, "}\n"...)
}

// begin returns the stored response for the key, or reserves the key.
func (s *idemStore) begin(tenant, key string) ([]byte, bool, error) {
	id := idemID(tenant, key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.entries[id]; e != nil {
		if time.Since(e.at) < s.window {
			if e.resp == nil {
				return nil, false, ErrInProgress
			}
			return e.resp, true, nil
		}
	}
	s.entries[id] = &idemEntry{at: time.Now()}
	return nil, false, nil
}

// abort releases a reserved key.
func (s *idemStore) abort(tenant, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.entries[idemID(tenant, key)]; e != nil && e.resp == nil {
		delete(s.entries, idemID(tenant, key))
	}
}

// accept stores the response of an accepted insert (in memory).
func (s *idemStore) accept(tenant, key string, resp []byte, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries[idemID(tenant, key)] = &idemEntry{resp: resp, at: at}
}

// persist appends keys whose rows are committed to the file, with one fsync.
func (s *idemStore) persist(recs []*record) error {
	if s.f == nil || len(recs) == 0 {
		return nil
	}
	var buf []byte
	for _, r := range recs {
		buf = appendIdemLine(buf, r.tenant, r.idemKey, &idemEntry{resp: r.response, at: time.Unix(r.at, 0)})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.f.Write(buf); err != nil {
		return fmt.Errorf("persist idempotency keys: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("persist idempotency keys: %w", err)
	}
	s.lines += len(recs)
	if s.lines > 2*len(s.entries)+compactSlack {
		// The file holds mostly expired or repeated keys: rewrite it with
		// the live ones, so it stays bounded while the process runs.
		s.expireLocked()
		_ = s.f.Close()
		if err := s.compact(); err != nil {
			// Keep appending to the old file: it is still complete.
			s.f, _ = os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0o600)
			return err
		}
	}
	return nil
}

// compactSlack is how many lines the file may hold beyond twice the live
// keys before it is rewritten.
const compactSlack = 100_000

// expire drops keys older than the window.
func (s *idemStore) expire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked()
}

func (s *idemStore) expireLocked() {
	cutoff := time.Now().Add(-s.window)
	for id, e := range s.entries {
		if e.at.Before(cutoff) {
			delete(s.entries, id)
		}
	}
}

func (s *idemStore) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

func timeUnix(sec int64) time.Time { return time.Unix(sec, 0) }
