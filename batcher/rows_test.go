package batcher

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"duckgate/schema"
)

// kv is one value added to a Builder in a test.
type kv struct{ key, val string }

// buildRows adds rows of string values through one reused scratch buffer
// (as the decoder does) and returns the Rows.
func buildRows(rows [][]kv) *Rows {
	b := NewBuilder()
	var scratch []byte
	for _, row := range rows {
		for _, c := range row {
			scratch = append(scratch[:0], c.key...)
			k := len(scratch)
			scratch = append(scratch, c.val...)
			b.AddString(scratch[:k], scratch[k:])
			for i := range scratch {
				scratch[i] = 0xee // the Builder must have copied
			}
		}
		b.EndRow()
	}
	return b.Rows()
}

// checkRows fails unless r holds exactly rows.
func checkRows(t *testing.T, r *Rows, rows [][]kv) {
	t.Helper()
	if r.Len() != len(rows) {
		t.Fatalf("%d rows; want %d", r.Len(), len(rows))
	}
	start := uint32(0)
	for i, row := range rows {
		cells := r.Cells[start:r.Ends[i]]
		if len(cells) != len(row) {
			t.Fatalf("row %d has %d cells; want %d", i, len(cells), len(row))
		}
		for j, c := range cells {
			if got := r.Keys[c.Key]; got != row[j].key || c.Str != row[j].val {
				t.Fatalf("row %d cell %d = %q: %q; want %q: %q", i, j, got, c.Str, row[j].key, row[j].val)
			}
		}
		start = r.Ends[i]
	}
	seen := make(map[string]bool)
	for _, k := range r.Keys {
		if seen[k] {
			t.Fatalf("key %q listed twice in %q", k, r.Keys)
		}
		seen[k] = true
	}
	checkWellFormed(t, r)
}

func TestBuilderKeyLookup(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	f := func(name string, nkeys, nrows int, shuffle bool) {
		t.Run(name, func(t *testing.T) {
			keys := make([]string, nkeys)
			for i := range keys {
				keys[i] = "key_" + strconv.Itoa(i)
			}
			rows := make([][]kv, nrows)
			for i := range rows {
				order := make([]string, nkeys)
				copy(order, keys)
				if shuffle {
					rng.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
					order = order[:1+rng.IntN(nkeys)] // and rows with fewer keys
				}
				for j, k := range order {
					rows[i] = append(rows[i], kv{k, fmt.Sprintf("v%d.%d", i, j)})
				}
			}
			r := buildRows(rows)
			checkRows(t, r, rows)
			if !shuffle && len(r.Keys) != nkeys {
				t.Fatalf("%d keys; want %d", len(r.Keys), nkeys)
			}
		})
	}
	f("same order", 5, 100, false)
	f("shuffled", 5, 200, true)
	f("at the linear limit", linearKeys, 50, true)
	f("past the linear limit", linearKeys+1, 50, true)
	f("many", 40, 100, true)
	f("10000 keys", 10_000, 3, false)
	f("10000 keys shuffled", 10_000, 3, true)
}

func TestBuilderSwitchesToMap(t *testing.T) {
	b := NewBuilder()
	for i := range linearKeys + 1 {
		if b.index != nil {
			t.Fatalf("map built at %d keys", i)
		}
		b.AddBool([]byte("k"+strconv.Itoa(i)), true)
	}
	b.EndRow()
	if b.index == nil || len(b.index) != linearKeys+1 {
		t.Fatalf("index = %v after %d keys", b.index, linearKeys+1)
	}
	// Keys added after the switch are found through the map, from any
	// position of the "next key" guess.
	b.AddBool([]byte("late"), false)
	b.AddBool([]byte("k3"), false)
	b.AddBool([]byte("late2"), false)
	b.EndRow()
	b.AddBool([]byte("late2"), true)
	b.AddBool([]byte("late"), true)
	b.AddBool([]byte("k0"), true)
	b.EndRow()
	r := b.Rows()
	if len(r.Keys) != linearKeys+3 {
		t.Fatalf("keys = %q", r.Keys)
	}
	want := []string{"late2", "late", "k0"}
	for i, c := range r.Cells[r.Ends[1]:] {
		if r.Keys[c.Key] != want[i] || c.Num != 1 {
			t.Fatalf("last row cell %d = %q %d; want %q 1", i, r.Keys[c.Key], c.Num, want[i])
		}
	}
	checkWellFormed(t, r)
}

