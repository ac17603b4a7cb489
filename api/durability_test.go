package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"duckgate/wal"
)

func queryInt(t *testing.T, e *env, tenantID, q string) int {
	t.Helper()
	var n int
	if err := e.openDB(tenantID).QueryRow(q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// An acknowledged insert survives a crash before any flush: the log replays it.
func TestAckedRowsSurviveCrashBeforeFlush(t *testing.T) {
	slow := func(c *envConfig) { c.batcher.FlushInterval = time.Hour }
	e := newEnv(t, slow)
	id, key := e.tenant("acme")
	for i := range 3 {
		r := e.do("POST", "/api/data/insert/events", fmt.Appendf(nil, `{"i":%d}`+"\n"+`{"i":%d}`, 2*i, 2*i+1), "X-API-KEY", key)
		if r.status != 200 {
			t.Fatalf("insert: %d %s", r.status, r.body)
		}
	}
	e.crash()
	e2 := startEnv(t, e.dir, slow)
	e2.stop()
	if n := queryInt(t, e2, id, `SELECT count(DISTINCT i) FROM events WHERE i BETWEEN 0 AND 5`); n != 6 {
		t.Fatalf("after crash: %d distinct rows, want 6", n)
	}
	if n := queryInt(t, e2, id, `SELECT count(*) FROM events`); n != 6 {
		t.Fatalf("after crash: %d rows, want 6", n)
	}
}

// A crash after the DuckDB commit but before the log is cleaned up must not
// store the rows twice: the commit recorded how far the table got.
func TestNoDuplicatesAfterCrashPostCommit(t *testing.T) {
	e := newEnv(t)
	id, key := e.tenant("acme")
	for i := range 4 {
		if r := e.insert(key, "events", fmt.Sprintf(`{"i":%d}`, i)); r.status != 200 {
			t.Fatalf("insert: %d %s", r.status, r.body)
		}
	}
	e.crash()
	e2 := startEnv(t, e.dir)
	// New rows after recovery keep flowing.
	_, key2 := "", key
	if r := e2.insert(key2, "events", `{"i":4}`); r.status != 200 {
		t.Fatalf("insert after recovery: %d %s", r.status, r.body)
	}
	e2.crash()
	e3 := startEnv(t, e.dir)
	e3.stop()
	if n := queryInt(t, e3, id, `SELECT count(*) FROM events`); n != 5 {
		t.Fatalf("rows = %d, want 5 (each once)", n)
	}
}

func TestIdempotencyKey(t *testing.T) {
	e := newEnv(t)
	id, key := e.tenant("acme")
	_, otherKey := e.tenant("other")
	send := func(e *env, key, idem, body string) response {
		t.Helper()
		return e.do("POST", "/api/data/insert/events", []byte(body), "X-API-KEY", key, "Idempotency-Key", idem)
	}
	first := send(e, key, "req-1", `[{"a":1},{"a":2},7]`)
	if first.status != 200 {
		t.Fatalf("first: %d %s", first.status, first.body)
	}
	again := send(e, key, "req-1", `[{"a":1},{"a":2},7]`)
	if again.status != 200 || string(again.body) != string(first.body) || again.header["Idempotent-Replayed"] != "true" {
		t.Fatalf("retry: %d %s %v", again.status, again.body, again.header)
	}
	// Another tenant's key space is its own.
	if r := send(e, otherKey, "req-1", `{"a":9}`); r.status != 200 || r.header["Idempotent-Replayed"] != "" {
		t.Fatalf("other tenant: %d %s", r.status, r.body)
	}
	// A request that failed does not burn its key.
	if r := send(e, key, "req-2", `not json`); r.status != 400 {
		t.Fatalf("bad body: %d", r.status)
	}
	if r := send(e, key, "req-2", `{"a":3}`); r.status != 200 || r.header["Idempotent-Replayed"] != "" {
		t.Fatalf("req-2 after a failure: %d %s", r.status, r.body)
	}
	if r := send(e, key, "req-3", `{"a":4}`); r.status != 200 {
		t.Fatalf("req-3: %d", r.status)
	}
	// Across a crash (req-3 may be committed or only in the log) and a clean restart.
	e.crash()
	e2 := startEnv(t, e.dir)
	for _, k := range []string{"req-1", "req-3"} {
		if r := send(e2, key, k, `{"a":100}`); r.status != 200 || r.header["Idempotent-Replayed"] != "true" {
			t.Fatalf("%s after crash: %d %s", k, r.status, r.body)
		}
	}
	e3 := e2.restart()
	if r := send(e3, key, "req-1", `{"a":100}`); r.header["Idempotent-Replayed"] != "true" {
		t.Fatalf("req-1 after restart: %d %s", r.status, r.body)
	}
	if r := send(e3, key, string(make([]byte, 300)), `{}`); r.status != 400 {
		t.Fatalf("oversized key: %d", r.status)
	}
	e3.stop()
	if n := queryInt(t, e3, id, `SELECT count(*) FROM events`); n != 4 {
		t.Fatalf("rows = %d, want 4 (1, 2, 3, 4 once each)", n)
	}
}

// faultyFile fails writes while the disk is "full".
type faultyFile struct {
	wal.File
	full *atomic.Bool
}

func (f faultyFile) Write(p []byte) (int, error) {
	if f.full.Load() {
		return 0, syscall.ENOSPC
	}
	return f.File.Write(p)
}

func TestDiskFullAnswers503AndRecovers(t *testing.T) {
	var full atomic.Bool
	e := newEnv(t, func(c *envConfig) {
		c.walFile = func(name string, flag int, perm os.FileMode) (wal.File, error) {
			f, err := os.OpenFile(name, flag, perm)
			if err != nil {
				return nil, err
			}
			return faultyFile{File: f, full: &full}, nil
		}
	})
	id, key := e.tenant("acme")
	if r := e.insert(key, "events", `{"n":1}`); r.status != 200 {
		t.Fatalf("insert: %d %s", r.status, r.body)
	}
	full.Store(true)
	r := e.do("POST", "/api/data/insert/events", []byte(`{"n":2}`), "X-API-KEY", key)
	if r.status != 503 || r.header["Retry-After"] == "" {
		t.Fatalf("disk full: %d %v %s", r.status, r.header, r.body)
	}
	var body struct{ Error string }
	if json.Unmarshal(r.body, &body) != nil || body.Error == "" {
		t.Fatalf("disk full body: %s", r.body)
	}
	// Queries keep working meanwhile (the query engine is another package;
	// here the server still answers health checks).
	if h := e.do("GET", "/healthz", nil); h.status != 200 {
		t.Fatalf("healthz during disk full: %d", h.status)
	}
	full.Store(false)
	if r := e.insert(key, "events", `{"n":3}`); r.status != 200 {
		t.Fatalf("after disk has room: %d %s", r.status, r.body)
	}
	e.stop()
	if n := queryInt(t, e, id, `SELECT count(*) FROM events WHERE n IN (1, 3)`); n != 2 {
		t.Fatalf("rows = %d, want 2", n)
	}
	if n := queryInt(t, e, id, `SELECT count(*) FROM events WHERE n = 2`); n != 0 {
		t.Fatalf("unacknowledged row stored %d times", n)
	}
}

func TestDurabilityNone(t *testing.T) {
	e := newEnv(t, func(c *envConfig) { c.noWAL = true })
	id, key := e.tenant("acme")
	if r := e.insert(key, "events", `{"n":1}`); r.status != 200 {
		t.Fatalf("insert: %d %s", r.status, r.body)
	}
	e.stop()
	if n := queryInt(t, e, id, `SELECT count(*) FROM events`); n != 1 {
		t.Fatalf("rows = %d", n)
	}
	if _, err := os.Stat(e.dir + "/wal"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("durability=none wrote a log: %v", err)
	}
}

// Log segments go only once every insert in them is committed in DuckDB.
func TestLogSegmentsDeletedOnlyAfterCommit(t *testing.T) {
	e := newEnv(t, func(c *envConfig) {
		c.batcher.FlushInterval = time.Hour
		c.walSeg = 4 << 10
	})
	id, key := e.tenant("acme")
	dir := e.dir
	segments := func() int {
		m, err := filepath.Glob(filepath.Join(dir, "wal", "*.wal"))
		if err != nil {
			t.Fatal(err)
		}
		return len(m)
	}
	for i := range 50 {
		body := fmt.Sprintf(`{"i":%d,"pad":%q}`, i, strings.Repeat("x", 500))
		if r := e.do("POST", "/api/data/insert/events", []byte(body), "X-API-KEY", key); r.status != 200 {
			t.Fatalf("insert: %d %s", r.status, r.body)
		}
	}
	before := segments()
	if before < 5 {
		t.Fatalf("%d segments before the flush; want the ~25 KB of records spread over several", before)
	}
	// Another table commits (and releases what it can): the events
	// records, still uncommitted, must keep their segments.
	if r := e.insert(key, "other", `{"x":1}`); r.status != 200 {
		t.Fatalf("insert other: %d %s", r.status, r.body)
	}
	if n := segments(); n < before {
		t.Fatalf("%d segments after another table's commit, had %d: uncommitted records lost their log", n, before)
	}
	e.crash()
	e = startEnv(t, e.dir, func(c *envConfig) { c.walSeg = 4 << 10 })
	// Recovery committed everything: only the active segment is left.
	if after := segments(); after != 1 {
		t.Fatalf("%d segments after everything was committed, want only the active one (had %d)", after, before)
	}
	e.stop()
	if n := queryInt(t, e, id, `SELECT count(*) FROM events`); n != 50 {
		t.Fatalf("rows = %d", n)
	}
}

// A replayed batch that DuckDB refuses does not stop the server from
// starting: it stays queued, is retried, and ends in the quarantine table.
func TestRecoveryWithAFailingBatchStillStarts(t *testing.T) {
	slow := func(c *envConfig) {
		c.batcher.FlushInterval = time.Hour
		c.batcher.RetryBackoff = time.Millisecond
		c.batcher.QuarantineAfter = 3
	}
	e := newEnv(t, slow)
	id, key := e.tenant("acme")
	h, err := e.pool.Acquire(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	// A table no batch of positive numbers can go into.
	if _, err := h.DB.Exec(`CREATE TABLE t (a BIGINT CHECK (a < 0))`); err != nil {
		t.Fatal(err)
	}
	h.Release()
	if r := e.do("POST", "/api/data/insert/t", []byte(`{"a":5}`), "X-API-KEY", key); r.status != 200 {
		t.Fatalf("insert: %d %s", r.status, r.body)
	}
	e.crash()
	e2 := startEnv(t, e.dir, slow) // fails the test if recovery returns an error
	if r := e2.do("GET", "/healthz", nil); r.status != 200 {
		t.Fatalf("healthz after recovery: %d", r.status)
	}
	deadline := time.Now().Add(10 * time.Second)
	for e2.batcher.Stats().Quarantined.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the failing batch was never quarantined")
		}
		time.Sleep(10 * time.Millisecond)
	}
	e2.stop()
	if n := queryInt(t, e2, id, `SELECT count(*) FROM _duckgate_quarantine WHERE table_name = 't' AND ("row"->>'a') = '5'`); n != 1 {
		t.Fatalf("quarantined rows = %d, want 1", n)
	}
}
