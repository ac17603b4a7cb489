package schema

import (
	"slices"
	"strconv"
	"strings"
)

// Column is one column of a table.
type Column struct {
	Name string // as created; matched to keys by FoldName
	Type Type
}

// Table is the known schema of one table: columns in table order, looked up by folded name.
// It is not safe for concurrent use: its owner (the tenant's writer) serializes Plan and lookups.
type Table struct {
	cols  []Column
	index map[string]int // FoldName(cols[i].Name) -> i

	// Rules (see SetRules).
	pins   map[string]Type // FoldName(column) -> pinned type
	frozen bool
}

// NewTable returns the table with columns cols, as read from information_schema in ordinal order.
// It copies cols. Of columns whose names fold to the same name, Lookup finds the first.
func NewTable(cols []Column) *Table {
	t := &Table{
		cols:  slices.Clone(cols),
		index: make(map[string]int, len(cols)),
	}
	for i, c := range t.cols {
		f := FoldName(c.Name)
		if _, dup := t.index[f]; !dup {
			t.index[f] = i
		}
	}
	return t
}

// Columns returns the columns in table order. The caller must not modify the slice;
// it is valid until the next call to Plan.
func (t *Table) Columns() []Column { return t.cols }

// Lookup returns the index in Columns of the column that name matches in any ASCII case.
func (t *Table) Lookup(name string) (int, bool) {
	i, ok := t.index[FoldName(name)]
	return i, ok
}

// Len returns the number of columns, OverflowColumn included.
func (t *Table) Len() int { return len(t.cols) }

// Seen is what one batch saw for one key: the key as first spelled and the OR of its kinds.
type Seen struct {
	Key   string
	Kinds Kind
}

// Op is the operation of a Change.
type Op uint8

// The DDL operations Plan emits.
const (
	OpAddColumn Op = iota // ALTER TABLE ADD COLUMN; From is TypeNone
	OpAlterType           // ALTER TABLE ALTER COLUMN TYPE, from a narrower type to a wider one
)

// String returns "add column" or "alter type".
func (o Op) String() string {
	switch o {
	case OpAddColumn:
		return "add column"
	case OpAlterType:
		return "alter type"
	}
	return "Op(" + strconv.Itoa(int(o)) + ")"
}

// Change is one DDL step.
type Change struct {
	Op     Op
	Column string // the column's name as created
	From   Type   // TypeNone for OpAddColumn
	To     Type
}

// SQL renders the change for table table, with both names quoted by QuoteIdent:
// ALTER TABLE "t" ADD COLUMN "c" BIGINT, or ALTER TABLE "t" ALTER COLUMN "c" TYPE VARCHAR.
// It returns "" for an undefined Op.
func (c Change) SQL(table string) string {
	switch c.Op {
	case OpAddColumn:
		return "ALTER TABLE " + QuoteIdent(table) + " ADD COLUMN " + QuoteIdent(c.Column) + " " + c.To.String()
	case OpAlterType:
		return "ALTER TABLE " + QuoteIdent(table) + " ALTER COLUMN " + QuoteIdent(c.Column) + " TYPE " + c.To.String()
	}
	return ""
}

// CreateSQL renders CREATE TABLE IF NOT EXISTS for a brand-new table with columns cols, in order:
// CREATE TABLE IF NOT EXISTS "t" ("a" BIGINT, "b" VARCHAR). DuckDB rejects a table without
// columns, so cols must not be empty.
func CreateSQL(table string, cols []Column) string {
	var b strings.Builder
	b.WriteString("CREATE TABLE IF NOT EXISTS ")
	b.WriteString(QuoteIdent(table))
	b.WriteString(" (")
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(QuoteIdent(c.Name))
		b.WriteByte(' ')
		b.WriteString(c.Type.String())
	}
	b.WriteByte(')')
	return b.String()
}

// planKey is the keys of one batch that fold to the same name.
type planKey struct {
	key   string // the first spelling
	kinds Kind   // the OR over all spellings
}

// Plan returns the changes that make t hold the batch seen, and applies them to t.
//
// With rules set (SetRules), a pinned column is never altered (values it does
// not accept are the caller's to set aside) and is created with its pinned
// type, and a frozen table gets no new column but pinned ones: other new keys
// are overflow.
//
// Keys that differ only in ASCII case are one column: their kinds are ORed and the first
// spelling in seen names a new column. Entries whose Kinds is 0 (only nulls seen) are ignored:
// they add no column, name nothing and are not overflow. A known column widens with Evolve; a new
// one gets TypeOf. maxColumns caps the number of user columns (OverflowColumn does not count;
// maxColumns <= 0 means no cap). Keys that would exceed the cap and keys that fail
// ValidColumnName are returned in overflow, as indices into seen in ascending order, and when
// there are any, OverflowColumn (JSON) is added if t lacks it.
//
// Changes come in the order of the first spelling of each key in seen, OverflowColumn last. For a
// table that does not exist yet, pass NewTable(nil): the changes are all OpAddColumn, and the
// caller renders t.Columns() with CreateSQL instead.
func (t *Table) Plan(seen []Seen, maxColumns int) (changes []Change, overflow []int) {
	// Merge spellings; keys is in order of first appearance, keyOf[i] is seen[i]'s index in keys or -1.
	var keys []planKey
	keyOf := make([]int, len(seen))
	byFold := make(map[string]int, len(seen))
	for i, s := range seen {
		keyOf[i] = -1
		k := s.Kinds & kindAll
		if k == 0 {
			continue
		}
		f := FoldName(s.Key)
		j, ok := byFold[f]
		if !ok {
			j = len(keys)
			byFold[f] = j
			keys = append(keys, planKey{key: s.Key})
		}
		keys[j].kinds |= k
		keyOf[i] = j
	}

	userCols := len(t.cols)
	if _, ok := t.Lookup(OverflowColumn); ok {
		userCols--
	}
	overflowKey := make([]bool, len(keys)) // keys[j] goes to the overflow column
	anyOverflow := false
	for j, pk := range keys {
		if !ValidColumnName(pk.key) {
			overflowKey[j], anyOverflow = true, true
			continue
		}
		pin, pinned := t.Pinned(pk.key)
		if i, ok := t.Lookup(pk.key); ok {
			if pinned {
				continue
			}
			have := t.cols[i].Type
			if to := Evolve(have, pk.kinds); to != have {
				changes = append(changes, Change{Op: OpAlterType, Column: t.cols[i].Name, From: have, To: to})
				t.cols[i].Type = to
			}
			continue
		}
		if (maxColumns > 0 && userCols >= maxColumns) || (t.frozen && !pinned) {
			overflowKey[j], anyOverflow = true, true
			continue
		}
		to := TypeOf(pk.kinds)
		if pinned {
			to = pin
		}
		changes = append(changes, Change{Op: OpAddColumn, Column: pk.key, To: to})
		t.add(Column{Name: pk.key, Type: to})
		userCols++
	}
	if !anyOverflow {
		return changes, nil
	}

	for i, j := range keyOf {
		if j >= 0 && overflowKey[j] {
			overflow = append(overflow, i)
		}
	}
	if _, ok := t.Lookup(OverflowColumn); !ok {
		changes = append(changes, Change{Op: OpAddColumn, Column: OverflowColumn, To: TypeJSON})
		t.add(Column{Name: OverflowColumn, Type: TypeJSON})
	}
	return changes, overflow
}

// add appends c to t's columns.
func (t *Table) add(c Column) {
	if t.index == nil { // a zero Table
		t.index = make(map[string]int)
	}
	t.index[FoldName(c.Name)] = len(t.cols)
	t.cols = append(t.cols, c)
}
