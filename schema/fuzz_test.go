package schema

import (
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func FuzzEvolve(f *testing.F) {
	f.Add(uint8(TypeBigInt), uint16(KindFloat), uint16(KindBigInt))
	f.Add(uint8(TypeNone), uint16(KindInt), uint16(KindJSON))
	f.Add(uint8(TypeJSON), uint16(KindString), uint16(0))
	f.Add(uint8(TypeHugeInt), uint16(KindBigInt), uint16(KindFloat))
	f.Add(uint8(TypeTimestamptz), uint16(KindTimestamp), uint16(KindString))
	f.Add(uint8(200), uint16(0xffff), uint16(1<<12))
	f.Fuzz(func(t *testing.T, rawHave uint8, rawK1, rawK2 uint16) {
		_ = Type(rawHave).String() + Kind(rawK1).String() // must not panic
		checkEvolve(t, rawHave, rawK1, rawK2)
	})
}

// TestEvolveExhaustive runs FuzzEvolve's checks on every defined type and every pair of kind sets.
func TestEvolveExhaustive(t *testing.T) {
	for have := range uint8(numTypes) {
		for k1 := range uint16(kindAll + 1) {
			for k2 := range uint16(kindAll + 1) {
				checkEvolve(t, have, k1, k2)
			}
		}
	}
}

// checkEvolve checks the lattice laws for one column type and two batches' kinds.
func checkEvolve(t *testing.T, rawHave uint8, rawK1, rawK2 uint16) {
	k1, k2 := Kind(rawK1), Kind(rawK2)
	// Undefined types and kinds must not panic.
	_ = Evolve(Type(rawHave), k1)
	_ = holds(Type(rawHave), k1)
	_ = wider(Type(rawHave), TypeOf(k1))

	have := Type(rawHave % uint8(numTypes))
	got := Evolve(have, k1)
	if got != have && !wider(got, have) {
		t.Fatalf("Evolve(%s, %s) = %s narrows", have, k1, got)
	}
	if !holds(got, k1) {
		t.Fatalf("Evolve(%s, %s) = %s does not hold %s", have, k1, got, k1)
	}
	if !holds(got, KindsOf(have)) {
		t.Fatalf("Evolve(%s, %s) = %s loses what %s held", have, k1, got, have)
	}
	if holds(have, k1) != (got == have) {
		t.Fatalf("holds(%s, %s) = %v but Evolve = %s", have, k1, holds(have, k1), got)
	}
	if !holds(TypeOf(k1), k1) {
		t.Fatalf("TypeOf(%s) = %s does not hold it", k1, TypeOf(k1))
	}
	if TypeOf(k1|k2) != TypeOf(k2|k1) {
		t.Fatalf("TypeOf(%s|%s) depends on order", k1, k2)
	}
	// A column made by one batch and evolved by the next holds both, as long as the caller
	// passes what it knows is stored (KindsOf(TypeBigInt) is only KindInt).
	all := k1 | k2
	if e := Evolve(TypeOf(k1), all); !holds(e, all) {
		t.Fatalf("Evolve(TypeOf(%s), %s) = %s does not hold it", k1, all, e)
	}
	if k1&KindBigInt == 0 {
		if e := Evolve(TypeOf(k1), k2); !holds(e, all) {
			t.Fatalf("Evolve(TypeOf(%s), %s) = %s does not hold %s", k1, k2, e, all)
		}
	}
}

func FuzzIsTimestamp(f *testing.F) {
	for _, s := range []string{
		"2024-01-02T03:04:05Z", "2024-02-29T10:00:00Z", "2023-02-29T10:00:00Z",
		"2024-01-02T03:04:05.123456789+05:30", "2024-01-02T03:04:05.123456000+05:30", "2024-01-02 03:04:05-23:59", "2024-01-02t03:04:05z",
		"2024-01-02", "hello", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999-00:00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, s []byte) {
		if !IsTimestamp(s) {
			if _, err := ParseTimestamp(string(s)); !errors.Is(err, ErrNotTimestamp) {
				t.Fatalf("IsTimestamp(%q) = false but ParseTimestamp error = %v", s, err)
			}
			return
		}
		got, err := ParseTimestamp(string(s))
		if err != nil {
			t.Fatalf("IsTimestamp(%q) = true but ParseTimestamp: %v", s, err)
		}
		if got.Location() != time.UTC {
			t.Fatalf("ParseTimestamp(%q) is in %v", s, got.Location())
		}
		// Cross-check with the standard library, which takes only 'T' and an upper-case 'Z'.
		std := []byte(string(s))
		std[10] = 'T'
		if std[len(std)-1] == 'z' {
			std[len(std)-1] = 'Z'
		}
		want, err := time.Parse(time.RFC3339Nano, string(std))
		if err != nil {
			t.Fatalf("IsTimestamp(%q) = true but time.Parse: %v", s, err)
		}
		if !got.Equal(want) {
			t.Fatalf("ParseTimestamp(%q) = %v; time.Parse = %v", s, got, want)
		}
		if got.Nanosecond()%1000 != 0 {
			t.Fatalf("IsTimestamp(%q) = true for a time TIMESTAMPTZ cannot hold: %v", s, got)
		}
	})
}