func TestBuilderKinds(t *testing.T) {
	b := NewBuilder()
	b.AddNumber([]byte("x"), []byte("1"))
	b.AddBool([]byte("y"), true)
	b.EndRow()
	b.AddNumber([]byte("x"), []byte("2.5"))
	b.AddNumber([]byte("y"), []byte("99999999999999999999"))
	b.EndRow()
	b.AddString([]byte("x"), []byte("s"))
	b.AddString([]byte("z"), []byte("2020-01-01T00:00:00Z"))
	b.AddJSON([]byte("w"), []byte("[1]"))
	b.EndRow()
	r := b.Rows()
	want := []schema.Kind{
		schema.KindInt | schema.KindFloat | schema.KindString,
		schema.KindBool | schema.KindHugeInt,
		schema.KindTimestamp,
		schema.KindJSON,
	}
	for i, k := range []string{"x", "y", "z", "w"} {
		if r.Keys[i] != k || r.Kinds[i] != want[i] {
			t.Fatalf("key %d = %q %s; want %q %s", i, r.Keys[i], r.Kinds[i], k, want[i])
		}
	}
	checkWellFormed(t, r)
}

func TestBuilderDropRow(t *testing.T) {
	b := NewBuilder()
	b.AddNumber([]byte("a"), []byte("1"))
	b.EndRow()
	// A row found invalid halfway: its cells go, its kinds too.
	b.AddString([]byte("a"), []byte("text"))
	b.AddBool([]byte("b"), true)
	b.DropRow()
	if b.Len() != 1 {
		t.Fatalf("Len = %d after DropRow; want 1", b.Len())
	}
	b.AddNumber([]byte("c"), []byte("1.5"))
	b.AddNumber([]byte("a"), []byte("2"))
	b.EndRow()
	r := b.Rows()
	if r.Len() != 2 || len(r.Cells) != 3 {
		t.Fatalf("%d rows, %d cells; want 2, 3", r.Len(), len(r.Cells))
	}
	want := map[string]schema.Kind{"a": schema.KindInt, "b": 0, "c": schema.KindFloat}
	for i, k := range r.Keys {
		if r.Kinds[i] != want[k] {
			t.Fatalf("kinds of %q = %s; want %s", k, r.Kinds[i], want[k])
		}
	}
	if r.Dups {
		t.Fatal("Dups after a dropped row reused a key in the next row")
	}
	checkWellFormed(t, r)

	// A dropped row with two spellings of one column leaves no Dups.
	b = NewBuilder()
	b.AddBool([]byte("a"), true)
	b.AddBool([]byte("A"), true)
	b.DropRow()
	b.AddBool([]byte("a"), true)
	b.EndRow()
	if r := b.Rows(); r.Dups {
		t.Fatal("Dups from a dropped row")
	}

	// Dropping the first row.
	b = NewBuilder()
	b.AddBool([]byte("a"), true)
	b.DropRow()
	if r := b.Rows(); r.Len() != 0 || len(r.Cells) != 0 || r.Kinds[0] != 0 {
		t.Fatalf("after dropping the only row: %+v", r)
	}
}

func TestBuilderDups(t *testing.T) {
	f := func(want bool, rows ...[]string) {
		t.Helper()
		var in [][]kv
		for _, keys := range rows {
			var row []kv
			for _, k := range keys {
				row = append(row, kv{k, "v"})
			}
			in = append(in, row)
		}
		r := buildRows(in)
		if r.Dups != want {
			t.Fatalf("Dups of %q = %v; want %v", rows, r.Dups, want)
		}
		if hasDups(r) != want {
			t.Fatalf("hasDups of %q = %v; want %v", rows, hasDups(r), want)
		}
	}
	f(true, []string{"a", "a"})
	f(true, []string{"a", "A"})
	f(false, []string{"a"}, []string{"A"})
	f(false, []string{"a", "b"}, []string{"b", "a"})
	f(true, []string{"x"}, []string{"y"}, []string{"Y", "z", "y"})
	// Past the linear limit of the fold groups.
	many := make([]string, 3*linearKeys)
	for i := range many {
		many[i] = "Col" + strconv.Itoa(i)
	}
	f(false, many, many)
	f(true, many, append([]string{"col7"}, many...))
}

