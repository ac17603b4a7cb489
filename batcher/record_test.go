package batcher

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"duckgate/schema"
)

// allKindsRows builds rows holding every kind of value, with keys in
// changing order and a row without cells.
func allKindsRows(t testing.TB) *Rows {
	b := NewBuilder()
	b.AddBool([]byte("b"), true)
	b.AddBool([]byte("f"), false)
	b.AddNumber([]byte("i"), []byte("-42"))
	b.AddNumber([]byte("big"), []byte("9007199254740993"))
	b.AddNumber([]byte("huge"), []byte("170141183460469231731687303715884105727"))
	b.AddNumber([]byte("numtext"), []byte("1e400"))
	b.AddNumber([]byte("negzero"), []byte("-0.0"))
	b.AddNumber([]byte("max"), []byte("1e308"))
	b.AddString([]byte("ts"), []byte("2024-02-29T23:59:59.123456+02:00"))
	b.AddString([]byte("s"), []byte("héllo \x00 \"quoted\" \\ 日本 🦆"))
	b.AddJSON([]byte("j"), []byte(`{"x":[1,2,{"y":null}],"z":"\u0000"}`))
	b.EndRow()
	b.EndRow() // {}
	b.AddString([]byte("s"), []byte(""))
	b.AddNumber([]byte("i"), []byte("1.5"))
	b.AddString([]byte("ts"), []byte("2024-02-30T00:00:00Z")) // looks like one, is not a date
	b.AddJSON([]byte("j"), []byte(`[]`))
	b.EndRow()
	r := b.Rows()
	want := map[string]schema.Kind{
		"b": schema.KindBool, "f": schema.KindBool, "i": schema.KindInt | schema.KindFloat,
		"big": schema.KindBigInt, "huge": schema.KindHugeInt, "numtext": schema.KindNumText,
		"negzero": schema.KindFloat, "max": schema.KindFloat, "ts": schema.KindTimestamp | schema.KindString,
		"s": schema.KindString, "j": schema.KindJSON,
	}
	for i, k := range r.Keys {
		if r.Kinds[i] != want[k] {
			t.Fatalf("kinds of %q = %s; want %s", k, r.Kinds[i], want[k])
		}
	}
	return r
}

// checkRecordsEqual fails unless a and b hold the same insert. A nil and an
// empty response are the same (both encode as "").
func checkRecordsEqual(t testing.TB, got, want *record) {
	t.Helper()
	if got.tenant != want.tenant || got.table != want.table || got.seq != want.seq || got.at != want.at ||
		got.idemKey != want.idemKey || !bytes.Equal(got.response, want.response) {
		t.Fatalf("record header = %q %q %d %d %q %q; want %q %q %d %d %q %q",
			got.tenant, got.table, got.seq, got.at, got.idemKey, got.response,
			want.tenant, want.table, want.seq, want.at, want.idemKey, want.response)
	}
	g, w := got.rows, want.rows
	if !slices.Equal(g.Keys, w.Keys) {
		t.Fatalf("keys = %q; want %q", g.Keys, w.Keys)
	}
	if !slices.Equal(g.Kinds, w.Kinds) {
		t.Fatalf("kinds = %v; want %v", g.Kinds, w.Kinds)
	}
	if !slices.Equal(g.Ends, w.Ends) {
		t.Fatalf("ends = %v; want %v", g.Ends, w.Ends)
	}
	if len(g.Cells) != len(w.Cells) {
		t.Fatalf("%d cells; want %d", len(g.Cells), len(w.Cells))
	}
	for i := range g.Cells {
		if g.Cells[i] != w.Cells[i] {
			t.Fatalf("cell %d = %+v; want %+v", i, g.Cells[i], w.Cells[i])
		}
	}
	if g.Dups != w.Dups {
		t.Fatalf("Dups = %v; want %v", g.Dups, w.Dups)
	}
}

func roundTrip(t testing.TB, rec *record) *record {
	t.Helper()
	raw := encodeRecord(nil, rec)
	got, err := decodeRecord(raw)
	if err != nil {
		t.Fatalf("decodeRecord(encodeRecord(...)): %v", err)
	}
	checkRecordsEqual(t, got, rec)
	// Every proper prefix is malformed, never a shorter valid record.
	for n := range len(raw) {
		if _, err := decodeRecord(raw[:n]); err == nil {
			t.Fatalf("decodeRecord accepted a record cut to %d of %d bytes", n, len(raw))
		}
	}
	return got
}

