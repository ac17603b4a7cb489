package query

import (
	"fmt"
	"strings"
)

// Format is the encoding of a result.
type Format uint8

// The result formats.
const (
	// FormatJSON is one JSON array of objects: [{"a":1},{"a":2}]. The default.
	FormatJSON Format = iota
	// FormatNDJSON is one JSON object per line.
	FormatNDJSON
	// FormatCSV is RFC 4180 CSV with a header row.
	FormatCSV
	// FormatParquet is a Parquet file written by DuckDB.
	FormatParquet
)

// ParseFormat parses a format name: json, ndjson (or jsonl), csv, parquet.
// The empty string is FormatJSON. Anything else is a wrapped ErrBadRequest.
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(s) {
	case "", "json":
		return FormatJSON, nil
	case "ndjson", "jsonl", "jsonlines":
		return FormatNDJSON, nil
	case "csv":
		return FormatCSV, nil
	case "parquet":
		return FormatParquet, nil
	}
	return 0, fmt.Errorf("%w: unknown format %q: want json, ndjson, csv or parquet", ErrBadRequest, s)
}

// ContentType is the Content-Type of a response in format f.
func (f Format) ContentType() string {
	switch f {
	case FormatNDJSON:
		return "application/x-ndjson"
	case FormatCSV:
		return "text/csv; charset=utf-8"
	case FormatParquet:
		return "application/vnd.apache.parquet"
	default:
		return "application/json"
	}
}

// Ext is the file name extension of format f, without the dot.
func (f Format) Ext() string {
	switch f {
	case FormatNDJSON:
		return "ndjson"
	case FormatCSV:
		return "csv"
	case FormatParquet:
		return "parquet"
	default:
		return "json"
	}
}

// String is the name ParseFormat accepts.
func (f Format) String() string { return f.Ext() }