// TestBuilderRandom compares the Builder with what its rows say, over random
// rows with dropped ones and keys differing in case.
func TestBuilderRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	names := []string{"a", "A", "b", "B", "c", "long_key_name", "LONG_KEY_NAME", "d", "e"}
	for range 2000 {
		b := NewBuilder()
		for range rng.IntN(6) {
			for range rng.IntN(5) {
				k := []byte(names[rng.IntN(len(names))])
				switch rng.IntN(4) {
				case 0:
					b.AddBool(k, rng.IntN(2) == 0)
				case 1:
					b.AddNumber(k, []byte(strconv.Itoa(rng.IntN(100))))
				case 2:
					b.AddString(k, []byte("s"))
				default:
					b.AddJSON(k, []byte("{}"))
				}
			}
			if rng.IntN(3) == 0 {
				b.DropRow()
			} else {
				b.EndRow()
			}
		}
		checkWellFormed(t, b.Rows())
	}
}

func TestBuilderArena(t *testing.T) {
	// Values of all sizes, many beyond the first arena: every string handed
	// out earlier must keep its bytes when the arena is replaced.
	var rows [][]kv
	for i := range 3000 {
		n := (i * 37) % 5000
		val := strings.Repeat(string(rune('a'+i%26)), n) + strconv.Itoa(i)
		rows = append(rows, []kv{{"k", val}, {"i", strconv.Itoa(i)}})
	}
	rows = append(rows, []kv{{"big", strings.Repeat("z", 1<<20)}})
	r := buildRows(rows)
	checkRows(t, r, rows)
}

// tenKeyRow adds a typical 10-key row.
func tenKeyRow(b *Builder, keys [10][]byte, vals [10][]byte) {
	b.AddNumber(keys[0], vals[0])
	b.AddNumber(keys[1], vals[1])
	b.AddString(keys[2], vals[2])
	b.AddString(keys[3], vals[3])
	b.AddBool(keys[4], true)
	b.AddString(keys[5], vals[5])
	b.AddNumber(keys[6], vals[6])
	b.AddJSON(keys[7], vals[7])
	b.AddString(keys[8], vals[8])
	b.AddBool(keys[9], false)
	b.EndRow()
}

func tenKeys() (keys, vals [10][]byte, size int) {
	names := []string{"id", "latency_ms", "user", "path", "ok", "ts", "score", "tags", "region", "cached"}
	values := []string{"123456", "17", "alice@example.com", "/api/v1/items", "", "2024-05-01T12:00:00.5Z", "0.25", `["a","b"]`, "eu-west-1", ""}
	for i := range keys {
		keys[i] = []byte(names[i])
		vals[i] = []byte(values[i])
		size += len(names[i]) + len(values[i]) + 6
	}
	return keys, vals, size
}

// TestBuilderRowAllocs fails if adding a row of known keys allocates per
// row: keys are found without converting them, values go to the arena.
func TestBuilderRowAllocs(t *testing.T) {
	keys, vals, _ := tenKeys()
	b := NewBuilder()
	tenKeyRow(b, keys, vals)
	if n := testing.AllocsPerRun(1000, func() { tenKeyRow(b, keys, vals) }); n > 0 {
		t.Fatalf("a 10-key row allocates %v times", n)
	}
}

func BenchmarkBuilderRow(b *testing.B) {
	keys, vals, size := tenKeys()
	b.ReportAllocs()
	b.SetBytes(int64(size))
	bl := NewBuilder()
	n := 0
	for b.Loop() {
		if n == 1024 { // a request's worth of rows
			bl, n = NewBuilder(), 0
		}
		tenKeyRow(bl, keys, vals)
		n++
	}
}