func FuzzClassifyNumber(f *testing.F) {
	for _, s := range []string{
		"0", "-0", "9007199254740992", "9007199254740993", "9223372036854775807", "9223372036854775808",
		"-9223372036854775808", "170141183460469231731687303715884105727", "170141183460469231731687303715884105728",
		"-170141183460469231731687303715884105728", "1.5", "1e3", "1E-3", "1e400", "1.7976931348623159e308",
		"00", "-", "1.", "1e+", "0.00001e313", "1e-400", "2.5e-330", "7e-324", "2.2250738585072012e-308",
		"0.0e-400",
	} {
		f.Add([]byte(s))
	}
	hugeLo := new(big.Int).Neg(new(big.Int).Lsh(big.NewInt(1), 127))
	hugeHi := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 127), big.NewInt(1))
	f.Fuzz(func(t *testing.T, lit []byte) {
		got := ClassifyNumber(lit)
		s := string(lit)
		if !isJSONNumber(lit) {
			if got != KindNumText {
				t.Fatalf("ClassifyNumber(%q) = %s for a non-number; want numtext", s, got)
			}
			return
		}
		isInt := !strings.ContainsAny(s, ".eE")
		switch got {
		case KindInt, KindBigInt:
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil || !isInt {
				t.Fatalf("ClassifyNumber(%q) = %s but ParseInt: %v", s, got, err)
			}
			if exact := v >= -(1<<53) && v <= 1<<53; exact != (got == KindInt) {
				t.Fatalf("ClassifyNumber(%q) = %s; exact as float64 = %v", s, got, exact)
			}
		case KindHugeInt:
			v, ok := new(big.Int).SetString(s, 10)
			if !ok || !isInt || v.IsInt64() || v.Cmp(hugeLo) < 0 || v.Cmp(hugeHi) > 0 {
				t.Fatalf("ClassifyNumber(%q) = hugeint but it is not an integer outside int64 within HUGEINT", s)
			}
		case KindFloat:
			v, err := strconv.ParseFloat(s, 64)
			if err != nil || math.IsInf(v, 0) || math.IsNaN(v) || isInt {
				t.Fatalf("ClassifyNumber(%q) = float but ParseFloat = %v, %v", s, v, err)
			}
			if math.Abs(v) < 0x1p-1022 && nonzeroDigits(s) {
				t.Fatalf("ClassifyNumber(%q) = float but a double changes it: %v", s, v)
			}
		case KindNumText:
			if isInt {
				v, ok := new(big.Int).SetString(s, 10)
				if !ok || (v.Cmp(hugeLo) >= 0 && v.Cmp(hugeHi) <= 0) {
					t.Fatalf("ClassifyNumber(%q) = numtext for an integer within HUGEINT", s)
				}
			} else if v, _ := strconv.ParseFloat(s, 64); !math.IsInf(v, 0) && (math.Abs(v) >= 0x1p-1022 || !nonzeroDigits(s)) {
				t.Fatalf("ClassifyNumber(%q) = numtext for a float that fits: %v", s, v)
			}
		default:
			t.Fatalf("ClassifyNumber(%q) = %s", s, got)
		}
	})
}

