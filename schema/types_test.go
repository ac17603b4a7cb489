package schema

import "testing"

var allTypes = []Type{TypeNone, TypeBoolean, TypeBigInt, TypeHugeInt, TypeDouble, TypeTimestamptz, TypeVarchar, TypeJSON}

func TestTypeOf(t *testing.T) {
	f := func(k Kind, want Type) {
		t.Helper()
		if got := TypeOf(k); got != want {
			t.Fatalf("TypeOf(%s) = %s; want %s", k, got, want)
		}
	}
	f(0, TypeNone)
	f(KindBool, TypeBoolean)
	f(KindTimestamp, TypeTimestamptz)
	f(KindInt, TypeBigInt)
	f(KindBigInt, TypeBigInt)
	f(KindInt|KindBigInt, TypeBigInt)
	f(KindHugeInt, TypeHugeInt)
	f(KindInt|KindHugeInt, TypeHugeInt)
	f(KindInt|KindBigInt|KindHugeInt, TypeHugeInt)
	f(KindFloat, TypeDouble)
	f(KindInt|KindFloat, TypeDouble)
	f(KindBigInt|KindFloat, TypeVarchar)
	f(KindHugeInt|KindFloat, TypeVarchar)
	f(KindNumText, TypeVarchar)
	f(KindInt|KindNumText, TypeVarchar)
	f(KindString, TypeVarchar)
	f(KindBool|KindInt, TypeVarchar)
	f(KindBool|KindFloat, TypeVarchar)
	f(KindTimestamp|KindString, TypeVarchar)
	f(KindTimestamp|KindInt, TypeVarchar)
	f(KindJSON, TypeJSON)
	f(KindJSON|KindInt, TypeJSON)
	f(KindJSON|KindString|KindBool, TypeJSON)
	f(kindAll, TypeJSON)
	f(1<<12, TypeNone)             // undefined bits are ignored
	f(1<<12|KindBool, TypeBoolean) // ... also next to defined ones
}

func TestEvolve(t *testing.T) {
	f := func(have Type, k Kind, want Type) {
		t.Helper()
		if got := Evolve(have, k); got != want {
			t.Fatalf("Evolve(%s, %s) = %s; want %s", have, k, got, want)
		}
		if got := holds(have, k); got != (want == have) {
			t.Fatalf("holds(%s, %s) = %v; want %v", have, k, got, want == have)
		}
	}
	// A fresh column.
	f(TypeNone, 0, TypeNone)
	f(TypeNone, KindInt, TypeBigInt)
	f(TypeNone, KindJSON, TypeJSON)
	// Nothing new.
	f(TypeBoolean, 0, TypeBoolean)
	f(TypeBoolean, KindBool, TypeBoolean)
	f(TypeBigInt, KindInt, TypeBigInt)
	f(TypeBigInt, KindBigInt, TypeBigInt)
	f(TypeHugeInt, KindInt|KindBigInt|KindHugeInt, TypeHugeInt)
	f(TypeDouble, KindInt|KindFloat, TypeDouble)
	f(TypeTimestamptz, KindTimestamp, TypeTimestamptz)
	// Integers.
	f(TypeBigInt, KindHugeInt, TypeHugeInt)
	f(TypeBigInt, KindFloat, TypeDouble)             // stored integers are exact as doubles...
	f(TypeBigInt, KindBigInt|KindFloat, TypeVarchar) // ... unless the caller knows one exceeds 2^53
	f(TypeHugeInt, KindFloat, TypeVarchar)
	f(TypeDouble, KindInt, TypeDouble)
	f(TypeDouble, KindBigInt, TypeVarchar)
	f(TypeDouble, KindHugeInt, TypeVarchar)
	f(TypeBigInt, KindNumText, TypeVarchar)
	// Mixed scalars.
	f(TypeBoolean, KindInt, TypeVarchar)
	f(TypeBigInt, KindBool, TypeVarchar)
	f(TypeTimestamptz, KindString, TypeVarchar)
	f(TypeTimestamptz, KindInt, TypeVarchar)
	f(TypeBigInt, KindTimestamp, TypeVarchar)
	// Objects and arrays.
	f(TypeJSON, KindInt, TypeJSON)
	f(TypeJSON, KindString|KindBool, TypeJSON)
	f(TypeJSON, kindAll, TypeJSON)
	f(TypeBigInt, KindJSON, TypeVarchar)
	f(TypeBoolean, KindJSON|KindBool, TypeVarchar)
	f(TypeDouble, KindJSON, TypeVarchar)
	f(TypeTimestamptz, KindJSON, TypeVarchar)
	// VARCHAR stays.
	f(TypeVarchar, KindInt, TypeVarchar)
	f(TypeVarchar, KindJSON, TypeVarchar)
	f(TypeVarchar, kindAll, TypeVarchar)
}

func TestEvolveUndefinedType(t *testing.T) {
	if got := Evolve(Type(200), KindInt); got != TypeVarchar {
		t.Fatalf("Evolve(Type(200), int) = %s; want VARCHAR", got)
	}
	if holds(Type(200), 0) {
		t.Fatalf("holds(Type(200), none) = true; want false")
	}
}

func TestKindsOf(t *testing.T) {
	f := func(typ Type, want Kind) {
		t.Helper()
		if got := KindsOf(typ); got != want {
			t.Fatalf("KindsOf(%s) = %s; want %s", typ, got, want)
		}
	}
	f(TypeNone, 0)
	f(TypeBoolean, KindBool)
	f(TypeBigInt, KindInt)
	f(TypeHugeInt, KindInt|KindHugeInt)
	f(TypeDouble, KindInt|KindFloat)
	f(TypeTimestamptz, KindTimestamp)
	f(TypeVarchar, KindBool|KindInt|KindBigInt|KindHugeInt|KindNumText|KindFloat|KindTimestamp|KindString)
	f(TypeJSON, kindAll)
	f(Type(99), 0)

	// A fresh column of the kinds a type holds is that type.
	for _, typ := range allTypes {
		if got := TypeOf(KindsOf(typ)); got != typ {
			t.Fatalf("TypeOf(KindsOf(%s)) = %s", typ, got)
		}
	}
}