// A large body's rows are charged (Size) at most 1.25 times the memory its
// cells and strings use (issue 15's goal is about 1.5): the arena's chunks
// stop doubling at arenaMaxChunk, so the last one cannot be a mostly empty
// half (with doubling chunks, 50,000 of these rows were charged 1.47x).
func TestBuilderSizeCharge(t *testing.T) {
	for _, rows := range []int{1, 1000, 50_000, 120_000, 200_000, 300_000} {
		b := NewBuilder()
		for i := range rows {
			b.AddNumber([]byte("id"), []byte(strconv.Itoa(i)))
			b.AddString([]byte("user"), []byte(fmt.Sprintf("user_%d", i%5000)))
			b.AddString([]byte("url"), []byte(fmt.Sprintf("https://shop.example.com/p/%d?ref=home&utm=%s", i, strings.Repeat("x", 150))))
			b.AddString([]byte("event"), []byte("click"))
			b.EndRow()
		}
		r := b.Rows()
		used := int64(len(r.Cells))*cellSize + int64(len(r.Ends))*4
		for _, c := range r.Cells {
			used += int64(len(c.Str))
		}
		for _, k := range r.Keys {
			used += int64(len(k)) + 24
		}
		t.Logf("%d rows: %.2fx", rows, float64(r.Size)/float64(used))
		if rows > 1 && float64(r.Size) > 1.25*float64(used) {
			t.Errorf("%d rows: charged %d bytes for %d used (%.2fx)", rows, r.Size, used, float64(r.Size)/float64(used))
		}
		if r.Size < used {
			t.Errorf("%d rows: charged %d bytes, less than the %d used", rows, r.Size, used)
		}
	}
}

// The first row of a Builder, its keys all new to it, allocates a bounded
// number of times, however many keys it has up to linearKeys: the key
// strings come from keyIntern once seen, and the per-key slices are sized
// up front (a one-event insert allocated 24 times in key() before).
func TestBuilderFirstRowAllocs(t *testing.T) {
	keys, vals, size := tenKeys()
	tenKeyRow(NewBuilderFor(size), keys, vals) // interns the keys
	// NewBuilderFor's own: the Builder, cells, row ends, arena, and three
	// backing arrays of the per-key slices; and a second arena chunk (this
	// row's strings are more than the half of size that NewBuilderFor
	// expects).
	const want = 8
	if n := testing.AllocsPerRun(200, func() { tenKeyRow(NewBuilderFor(size), keys, vals) }); n > want {
		t.Fatalf("a fresh Builder's first 10-key row allocates %v times; want at most %d", n, want)
	}
	b := NewBuilderFor(size)
	tenKeyRow(b, keys, vals)
	rows := b.Rows()
	for i, k := range rows.Keys {
		if k != string(keys[i]) {
			t.Fatalf("key %d = %q, want %q", i, k, keys[i])
		}
	}
}

// keyIntern stops growing at internMax keys; keys past it, and keys longer
// than internMaxLen, are still returned right.
func TestInternKeyBounded(t *testing.T) {
	for i := range internMax + 100 {
		k := []byte("intern-test-" + strconv.Itoa(i))
		if s := internKey(k); s != string(k) {
			t.Fatalf("internKey(%q) = %q", k, s)
		}
	}
	long := bytes.Repeat([]byte("k"), internMaxLen+1)
	if s := internKey(long); s != string(long) {
		t.Fatalf("internKey of a long key = %q", s)
	}
	keyIntern.RLock()
	_, longIn := keyIntern.m[string(long)]
	n := len(keyIntern.m)
	keyIntern.RUnlock()
	if n > internMax || longIn {
		t.Fatalf("keyIntern holds %d keys (bound %d), long key interned: %v", n, internMax, longIn)
	}
	// A key seen once is shared: the same string data.
	a, b := internKey([]byte("intern-test-1")), internKey([]byte("intern-test-1"))
	if unsafe.StringData(a) != unsafe.StringData(b) {
		t.Fatal("an interned key was allocated again")
	}
}
