package query

import (
	"strconv"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"duckgate/jsonstr"
)

// Encoding straight from the vectors. Turning every value into an any
// costs allocations (a boxed int64, a cloned string, a big.Int per
// DECIMAL); the stream encoders write the common scalar types from
// DuckDB's memory instead, byte for byte what appendJSONValue and
// appendCSVField write for the value colReader.value gives
// (TestVectorEncodingMatches holds them together). Other types go through
// value.

// fastEncoded reports whether appendJSON and appendCSV handle r's type.
func (r *colReader) fastEncoded() bool {
	if r.err != nil || r.json {
		return false
	}
	switch r.typ {
	case duckdb.TYPE_BOOLEAN, duckdb.TYPE_TINYINT, duckdb.TYPE_SMALLINT, duckdb.TYPE_INTEGER, duckdb.TYPE_BIGINT,
		duckdb.TYPE_UTINYINT, duckdb.TYPE_USMALLINT, duckdb.TYPE_UINTEGER, duckdb.TYPE_UBIGINT,
		duckdb.TYPE_FLOAT, duckdb.TYPE_DOUBLE, duckdb.TYPE_VARCHAR, duckdb.TYPE_ENUM,
		duckdb.TYPE_TIMESTAMP, duckdb.TYPE_TIMESTAMP_TZ, duckdb.TYPE_TIMESTAMP_S, duckdb.TYPE_TIMESTAMP_MS,
		duckdb.TYPE_TIMESTAMP_NS, duckdb.TYPE_HUGEINT, duckdb.TYPE_DECIMAL:
		return true
	}
	return false
}

// appendNumber appends an integer, boolean or DECIMAL value of a fast
// type as JSON and CSV both write it; ok is false for other types.
func (r *colReader) appendNumber(b []byte, row uint64) ([]byte, bool) {
	switch r.typ {
	case duckdb.TYPE_BOOLEAN:
		return strconv.AppendBool(b, at[bool](r, row)), true
	case duckdb.TYPE_TINYINT:
		return strconv.AppendInt(b, int64(at[int8](r, row)), 10), true
	case duckdb.TYPE_SMALLINT:
		return strconv.AppendInt(b, int64(at[int16](r, row)), 10), true
	case duckdb.TYPE_INTEGER:
		return strconv.AppendInt(b, int64(at[int32](r, row)), 10), true
	case duckdb.TYPE_BIGINT:
		return strconv.AppendInt(b, at[int64](r, row), 10), true
	case duckdb.TYPE_UTINYINT:
		return strconv.AppendUint(b, uint64(at[uint8](r, row)), 10), true
	case duckdb.TYPE_USMALLINT:
		return strconv.AppendUint(b, uint64(at[uint16](r, row)), 10), true
	case duckdb.TYPE_UINTEGER:
		return strconv.AppendUint(b, uint64(at[uint32](r, row)), 10), true
	case duckdb.TYPE_UBIGINT:
		return strconv.AppendUint(b, at[uint64](r, row), 10), true
	case duckdb.TYPE_HUGEINT:
		h := at[hugeint](r, row)
		if v, ok := h.int64(); ok {
			return strconv.AppendInt(b, v, 10), true
		}
		return h.big().Append(b, 10), true
	case duckdb.TYPE_DECIMAL:
		var v int64
		switch r.inner {
		case duckdb.TYPE_SMALLINT:
			v = int64(at[int16](r, row))
		case duckdb.TYPE_INTEGER:
			v = int64(at[int32](r, row))
		case duckdb.TYPE_BIGINT:
			v = at[int64](r, row)
		default:
			h := at[hugeint](r, row)
			var ok bool
			if v, ok = h.int64(); !ok {
				return append(b, duckdb.Decimal{Width: r.width, Scale: r.scale, Value: h.big()}.String()...), true
			}
		}
		return appendDecimal(b, v, int(r.scale)), true
	}
	return b, false
}

