package batcher

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

func openIdemT(t *testing.T, path string, window time.Duration) *idemStore {
	t.Helper()
	s, err := openIdemStore(path, window, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.close(context.Background()) })
	return s
}

// checkBegin calls begin and checks its answer: want is the stored
// response, "" for a fresh reservation.
func checkBegin(t *testing.T, s *idemStore, tenant, key, want string, wantErr error) {
	t.Helper()
	resp, found, err := s.begin(tenant, key)
	switch {
	case wantErr != nil:
		if !errors.Is(err, wantErr) {
			t.Fatalf("begin(%q, %q) = %q, %v, %v; want %v", tenant, key, resp, found, err, wantErr)
		}
	case err != nil:
		t.Fatalf("begin(%q, %q): %v", tenant, key, err)
	case want == "" && (found || resp != nil):
		t.Fatalf("begin(%q, %q) found %q; want a reservation", tenant, key, resp)
	case want != "" && (!found || string(resp) != want):
		t.Fatalf("begin(%q, %q) = %q, %v; want %q", tenant, key, resp, found, want)
	}
}

func TestIdemBeginAcceptAbort(t *testing.T) {
	s := openIdemT(t, "", time.Hour)
	checkBegin(t, s, "t1", "k", "", nil)
	checkBegin(t, s, "t1", "k", "", ErrInProgress)
	checkBegin(t, s, "t2", "k", "", nil) // keys are per tenant
	s.abort("t1", "k")
	checkBegin(t, s, "t1", "k", "", nil) // released: reserved again
	s.accept("t1", "k", []byte(`{"accepted":1}`), time.Now())
	checkBegin(t, s, "t1", "k", `{"accepted":1}`, nil)
	s.abort("t1", "k") // an accepted key is not released
	checkBegin(t, s, "t1", "k", `{"accepted":1}`, nil)
	checkBegin(t, s, "t2", "k", "", ErrInProgress)

	// A key accepted longer ago than the window is free again, and live
	// (what compaction keeps) drops it.
	s.accept("t1", "old", []byte(`{}`), time.Now().Add(-2*time.Hour))
	s.accept("t1", "old2", []byte(`{}`), time.Now().Add(-2*time.Hour))
	checkBegin(t, s, "t1", "old", "", nil)
	s.live()
	s.mu.Lock()
	_, kept := s.entries[idemID("t1", "old2")]
	_, fresh := s.entries[idemID("t1", "k")]
	s.mu.Unlock()
	if kept || !fresh {
		t.Fatalf("after live: old key kept %v, fresh key kept %v", kept, fresh)
	}
	if err := s.persist(context.Background(), []*record{{tenant: "t1", idemKey: "k", response: []byte(`{}`)}}); err != nil {
		t.Fatalf("persist without a file: %v", err)
	}
}

func TestIdemPersistReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "idempotency.ndjson")
	now := time.Now()
	s := openIdemT(t, path, time.Hour)
	checkBegin(t, s, "t1", `key "one" ü\`, "", nil)
	recs := []*record{
		{tenant: "t1", idemKey: `key "one" ü\`, response: []byte(`{"accepted":2,"rejected":0}`), at: now.Unix()},
		{tenant: "t2", idemKey: "k\n2", response: []byte(`{"accepted":1}`), at: now.Unix()},
		{tenant: "t1", idemKey: "old", response: []byte(`{"accepted":9}`), at: now.Add(-2 * time.Hour).Unix()},
	}
	if err := s.persist(context.Background(), recs[:2]); err != nil {
		t.Fatal(err)
	}
	if err := s.persist(context.Background(), recs[2:]); err != nil {
		t.Fatal(err)
	}
	if err := s.close(context.Background()); err != nil {
		t.Fatal(err)
	}

	s = openIdemT(t, path, time.Hour)
	checkBegin(t, s, "t1", `key "one" ü\`, `{"accepted":2,"rejected":0}`, nil)
	checkBegin(t, s, "t2", "k\n2", `{"accepted":1}`, nil)
	checkBegin(t, s, "t1", "old", "", nil) // beyond the window: dropped on reopen
	checkBegin(t, s, "t2", `key "one" ü\`, "", nil)
	if err := s.close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The reopen compacted the file: the old key is gone from it.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(raw), "\n"); n != 2 || strings.Contains(string(raw), `"old"`) {
		t.Fatalf("compacted file holds %d lines:\n%s", n, raw)
	}
}

func TestIdemTornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "idempotency.ndjson")
	at := time.Now().Unix()
	good := string(appendIdemLine(nil, "t", "good", &idemEntry{resp: []byte(`{"accepted":1}`), at: time.Unix(at, 0)}))
	torn := string(appendIdemLine(nil, "t", "torn", &idemEntry{resp: []byte(`{"accepted":2}`), at: time.Unix(at, 0)}))
	torn = torn[:len(torn)-6] // cut by a crash, no newline
	if err := os.WriteFile(path, []byte(good+"not json\n"+torn), 0o600); err != nil {
		t.Fatal(err)
	}
	s := openIdemT(t, path, time.Hour)
	checkBegin(t, s, "t", "good", `{"accepted":1}`, nil)
	checkBegin(t, s, "t", "torn", "", nil)
	// A key saved after the torn line must not be glued to it.
	if err := s.persist(context.Background(), []*record{{tenant: "t", idemKey: "after", response: []byte(`{"accepted":3}`), at: at}}); err != nil {
		t.Fatal(err)
	}
	if err := s.close(context.Background()); err != nil {
		t.Fatal(err)
	}
	s = openIdemT(t, path, time.Hour)
	checkBegin(t, s, "t", "good", `{"accepted":1}`, nil)
	checkBegin(t, s, "t", "after", `{"accepted":3}`, nil)
}

// The file is rewritten while the process runs once it holds far more lines
// than live keys, and what it keeps still reopens.
func TestIdemStoreCompactsWhileRunning(t *testing.T) {
	path := filepath.Join(t.TempDir(), "idem.ndjson")
	s := openIdemT(t, path, time.Hour)
	// The same key accepted again and again: one live key, many lines.
	rec := &record{tenant: "t", idemKey: "k", response: []byte(`{"accepted":1}`), at: time.Now().Unix()}
	s.accept("t", "k", rec.response, time.Now())
	batch := make([]*record, 1000)
	for i := range batch {
		batch[i] = rec
	}
	for range compactSlack/len(batch) + 2 {
		if err := s.persist(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.close(context.Background()); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(raw), "\n"); n > len(batch)+1 {
		t.Fatalf("%d lines after persisting %d: no compaction", n, compactSlack+2000)
	}
	s2 := openIdemT(t, path, time.Hour)
	if resp, found, err := s2.begin("t", "k"); err != nil || !found || string(resp) != `{"accepted":1}` {
		t.Fatalf("after compaction and reopen: %q %v %v", resp, found, err)
	}
}

// An insert with a key looks it up and accepts it while another one's keys
// wait for their fsync: the store's lock is never held across the disk.
func TestIdemBeginNotBlockedByFsync(t *testing.T) {
	path := filepath.Join(t.TempDir(), "idem.ndjson")
	s := openIdemT(t, path, time.Hour)
	syncing, unblock := make(chan struct{}), make(chan struct{})
	s.syncFile = func(f *os.File) error { // set before the first persist: the writer reads it after
		close(syncing)
		<-unblock
		return f.Sync()
	}
	persisted := make(chan error, 1)
	go func() {
		persisted <- s.persist(context.Background(), []*record{{tenant: "t", idemKey: "a", response: []byte(`{}`), at: time.Now().Unix()}})
	}()
	<-syncing
	looked := make(chan error, 1)
	go func() {
		_, found, err := s.begin("t", "b")
		if err == nil && found {
			err = errors.New("found a key never accepted")
		}
		s.accept("t", "b", []byte(`{"accepted":1}`), time.Now())
		looked <- err
	}()
	deadline := time.NewTimer(time.Minute) // a hang, not a duration, fails
	defer deadline.Stop()
	select {
	case err := <-looked:
		if err != nil {
			close(unblock)
			t.Fatal(err)
		}
	case <-deadline.C:
		close(unblock)
		t.Fatal("begin waited for another insert's fsync")
	}
	close(unblock)
	if err := <-persisted; err != nil {
		t.Fatal(err)
	}
}

// After a failed write or fsync the file may end in a torn line, which
// would swallow the next line appended: the next group rewrites the file
// from memory first, so every key persisted after the failure reopens.
func TestIdemRecoversAfterFailedWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "idem.ndjson")
	s := openIdemT(t, path, time.Hour)
	fail := true
	s.syncFile = func(f *os.File) error { // set before the first persist: the writer reads it after
		if fail {
			// What a torn write leaves: half a line, no newline.
			_, _ = f.WriteString(`{"t":"t","k":"half`)
			return errors.New("I/O error")
		}
		return f.Sync()
	}
	at := time.Now().Unix()
	rec := func(key string) []*record {
		s.accept("t", key, []byte(`{"accepted":1}`), time.Unix(at, 0))
		return []*record{{tenant: "t", idemKey: key, response: []byte(`{"accepted":1}`), at: at}}
	}
	if err := s.persist(context.Background(), rec("lost-fsync")); err == nil {
		t.Fatal("persist with a failing fsync succeeded")
	}
	fail = false
	if err := s.persist(context.Background(), rec("after")); err != nil {
		t.Fatal(err)
	}
	if err := s.close(context.Background()); err != nil {
		t.Fatal(err)
	}
	s = openIdemT(t, path, time.Hour)
	checkBegin(t, s, "t", "after", `{"accepted":1}`, nil)
	checkBegin(t, s, "t", "lost-fsync", `{"accepted":1}`, nil) // in memory when the file was rewritten
}