func TestRecordRoundTrip(t *testing.T) {
	rows := allKindsRows(t)
	got := roundTrip(t, &record{tenant: "acme", table: "events", seq: 7<<40 | 12345, at: 1_700_000_000,
		idemKey: "key-ü-\"1\"", response: []byte(`{"accepted":3,"rejected":0}`), rows: rows})
	// Size counts the memory held: the decoded rows hold at least their
	// cells and the record's bytes.
	if min := int64(len(got.rows.Cells))*cellSize + int64(len(encodeRecord(nil, got))); got.rows.Size < min {
		t.Fatalf("decoded Size = %d; want at least %d", got.rows.Size, min)
	}
	// The values themselves, beyond equality with the builder's cells.
	r := got.rows
	cell := func(row int, key string) Cell {
		t.Helper()
		start := uint32(0)
		if row > 0 {
			start = r.Ends[row-1]
		}
		for _, c := range r.Cells[start:r.Ends[row]] {
			if r.Keys[c.Key] == key {
				return c
			}
		}
		t.Fatalf("row %d has no %q", row, key)
		return Cell{}
	}
	if c := cell(0, "negzero"); c.Num != math.Float64bits(math.Copysign(0, -1)) {
		t.Fatalf("-0.0 decoded as %v (bits %x)", math.Float64frombits(c.Num), c.Num)
	}
	if c := cell(0, "max"); math.Float64frombits(c.Num) != 1e308 {
		t.Fatalf("1e308 decoded as %v", math.Float64frombits(c.Num))
	}
	if c := cell(0, "big"); int64(c.Num) != 9007199254740993 {
		t.Fatalf("bigint decoded as %d", int64(c.Num))
	}
	if c := cell(0, "i"); int64(c.Num) != -42 {
		t.Fatalf("int decoded as %d", int64(c.Num))
	}
	if c := cell(0, "ts"); c.Str != "2024-02-29T23:59:59.123456+02:00" || int64(c.Num) != time.Date(2024, 2, 29, 21, 59, 59, 123456000, time.UTC).UnixMicro() {
		t.Fatalf("timestamp decoded as %q %d", c.Str, int64(c.Num))
	}
	if c := cell(0, "huge"); c.Kind != schema.KindHugeInt || c.Str != "170141183460469231731687303715884105727" {
		t.Fatalf("hugeint decoded as %s %q", c.Kind, c.Str)
	}
	if c := cell(0, "s"); c.Str != "héllo \x00 \"quoted\" \\ 日本 🦆" {
		t.Fatalf("string decoded as %q", c.Str)
	}
	if c := cell(0, "b"); c.Num != 1 {
		t.Fatalf("true decoded as %d", c.Num)
	}
	if r.Ends[1] != r.Ends[0] {
		t.Fatalf("the empty row has %d cells", r.Ends[1]-r.Ends[0])
	}
}

func TestRecordRoundTripEdges(t *testing.T) {
	// No rows at all, no key, no response.
	roundTrip(t, &record{tenant: "t", table: "x", rows: NewBuilder().Rows()})
	// Only empty rows.
	b := NewBuilder()
	b.EndRow()
	b.EndRow()
	roundTrip(t, &record{tenant: "", table: "", seq: math.MaxUint64, at: -1, rows: b.Rows()})
	// Negative and extreme times and numbers.
	b = NewBuilder()
	b.AddNumber([]byte("n"), []byte("-9223372036854775808"))
	b.AddNumber([]byte("m"), []byte("9223372036854775807"))
	b.AddNumber([]byte("tiny"), []byte("5e-324"))
	b.EndRow()
	roundTrip(t, &record{tenant: "t", table: "x", at: math.MinInt64, rows: b.Rows()})
}

func TestRecordDupsRecomputed(t *testing.T) {
	f := func(dups bool, rows ...[]string) {
		t.Helper()
		b := NewBuilder()
		for _, keys := range rows {
			for _, k := range keys {
				b.AddBool([]byte(k), true)
			}
			b.EndRow()
		}
		r := b.Rows()
		if r.Dups != dups {
			t.Fatalf("Builder Dups for %q = %v; want %v", rows, r.Dups, dups)
		}
		got := roundTrip(t, &record{tenant: "t", table: "x", rows: r})
		if got.rows.Dups != dups {
			t.Fatalf("decoded Dups for %q = %v; want %v", rows, got.rows.Dups, dups)
		}
	}
	f(false, []string{"a", "b"}, []string{"b", "a"})
	f(true, []string{"a", "a"})
	f(true, []string{"x"}, []string{"a", "b", "A"})
	f(false, []string{"a"}, []string{"A"})
	f(true, []string{"Key"}, []string{"kEY", "key"})
	f(false, []string{"é"}, []string{"É"}) // only ASCII case folds
}

