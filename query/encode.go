package query

import (
	"encoding/base64"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"duckgate/jsonstr"
)

// kind is how a top-level column's values are written where the Go value
// alone is ambiguous: time.Time is a DATE, a TIME or a timestamp; []byte is
// a BLOB or a UUID.
type kind uint8

const (
	kindOther kind = iota
	kindDate
	kindTime
	kindTimeTZ
	kindTimestamp   // TIMESTAMP, TIMESTAMP_S, TIMESTAMP_MS: naive, no zone written
	kindTimestampNS // TIMESTAMP_NS: naive, nanoseconds
	kindTimestampTZ // TIMESTAMPTZ: RFC 3339 in UTC
	kindUUID
	kindJSON // a JSON column read as its text: written as nested JSON (appendJSONText)
)

func kindOf(dbType string) kind {
	switch dbType {
	case "DATE":
		return kindDate
	case "TIME":
		return kindTime
	case "TIMETZ":
		return kindTimeTZ
	case "TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS":
		return kindTimestamp
	case "TIMESTAMP_NS":
		return kindTimestampNS
	case "TIMESTAMPTZ":
		return kindTimestampTZ
	case "UUID":
		return kindUUID
	}
	return kindOther
}

// Time layouts. TIMESTAMPTZ always has six fraction digits so that the
// strings sort like the instants; nested times (inside a LIST or STRUCT)
// have lost their DuckDB type and are written as TIMESTAMPTZ.
const (
	layoutTimestampTZ = "2006-01-02T15:04:05.000000Z07:00"
	layoutTimestamp   = "2006-01-02T15:04:05.000000"
	layoutTimestampNS = "2006-01-02T15:04:05.000000000"
	layoutDate        = "2006-01-02"
	layoutTime        = "15:04:05.000000"
	layoutTimeTZ      = "15:04:05.000000Z07:00"
)

// appendText appends the text form of a scalar the way JSON strings and CSV
// fields carry it. ok is false for values that are numbers, booleans, null or
// nested (the caller writes them itself).
func appendText(b []byte, v any, k kind) ([]byte, bool) {
	switch v := v.(type) {
	case string:
		return append(b, v...), true
	case time.Time:
		return appendTime(b, v, k), true
	case []byte:
		if k == kindUUID && len(v) == 16 {
			return appendUUID(b, v), true
		}
		return base64.StdEncoding.AppendEncode(b, v), true
	case duckdb.UUID:
		return appendUUID(b, v[:]), true
	case *duckdb.UUID:
		return appendUUID(b, v[:]), true
	case duckdb.Interval:
		return appendInterval(b, v), true
	}
	return b, false
}

func appendTime(b []byte, t time.Time, k kind) []byte {
	switch k {
	case kindDate:
		return t.AppendFormat(b, layoutDate)
	case kindTime:
		return t.AppendFormat(b, layoutTime)
	case kindTimeTZ:
		return t.AppendFormat(b, layoutTimeTZ)
	case kindTimestamp:
		return t.UTC().AppendFormat(b, layoutTimestamp)
	case kindTimestampNS:
		return t.UTC().AppendFormat(b, layoutTimestampNS)
	default:
		return t.UTC().AppendFormat(b, layoutTimestampTZ)
	}
}

func appendUUID(b []byte, u []byte) []byte {
	const hex = "0123456789abcdef"
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hex[c>>4], hex[c&15])
	}
	return b
}

// appendInterval writes an ISO 8601 duration: P1Y2M3DT4H5M6.5S. Months,
// days and microseconds are kept apart as DuckDB keeps them.
func appendInterval(b []byte, iv duckdb.Interval) []byte {
	b = append(b, 'P')
	if y := iv.Months / 12; y != 0 {
		b = strconv.AppendInt(b, int64(y), 10)
		b = append(b, 'Y')
	}
	if m := iv.Months % 12; m != 0 {
		b = strconv.AppendInt(b, int64(m), 10)
		b = append(b, 'M')
	}
	if iv.Days != 0 {
		b = strconv.AppendInt(b, int64(iv.Days), 10)
		b = append(b, 'D')
	}
	if iv.Micros != 0 || (iv.Months == 0 && iv.Days == 0) {
		b = append(b, 'T')
		us := iv.Micros
		if h := us / 3_600_000_000; h != 0 {
			b = strconv.AppendInt(b, h, 10)
			b = append(b, 'H')
			us -= h * 3_600_000_000
		}
		if m := us / 60_000_000; m != 0 {
			b = strconv.AppendInt(b, m, 10)
			b = append(b, 'M')
			us -= m * 60_000_000
		}
		if us != 0 || iv.Micros == 0 {
			b = strconv.AppendFloat(b, float64(us)/1e6, 'f', -1, 64)
			b = append(b, 'S')
		}
	}
	return b
}

// appendSortedObject writes m as a JSON object with its keys sorted (Go maps
// have no order; sorting makes the output stable).
func appendSortedObject(b []byte, m map[string]any) []byte {
	keys := make([]string, 0, len(m))
	for key := range m {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, key := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonstr.Append(b, key)
		b = append(b, ':')
		b = appendJSONValue(b, m[key], kindOther)
	}
	return append(b, '}')
}