func TestWider(t *testing.T) {
	f := func(a, b Type, want bool) {
		t.Helper()
		if got := wider(a, b); got != want {
			t.Fatalf("wider(%s, %s) = %v; want %v", a, b, got, want)
		}
	}
	f(TypeBigInt, TypeNone, true)
	f(TypeNone, TypeBigInt, false)
	f(TypeBigInt, TypeBigInt, false)
	f(TypeDouble, TypeBigInt, true)
	f(TypeHugeInt, TypeBigInt, true)
	f(TypeDouble, TypeHugeInt, false)
	f(TypeHugeInt, TypeDouble, false)
	f(TypeVarchar, TypeDouble, true)
	f(TypeVarchar, TypeTimestamptz, true)
	f(TypeBoolean, TypeBigInt, false)
	f(TypeJSON, TypeBigInt, true)
	f(TypeJSON, TypeVarchar, false)
	f(TypeVarchar, TypeJSON, false)
	f(Type(50), TypeNone, false)
	f(TypeVarchar, Type(50), false)

	// wider agrees with what the types hold, and is a strict partial order.
	for _, a := range allTypes {
		for _, b := range allTypes {
			h := holds(a, KindsOf(b)) && !holds(b, KindsOf(a))
			if wider(a, b) != h {
				t.Fatalf("wider(%s, %s) = %v, but holds says %v", a, b, wider(a, b), h)
			}
			if wider(a, b) && wider(b, a) {
				t.Fatalf("wider(%s, %s) both ways", a, b)
			}
			for _, c := range allTypes {
				if wider(a, b) && wider(b, c) && !wider(a, c) {
					t.Fatalf("wider not transitive: %s > %s > %s", a, b, c)
				}
			}
		}
	}
}

func TestTypeStringParse(t *testing.T) {
	f := func(s string, want Type, wantOK bool) {
		t.Helper()
		got, ok := ParseType(s)
		if got != want || ok != wantOK {
			t.Fatalf("ParseType(%q) = %s, %v; want %s, %v", s, got, ok, want, wantOK)
		}
	}
	f("BOOLEAN", TypeBoolean, true)
	f("BIGINT", TypeBigInt, true)
	f("HUGEINT", TypeHugeInt, true)
	f("DOUBLE", TypeDouble, true)
	f("TIMESTAMP WITH TIME ZONE", TypeTimestamptz, true)
	f("TIMESTAMPTZ", TypeTimestamptz, true)
	f("VARCHAR", TypeVarchar, true)
	f("JSON", TypeJSON, true)
	f("varchar", TypeVarchar, true)
	f("NONE", TypeNone, false)
	f("INTEGER", TypeNone, false)
	f("TIMESTAMP", TypeNone, false)
	f("", TypeNone, false)

	for _, typ := range allTypes[1:] {
		if got, ok := ParseType(typ.String()); !ok || got != typ {
			t.Fatalf("ParseType(%s.String()) = %s, %v", typ, got, ok)
		}
	}
	if s := TypeNone.String(); s != "NONE" {
		t.Fatalf("TypeNone.String() = %q", s)
	}
	if s := Type(42).String(); s != "Type(42)" {
		t.Fatalf("Type(42).String() = %q", s)
	}
}

func TestKindString(t *testing.T) {
	f := func(k Kind, want string) {
		t.Helper()
		if got := k.String(); got != want {
			t.Fatalf("Kind(%#x).String() = %q; want %q", uint16(k), got, want)
		}
	}
	f(0, "none")
	f(KindInt|KindFloat, "int|float")
	f(KindBool, "bool")
	f(KindJSON|KindString, "string|json")
	f(kindAll, "bool|int|bigint|hugeint|numtext|float|timestamp|string|json")
	f(KindInt|1<<10, "int|Kind(0x400)")
}

// holds is the tests' oracle for what a column stores: whether a column of type t stores every
// value of kinds k without loss. VARCHAR and JSON hold everything (VARCHAR keeps objects and
// arrays as their JSON text); BIGINT and HUGEINT also hold KindBigInt. holds(t, k) is true
// exactly when Evolve(t, k) == t, except that an undefined t holds nothing.
func holds(t Type, k Kind) bool {
	k &= kindAll
	switch t {
	case TypeVarchar, TypeJSON:
		return true
	case TypeBigInt, TypeHugeInt:
		return k&^(KindsOf(t)|KindBigInt) == 0
	}
	return t.valid() && k&^KindsOf(t) == 0
}

// wider is the tests' order of the types: whether a is strictly wider than b, that is a column
// of type a can hold everything a column of type b holds, and a != b. Every type is wider than
// TypeNone; VARCHAR is wider than every scalar type; HUGEINT and DOUBLE are wider than BIGINT;
// JSON is wider than every type but VARCHAR. VARCHAR and JSON are incomparable: Evolve never
// turns one into the other. Undefined types are never wider nor narrower.
func wider(a, b Type) bool {
	if a == b || !a.valid() || !b.valid() {
		return false
	}
	switch a {
	case TypeBoolean, TypeBigInt, TypeTimestamptz:
		return b == TypeNone
	case TypeHugeInt, TypeDouble:
		return b == TypeNone || b == TypeBigInt
	case TypeVarchar:
		return b != TypeJSON
	case TypeJSON:
		return b != TypeVarchar
	}
	return false // TypeNone
}