// isJSONNumber is the oracle for ClassifyNumber: a JSON number with nothing around it.
func isJSONNumber(b []byte) bool {
	// A valid JSON text that starts with a sign or digit and ends with a digit is one number.
	return len(b) > 0 && (b[0] == '-' || isDigit(b[0])) && isDigit(b[len(b)-1]) && json.Valid(b)
}

// nonzeroDigits reports whether the significand of a JSON number (the digits before any exponent) has a digit other than 0.
func nonzeroDigits(s string) bool {
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		s = s[:i]
	}
	return strings.ContainsAny(s, "123456789")
}

// FuzzPlanRules plans two batches on a table with pins and maybe frozen,
// from bytes: each seen entry is a key (one of a few names, in either case)
// and kinds. Pinned columns never change type, a frozen table adds only
// pinned columns and the overflow column, every key with kinds ends in a
// column or the overflow, and unpinned columns hold their kinds.
func FuzzPlanRules(f *testing.F) {
	f.Add([]byte{0x01, 0x02, 0x00, 0x81, 0x10, 0x00}, uint8(0x5), true, 0)
	f.Add([]byte{0x13, 0x01, 0x00, 0x23, 0x80, 0x00, 0x03, 0x40, 0x00}, uint8(0x3), false, 2)
	f.Fuzz(func(t *testing.T, raw []byte, pinMask uint8, frozen bool, maxColumns int) {
		names := []string{"a", "b", "c", "d", "e", "_overflow", ""}
		pinTypes := []Type{TypeBigInt, TypeVarchar, TypeDouble, TypeJSON, TypeBoolean, TypeTimestamptz, TypeHugeInt}
		pins := map[string]Type{}
		for i := range 5 {
			if pinMask&(1<<i) != 0 {
				pins[names[i]] = pinTypes[(int(pinMask)+i)%len(pinTypes)]
			}
		}
		maxColumns %= 8
		var seen []Seen
		for i := 0; i+2 < len(raw) && len(seen) < 32; i += 3 {
			name := names[int(raw[i]&0x7f)%len(names)]
			if raw[i]&0x80 != 0 {
				name = strings.ToUpper(name)
			}
			seen = append(seen, Seen{Key: name, Kinds: Kind(raw[i+1]) | Kind(raw[i+2])<<8})
		}
		tbl := NewTable([]Column{{"a", TypeBigInt}, {"c", TypeVarchar}})
		tbl.SetRules(Rules{Pins: pins, Frozen: frozen})
		before := slices.Clone(tbl.Columns())
		for _, batch := range [][]Seen{seen[:len(seen)/2], seen[len(seen)/2:]} {
			changes, overflow := tbl.Plan(batch, maxColumns)
			over := map[int]bool{}
			for _, i := range overflow {
				over[i] = true
			}
			for _, c := range changes {
				_, pinned := tbl.Pinned(c.Column)
				if c.Op == OpAlterType && pinned {
					t.Fatalf("pinned column %s altered: %v", c.Column, c)
				}
				if c.Op == OpAddColumn && frozen && !pinned && c.Column != OverflowColumn {
					t.Fatalf("frozen table got column %s", c.Column)
				}
				if c.Op == OpAddColumn && pinned {
					if want, _ := tbl.Pinned(c.Column); c.To != want {
						t.Fatalf("pinned column %s created as %s; pinned %s", c.Column, c.To, want)
					}
				}
			}
			for i, s := range batch {
				if s.Kinds&kindAll == 0 || over[i] {
					continue
				}
				ci, ok := tbl.Lookup(s.Key)
				if !ok {
					t.Fatalf("key %q with kinds %s has no column and is not overflow", s.Key, s.Kinds)
				}
				if _, pinned := tbl.Pinned(s.Key); !pinned && !holds(tbl.Columns()[ci].Type, s.Kinds&kindAll) {
					t.Fatalf("column %s of %s does not hold %s", s.Key, tbl.Columns()[ci].Type, s.Kinds)
				}
			}
		}
		for _, c := range before {
			ci, _ := tbl.Lookup(c.Name)
			if pin, ok := tbl.Pinned(c.Name); ok && tbl.Columns()[ci].Type != c.Type {
				t.Fatalf("pinned (%s) column %s changed from %s to %s", pin, c.Name, c.Type, tbl.Columns()[ci].Type)
			}
		}
	})
}
