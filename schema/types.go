package schema

import (
	"strconv"
	"strings"
)

// Kind is a bit set of the value kinds seen for one column.
// Bits above KindJSON have no meaning and are ignored by TypeOf and Evolve.
type Kind uint16

// The kinds of JSON values. A batch ORs them per key.
const (
	KindBool      Kind = 1 << iota // JSON true/false
	KindInt                        // integer literal that fits int64 with |v| <= 2^53 (exact as a float64)
	KindBigInt                     // integer literal that fits int64 with |v| > 2^53
	KindHugeInt                    // integer literal outside int64 but inside DuckDB HUGEINT: -(2^127) .. 2^127-1
	KindNumText                    // a number no numeric column takes unchanged: an integer beyond HUGEINT, or a nonzero literal with a fraction or exponent whose nearest float64 is infinite, subnormal or zero (1e400, 1e-400, 2.5e-330; see ClassifyNumber)
	KindFloat                      // any other number with a fraction or exponent (1.5, 1e3, -0.0)
	KindTimestamp                  // a string that is an RFC 3339 timestamp TIMESTAMPTZ holds exactly, to the microsecond (see IsTimestamp)
	KindString                     // any other string (a timestamp with nonzero digits below the microsecond included)
	KindJSON                       // an object or an array
)

const (
	kindScalar = KindBool | KindInt | KindBigInt | KindHugeInt | KindNumText | KindFloat | KindTimestamp | KindString
	kindAll    = kindScalar | KindJSON
)

var kindNames = [...]string{"bool", "int", "bigint", "hugeint", "numtext", "float", "timestamp", "string", "json"}

// String returns the kinds in k joined by "|", e.g. "int|float"; "none" for 0.
func (k Kind) String() string {
	if k == 0 {
		return "none"
	}
	var b strings.Builder
	for i, name := range kindNames {
		if k&(1<<i) != 0 {
			if b.Len() > 0 {
				b.WriteByte('|')
			}
			b.WriteString(name)
		}
	}
	if rest := k &^ kindAll; rest != 0 {
		if b.Len() > 0 {
			b.WriteByte('|')
		}
		b.WriteString("Kind(0x" + strconv.FormatUint(uint64(rest), 16) + ")")
	}
	return b.String()
}

// Type is a DuckDB column type the gateway uses.
type Type uint8

// The column types, from no column at all to JSON.
const (
	TypeNone Type = iota // no column yet (only nulls seen)
	TypeBoolean
	TypeBigInt
	TypeHugeInt
	TypeDouble
	TypeTimestamptz
	TypeVarchar
	TypeJSON
	numTypes // number of defined types; not a type
)

var typeNames = [numTypes]string{"NONE", "BOOLEAN", "BIGINT", "HUGEINT", "DOUBLE", "TIMESTAMPTZ", "VARCHAR", "JSON"}

// String returns the DuckDB SQL spelling of t ("BIGINT", "TIMESTAMPTZ", ...), "NONE" for TypeNone
// and "Type(n)" for a value outside the defined types.
func (t Type) String() string {
	if t < numTypes {
		return typeNames[t]
	}
	return "Type(" + strconv.Itoa(int(t)) + ")"
}

func (t Type) valid() bool { return t < numTypes }

// ParseType maps a type name as DuckDB reports it in information_schema.columns.data_type
// ("BOOLEAN", "BIGINT", "HUGEINT", "DOUBLE", "TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ", "VARCHAR", "JSON")
// to a Type, ignoring ASCII case. It reports ok=false for anything else, including "NONE".
func ParseType(s string) (t Type, ok bool) {
	switch {
	case strings.EqualFold(s, "BOOLEAN"):
		return TypeBoolean, true
	case strings.EqualFold(s, "BIGINT"):
		return TypeBigInt, true
	case strings.EqualFold(s, "HUGEINT"):
		return TypeHugeInt, true
	case strings.EqualFold(s, "DOUBLE"):
		return TypeDouble, true
	case strings.EqualFold(s, "TIMESTAMP WITH TIME ZONE"), strings.EqualFold(s, "TIMESTAMPTZ"):
		return TypeTimestamptz, true
	case strings.EqualFold(s, "VARCHAR"):
		return TypeVarchar, true
	case strings.EqualFold(s, "JSON"):
		return TypeJSON, true
	}
	return TypeNone, false
}

// TypeOf is the type of a fresh column holding values of kinds k.
//
// Objects and arrays make a JSON column (scalars mixed with them are stored as JSON values);
// booleans alone make BOOLEAN, timestamps alone TIMESTAMPTZ; integers make BIGINT, or HUGEINT
// once one is outside int64; integers exact as doubles mixed with floats make DOUBLE;
// everything else (strings, NumText, booleans or timestamps mixed with anything,
// floats with integers beyond 2^53) makes VARCHAR. TypeOf(0) is TypeNone.
func TypeOf(k Kind) Type {
	k &= kindAll
	switch {
	case k == 0:
		return TypeNone
	case k&KindJSON != 0:
		return TypeJSON
	case k == KindBool:
		return TypeBoolean
	case k == KindTimestamp:
		return TypeTimestamptz
	case k&^(KindInt|KindBigInt) == 0:
		return TypeBigInt
	case k&^(KindInt|KindBigInt|KindHugeInt) == 0:
		return TypeHugeInt
	case k&^(KindInt|KindFloat) == 0:
		return TypeDouble
	}
	return TypeVarchar
}

// KindsOf is the set of kinds a column of type t holds natively:
// BOOLEAN bool; BIGINT int (not bigint: see Evolve); HUGEINT int|hugeint; DOUBLE int|float;
// TIMESTAMPTZ timestamp; VARCHAR every scalar kind; JSON every kind; TypeNone and undefined types none.
func KindsOf(t Type) Kind {
	switch t {
	case TypeBoolean:
		return KindBool
	case TypeBigInt:
		return KindInt
	case TypeHugeInt:
		return KindInt | KindHugeInt
	case TypeDouble:
		return KindInt | KindFloat
	case TypeTimestamptz:
		return KindTimestamp
	case TypeVarchar:
		return kindScalar
	case TypeJSON:
		return kindAll
	}
	return 0
}

// Evolve is the type an existing column of type have must take to also hold values of kinds k.
// It returns have itself when have already holds k, and never narrows: the result holds every
// value have holds.
//
// A JSON column stays JSON (scalars are stored as JSON values); a VARCHAR column stays VARCHAR;
// an object or array arriving at any other scalar column makes it VARCHAR (stored as compact JSON text).
// Otherwise the result is TypeOf(KindsOf(have)|k). KindsOf(TypeBigInt) is KindInt alone, so a
// BIGINT column becomes DOUBLE when floats arrive unless the caller, knowing that a stored value
// exceeds 2^53, passes KindBigInt in k: then it becomes VARCHAR and no integer loses precision.
// A have outside the defined types evolves to TypeVarchar.
func Evolve(have Type, k Kind) Type {
	k &= kindAll
	switch {
	case have == TypeNone:
		return TypeOf(k)
	case have == TypeJSON, have == TypeVarchar:
		return have
	case !have.valid(), k&KindJSON != 0:
		return TypeVarchar
	}
	return TypeOf(KindsOf(have) | k)
}
