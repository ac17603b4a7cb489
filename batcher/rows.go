package batcher

import (
	"strconv"
	"sync"
	"unsafe"

	"duckgate/schema"
)

// Cell is one top-level value of a row.
type Cell struct {
	// Key indexes Rows.Keys.
	Key uint32
	// Kind is exactly one schema kind bit.
	Kind schema.Kind
	// Num holds the value of KindBool (0 or 1), KindInt and KindBigInt
	// (int64 bits), KindFloat (float64 bits) and KindTimestamp (Unix
	// microseconds, UTC).
	Num uint64
	// Str holds the value of KindString, the original text of
	// KindTimestamp, KindHugeInt and KindNumText, and the compact JSON text
	// of KindJSON.
	Str string
}

// Rows is one request's decoded rows for one table. It is immutable once
// built and owned by the batcher after Insert.
type Rows struct {
	// Keys are the distinct top-level keys, in order of first appearance.
	Keys []string
	// Kinds is the OR of the kinds seen per key, parallel to Keys.
	Kinds []schema.Kind
	// Cells are all cells, row after row.
	Cells []Cell
	// Ends[i] is the end (exclusive) in Cells of row i.
	Ends []uint32
	// Size estimates the memory the rows hold, in bytes.
	Size int64
	// Dups is true when some row has two keys that name one column (the
	// same key twice, or spellings differing in ASCII case): the later
	// values go to the overflow column.
	Dups bool
}

// Len is the number of rows.
func (r *Rows) Len() int { return len(r.Ends) }

// cellSize is the in-memory size of a Cell.
const cellSize = int64(unsafe.Sizeof(Cell{}))

// Builder builds Rows. Use one per request; it is not safe for concurrent use.
type Builder struct {
	rows       Rows
	arena      []byte // string bytes of this request
	arenaBytes int64  // bytes of every arena chunk allocated

	// Key lookup: rows usually repeat their keys in the same order, so the
	// key after the last one found is tried first; then a linear scan while
	// there are few keys, a map beyond that (built on demand).
	next  int
	index map[string]uint32 // key -> index in rows.Keys; nil while few keys

	// Duplicate detection: each key belongs to a group of keys equal up
	// to ASCII case; stamp[g] is 1 + the row that last used group g.
	folds     []string          // folded name of each group
	foldIndex map[string]uint32 // folded name -> group; nil while few groups
	groupOf   []uint32          // by key index
	stamp     []uint32          // by group
	rowDups   bool              // the current row names a column twice
}

// linearKeys is how many distinct keys are looked up by a linear scan
// before the Builder switches to a map.
const linearKeys = 16

// NewBuilder returns an empty Builder.
func NewBuilder() *Builder {
	return &Builder{}
}

// NewBuilderFor returns a Builder sized for a JSON body of n bytes, so that
// decoding it does not grow (and copy) the cell slice again and again:
// measured, growing it was a tenth of the ingest path's CPU.
func NewBuilderFor(n int) *Builder {
	b := &Builder{}
	b.rows.Cells = make([]Cell, 0, n/24+1)   // a cell takes at least ~24 bytes of JSON ("k":1, with a 10-key row's share of braces)
	b.rows.Ends = make([]uint32, 0, n/128+1) // click events are 200-400 bytes
	b.arena = make([]byte, 0, n/2+64)        // strings are part of the body
	b.arenaBytes = int64(cap(b.arena))
	// The per-key slices, sized for linearKeys keys up front and two to a
	// backing array: growing five of them one key at a time was half the
	// allocations of a one-event insert.
	strs := make([]string, 2*linearKeys)
	b.rows.Keys, b.folds = strs[:0:linearKeys], strs[linearKeys:linearKeys:2*linearKeys]
	b.rows.Kinds = make([]schema.Kind, 0, linearKeys)
	ints := make([]uint32, 2*linearKeys)
	b.groupOf, b.stamp = ints[:0:linearKeys], ints[linearKeys:linearKeys:2*linearKeys]
	return b
}