// timeValue is the time.Time of a fast TIMESTAMP type, as value gives it.
func (r *colReader) timeValue(row uint64) (time.Time, bool) {
	switch r.typ {
	case duckdb.TYPE_TIMESTAMP, duckdb.TYPE_TIMESTAMP_TZ:
		return time.UnixMicro(at[int64](r, row)).UTC(), true
	case duckdb.TYPE_TIMESTAMP_S:
		return time.Unix(at[int64](r, row), 0).UTC(), true
	case duckdb.TYPE_TIMESTAMP_MS:
		return time.UnixMilli(at[int64](r, row)).UTC(), true
	case duckdb.TYPE_TIMESTAMP_NS:
		return time.Unix(0, at[int64](r, row)).UTC(), true
	}
	return time.Time{}, false
}

// text is the text of a VARCHAR or ENUM value, in DuckDB's memory for a
// VARCHAR: it must not be kept past the chunk.
func (r *colReader) text(row uint64) string {
	if r.typ == duckdb.TYPE_ENUM {
		return r.value(row).(string)
	}
	return r.str(row)
}

// appendJSON appends row's value as appendJSONValue(b, r.value(row), k)
// does. r must be fastEncoded.
func (r *colReader) appendJSON(b []byte, row uint64, k kind) []byte {
	if r.null(row) {
		return append(b, "null"...)
	}
	if out, ok := r.appendNumber(b, row); ok {
		return out
	}
	switch r.typ {
	case duckdb.TYPE_FLOAT:
		return appendJSONFloat(b, float64(at[float32](r, row)), 32)
	case duckdb.TYPE_DOUBLE:
		return appendJSONFloat(b, at[float64](r, row), 64)
	case duckdb.TYPE_VARCHAR, duckdb.TYPE_ENUM:
		if k == kindJSON {
			return appendJSONText(b, r.text(row))
		}
		return jsonstr.Append(b, r.text(row))
	}
	t, _ := r.timeValue(row)
	start := len(b)
	b = append(b, '"')
	b = appendTime(b, t, k)
	return appendJSONEscapedTail(b, start+1)
}

// appendCSV appends row's value as appendCSVField(b, r.value(row), k)
// does. r must be fastEncoded.
func (r *colReader) appendCSV(b []byte, row uint64, k kind) []byte {
	if r.null(row) {
		return b
	}
	if out, ok := r.appendNumber(b, row); ok {
		return out
	}
	start := len(b)
	switch r.typ {
	case duckdb.TYPE_FLOAT:
		return strconv.AppendFloat(b, float64(at[float32](r, row)), 'g', -1, 32)
	case duckdb.TYPE_DOUBLE:
		return strconv.AppendFloat(b, at[float64](r, row), 'g', -1, 64)
	case duckdb.TYPE_VARCHAR, duckdb.TYPE_ENUM:
		s := r.text(row)
		if s == "" {
			return append(b, '"', '"')
		}
		b = append(b, s...)
	default:
		t, _ := r.timeValue(row)
		b = appendTime(b, t, k)
	}
	return quoteCSVTail(b, start)
}

// appendDecimal appends the DECIMAL v / 10^scale as duckdb.Decimal.String
// writes it: trailing zeros of the fraction dropped, no point if none is
// left, "0" for zero, a 0 before a leading point.
func appendDecimal(b []byte, v int64, scale int) []byte {
	if v == 0 {
		return append(b, '0')
	}
	var buf [24]byte
	digits := strconv.AppendUint(buf[:0], absUint(v), 10)
	if v < 0 {
		b = append(b, '-')
	}
	trimmed := len(digits)
	for trimmed > 0 && digits[trimmed-1] == '0' {
		trimmed--
	}
	scale -= len(digits) - trimmed
	digits = digits[:trimmed]
	switch {
	case scale <= 0:
		b = append(b, digits...)
		for range -scale {
			b = append(b, '0')
		}
	case len(digits) <= scale:
		b = append(b, '0', '.')
		for range scale - len(digits) {
			b = append(b, '0')
		}
		b = append(b, digits...)
	default:
		b = append(b, digits[:len(digits)-scale]...)
		b = append(b, '.')
		b = append(b, digits[len(digits)-scale:]...)
	}
	return b
}

// int64 is h if it fits in an int64.
func (h hugeint) int64() (int64, bool) {
	v := int64(h.lower)
	return v, h.upper == v>>63
}

func absUint(v int64) uint64 {
	if v < 0 {
		return uint64(-(v + 1)) + 1
	}
	return uint64(v)
}
