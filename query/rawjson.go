package query

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	duckdb "github.com/duckdb/duckdb-go/v2"
	"go.uber.org/zap"

	"duckgate/jsonstr"
	"duckgate/schema"
)

// JSON columns are read as their text.
//
// duckdb-go decodes a JSON column with encoding/json into an any: integers
// beyond 2^53 lose digits, object keys come back sorted and a value Go
// cannot parse (1e400) becomes nil. So when a result has JSON columns the
// query runs wrapped, each JSON column cast to VARCHAR by position:
//
//	SELECT #1 AS "id", #2::VARCHAR AS "payload" FROM (<tenant SQL>
//	) AS q
//
// and the encoders write that text as nested JSON (appendJSONText). Names
// come from DESCRIBE of the tenant's SQL and are given back as aliases, so
// names, duplicate names and order stay those of the tenant's query; the
// newline before the closing parenthesis ends a trailing -- comment.
//
// Whether a column is JSON is not known from the prepared statement alone
// (the C API gives JSON as VARCHAR), so only results with a VARCHAR column
// or with types that depend on the params pay for the DESCRIBE probe
// (measured with BenchmarkTimeToFirstByte: about +0.3 ms at p50 over 0.35 ms
// for a one-row VARCHAR result, +0.6 ms with a JSON column, which also pays
// for the check of the wrapped SQL). DESCRIBE binds the query without
// running it.
// Both the probe and the wrapped SQL pass checkOne as exactly one SELECT
// before they run, with the request's params, in the read-only transaction.
// If either fails (a syntax DuckDB does not take in a subquery) the query
// runs unwrapped and JSON columns take the decoded path.
//
// Only top-level JSON columns are read as text: JSON inside a LIST, STRUCT,
// MAP or UNION still goes through the driver's decoding (DuckDB's VARCHAR
// cast of a LIST is not JSON: [NULL]), as does a query the wrapping cannot
// take (a semicolon followed by a comment at the end).

// mayHoldJSON reports whether a prepared SELECT may return a JSON column:
// it has a VARCHAR column, or its column types stay unknown until the params
// are bound (DuckDB then reports one column of type INVALID).
func mayHoldJSON(st *duckdb.Stmt) bool {
	n, err := st.ColumnCount()
	if err != nil {
		return true
	}
	for i := range n {
		t, err := st.ColumnType(i)
		if err != nil || t == duckdb.TYPE_VARCHAR || t == duckdb.TYPE_INVALID {
			return true
		}
	}
	return false
}

// rawJSONQuery returns the SQL to run for q: if its result has JSON
// columns, q wrapped so that they come as text, and which columns those are;
// otherwise q and nil. It never fails: on any error the query runs as is.
func (e *Engine) rawJSONQuery(ctx context.Context, s *session, tenantID, q string) (string, []bool) {
	names, isJSON, err := describeResult(ctx, s, q)
	if err == nil && isJSON == nil {
		return q, nil
	}
	if err == nil {
		w := wrapRawJSON(q, names, isJSON)
		if err = checkOne(s.conn, w, duckdb.STATEMENT_TYPE_SELECT); err == nil {
			return w, isJSON
		}
	}
	e.log.Debug("JSON columns are decoded by the driver", zap.String("tenant", tenantID), zap.Error(err))
	return q, nil
}

// describeResult has DuckDB describe the result of q (binding it, not
// running it): the names of its columns and, if any is of type JSON, which.
func describeResult(ctx context.Context, s *session, q string) (names []string, isJSON []bool, err error) {
	names, types, err := describeColumns(ctx, s, q)
	if err != nil {
		return nil, nil, err
	}
	for i, t := range types {
		if t == "JSON" {
			if isJSON == nil {
				isJSON = make([]bool, len(types))
			}
			isJSON[i] = true
		}
	}
	return names, isJSON, nil
}

// describeColumns has DuckDB describe the result of q (binding it, not
// running it): the names of its columns and their types as DESCRIBE spells
// them ("HUGEINT[]", "STRUCT(a HUGEINT)"). DESCRIBE is prepared once,
// checked as one SELECT and run with the params.
func describeColumns(ctx context.Context, s *session, q string) (names, types []string, err error) {
	args := make([]driver.NamedValue, len(s.params))
	for i, p := range s.params {
		args[i] = driver.NamedValue{Ordinal: i + 1, Value: p}
	}
	err = checkOneInspect(s.conn, "DESCRIBE "+trimStatement(q)+"\n", duckdb.STATEMENT_TYPE_SELECT, func(st *duckdb.Stmt) error {
		rows, err := st.QueryContext(ctx, args)
		if err != nil {
			return err
		}
		defer rows.Close()
		if cols := rows.Columns(); len(cols) < 2 || cols[0] != "column_name" || cols[1] != "column_type" {
			return fmt.Errorf("DESCRIBE returned columns %q", cols)
		}
		row := make([]driver.Value, len(rows.Columns()))
		for {
			if err := rows.Next(row); err == io.EOF {
				return nil
			} else if err != nil {
				return err
			}
			name, ok1 := row[0].(string)
			typ, ok2 := row[1].(string)
			if !ok1 || !ok2 {
				return fmt.Errorf("DESCRIBE returned %T, %T", row[0], row[1])
			}
			names = append(names, name)
			types = append(types, typ)
		}
	})
	if err != nil {
		return nil, nil, err
	}
	return names, types, nil
}

// wrapRawJSON is q with the columns marked in isJSON cast to VARCHAR, by
// position, every column aliased to its name.
func wrapRawJSON(q string, names []string, isJSON []bool) string {
	var sb strings.Builder
	sb.Grow(len(q) + 32*len(names))
	sb.WriteString("SELECT ")
	for i, name := range names {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteByte('#')
		sb.WriteString(strconv.Itoa(i + 1))
		if isJSON[i] {
			sb.WriteString("::VARCHAR")
		}
		sb.WriteString(" AS ")
		sb.WriteString(schema.QuoteIdent(name))
	}
	sb.WriteString(" FROM (")
	sb.WriteString(trimStatement(q))
	sb.WriteString("\n) AS q")
	return sb.String()
}

// appendJSONText appends the text of a JSON value as nested JSON, with the
// white space between tokens removed (so that an NDJSON row stays one line);
// numbers, strings and key order are kept byte for byte. DuckDB's JSON type
// also takes what JSON does not (NaN, Infinity, trailing commas): such text
// is written as a JSON string, so the output stays valid and nothing is lost.
func appendJSONText(b []byte, text string) []byte {
	start := len(b)
	b = append(b, text...)
	if !json.Valid(b[start:]) {
		return jsonstr.Append(b[:start], text)
	}
	return compactJSONTail(b, start)
}

// compactJSONTail removes, in place, the white space outside strings of the
// valid JSON b[from:]. Raw control characters cannot occur inside valid JSON
// strings, so only spaces need the string tracking.
func compactJSONTail(b []byte, from int) []byte {
	w := from
	inString, escaped := false, false
	for r := from; r < len(b); r++ {
		c := b[r]
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			continue
		}
		b[w] = c
		w++
	}
	return b[:w]
}