// key returns the index of key, adding it on first sight.
func (b *Builder) key(k []byte) uint32 {
	keys := b.rows.Keys
	if b.next < len(keys) && keys[b.next] == string(k) {
		i := b.next
		b.next++
		return uint32(i)
	}
	if b.index != nil {
		if i, ok := b.index[string(k)]; ok { // no allocation for a lookup
			b.next = int(i) + 1
			return i
		}
	} else {
		for i, s := range keys {
			if s == string(k) {
				b.next = i + 1
				return uint32(i)
			}
		}
	}
	s := internKey(k)
	i := uint32(len(keys))
	b.rows.Keys = append(b.rows.Keys, s)
	b.rows.Kinds = append(b.rows.Kinds, 0)
	b.next = int(i) + 1
	if b.index != nil {
		b.index[s] = i
	} else if len(b.rows.Keys) > linearKeys {
		b.index = make(map[string]uint32, 2*len(b.rows.Keys))
		for j, key := range b.rows.Keys {
			b.index[key] = uint32(j)
		}
	}
	b.rows.Size += int64(len(s)) + 24
	b.groupOf = append(b.groupOf, b.group(schema.FoldName(s)))
	return i
}

// keyIntern holds the key strings seen so far, shared by every Builder:
// requests repeat the same few keys, so a key costs no allocation once seen.
// It is bounded (internMax keys of at most internMaxLen bytes, about 1 MiB),
// so random keys cannot grow it: past the bound keys are allocated as before.
var keyIntern struct {
	sync.RWMutex
	m map[string]string
}

const (
	internMax    = 1 << 14
	internMaxLen = 64
)

// internKey returns k as a string, from keyIntern when it is there.
func internKey(k []byte) string {
	if len(k) > internMaxLen {
		return string(k)
	}
	keyIntern.RLock()
	s, ok := keyIntern.m[string(k)] // no allocation for a lookup
	keyIntern.RUnlock()
	if ok {
		return s
	}
	s = string(k)
	keyIntern.Lock()
	if keyIntern.m == nil {
		keyIntern.m = make(map[string]string)
	}
	if len(keyIntern.m) < internMax {
		keyIntern.m[s] = s
	}
	keyIntern.Unlock()
	return s
}

// group returns the duplicate-detection group of a folded name.
func (b *Builder) group(f string) uint32 {
	if b.foldIndex != nil {
		if g, ok := b.foldIndex[f]; ok {
			return g
		}
	} else {
		for g, name := range b.folds {
			if name == f {
				return uint32(g)
			}
		}
	}
	g := uint32(len(b.folds))
	b.folds = append(b.folds, f)
	b.stamp = append(b.stamp, 0)
	if b.foldIndex != nil {
		b.foldIndex[f] = g
	} else if len(b.folds) > linearKeys {
		b.foldIndex = make(map[string]uint32, 2*len(b.folds))
		for j, name := range b.folds {
			b.foldIndex[name] = uint32(j)
		}
	}
	return g
}

// arenaMaxChunk bounds the arena's chunk size (a longer string gets a
// chunk of its own size).
const arenaMaxChunk = 1 << 20

// str copies v into the builder's arena and returns it as a string. The
// arena only ever grows by appending, so bytes already handed out as
// strings are never written again: the strings stay immutable even when
// append moves the arena.
func (b *Builder) str(v []byte) string {
	if len(v) == 0 {
		return ""
	}
	if cap(b.arena)-len(b.arena) < len(v) {
		// Chunks double up to arenaMaxChunk, then stay that size: Size
		// counts every chunk, and with unbounded doubling the last chunk
		// of a large body could be mostly empty (a 64 MiB body was
		// charged 247 MiB, about twice what its rows use).
		n := max(min(2*cap(b.arena), arenaMaxChunk), len(v), 4096)
		b.arena = make([]byte, 0, n)
		b.arenaBytes += int64(n)
	}
	off := len(b.arena)
	b.arena = append(b.arena, v...)
	return unsafe.String(&b.arena[off], len(v))
}

