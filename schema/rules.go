package schema

import "maps"

// Rules are what a tenant decided about one table, as data the caller
// reads from wherever it keeps them: pinned column types and whether the
// table is frozen. Plan applies them.
type Rules struct {
	// Pins maps a column name (matched in any ASCII case, see FoldName) to
	// the type the column keeps. Plan never widens a pinned column and
	// creates it with its pinned type; a value whose kind the type does not
	// accept (see Accepts) is the caller's to set aside, never a reason to
	// change the column.
	Pins map[string]Type
	// Frozen stops Plan from adding columns: a key that is neither a column
	// of the table nor pinned goes to OverflowColumn. Existing columns that
	// are not pinned still widen.
	Frozen bool
}

// Accepts is the set of kinds a column of type t stores with their meaning
// unchanged, the test of a value arriving at a pinned column: BOOLEAN
// booleans; BIGINT integers of 64 bits; HUGEINT those and larger integers;
// DOUBLE integers exact as doubles (|i| <= 2^53) and other numbers a double
// holds; TIMESTAMPTZ timestamps; VARCHAR and JSON everything (VARCHAR keeps
// an object or array as its compact JSON text, as evolution does).
// TypeNone and undefined types accept nothing.
func Accepts(t Type) Kind {
	switch t {
	case TypeBigInt:
		return KindInt | KindBigInt
	case TypeHugeInt:
		return KindInt | KindBigInt | KindHugeInt
	case TypeVarchar, TypeJSON:
		return kindAll
	}
	return KindsOf(t)
}

// SetRules makes Plan apply r from now on. It copies r.Pins, dropping
// pins to TypeNone or undefined types.
func (t *Table) SetRules(r Rules) {
	t.pins = nil
	for name, typ := range r.Pins {
		if typ == TypeNone || !typ.valid() {
			continue
		}
		if t.pins == nil {
			t.pins = make(map[string]Type, len(r.Pins))
		}
		t.pins[FoldName(name)] = typ
	}
	t.frozen = r.Frozen
}

// Pinned returns the type the column named name (in any ASCII case) is
// pinned to.
func (t *Table) Pinned(name string) (Type, bool) {
	if len(t.pins) == 0 {
		return TypeNone, false // the common case: no folding
	}
	typ, ok := t.pins[FoldName(name)]
	return typ, ok
}

// HasPins reports whether some column of t is pinned.
func (t *Table) HasPins() bool { return len(t.pins) > 0 }

// Frozen reports whether Plan adds no columns but pinned ones.
func (t *Table) Frozen() bool { return t.frozen }

// Clone returns a copy of t, rules included, that Plan can change without
// changing t: what a dry run plans on.
func (t *Table) Clone() *Table {
	c := NewTable(t.cols)
	c.pins = maps.Clone(t.pins)
	c.frozen = t.frozen
	return c
}
