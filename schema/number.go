package schema

import (
	"math"
	"strconv"
)

// hugeMax and hugeMin are the magnitudes of DuckDB's HUGEINT bounds, 2^127-1 and 2^127.
const (
	hugeMax = "170141183460469231731687303715884105727"
	hugeMin = "170141183460469231731687303715884105728"
)

// exactFloatInt is 2^53: integers up to this magnitude are exact as float64.
const exactFloatInt = 1 << 53

// minNormal is the smallest positive normal float64, 2^-1022 (about 2.2250738585072014e-308).
// Below it a float64 has fewer than 53 significant bits, down to none: 7e-324 reads back as
// 5e-324 and 1e-400 as 0.
const minNormal = 0x1p-1022

// ClassifyNumber classifies a JSON number literal as it appears in the text ("-12", "1.5e3").
// It returns KindInt, KindBigInt, KindHugeInt, KindFloat or KindNumText; anything that is not a
// JSON number (the parser should have rejected it) is KindNumText.
//
// A literal with a fraction or exponent is KindFloat when the float64 nearest to it is zero
// (the digits are all zero: 0.0, -0e5) or a normal number: then the double is within half a
// unit in the 53rd bit of the literal, as for any float. A literal whose nearest float64 is
// infinite (1e400) or subnormal or zero while a digit is not (1e-400, 2.5e-330, 1e-310) is
// KindNumText: a double would change its value.
//
// It does not allocate, except for rare literals within a factor 10 of the ends of the normal
// range (1e308 to 1e309, 1e-309 to 1e-307 in magnitude), which strconv rounds.
func ClassifyNumber(lit []byte) Kind {
	i := 0
	neg := false
	if i < len(lit) && lit[i] == '-' {
		neg = true
		i++
	}
	// Integer part: 0 or [1-9][0-9]*.
	intStart := i
	if i >= len(lit) || !isDigit(lit[i]) {
		return KindNumText
	}
	if lit[i] == '0' {
		i++
	} else {
		for i < len(lit) && isDigit(lit[i]) {
			i++
		}
	}
	intEnd := i
	if i == len(lit) {
		return classifyInt(lit[intStart:intEnd], neg)
	}

	// Fraction: '.' [0-9]+.
	fracStart, fracEnd := i, i
	if lit[i] == '.' {
		i++
		fracStart = i
		for i < len(lit) && isDigit(lit[i]) {
			i++
		}
		fracEnd = i
		if fracEnd == fracStart {
			return KindNumText
		}
	}
	// Exponent: [eE] [+-]? [0-9]+, saturated past 1e15: no literal has that many digits to
	// bring such a value back into the float64 range.
	exp := 0
	if i < len(lit) && (lit[i] == 'e' || lit[i] == 'E') {
		i++
		expNeg := false
		if i < len(lit) && (lit[i] == '+' || lit[i] == '-') {
			expNeg = lit[i] == '-'
			i++
		}
		start := i
		for i < len(lit) && isDigit(lit[i]) {
			if exp < 1e15 {
				exp = exp*10 + int(lit[i]-'0')
			}
			i++
		}
		if i == start {
			return KindNumText
		}
		if expNeg {
			exp = -exp
		}
	}
	if i != len(lit) {
		return KindNumText
	}

	// The value is d.ddd × 10^mag for its first non-zero digit: between 1e-307 and 1e308 it is a
	// normal float64.
	var mag int
	if lit[intStart] != '0' {
		mag = intEnd - intStart - 1 + exp
	} else {
		j := fracStart
		for j < fracEnd && lit[j] == '0' {
			j++
		}
		if j == fracEnd {
			return KindFloat // zero
		}
		mag = fracStart - j - 1 + exp
	}
	switch {
	case mag > -308 && mag < 308:
		return KindFloat
	case mag > 308 || mag < -308: // at least 1e309 > MaxFloat64, or below 1e-308 < minNormal
		return KindNumText
	}
	// Near MaxFloat64 (1.797e308) or minNormal (2.225e-308): let strconv round.
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil || math.IsInf(f, 0) || math.Abs(f) < minNormal {
		return KindNumText
	}
	return KindFloat
}

// classifyInt classifies the digits of a valid JSON integer (no leading zeros) with sign neg.
func classifyInt(digits []byte, neg bool) Kind {
	if len(digits) <= 19 { // 19 digits always fit in uint64
		var u uint64
		for _, c := range digits {
			u = u*10 + uint64(c-'0')
		}
		switch {
		case u <= exactFloatInt:
			return KindInt
		case u <= math.MaxInt64 || (neg && u == 1<<63):
			return KindBigInt
		}
		return KindHugeInt
	}
	bound := hugeMax
	if neg {
		bound = hugeMin
	}
	switch {
	case len(digits) < len(bound):
		return KindHugeInt
	case len(digits) == len(bound) && string(digits) <= bound: // compared without allocating
		return KindHugeInt
	}
	return KindNumText
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
