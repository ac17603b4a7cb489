package batcher

import (
	"database/sql/driver"
	"encoding/json"
	"math"
	"math/big"
	"strconv"
	"time"

	"duckgate/jsonstr"
	"duckgate/schema"
)

func floatBits(f float64) uint64 { return math.Float64bits(f) }

// value converts a cell to what the Appender takes for a column of type t.
// The schema planner (schema.Evolve) guarantees that t holds c.Kind; a kind
// it cannot hold falls back to text, which VARCHAR and JSON always take.
func value(c *Cell, t schema.Type) driver.Value {
	switch t {
	case schema.TypeBoolean:
		return c.Num == 1
	case schema.TypeBigInt:
		return int64(c.Num)
	case schema.TypeHugeInt:
		if c.Kind == schema.KindHugeInt {
			if n, ok := new(big.Int).SetString(c.Str, 10); ok {
				return n
			}
		}
		return new(big.Int).SetInt64(int64(c.Num))
	case schema.TypeDouble:
		if c.Kind == schema.KindFloat {
			return math.Float64frombits(c.Num)
		}
		return float64(int64(c.Num))
	case schema.TypeTimestamptz:
		return time.UnixMicro(int64(c.Num)).UTC()
	case schema.TypeJSON:
		// duckdb-go json.Marshals what goes into a JSON column: raw JSON
		// passes through as is (compacted, with <, > and & escaped).
		return json.RawMessage(jsonText(c))
	}
	return text(c)
}

// text is the cell as VARCHAR: what was sent, except the canonical spelling
// of numbers.
func text(c *Cell) string {
	switch c.Kind {
	case schema.KindBool:
		if c.Num == 1 {
			return "true"
		}
		return "false"
	case schema.KindInt, schema.KindBigInt:
		return strconv.FormatInt(int64(c.Num), 10)
	case schema.KindFloat:
		return strconv.FormatFloat(math.Float64frombits(c.Num), 'g', -1, 64)
	}
	return c.Str
}

// jsonText is the cell as a JSON value.
func jsonText(c *Cell) string {
	switch c.Kind {
	case schema.KindJSON, schema.KindHugeInt, schema.KindNumText:
		return c.Str
	case schema.KindString, schema.KindTimestamp:
		return string(jsonstr.Append(nil, c.Str))
	}
	return text(c)
}