// appendJSONValue appends v as a JSON value. Numbers stay numbers and exact
// (integers from their int64/uint64/*big.Int form, DECIMAL from its exact
// decimal string); NaN and ±Inf, which JSON cannot carry, are null. Nested
// values become arrays and objects; STRUCT fields come out sorted by name
// (the driver hands them over as a Go map), MAP entries in DuckDB's order.
func appendJSONValue(b []byte, v any, k kind) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...)
	case bool:
		return strconv.AppendBool(b, v)
	case int64:
		return strconv.AppendInt(b, v, 10)
	case int32:
		return strconv.AppendInt(b, int64(v), 10)
	case int16:
		return strconv.AppendInt(b, int64(v), 10)
	case int8:
		return strconv.AppendInt(b, int64(v), 10)
	case int:
		return strconv.AppendInt(b, int64(v), 10)
	case uint64:
		return strconv.AppendUint(b, v, 10)
	case uint32:
		return strconv.AppendUint(b, uint64(v), 10)
	case uint16:
		return strconv.AppendUint(b, uint64(v), 10)
	case uint8:
		return strconv.AppendUint(b, uint64(v), 10)
	case float64:
		return appendJSONFloat(b, v, 64)
	case float32:
		return appendJSONFloat(b, float64(v), 32)
	case *big.Int:
		if v == nil {
			return append(b, "null"...)
		}
		return v.Append(b, 10)
	case duckdb.Decimal:
		if v.Value == nil {
			return append(b, "null"...)
		}
		return append(b, v.String()...)
	case []any:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONValue(b, e, kindOther)
		}
		return append(b, ']')
	case map[string]any:
		return appendSortedObject(b, v)
	case duckdb.OrderedMap:
		keys, vals := v.Keys(), v.Values()
		b = append(b, '{')
		for i := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONKey(b, keys[i])
			b = append(b, ':')
			b = appendJSONValue(b, vals[i], kindOther)
		}
		return append(b, '}')
	case duckdb.Map:
		byKey := make(map[string]any, len(v))
		for key, val := range v {
			byKey[string(appendMapKey(nil, key))] = val
		}
		return appendSortedObject(b, byKey)
	case duckdb.Union:
		return appendJSONValue(b, v.Value, kindOther)
	case string:
		if k == kindJSON {
			return appendJSONText(b, v)
		}
		return jsonstr.Append(b, v) // escapes from v: no copy of non-ASCII text
	}
	start := len(b)
	b = append(b, '"')
	if t, ok := appendText(b, v, k); ok {
		return appendJSONEscapedTail(t, start+1)
	}
	b = b[:start]
	return jsonstr.Append(b, fmt.Sprint(v))
}

func appendJSONFloat(b []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, bits)
}

// appendJSONKey writes a MAP key as a JSON object key: strings as they are,
// other keys in their JSON or text form.
func appendJSONKey(b []byte, key any) []byte {
	start := len(b)
	b = append(b, '"')
	b = appendMapKey(b, key)
	return appendJSONEscapedTail(b, start+1)
}

func appendMapKey(b []byte, key any) []byte {
	if t, ok := appendText(b, key, kindOther); ok {
		return t
	}
	return appendJSONValue(b, key, kindOther)
}

// appendJSONEscapedTail escapes, in place, the raw text b[from:] that was
// appended after an opening quote, and closes the string. Text that needs no
// escaping (the common case) is not copied.
func appendJSONEscapedTail(b []byte, from int) []byte {
	for i := from; i < len(b); i++ {
		if c := b[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			raw := string(b[i:]) // copy: the escaped form is longer
			b = jsonstr.AppendBody(b[:i], raw)
			return append(b, '"')
		}
	}
	return append(b, '"')
}

// appendCSVField appends v as one RFC 4180 field. NULL is an empty field and
// the empty string is "" so that the two stay apart. Nested values are
// written as JSON text.
func appendCSVField(b []byte, v any, k kind) []byte {
	start := len(b)
	switch v := v.(type) {
	case nil:
		return b
	case bool, int64, int32, int16, int8, int, uint64, uint32, uint16, uint8, *big.Int, duckdb.Decimal:
		return appendJSONValue(b, v, k)
	case float64:
		return strconv.AppendFloat(b, v, 'g', -1, 64)
	case float32:
		return strconv.AppendFloat(b, float64(v), 'g', -1, 32)
	case string:
		if v == "" {
			return append(b, '"', '"')
		}
		b = append(b, v...)
	default:
		if t, ok := appendText(b, v, k); ok {
			b = t
		} else {
			b = appendJSONValue(b, v, k)
		}
	}
	return quoteCSVTail(b, start)
}

// appendCell appends v as appendCSVField does, without the quoting: the
// empty string and NULL are both empty.
func appendCell(b []byte, v any, k kind) []byte {
	switch v := v.(type) {
	case nil:
		return b
	case string:
		return append(b, v...)
	case float64:
		return strconv.AppendFloat(b, v, 'g', -1, 64)
	case float32:
		return strconv.AppendFloat(b, float64(v), 'g', -1, 32)
	}
	if t, ok := appendText(b, v, k); ok {
		return t
	}
	return appendJSONValue(b, v, k)
}

// quoteCSVTail quotes b[from:] in place if it holds a comma, a quote, CR or
// LF, or starts or ends with a space (which some readers trim).
func quoteCSVTail(b []byte, from int) []byte {
	field := b[from:]
	need := len(field) > 0 && (field[0] == ' ' || field[len(field)-1] == ' ')
	quotes := 0
	for _, c := range field {
		switch c {
		case '"':
			quotes++
			need = true
		case ',', '\n', '\r':
			need = true
		}
	}
	if !need {
		return b
	}
	// Quote in place, from the end backwards: no copy of the field.
	end := len(b)
	b = slices.Grow(b, 2+quotes)[:end+2+quotes]
	w := len(b) - 1
	b[w] = '"'
	for r := end - 1; r >= from; r-- {
		w--
		b[w] = b[r]
		if b[r] == '"' {
			w--
			b[w] = '"'
		}
	}
	b[from] = '"'
	return b
}
