package query

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"time"
	"unsafe"

	bindings "github.com/duckdb/duckdb-go-bindings"
	duckdb "github.com/duckdb/duckdb-go/v2"
)

// Values from DuckDB's vectors.
//
// A streamed result (stream_exec.go) comes as data chunks of C vectors. A
// colReader turns a vector's rows into the Go values duckdb-go's rows give
// through database/sql (vector_getters.go of duckdb-go v2.10505.0, which
// this follows type by type), so that Rows.Values and every encoding are
// what they were: nil for NULL, int8..int64, uint8..uint64, float32,
// float64, bool, string (VARCHAR, ENUM, top-level BIT), []byte (BLOB,
// GEOMETRY, UUID: 16 bytes), time.Time, duckdb.Interval, *big.Int
// (HUGEINT, UHUGEINT, BIGNUM), duckdb.Decimal, []any (LIST, ARRAY),
// map[string]any (STRUCT), duckdb.OrderedMap (MAP), duckdb.Union,
// duckdb.Bit (nested BIT) and a JSON column's value decoded by
// encoding/json. Types duckdb-go refuses (VARIANT, ANY, INVALID, MAP with a
// nested key) are refused the same way, when a chunk holds the column.
// Every type is read from the vectors; no column falls back to the driver.

// colReader reads the values of one (possibly nested) vector.
type colReader struct {
	typ  bindings.Type
	json bool // a JSON column: the text decoded with encoding/json
	err  error

	data unsafe.Pointer // the vector's data
	mask unsafe.Pointer // its validity mask; nil if every row is valid

	children []colReader // LIST, MAP, ARRAY: one; STRUCT: fields; UNION: tag then members
	names    []string    // STRUCT field names, UNION member names
	dict     []string    // ENUM
	inner    bindings.Type
	width    uint8 // DECIMAL
	scale    uint8
	arrayLen uint64
}

// initReader prepares r for vectors of logical type lt (not destroyed).
// An unsupported type is not an error yet: r.err is returned when a chunk
// of the result holds the column, as duckdb-go does.
func (r *colReader) init(lt bindings.LogicalType, col int) {
	r.typ = bindings.GetTypeId(lt)
	unsupported := func(name string) {
		r.err = fmt.Errorf("unsupported data type in column %d: %s", col+1, name)
	}
	switch r.typ {
	case duckdb.TYPE_INVALID, duckdb.TYPE_ANY, duckdb.TYPE_VARIANT:
		unsupported(typeNames[r.typ])
		return
	}
	if bindings.LogicalTypeGetAlias(lt) == "JSON" {
		r.typ, r.json = duckdb.TYPE_VARCHAR, true
		return
	}
	switch r.typ {
	case duckdb.TYPE_DECIMAL:
		r.width, r.scale = bindings.DecimalWidth(lt), bindings.DecimalScale(lt)
		r.inner = bindings.DecimalInternalType(lt)
		switch r.inner {
		case duckdb.TYPE_SMALLINT, duckdb.TYPE_INTEGER, duckdb.TYPE_BIGINT, duckdb.TYPE_HUGEINT:
		default:
			unsupported(typeNames[r.inner])
		}
	case duckdb.TYPE_ENUM:
		r.inner = bindings.EnumInternalType(lt)
		n := bindings.EnumDictionarySize(lt)
		r.dict = make([]string, n)
		for i := range n {
			r.dict[i] = bindings.EnumDictionaryValue(lt, bindings.IdxT(i))
		}
		switch r.inner {
		case duckdb.TYPE_UTINYINT, duckdb.TYPE_USMALLINT, duckdb.TYPE_UINTEGER, duckdb.TYPE_UBIGINT:
		default:
			unsupported(typeNames[r.inner])
		}
	case duckdb.TYPE_LIST, duckdb.TYPE_MAP:
		child := bindings.ListTypeChildType(lt)
		r.children = make([]colReader, 1)
		r.children[0].init(child, col)
		bindings.DestroyLogicalType(&child)
		if r.typ == duckdb.TYPE_MAP {
			key := bindings.MapTypeKeyType(lt)
			switch bindings.GetTypeId(key) {
			case duckdb.TYPE_LIST, duckdb.TYPE_STRUCT, duckdb.TYPE_MAP, duckdb.TYPE_ARRAY, duckdb.TYPE_UNION:
				r.err = fmt.Errorf("MAP key type not supported in column %d", col+1)
			}
			bindings.DestroyLogicalType(&key)
		}
	case duckdb.TYPE_ARRAY:
		r.arrayLen = uint64(bindings.ArrayTypeArraySize(lt))
		child := bindings.ArrayTypeChildType(lt)
		r.children = make([]colReader, 1)
		r.children[0].init(child, col)
		bindings.DestroyLogicalType(&child)
	case duckdb.TYPE_STRUCT:
		n := bindings.StructTypeChildCount(lt)
		r.children = make([]colReader, n)
		r.names = make([]string, n)
		for i := range n {
			r.names[i] = bindings.StructTypeChildName(lt, i)
			child := bindings.StructTypeChildType(lt, i)
			r.children[i].init(child, col)
			bindings.DestroyLogicalType(&child)
		}
	case duckdb.TYPE_UNION:
		n := bindings.UnionTypeMemberCount(lt)
		r.children = make([]colReader, n+1)
		tag := bindings.StructTypeChildType(lt, 0)
		r.children[0].init(tag, col)
		bindings.DestroyLogicalType(&tag)
		r.names = make([]string, n)
		for i := range n {
			r.names[i] = bindings.UnionTypeMemberName(lt, i)
			m := bindings.UnionTypeMemberType(lt, i)
			r.children[i+1].init(m, col)
			bindings.DestroyLogicalType(&m)
		}
	}
}