func (b *Builder) add(key []byte, c Cell) {
	c.Key = b.key(key)
	b.rows.Kinds[c.Key] |= c.Kind
	row := uint32(len(b.rows.Ends)) + 1
	if g := b.groupOf[c.Key]; b.stamp[g] == row {
		b.rowDups = true
	} else {
		b.stamp[g] = row
	}
	b.rows.Cells = append(b.rows.Cells, c)
}

// AddBool adds a boolean value to the current row.
func (b *Builder) AddBool(key []byte, v bool) {
	var n uint64
	if v {
		n = 1
	}
	b.add(key, Cell{Kind: schema.KindBool, Num: n})
}

// AddNumber adds a JSON number literal to the current row.
func (b *Builder) AddNumber(key, lit []byte) {
	k := schema.ClassifyNumber(lit)
	switch k {
	case schema.KindInt, schema.KindBigInt:
		if n, err := strconv.ParseInt(string(lit), 10, 64); err == nil {
			b.add(key, Cell{Kind: k, Num: uint64(n)})
			return
		}
	case schema.KindFloat:
		if f, err := strconv.ParseFloat(string(lit), 64); err == nil {
			b.add(key, Cell{Kind: k, Num: floatBits(f)})
			return
		}
	}
	b.add(key, Cell{Kind: k, Str: b.str(lit)})
}

// AddString adds a string value (unescaped) to the current row. RFC 3339
// timestamps are recognised here.
func (b *Builder) AddString(key, v []byte) {
	if schema.IsTimestamp(v) {
		s := b.str(v)
		if t, err := schema.ParseTimestamp(s); err == nil {
			b.add(key, Cell{Kind: schema.KindTimestamp, Num: uint64(t.UnixMicro()), Str: s})
			return
		}
		b.add(key, Cell{Kind: schema.KindString, Str: s})
		return
	}
	b.add(key, Cell{Kind: schema.KindString, Str: b.str(v)})
}

// AddJSON adds an object or array, given as compact JSON text.
func (b *Builder) AddJSON(key, text []byte) {
	b.add(key, Cell{Kind: schema.KindJSON, Str: b.str(text)})
}

// EndRow ends the current row.
func (b *Builder) EndRow() {
	b.rows.Ends = append(b.rows.Ends, uint32(len(b.rows.Cells)))
	b.rows.Dups = b.rows.Dups || b.rowDups
	b.rowDups = false
}

// DropRow discards the cells added since the last EndRow (a row that turned
// out to be invalid halfway). Keys it introduced stay, with no cells.
func (b *Builder) DropRow() {
	start := uint32(0)
	if n := len(b.rows.Ends); n > 0 {
		start = b.rows.Ends[n-1]
	}
	for _, c := range b.rows.Cells[start:] {
		b.stamp[b.groupOf[c.Key]] = 0 // the next row gets the dropped row's number
	}
	b.rowDups = false
	b.rows.Cells = b.rows.Cells[:start]
}

// Len is the number of rows ended so far.
func (b *Builder) Len() int { return len(b.rows.Ends) }

// Rows returns the built rows. The Builder must not be used afterwards.
func (b *Builder) Rows() *Rows {
	r := b.rows
	// The memory held, not just used: capacities, and every arena chunk
	// (strings keep earlier chunks alive).
	r.Size += int64(cap(r.Cells))*cellSize + int64(cap(r.Ends))*4 + b.arenaBytes
	// Kinds of dropped rows may linger; recompute them from the cells.
	for i := range r.Kinds {
		r.Kinds[i] = 0
	}
	for _, c := range r.Cells {
		r.Kinds[c.Key] |= c.Kind
	}
	return &r
}
