package batcher

import (
	"context"
	"testing"
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
	// Crash before any flush.
	if err := wb.log.Close(); err != nil {
		t.Fatal(err)
	}
	if err := wb.pool.Close(); err != nil {
		t.Fatal(err)
	}
	crashed := wb.b
	t.Cleanup(func() {
		ended, cancel := context.WithCancel(context.Background())
		cancel()
		_ = crashed.Close(ended)
	})

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