// firstErr is the error of r or of a nested reader.
func (r *colReader) firstErr() error {
	if r.err != nil {
		return r.err
	}
	for i := range r.children {
		if err := r.children[i].firstErr(); err != nil {
			return err
		}
	}
	return nil
}

// bind points r at the vector vec of the current chunk.
func (r *colReader) bind(vec bindings.Vector) {
	r.data = bindings.VectorGetData(vec)
	r.mask = bindings.VectorGetValidity(vec)
	switch r.typ {
	case duckdb.TYPE_LIST, duckdb.TYPE_MAP:
		r.children[0].bind(bindings.ListVectorGetChild(vec))
	case duckdb.TYPE_ARRAY:
		r.children[0].bind(bindings.ArrayVectorGetChild(vec))
	case duckdb.TYPE_STRUCT, duckdb.TYPE_UNION:
		for i := range r.children {
			r.children[i].bind(bindings.StructVectorGetChild(vec, bindings.IdxT(i)))
		}
	}
}

// null reports whether row is NULL.
func (r *colReader) null(row uint64) bool {
	if r.mask == nil {
		return false
	}
	return *(*uint64)(unsafe.Add(r.mask, row/64*8))&(1<<(row%64)) == 0
}

func at[T any](r *colReader, row uint64) T {
	var zero T
	return *(*T)(unsafe.Add(r.data, uintptr(row)*unsafe.Sizeof(zero)))
}

// str is the bytes of the duckdb_string_t at row, in DuckDB's memory
// (valid while the chunk is): its length at offset 0, then up to 12 bytes
// inline at offset 4, or a pointer at offset 8.
func (r *colReader) str(row uint64) string {
	p := unsafe.Add(r.data, uintptr(row)*16)
	n := *(*uint32)(p)
	if n <= 12 {
		return unsafe.String((*byte)(unsafe.Add(p, 4)), int(n))
	}
	return unsafe.String(*(**byte)(unsafe.Add(p, 8)), int(n))
}

// hugeint is DuckDB's duckdb_hugeint: value = upper * 2^64 + lower.
type hugeint struct {
	lower uint64
	upper int64
}

func (h hugeint) big() *big.Int {
	i := big.NewInt(h.upper)
	i.Lsh(i, 64)
	return i.Add(i, new(big.Int).SetUint64(h.lower))
}

