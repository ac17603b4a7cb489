package query

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Size rules. DuckDB's buffer manager bounds, within the plan's
// memory_limit, what a query holds in its operators (aggregates, joins,
// sorts, lists an aggregate builds, recursive CTEs): past it the query
// fails with an out-of-memory error. A single value that one scalar call
// builds from small arguments is allocated outside it: repeat('x', 2e9)
// took the server to 3.9 GB, list_resize([1], 3e8) to 16 GB. The calls
// whose result size an argument sets are therefore allowed only when that
// argument is a constant within a bound, checked here on the parse tree,
// so that they are refused at once with a clear message. Calls that grow a
// value from their inputs (replace, regexp_replace, ||) cannot be bounded
// from the tree; tenantdb.SetMemoryCap holds them.

const (
	// maxBuiltBytes bounds a value that repeat, lpad, rpad, format or
	// printf builds, in bytes.
	maxBuiltBytes = 1 << 20
	// maxBuiltElements bounds a list that list_resize, array_resize, range
	// or generate_series builds as a value (the table functions of the same
	// names stream rows and are not bounded here).
	maxBuiltElements = 1 << 20
	// maxRepeatOfColumn bounds repeat's count when what it repeats is not a
	// constant: a stored value can be as large as an insert body.
	maxRepeatOfColumn = 8
	// maxWidthDigits bounds the digits of a width or precision in a format
	// string: 6 digits is at most 999,999 characters.
	maxWidthDigits = 6
)

// checkSize applies the size rules to an allowed function call f named name
// (lower case); other functions pass.
func checkSize(name string, f *node) error {
	switch name {
	case "repeat":
		n, ok := constNumber(f.args[1])
		if !ok || n < 0 {
			return sizeError(name, "its count must be a constant number")
		}
		if s, ok := constString(f.args[0]); ok {
			if float64(len(s))*n > maxBuiltBytes {
				return sizeError(name, fmt.Sprintf("it would build %.0f bytes; at most %d", float64(len(s))*n, maxBuiltBytes))
			}
			return nil
		}
		if n > maxRepeatOfColumn {
			return sizeError(name, fmt.Sprintf("repeating a value that is not a constant, the count may be at most %d", maxRepeatOfColumn))
		}
	case "lpad", "rpad":
		if n, ok := constNumber(f.args[1]); !ok || n > maxBuiltBytes {
			return sizeError(name, fmt.Sprintf("its length must be a constant of at most %d", maxBuiltBytes))
		}
	case "format", "printf":
		s, ok := constString(f.args[0])
		if !ok {
			return sizeError(name, "its format must be a constant string")
		}
		if longestDigitRun(s) > maxWidthDigits {
			return sizeError(name, fmt.Sprintf("a width or precision in its format may have at most %d digits", maxWidthDigits))
		}
	case "list_resize", "array_resize":
		if n, ok := constNumber(f.args[1]); !ok || n > maxBuiltElements {
			return sizeError(name, fmt.Sprintf("its size must be a constant of at most %d", maxBuiltElements))
		}
	case "range", "generate_series":
		// As a function (a list value); in FROM it is a table function.
		if !listCountWithin(f, maxBuiltElements) {
			return sizeError(name, fmt.Sprintf("as a value its bounds must be constant numbers giving at most %d elements; for more rows use it in FROM (SELECT * FROM %s(...))", maxBuiltElements, name))
		}
	case "bitstring":
		if n, ok := constNumber(f.args[1]); !ok || n > 8*maxBuiltBytes {
			return sizeError(name, fmt.Sprintf("its length must be a constant of at most %d bits", 8*maxBuiltBytes))
		}
	case "equi_width_bins":
		if n, ok := constNumber(f.args[2]); !ok || n > 10_000 {
			return sizeError(name, "its bin count must be a constant of at most 10000")
		}
	case "approx_top_k":
		if n, ok := constNumber(f.args[1]); !ok || n > 10_000 {
			return sizeError(name, "its k must be a constant of at most 10000")
		}
	case "reservoir_quantile":
		if f.children >= 3 {
			if n, ok := constNumber(f.args[2]); !ok || n > maxBuiltElements {
				return sizeError(name, fmt.Sprintf("its sample size must be a constant of at most %d", maxBuiltElements))
			}
		}
	}
	return nil
}

func sizeError(name, why string) error {
	return fmt.Errorf("function %s is not allowed here: %s, so that the value it builds stays small: %w", name, why, ErrNotAllowed)
}

// constNumber returns the value of a numeric constant argument.
func constNumber(a *node) (float64, bool) {
	if a == nil || a.class != "CONSTANT" || a.val == nil || a.val.num == "" {
		return 0, false
	}
	n, err := strconv.ParseFloat(a.val.num, 64)
	return n, err == nil
}

// constString returns the value of a string constant argument.
func constString(a *node) (string, bool) {
	if a == nil || a.class != "CONSTANT" || a.val == nil || a.val.num != "" || !utf8.ValidString(a.val.value) {
		return "", false
	}
	return a.val.value, true
}

// longestDigitRun is the length of the longest run of ASCII digits in s.
func longestDigitRun(s string) int {
	longest, run := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return longest
}

// listCountWithin reports whether range or generate_series called with f's
// constant numeric arguments (stop; start, stop; or start, stop, step)
// makes at most limit elements.
func listCountWithin(f *node, limit float64) bool {
	if f.children < 1 || f.children > 3 {
		return false
	}
	var v [3]float64
	for i := 0; i < f.children; i++ {
		n, ok := constNumber(f.args[i])
		if !ok {
			return false
		}
		v[i] = n
	}
	start, stop, step := 0.0, v[0], 1.0
	if f.children >= 2 {
		start, stop = v[0], v[1]
	}
	if f.children == 3 {
		step = v[2]
	}
	if step == 0 {
		return true // DuckDB refuses a zero step itself
	}
	count := (stop - start) / step
	return count <= limit
}