func TestDecodeRecordRejects(t *testing.T) {
	b := NewBuilder()
	b.AddBool([]byte("a"), true)
	b.EndRow()
	good := encodeRecord(nil, &record{tenant: "t", table: "x", rows: b.Rows()})
	// The cell is the last 3 bytes: key index, kind index, the 8-byte Num.
	kindAt := len(good) - 9
	if good[kindAt] != kindIndex(schema.KindBool) {
		t.Fatalf("layout changed: byte %d is %d", kindAt, good[kindAt])
	}
	f := func(name string, raw []byte) {
		t.Helper()
		if rec, err := decodeRecord(raw); err == nil {
			t.Fatalf("%s: decoded %+v", name, rec.rows)
		}
	}
	f("empty", nil)
	f("version 2", append([]byte{2}, good[1:]...))
	f("key index out of range", slices.Concat(good[:kindAt-1], []byte{1}, good[kindAt:]))
	for k := kindIndex(schema.KindJSON) + 1; k < 255; k++ {
		// A kind the gateway does not have: no payload to write, so the
		// row could never be flushed (nor quarantined, as its JSON would
		// be "key":).
		f(fmt.Sprintf("kind %d", k), slices.Concat(good[:kindAt], []byte{k}, good[kindAt+1:]))
	}
	f("huge key count", slices.Concat(good[:9], []byte{0xff, 0xff, 0xff, 0xff, 0x0f}))
	f("varint overflow", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
}

// FuzzDecodeRecord checks that no bytes make decodeRecord panic, that what
// it accepts is well-formed Rows, and that decoding is idempotent: the
// re-encoding of a decoded record decodes to the same record, and encodes
// to the same bytes again.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(encodeRecord(nil, &record{tenant: "acme", table: "events", seq: 99, at: 1_700_000_000,
		idemKey: "k", response: []byte(`{"accepted":3}`), rows: allKindsRows(f)}))
	f.Add(encodeRecord(nil, &record{tenant: "t", table: "x", rows: NewBuilder().Rows()}))
	b := NewBuilder()
	b.AddString([]byte("a"), []byte("x"))
	b.AddString([]byte("A"), []byte("y"))
	b.EndRow()
	b.AddNumber([]byte("a"), []byte("1"))
	b.EndRow()
	f.Add(encodeRecord(nil, &record{tenant: "t", table: "x", seq: 1, rows: b.Rows()}))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0})
	f.Fuzz(func(t *testing.T, raw []byte) {
		rec, err := decodeRecord(raw)
		if err != nil {
			return
		}
		checkWellFormed(t, rec.rows)
		enc := encodeRecord(nil, rec)
		again, err := decodeRecord(enc)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		checkRecordsEqual(t, again, rec)
		// Size counts the record's bytes, and a hand-made record may spell
		// a number longer than encodeRecord does: compare canonical forms.
		if third, err := decodeRecord(encodeRecord(nil, again)); err != nil || third.rows.Size != again.rows.Size {
			t.Fatalf("Size not stable after re-encoding: %v", err)
		}
		if enc2 := encodeRecord(nil, again); !bytes.Equal(enc2, enc) {
			t.Fatalf("encoding not stable:\n%x\n%x", enc, enc2)
		}
	})
}

// checkWellFormed checks what the writer relies on: cells point at keys,
// rows partition the cells, each cell has one defined kind, Kinds is the OR
// of the cells' kinds and Dups says whether a row names a column twice.
func checkWellFormed(t testing.TB, r *Rows) {
	t.Helper()
	if len(r.Kinds) != len(r.Keys) {
		t.Fatalf("%d kinds for %d keys", len(r.Kinds), len(r.Keys))
	}
	kinds := make([]schema.Kind, len(r.Keys))
	prev := uint32(0)
	dups := false
	for _, end := range r.Ends {
		if end < prev || int(end) > len(r.Cells) {
			t.Fatalf("ends %v out of order or beyond %d cells", r.Ends, len(r.Cells))
		}
		seen := make(map[string]bool)
		for _, c := range r.Cells[prev:end] {
			if int(c.Key) >= len(r.Keys) {
				t.Fatalf("cell key %d of %d keys", c.Key, len(r.Keys))
			}
			if c.Kind == 0 || c.Kind&(c.Kind-1) != 0 || c.Kind > schema.KindJSON {
				t.Fatalf("cell kind %s is not one defined kind", c.Kind)
			}
			kinds[c.Key] |= c.Kind
			f := schema.FoldName(r.Keys[c.Key])
			dups = dups || seen[f]
			seen[f] = true
		}
		prev = end
	}
	if int(prev) != len(r.Cells) {
		t.Fatalf("rows end at %d of %d cells", prev, len(r.Cells))
	}
	if !slices.Equal(kinds, r.Kinds) {
		t.Fatalf("kinds = %v; the cells say %v", r.Kinds, kinds)
	}
	if dups != r.Dups {
		t.Fatalf("Dups = %v; the rows say %v", r.Dups, dups)
	}
}
