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

// ClassifyNumber classifies a JSON number literal as it appears in the text ("-12", "1.5e3").
// It returns KindInt, KindBigInt, KindHugeInt, KindFloat or KindNumText; anything that is not a
// JSON number (the parser should have rejected it) is KindNumText. It does not allocate, except
// for rare literals between 1e308 and 1e309, which strconv rounds.
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
	// Exponent: [eE] [+-]? [0-9]+, saturated: any exponent beyond ±1e6 overflows or underflows anyway.
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
			if exp < 1e6 {
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

	// The value is d.ddd × 10^mag for its first non-zero digit; below 1e308 it cannot overflow.
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
	case mag < 308:
		return KindFloat
	case mag > 308: // at least 1e309 > MaxFloat64
		return KindNumText
	}
	// Near MaxFloat64 (1.797e308): let strconv round.
	if f, err := strconv.ParseFloat(string(lit), 64); err != nil || math.IsInf(f, 0) {
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
