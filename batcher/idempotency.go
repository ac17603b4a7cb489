package batcher

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	json "github.com/goccy/go-json"

	"go.uber.org/zap"

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
// record, and once the rows are committed the writer has the key appended to
// the store's file before the log segment can go. One goroutine owns the
// file and commits in groups, as the write-ahead log does: persist queues
// its lines under mu and waits; the file writer takes the whole queue,
// writes it and fsyncs once, then answers every waiter. So begin and accept
// (every insert with a key) never wait for the disk. On start the file is
// read back, dropping keys older than the window, and the log replay
// re-adds keys of records not yet in the file.
type idemStore struct {
	path   string
	window time.Duration
	log    *zap.Logger

	mu      sync.Mutex
	entries map[string]*idemEntry // by tenant + "\x00" + key; guarded by mu
	queue   []byte                // lines for the file writer; guarded by mu
	queued  int                   // lines in queue; guarded by mu
	waiting []chan error          // persist calls whose lines are in queue; guarded by mu
	closed  bool                  // guarded by mu

	wake chan struct{} // 1-slot: "the queue has lines"
	quit chan struct{} // closed by close
	done chan struct{} // closed when the file writer has returned

	// Owned by the file writer goroutine (by openIdemStore before it starts).
	f        *os.File             // append-only file
	lines    int                  // lines in the file
	broken   bool                 // a write or fsync failed: the file may end in a torn line
	syncFile func(*os.File) error // (*os.File).Sync; tests stall it
}

// idemEntry is immutable once in the map: accept and begin replace it.
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

// errIdemClosed is persist after close.
var errIdemClosed = errors.New("idempotency key store is closed")

// openIdemStore loads path, keeping keys younger than window, rewrites it
// compacted and starts the file writer, which close stops. An empty path
// keeps keys in memory only.
func openIdemStore(path string, window time.Duration, log *zap.Logger) (*idemStore, error) {
	s := &idemStore{path: path, window: window, log: log, entries: make(map[string]*idemEntry),
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
		syncFile: (*os.File).Sync}
	if path == "" {
		close(s.done)
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
	if err := s.compact(s.live()); err != nil {
		return nil, err
	}
	go s.run()
	return s, nil
}

// idemKV is an accepted key, as compact writes it.
type idemKV struct {
	id string
	e  *idemEntry
}

// live returns the accepted keys younger than the window, dropping older
// ones from the map.
func (s *idemStore) live() []idemKV {
	cutoff := time.Now().Add(-s.window)
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]idemKV, 0, len(s.entries))
	for id, e := range s.entries {
		switch {
		case e.at.Before(cutoff):
			delete(s.entries, id)
		case e.resp != nil:
			out = append(out, idemKV{id, e})
		}
	}
	return out
}

// compact rewrites the file with the keys kept, atomically, and appends to
// the new file from then on. On error the old file stays in use: it is
// still complete. Called by the file writer only (or before it starts).
func (s *idemStore) compact(keep []idemKV) error {
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("compact idempotency keys: %w", err)
	}
	w := bufio.NewWriter(f)
	var line []byte
	for _, kv := range keep {
		tenant, key, _ := cutID(kv.id)
		line = appendIdemLine(line[:0], tenant, key, kv.e)
		_, _ = w.Write(line)
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
		_ = os.Remove(tmp)
		return fmt.Errorf("compact idempotency keys: %w", err)
	}
	_ = atomicfile.SyncDir(filepath.Dir(s.path))
	nf, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open idempotency keys: %w", err)
	}
	if s.f != nil {
		_ = s.f.Close()
	}
	s.f, s.lines = nf, len(keep)
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

// persist makes the keys of committed records durable: it queues their
// lines for the file writer and returns once they are fsynced, or when ctx
// ends (the keys are then still in the write-ahead log).
func (s *idemStore) persist(ctx context.Context, recs []*record) error {
	if s.path == "" || len(recs) == 0 {
		return nil
	}
	var buf []byte
	for _, r := range recs {
		buf = appendIdemLine(buf, r.tenant, r.idemKey, &idemEntry{resp: r.response, at: time.Unix(r.at, 0)})
	}
	ch := make(chan error, 1)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("persist idempotency keys: %w", errIdemClosed)
	}
	s.queue = append(s.queue, buf...)
	s.queued += len(recs)
	s.waiting = append(s.waiting, ch)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default: // the file writer is already awake
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return fmt.Errorf("persist idempotency keys: %w", ctx.Err())
	}
}

// run is the file writer: it writes what persist queued, a group at a time,
// until close.
func (s *idemStore) run() {
	defer close(s.done)
	for {
		select {
		case <-s.wake:
			s.writeQueued()
		case <-s.quit:
			s.writeQueued() // close has stopped persist: this is the last
			if err := s.f.Close(); err != nil {
				s.log.Warn("close idempotency keys", zap.Error(err))
			}
			return
		}
	}
}

// writeQueued writes the queued lines with one fsync and answers their
// waiters, then compacts the file if it has grown far beyond the live keys.
func (s *idemStore) writeQueued() {
	s.mu.Lock()
	buf, n, waiting := s.queue, s.queued, s.waiting
	s.queue, s.queued, s.waiting = nil, 0, nil
	s.mu.Unlock()
	if len(waiting) == 0 {
		return
	}
	var err error
	if s.broken {
		// The last group may have left a torn line, which would swallow the
		// first line appended after it: rewrite the file from the keys in
		// memory (a superset of every line written) before appending.
		err = s.compact(s.live())
	}
	if err == nil {
		_, err = s.f.Write(buf)
	}
	if err == nil {
		err = s.syncFile(s.f)
	}
	s.broken = err != nil
	if err != nil {
		err = fmt.Errorf("persist idempotency keys: %w", err)
	} else {
		s.lines += n
	}
	for _, ch := range waiting {
		ch <- err
	}
	s.mu.Lock()
	grown := s.lines > 2*len(s.entries)+compactSlack
	s.mu.Unlock()
	if err == nil && grown {
		// The file holds mostly expired or repeated keys: rewrite it with
		// the live ones, so it stays bounded while the process runs.
		if err := s.compact(s.live()); err != nil {
			s.log.Warn("idempotency keys not compacted; still appending to the complete old file", zap.Error(err))
		}
	}
}

// compactSlack is how many lines the file may hold beyond twice the live
// keys before it is rewritten.
const compactSlack = 100_000

// close stops the file writer once it has written what was queued. Its
// last group is one write and one fsync: when ctx ends first, close still
// waits for it, up to stopGrace, so that no goroutine outlives the batcher.
func (s *idemStore) close(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		if s.path != "" {
			close(s.quit)
		}
	}
	s.mu.Unlock()
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
	}
	grace := time.NewTimer(stopGrace)
	defer grace.Stop()
	select {
	case <-s.done:
		return nil
	case <-grace.C:
		return fmt.Errorf("stop the idempotency key writer: %w; still writing %s after it", ctx.Err(), stopGrace)
	}
}

func timeUnix(sec int64) time.Time { return time.Unix(sec, 0) }