// value is the Go value of row (see the comment at the top).
func (r *colReader) value(row uint64) any {
	if r.null(row) {
		return nil
	}
	switch r.typ {
	case duckdb.TYPE_BOOLEAN:
		return at[bool](r, row)
	case duckdb.TYPE_TINYINT:
		return at[int8](r, row)
	case duckdb.TYPE_SMALLINT:
		return at[int16](r, row)
	case duckdb.TYPE_INTEGER:
		return at[int32](r, row)
	case duckdb.TYPE_BIGINT:
		return at[int64](r, row)
	case duckdb.TYPE_UTINYINT:
		return at[uint8](r, row)
	case duckdb.TYPE_USMALLINT:
		return at[uint16](r, row)
	case duckdb.TYPE_UINTEGER:
		return at[uint32](r, row)
	case duckdb.TYPE_UBIGINT:
		return at[uint64](r, row)
	case duckdb.TYPE_FLOAT:
		return at[float32](r, row)
	case duckdb.TYPE_DOUBLE:
		return at[float64](r, row)
	case duckdb.TYPE_TIMESTAMP, duckdb.TYPE_TIMESTAMP_TZ:
		return time.UnixMicro(at[int64](r, row)).UTC()
	case duckdb.TYPE_TIMESTAMP_S:
		return time.Unix(at[int64](r, row), 0).UTC()
	case duckdb.TYPE_TIMESTAMP_MS:
		return time.UnixMilli(at[int64](r, row)).UTC()
	case duckdb.TYPE_TIMESTAMP_NS:
		return time.Unix(0, at[int64](r, row)).UTC()
	case duckdb.TYPE_DATE:
		d := bindings.FromDate(at[bindings.Date](r, row))
		y, m, day := bindings.DateStructMembers(&d)
		return time.Date(int(y), time.Month(m), int(day), 0, 0, 0, 0, time.UTC)
	case duckdb.TYPE_TIME:
		u := time.UnixMicro(at[int64](r, row)).UTC()
		return time.Date(1, time.January, 1, u.Hour(), u.Minute(), u.Second(), u.Nanosecond(), time.UTC)
	case duckdb.TYPE_TIME_TZ:
		tz := bindings.FromTimeTZ(at[bindings.TimeTZ](r, row))
		ts, offset := bindings.TimeTZStructMembers(&tz)
		h, m, s, us := bindings.TimeStructMembers(&ts)
		loc := time.UTC
		if offset != 0 {
			loc = time.FixedZone("", int(offset))
		}
		return time.Date(1, time.January, 1, int(h), int(m), int(s), int(us)*1000, loc)
	case duckdb.TYPE_INTERVAL:
		iv := at[struct {
			months, days int32
			micros       int64
		}](r, row)
		return duckdb.Interval{Months: iv.months, Days: iv.days, Micros: iv.micros}
	case duckdb.TYPE_HUGEINT:
		return at[hugeint](r, row).big()
	case duckdb.TYPE_UHUGEINT:
		h := at[[2]uint64](r, row)
		i := new(big.Int).SetUint64(h[1])
		i.Lsh(i, 64)
		return i.Add(i, new(big.Int).SetUint64(h[0]))
	case duckdb.TYPE_BIGNUM:
		return bignum(r.str(row))
	case duckdb.TYPE_VARCHAR:
		if r.json {
			var v any
			_ = json.Unmarshal([]byte(r.str(row)), &v)
			return v
		}
		return strings.Clone(r.str(row))
	case duckdb.TYPE_BLOB, duckdb.TYPE_GEOMETRY:
		return []byte(r.str(row))
	case duckdb.TYPE_BIT:
		return duckdb.Bit{Data: []byte(r.str(row))}
	case duckdb.TYPE_UUID:
		h := at[hugeint](r, row)
		var u [16]byte
		binary.BigEndian.PutUint64(u[:8], uint64(h.upper)^1<<63)
		binary.BigEndian.PutUint64(u[8:], h.lower)
		return u[:]
	case duckdb.TYPE_DECIMAL:
		var v *big.Int
		switch r.inner {
		case duckdb.TYPE_SMALLINT:
			v = big.NewInt(int64(at[int16](r, row)))
		case duckdb.TYPE_INTEGER:
			v = big.NewInt(int64(at[int32](r, row)))
		case duckdb.TYPE_BIGINT:
			v = big.NewInt(at[int64](r, row))
		default:
			v = at[hugeint](r, row).big()
		}
		return duckdb.Decimal{Width: r.width, Scale: r.scale, Value: v}
	case duckdb.TYPE_ENUM:
		var i uint64
		switch r.inner {
		case duckdb.TYPE_UTINYINT:
			i = uint64(at[uint8](r, row))
		case duckdb.TYPE_USMALLINT:
			i = uint64(at[uint16](r, row))
		case duckdb.TYPE_UINTEGER:
			i = uint64(at[uint32](r, row))
		default:
			i = at[uint64](r, row)
		}
		return r.dict[i]
	case duckdb.TYPE_LIST:
		e := at[[2]uint64](r, row) // offset, length
		return r.children[0].slice(e[0], e[1])
	case duckdb.TYPE_ARRAY:
		return r.children[0].slice(row*r.arrayLen, r.arrayLen)
	case duckdb.TYPE_STRUCT:
		m := make(map[string]any, len(r.children))
		for i := range r.children {
			m[r.names[i]] = r.children[i].value(row)
		}
		return m
	case duckdb.TYPE_MAP:
		e := at[[2]uint64](r, row)
		entries := &r.children[0] // STRUCT(key, value)
		var m duckdb.OrderedMap
		for i := e[0]; i < e[0]+e[1]; i++ {
			var k, v any
			if !entries.null(i) {
				k, v = entries.children[0].value(i), entries.children[1].value(i)
			}
			m.Set(k, v)
		}
		return m
	case duckdb.TYPE_UNION:
		tag := at[uint8](&r.children[0], row)
		return duckdb.Union{Tag: r.names[tag], Value: r.children[tag+1].value(row)}
	}
	return nil // SQLNULL
}

