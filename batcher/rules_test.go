package batcher

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"duckgate/schema"
)

// oneColumn builds rows of one key "v", one row per value: bool, int
// (as a number literal), float64, string or raw JSON ([]byte).
func oneColumn(vals ...any) *Rows {
	b := NewBuilder()
	for _, v := range vals {
		switch v := v.(type) {
		case bool:
			b.AddBool([]byte("v"), v)
		case int:
			b.AddNumber([]byte("v"), fmt.Appendf(nil, "%d", v))
		case float64:
			b.AddNumber([]byte("v"), fmt.Appendf(nil, "%g", v))
		case string:
			b.AddString([]byte("v"), []byte(v))
		case []byte:
			b.AddJSON([]byte("v"), v)
		}
		b.EndRow()
	}
	return b.Rows()
}

// A pin converts a column only when every stored value converts exactly,
// as DuckDB's TRY_CAST decides in the writer.
func TestPinConversions(t *testing.T) {
	tb := newTestBatcher(t)
	ctx := context.Background()
	n := 0
	f := func(vals []any, to schema.Type, ok bool) {
		t.Helper()
		n++
		table := fmt.Sprintf("c%d", n)
		tb.insert("t1", table, oneColumn(vals...), false)
		tb.flush("t1")
		res, err := tb.b.PinColumn(ctx, "t1", table, "V", to)
		switch {
		case ok && err != nil:
			t.Fatalf("pin %v to %s: %v", vals, to, err)
		case !ok && !errors.Is(err, ErrPinConflict):
			t.Fatalf("pin %v to %s: %v (%+v); want ErrPinConflict", vals, to, err, res)
		case ok && res.Column != "v":
			t.Fatalf("pin result %+v names the column as sent, not as created", res)
		}
	}
	f([]any{true, false}, schema.TypeBigInt, true)
	f([]any{true}, schema.TypeTimestamptz, false)
	f([]any{1, -5}, schema.TypeDouble, true)
	f([]any{1, -5}, schema.TypeHugeInt, true)
	f([]any{1, -5}, schema.TypeBoolean, false)
	f([]any{1}, schema.TypeTimestamptz, false)
	f([]any{1}, schema.TypeJSON, true)
	f([]any{9007199254740993}, schema.TypeDouble, false)
	f([]any{1.5}, schema.TypeBigInt, false)
	f([]any{1.0, 2.0}, schema.TypeBigInt, true)
	f([]any{1.5}, schema.TypeVarchar, true)
	f([]any{"2026-11-21T10:00:00Z"}, schema.TypeBigInt, false)
	f([]any{"12", "-3"}, schema.TypeBigInt, true)
	f([]any{"1.5"}, schema.TypeDouble, true)
	f([]any{"1.5"}, schema.TypeBigInt, false)
	f([]any{"007"}, schema.TypeBigInt, false)
	f([]any{"nan"}, schema.TypeDouble, false)
	f([]any{"1e400"}, schema.TypeDouble, false)
	f([]any{"true", "false"}, schema.TypeBoolean, true)
	f([]any{"yes"}, schema.TypeBoolean, false)
	f([]any{"2026-11-21 10:00:00.123456789Z"}, schema.TypeTimestamptz, false) // VARCHAR: below the microsecond
	f([]any{"2026-11-21", "x"}, schema.TypeTimestamptz, false)
	f([]any{`{"a":1}`}, schema.TypeJSON, true)
	f([]any{"abc"}, schema.TypeJSON, false)
	f([]any{[]byte(`{"a":1}`)}, schema.TypeBigInt, false)
	f([]any{[]byte(`{"a":1}`)}, schema.TypeVarchar, true)

	db := tb.reopen("t1")
	checkColumns(t, db, "c3", "v DOUBLE")
	checkColumns(t, db, "c10", "v BIGINT")
	checkColumns(t, db, "c1", "v BIGINT")
	checkColumns(t, db, "c2", "v BOOLEAN") // refused: unchanged
	var pins int
	if err := db.QueryRow("SELECT count(*) FROM " + pinsTable).Scan(&pins); err != nil || pins != 11 {
		t.Fatalf("%d pins stored (%v); want 11", pins, err)
	}
}

// Values that do not fit a pinned column go to the quarantine with their
// reason, the rest of the row is stored, and a row of which nothing fits is
// stored only there.
func TestPinnedMisfitsQuarantined(t *testing.T) {
	tb := newTestBatcher(t)
	ctx := context.Background()
	if _, err := tb.b.PinColumn(ctx, "t1", "ev", "n", schema.TypeBigInt); err != nil {
		t.Fatal(err)
	}
	b := NewBuilder()
	b.AddNumber([]byte("n"), []byte("1"))
	b.AddString([]byte("s"), []byte("a"))
	b.EndRow()
	b.AddString([]byte("N"), []byte("abc"))
	b.AddString([]byte("s"), []byte("b"))
	b.EndRow()
	b.AddNumber([]byte("n"), []byte("2.5"))
	b.EndRow()
	tb.insert("t1", "ev", b.Rows(), false)
	tb.flush("t1")
	entries, err := tb.b.Quarantined(ctx, "t1", QuarantineSelector{Table: "ev"}, -1<<63, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || entries[0].Column != "n" || string(entries[0].Value) != `"abc"` || string(entries[0].Row) != `{"N":"abc","s":"b"}` ||
		string(entries[1].Value) != `2.5` || entries[1].ExpectedType != "BIGINT" || string(entries[1].Replay()) != `{"n":2.5}` {
		t.Fatalf("entries: %+v", entries)
	}
	if got := tb.b.Stats().Quarantined.Load(); got != 2 {
		t.Fatalf("Quarantined counter = %d; want 2", got)
	}
	db := tb.reopen("t1")
	checkColumns(t, db, "ev", "n BIGINT, s VARCHAR")
	var rows string
	if err := db.QueryRow(`SELECT string_agg(coalesce(n::VARCHAR, 'NULL') || '/' || s, ' ' ORDER BY s) FROM ev`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != "1/a NULL/b" {
		t.Fatalf("rows: %s", rows)
	}
}

// A flush that quarantines into a table from before entries had ids
// upgrades it in its own transaction.
func TestMisfitIntoOldQuarantine(t *testing.T) {
	tb := newTestBatcher(t)
	ctx := context.Background()
	h, err := tb.pool.Acquire(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.DB.Exec(`CREATE TABLE _duckgate_quarantine (table_name VARCHAR, error VARCHAR, quarantined_at TIMESTAMPTZ, row JSON);
		INSERT INTO _duckgate_quarantine VALUES ('x', 'old', now(), '{"a":1}')`)
	h.Release()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.b.PinColumn(ctx, "t1", "ev", "n", schema.TypeBoolean); err != nil {
		t.Fatal(err)
	}
	tb.insert("t1", "ev", oneColumnNamed("n", 1, true), false)
	tb.flush("t1")
	entries, err := tb.b.Quarantined(ctx, "t1", QuarantineSelector{}, -1<<63, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || entries[0].ID >= 0 || entries[0].Table != "x" || entries[1].Column != "n" || string(entries[1].Value) != "1" {
		t.Fatalf("entries: %+v", entries)
	}
}

// oneColumnNamed is oneColumn under another key.
func oneColumnNamed(key string, vals ...any) *Rows {
	r := oneColumn(vals...)
	r.Keys[0] = key
	return r
}
