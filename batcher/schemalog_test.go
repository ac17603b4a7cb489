package batcher

import (
	"strings"
	"testing"
	"time"
)

// The schema changes a tenant's flushes commit are listed, newest first;
// a failed flush lists none, and another tenant's are its own.
func TestSchemaChanges(t *testing.T) {
	tb := newTestBatcher(t)
	tb.insert("t1", "events", numbers("n", "1"), false)
	tb.flush("t1")
	tb.insert("t1", "events", numbers("n", "1.5"), false) // BIGINT → DOUBLE
	tb.flush("t1")
	tb.insert("t2", "other", numbers("x", "1"), false)
	tb.flush("t2")
	cs := tb.b.SchemaChanges("t1")
	if len(cs) != 2 {
		t.Fatalf("t1 changes: %+v", cs)
	}
	if cs[0].Table != "events" || !strings.Contains(cs[0].SQL, "DOUBLE") || !strings.HasPrefix(cs[1].SQL, "CREATE TABLE") {
		t.Fatalf("t1 changes, newest first: %+v", cs)
	}
	if cs[0].At.Before(cs[1].At) {
		t.Fatalf("not newest first: %+v", cs)
	}
	if cs := tb.b.SchemaChanges("t2"); len(cs) != 1 || cs[0].Table != "other" {
		t.Fatalf("t2 changes: %+v", cs)
	}
	if cs := tb.b.SchemaChanges("nobody"); len(cs) != 0 {
		t.Fatalf("unknown tenant: %+v", cs)
	}
	var l schemaLog
	for i := range maxSchemaChanges + 10 {
		l.note("t", "x", []string{strings.Repeat("a", i)}, time.Now())
	}
	if n := len(l.m["t"]); n != maxSchemaChanges || len(l.m["t"][0].SQL) != 10 {
		t.Fatalf("kept %d, oldest %q", n, l.m["t"][0].SQL)
	}
}