// slice is the values of rows [offset, offset+n) as a list.
func (r *colReader) slice(offset, n uint64) []any {
	s := make([]any, n)
	for i := range n {
		s[i] = r.value(offset + i)
	}
	return s
}

// bignum decodes DuckDB's BIGNUM: a 3-byte header whose top bit is set for
// a positive number, then the big-endian magnitude, complemented if
// negative.
func bignum(data string) *big.Int {
	if len(data) < 4 {
		return big.NewInt(0)
	}
	mag := []byte(data[3:])
	if data[0]&0x80 != 0 {
		return new(big.Int).SetBytes(mag)
	}
	for i := range mag {
		mag[i] = ^mag[i]
	}
	i := new(big.Int).SetBytes(mag)
	return i.Neg(i)
}

// typeNames are DuckDB's names of the types, as duckdb-go reports them.
var typeNames = map[bindings.Type]string{
	duckdb.TYPE_INVALID: "INVALID", duckdb.TYPE_BOOLEAN: "BOOLEAN", duckdb.TYPE_TINYINT: "TINYINT",
	duckdb.TYPE_SMALLINT: "SMALLINT", duckdb.TYPE_INTEGER: "INTEGER", duckdb.TYPE_BIGINT: "BIGINT",
	duckdb.TYPE_UTINYINT: "UTINYINT", duckdb.TYPE_USMALLINT: "USMALLINT", duckdb.TYPE_UINTEGER: "UINTEGER",
	duckdb.TYPE_UBIGINT: "UBIGINT", duckdb.TYPE_FLOAT: "FLOAT", duckdb.TYPE_DOUBLE: "DOUBLE",
	duckdb.TYPE_TIMESTAMP: "TIMESTAMP", duckdb.TYPE_DATE: "DATE", duckdb.TYPE_TIME: "TIME",
	duckdb.TYPE_INTERVAL: "INTERVAL", duckdb.TYPE_HUGEINT: "HUGEINT", duckdb.TYPE_UHUGEINT: "UHUGEINT",
	duckdb.TYPE_VARCHAR: "VARCHAR", duckdb.TYPE_BLOB: "BLOB", duckdb.TYPE_DECIMAL: "DECIMAL",
	duckdb.TYPE_TIMESTAMP_S: "TIMESTAMP_S", duckdb.TYPE_TIMESTAMP_MS: "TIMESTAMP_MS",
	duckdb.TYPE_TIMESTAMP_NS: "TIMESTAMP_NS", duckdb.TYPE_ENUM: "ENUM", duckdb.TYPE_LIST: "LIST",
	duckdb.TYPE_STRUCT: "STRUCT", duckdb.TYPE_MAP: "MAP", duckdb.TYPE_ARRAY: "ARRAY", duckdb.TYPE_UUID: "UUID",
	duckdb.TYPE_UNION: "UNION", duckdb.TYPE_BIT: "BIT", duckdb.TYPE_TIME_TZ: "TIMETZ",
	duckdb.TYPE_TIMESTAMP_TZ: "TIMESTAMPTZ", duckdb.TYPE_ANY: "ANY", duckdb.TYPE_BIGNUM: "BIGNUM",
	duckdb.TYPE_SQLNULL: "SQLNULL", duckdb.TYPE_GEOMETRY: "GEOMETRY", duckdb.TYPE_VARIANT: "VARIANT",
}

