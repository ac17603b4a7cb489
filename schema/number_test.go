package schema

import (
	"strings"
	"testing"
)

func TestClassifyNumber(t *testing.T) {
	f := func(lit string, want Kind) {
		t.Helper()
		if got := ClassifyNumber([]byte(lit)); got != want {
			t.Fatalf("ClassifyNumber(%q) = %s; want %s", lit, got, want)
		}
	}
	f("0", KindInt)
	f("-0", KindInt)
	f("7", KindInt)
	f("-12", KindInt)
	f("9007199254740992", KindInt) // 2^53
	f("-9007199254740992", KindInt)
	f("9007199254740993", KindBigInt)
	f("-9007199254740993", KindBigInt)
	f("9223372036854775807", KindBigInt)
	f("-9223372036854775808", KindBigInt)
	f("9223372036854775808", KindHugeInt)
	f("-9223372036854775809", KindHugeInt)
	f("18446744073709551615", KindHugeInt)
	f("99999999999999999999", KindHugeInt) // beyond uint64
	f("170141183460469231731687303715884105727", KindHugeInt)
	f("170141183460469231731687303715884105728", KindNumText)
	f("-170141183460469231731687303715884105728", KindHugeInt)
	f("-170141183460469231731687303715884105729", KindNumText)
	f("999999999999999999999999999999999999999", KindNumText)
	f("1000000000000000000000000000000000000000", KindNumText)
	f("1.5", KindFloat)
	f("-0.0", KindFloat)
	f("1e3", KindFloat)
	f("1E-3", KindFloat)
	f("1e+3", KindFloat)
	f("0.000123", KindFloat)
	f("0e999999999999", KindFloat)
	f("0.000e-999999999999", KindFloat)
	f("-0e-400", KindFloat)
	f("1e-307", KindFloat)
	f("2.2250738585072014e-308", KindFloat)   // the smallest normal float64
	f("2.2250738585072012e-308", KindFloat)   // rounds to it
	f("2.2250738585072011e-308", KindNumText) // rounds to the largest subnormal
	f("2.2250738585072e-308", KindNumText)    // subnormal: fewer than 53 bits
	f("1e-308", KindNumText)
	f("1e-310", KindNumText)
	f("7e-324", KindNumText) // the nearest double is 5e-324
	f("2.5e-330", KindNumText)
	f("1e-400", KindNumText) // nonzero, but a double would read 0
	f("-1e-400", KindNumText)
	f("0.0000000001e-399", KindNumText)
	f("100000e-312", KindFloat) // 1e-307
	f("1e-99999999999999999999999", KindNumText)
	f("1"+strings.Repeat("0", 400)+"e-400", KindFloat)  // 1
	f("0."+strings.Repeat("0", 400)+"1e400", KindFloat) // 1e-1
	f("1.7976931348623157e308", KindFloat)              // MaxFloat64
	f("1.7976931348623159e308", KindNumText)
	f("0.00001e313", KindFloat)
	f("1e308", KindFloat)
	f("1e309", KindNumText)
	f("1e400", KindNumText)
	f("-1e400", KindNumText)
	f("1e99999999999999999999999", KindNumText)
	// Not JSON numbers.
	f("", KindNumText)
	f("-", KindNumText)
	f("00", KindNumText)
	f("01", KindNumText)
	f("+1", KindNumText)
	f("1.", KindNumText)
	f(".5", KindNumText)
	f("1e", KindNumText)
	f("1e+", KindNumText)
	f("1.5x", KindNumText)
	f("NaN", KindNumText)
	f("Infinity", KindNumText)
	f("0x10", KindNumText)
	f("1_000", KindNumText)
	f(" 1", KindNumText)
}

func TestClassifyNumberAllocs(t *testing.T) {
	lits := [][]byte{[]byte("-9223372036854775808"), []byte("170141183460469231731687303715884105727"), []byte("1.5e3"), []byte("1e400")}
	allocs := testing.AllocsPerRun(100, func() {
		for _, l := range lits {
			ClassifyNumber(l)
		}
	})
	if allocs != 0 {
		t.Fatalf("ClassifyNumber allocates %v times per run", allocs)
	}
}

func BenchmarkClassifyNumber(b *testing.B) {
	lits := [][]byte{[]byte("42"), []byte("-9223372036854775808"), []byte("3.14159"), []byte("1.5e-7")}
	n := 0
	for _, l := range lits {
		n += len(l)
	}
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		for _, l := range lits {
			ClassifyNumber(l)
		}
	}
}
