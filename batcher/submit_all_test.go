package batcher

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"

	"duckgate/wal"
)

// SubmitAll's records are each replayed with their own key after a crash,
// and each lands once in its own table.
func TestSubmitAllRecoverKeys(t *testing.T) {
	dir := t.TempDir()
	wb := openWALBatcher(t, dir)
	reqs := []Request{
		{Tenant: "t1", Table: "ev", Rows: numbers("a", "1"), IdempotencyKey: "k1", Response: []byte(`{"n":1}`)},
		{Tenant: "t1", Table: "other", Rows: numbers("b", "2", "3"), IdempotencyKey: "k2", Response: []byte(`{"n":2}`)},
		{Tenant: "t1", Table: "ev", Rows: numbers("a", "4")}, // no key
	}
	for _, r := range reqs[:2] {
		if _, found, err := wb.b.BeginIdempotent(r.Tenant, r.IdempotencyKey); err != nil || found {
			t.Fatalf("BeginIdempotent(%s): %v %v", r.IdempotencyKey, found, err)
		}
	}
	if err := wb.b.SubmitAll(reqs); err != nil {
		t.Fatal(err)
	}
	wb.crash(t) // before any flush
	wb = openWALBatcher(t, dir)
	if wb.st.Replayed != 3 || wb.st.Rows != 4 {
		t.Fatalf("recovery: %+v; want 3 records of 4 rows replayed", wb.st)
	}
	for key, want := range map[string]string{"k1": `{"n":1}`, "k2": `{"n":2}`} {
		resp, found, err := wb.b.BeginIdempotent("t1", key)
		if err != nil || !found || string(resp) != want {
			t.Fatalf("key %s after the crash: %q, %v, %v; want %s", key, resp, found, err, want)
		}
	}
	path := wb.pool.Path("t1")
	wb.close(t)
	db := openFile(t, path)
	if got := column(t, db, `SELECT a FROM ev ORDER BY a`); got != "1 4" {
		t.Fatalf("ev: %s; want 1 4", got)
	}
	if got := column(t, db, `SELECT b FROM other ORDER BY b`); got != "2 3" {
		t.Fatalf("other: %s; want 2 3", got)
	}
}

// failingFile fails every write holding marker while fail is set, as a
// disk that refuses some group commits would: the group's records are then
// not durable, the others are.
type failingFile struct {
	*os.File
	fail   *atomic.Bool
	marker []byte
}

func (f failingFile) Write(p []byte) (int, error) {
	if f.fail.Load() && bytes.Contains(p, f.marker) {
		return 0, syscall.ENOSPC
	}
	return f.File.Write(p)
}

// WriteAt is what the log writes with when it preallocates.
func (f failingFile) WriteAt(p []byte, off int64) (int, error) {
	if f.fail.Load() && bytes.Contains(p, f.marker) {
		return 0, syscall.ENOSPC
	}
	return f.File.WriteAt(p, off)
}

// When the log fails part of a SubmitAll, the records that became durable
// keep their keys and the others do not: a retry of the whole set (skipping
// the keys found, as the tracking API does) stores every row exactly once.
func TestSubmitAllPartialLogFailure(t *testing.T) {
	dir := t.TempDir()
	var fail atomic.Bool
	marker := []byte("refused-by-the-disk")
	wb := openWALBatcher(t, dir, func(c *wal.Config) {
		c.SegmentSize = 0 // the default: records share group commits
		c.OpenFile = func(name string, flag int, perm os.FileMode) (wal.File, error) {
			f, err := os.OpenFile(name, flag, perm)
			if err != nil {
				return nil, err
			}
			return failingFile{File: f, fail: &fail, marker: marker}, nil
		}
	})
	b := wb.b
	const n = 40
	reqs := make([]Request, n)
	for i := range reqs {
		rb := NewBuilder()
		rb.AddNumber([]byte("i"), []byte(strconv.Itoa(i)))
		if i%4 == 0 {
			rb.AddString([]byte("note"), marker)
		}
		rb.EndRow()
		reqs[i] = Request{Tenant: "t1", Table: "ev", Rows: rb.Rows(), IdempotencyKey: "k" + strconv.Itoa(i), Response: []byte(`{}`)}
	}
	begin := func(r Request) bool {
		_, found, err := b.BeginIdempotent(r.Tenant, r.IdempotencyKey)
		if err != nil {
			t.Fatalf("BeginIdempotent(%s): %v", r.IdempotencyKey, err)
		}
		return found
	}
	for _, r := range reqs {
		begin(r)
	}
	fail.Store(true)
	if err := b.SubmitAll(reqs); !errors.Is(err, ErrLogUnavailable) {
		t.Fatalf("SubmitAll with a failing log: %v", err)
	}
	for _, r := range reqs {
		b.AbortIdempotent(r.Tenant, r.IdempotencyKey) // what the caller does on error
	}
	fail.Store(false)
	var retry []Request
	durable := 0
	for i, r := range reqs {
		if begin(r) {
			if i%4 == 0 {
				t.Fatalf("record %d, which the disk refused, kept its key", i)
			}
			durable++
			continue
		}
		retry = append(retry, r) // refused, or in a group commit with one that was

	}
	if durable == n {
		t.Fatal("every record was durable: the failure was not exercised")
	}
	t.Logf("%d of %d records durable before the retry", durable, n)
	if err := b.SubmitAll(retry); err != nil {
		t.Fatalf("retry: %v", err)
	}
	path := wb.pool.Path("t1")
	wb.close(t)
	db := openFile(t, path)
	if got := column(t, db, `SELECT count(*) || ' ' || count(DISTINCT i) FROM ev`); got != fmt.Sprintf("%d %d", n, n) {
		t.Fatalf("rows, distinct rows: %s; want %d %d (durable before the retry: %d)", got, n, n, durable)
	}
}