// typeString is the name of a column's type as duckdb-go's
// ColumnTypeDatabaseTypeName gives it: "BIGINT", "DECIMAL(18,3)",
// "INTEGER[]", "STRUCT(\"a\" INTEGER)", "JSON" for a top-level JSON column.
func typeString(lt bindings.LogicalType) string {
	if bindings.LogicalTypeGetAlias(lt) == "JSON" {
		return "JSON"
	}
	return typeName(lt)
}

func typeName(lt bindings.LogicalType) string {
	switch t := bindings.GetTypeId(lt); t {
	case duckdb.TYPE_DECIMAL:
		return fmt.Sprintf("DECIMAL(%d,%d)", bindings.DecimalWidth(lt), bindings.DecimalScale(lt))
	case duckdb.TYPE_LIST:
		c := bindings.ListTypeChildType(lt)
		defer bindings.DestroyLogicalType(&c)
		return typeName(c) + "[]"
	case duckdb.TYPE_ARRAY:
		c := bindings.ArrayTypeChildType(lt)
		defer bindings.DestroyLogicalType(&c)
		return fmt.Sprintf("%s[%d]", typeName(c), bindings.ArrayTypeArraySize(lt))
	case duckdb.TYPE_MAP:
		k, v := bindings.MapTypeKeyType(lt), bindings.MapTypeValueType(lt)
		defer bindings.DestroyLogicalType(&k)
		defer bindings.DestroyLogicalType(&v)
		return fmt.Sprintf("MAP(%s, %s)", typeName(k), typeName(v))
	case duckdb.TYPE_STRUCT, duckdb.TYPE_UNION:
		var sb strings.Builder
		n := bindings.StructTypeChildCount(lt)
		name, typ := bindings.StructTypeChildName, bindings.StructTypeChildType
		sb.WriteString("STRUCT(")
		if t == duckdb.TYPE_UNION {
			n = bindings.UnionTypeMemberCount(lt)
			name, typ = bindings.UnionTypeMemberName, bindings.UnionTypeMemberType
			sb.Reset()
			sb.WriteString("UNION(")
		}
		for i := range n {
			if i > 0 {
				sb.WriteString(", ")
			}
			c := typ(lt, i)
			sb.WriteString(`"` + strings.ReplaceAll(name(lt, i), `"`, `""`) + `" ` + typeName(c))
			bindings.DestroyLogicalType(&c)
		}
		sb.WriteByte(')')
		return sb.String()
	default:
		return typeNames[t]
	}
}
