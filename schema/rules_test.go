package schema

import (
	"slices"
	"testing"
)

func TestAccepts(t *testing.T) {
	f := func(typ Type, k Kind, want bool) {
		t.Helper()
		if got := Accepts(typ)&k == k; got != want {
			t.Fatalf("Accepts(%s) holds %s = %v; want %v", typ, k, got, want)
		}
	}
	f(TypeBigInt, KindInt|KindBigInt, true)
	f(TypeBigInt, KindString, false)
	f(TypeBigInt, KindFloat, false)
	f(TypeBigInt, KindHugeInt, false)
	f(TypeHugeInt, KindHugeInt|KindBigInt, true)
	f(TypeDouble, KindFloat|KindInt, true)
	f(TypeDouble, KindBigInt, false) // not exact as a double
	f(TypeBoolean, KindInt, false)
	f(TypeTimestamptz, KindString, false)
	f(TypeVarchar, KindJSON|KindString|KindFloat, true)
	f(TypeJSON, kindAll, true)
	f(TypeNone, KindInt, false)
	f(Type(200), KindInt, false)
}

func TestPlanPinned(t *testing.T) {
	tbl := NewTable([]Column{{"n", TypeBigInt}})
	tbl.SetRules(Rules{Pins: map[string]Type{"N": TypeBigInt, "later": TypeDouble, "bad": TypeNone}})
	changes, overflow := tbl.Plan([]Seen{{"n", KindString}, {"Later", KindInt}, {"bad", KindString}}, 0)
	want := []Change{add("Later", TypeDouble), add("bad", TypeVarchar)}
	if !slices.Equal(changes, want) || overflow != nil {
		t.Fatalf("Plan = %v, %v; want %v, none", changes, overflow, want)
	}
	if typ, ok := tbl.Pinned("LATER"); !ok || typ != TypeDouble {
		t.Fatalf("Pinned(LATER) = %s, %v", typ, ok)
	}
	if _, ok := tbl.Pinned("bad"); ok {
		t.Fatal("a pin to NONE was kept")
	}
	// Unpinned, the same column widens.
	tbl.SetRules(Rules{})
	changes, _ = tbl.Plan([]Seen{{"n", KindString}}, 0)
	if want := []Change{alter("n", TypeBigInt, TypeVarchar)}; !slices.Equal(changes, want) {
		t.Fatalf("unpinned Plan = %v; want %v", changes, want)
	}
}

func TestPlanFrozen(t *testing.T) {
	tbl := NewTable([]Column{{"a", TypeBigInt}})
	tbl.SetRules(Rules{Frozen: true, Pins: map[string]Type{"p": TypeVarchar}})
	seen := []Seen{{"a", KindFloat}, {"new", KindInt}, {"p", KindInt}, {"A", KindInt}}
	changes, overflow := tbl.Plan(seen, 0)
	want := []Change{alter("a", TypeBigInt, TypeDouble), add("p", TypeVarchar), add(OverflowColumn, TypeJSON)}
	if !slices.Equal(changes, want) || !slices.Equal(overflow, []int{1}) {
		t.Fatalf("Plan = %v, %v; want %v, [1]", changes, overflow, want)
	}
	if !tbl.Frozen() {
		t.Fatal("Frozen() = false")
	}
	// A clone plans apart from its original.
	c := tbl.Clone()
	c.Plan([]Seen{{"a", KindString}}, 0)
	if i, _ := tbl.Lookup("a"); tbl.Columns()[i].Type != TypeDouble {
		t.Fatal("planning on a clone changed the original")
	}
	if !c.Frozen() {
		t.Fatal("a clone lost its rules")
	}
}
