package query

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"duckgate/schema"

	duckdb "github.com/duckdb/duckdb-go/v2"
	"go.uber.org/zap"
)

// ExportParquet runs req as Stream does (the tenant's concurrency slot, the
// flush if asked, the sandbox check, a read-only transaction, the timeout)
// and has DuckDB write the result to the file name in the tenant's scratch
// directory, which it keeps: share snapshots use it. name is a plain file
// name, not a path. It returns the file's path and its number of rows. A
// result over Config.MaxRows or Config.MaxBytes is ErrTooLarge and leaves
// no file. Values are kept exact as copyParquet says.
func (e *Engine) ExportParquet(ctx context.Context, tenantID string, req Request, name string) (path string, rows int64, err error) {
	if name == "" || name != filepath.Base(name) || strings.HasPrefix(name, ".") {
		return "", 0, fmt.Errorf("export file name %q is not a plain file name", name)
	}
	ctx, cancel := context.WithTimeout(ctx, e.timeoutOf(req))
	defer cancel()
	s, err := e.begin(ctx, tenantID, req)
	if err != nil {
		return "", 0, err
	}
	defer s.end()
	path = filepath.Join(e.pool.ScratchDir(tenantID), name)
	defer func() {
		if err != nil {
			_ = os.Remove(path)
		}
	}()
	if rows, err = e.copyParquet(ctx, s, tenantID, req.SQL, path); err != nil {
		return "", 0, err
	}
	if rows > e.cfg.MaxRows {
		return "", 0, fmt.Errorf("%w: %d rows, the limit is %d", ErrTooLarge, rows, e.cfg.MaxRows)
	}
	st, err := os.Stat(path)
	if err != nil {
		return "", 0, fmt.Errorf("stat exported file: %w", err)
	}
	if st.Size() > e.cfg.MaxBytes {
		return "", 0, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, st.Size(), e.cfg.MaxBytes)
	}
	return path, rows, nil
}

// ScratchDir is the tenant's scratch directory, where ExportParquet writes.
func (e *Engine) ScratchDir(tenantID string) string {
	return e.pool.ScratchDir(tenantID)
}

// copyParquet has DuckDB write the result of the tenant's SELECT q (checked
// by begin, which opened s) to path, and returns its number of rows.
//
// Every value stays exact. DuckDB 1.5.5 writes HUGEINT and UHUGEINT as
// DOUBLE (Parquet has no 128-bit integer: 1180591620717411303425 would read
// back 1.1805916207174113e+21) and INTERVAL as Parquet's INTERVAL, which
// counts milliseconds. So q is wrapped when its result has such columns:
//
//   - HUGEINT and UHUGEINT become DECIMAL(38,0), exact for every value of
//     at most 38 digits. If a value of the column has 39 (HUGEINT reaches
//     ±1.7e38, UHUGEINT 3.4e38), the query runs again with that column as
//     VARCHAR: its exact digits.
//   - INTERVAL stays INTERVAL if every value is whole milliseconds and
//     has no negative part, else the query runs again with the column as
//     VARCHAR (DuckDB's interval text, "00:00:00.000001"): Parquet's
//     INTERVAL counts milliseconds, and DuckDB refuses to write a negative
//     one ("Parquet files do not support negative intervals").
//   - HUGEINT or UHUGEINT inside a LIST, ARRAY, STRUCT or MAP become VARCHAR
//     there; the rest of the nested type is kept.
//
// BOOLEAN, BIGINT, DOUBLE, VARCHAR, TIMESTAMPTZ (microseconds, UTC), JSON
// (Parquet's JSON type), DECIMAL, DATE, TIME, TIMESTAMP, TIMESTAMP_NS, UUID
// and BLOB are written as they are and read back exactly. A retry runs in a
// new read-only transaction (an error ends DuckDB's transaction), so the
// file holds one snapshot, the last one.
func (e *Engine) copyParquet(ctx context.Context, s *session, tenantID, q, path string) (int64, error) {
	names, types, err := describeColumns(ctx, s, q)
	if err != nil {
		// The COPY then fails too, with DuckDB's own message; or DESCRIBE
		// refused what COPY takes, and the values go as DuckDB writes them.
		e.log.Debug("parquet columns written as DuckDB maps them", zap.String("tenant", tenantID), zap.Error(err))
		names, types = nil, nil
	}
	cols := make([]parquetCol, len(types))
	for i, t := range types {
		cols[i] = parquetColOf(t)
	}
	for attempt := 0; ; attempt++ {
		// The newline ends a trailing -- comment; checkOne makes sure the
		// whole text is one COPY before anything runs.
		copySQL := "COPY (" + wrapParquet(q, names, cols) + "\n) TO " + schema.QuoteString(path) + " (FORMAT parquet)"
		if err := checkOne(s.conn, copySQL, duckdb.STATEMENT_TYPE_COPY); err != nil {
			return 0, fmt.Errorf("%w: the query cannot be exported as Parquet (remove a trailing comment?)", ErrBadQuery)
		}
		res, err := s.conn.ExecContext(ctx, copySQL, s.params...)
		if err == nil {
			n, err := res.RowsAffected()
			if err != nil {
				return 0, fmt.Errorf("count exported rows: %w", err)
			}
			return n, nil
		}
		i := parquetRetryColumn(err, cols)
		if i < 0 || attempt > len(cols) {
			return 0, wrapRunError(ctx, err)
		}
		cols[i] = parquetCol{kind: parquetText}
		_ = os.Remove(path)
		if _, err := s.conn.ExecContext(ctx, "ROLLBACK"); err != nil {
			return 0, wrapRunError(ctx, fmt.Errorf("roll back before writing column %d as text: %w", i+1, err))
		}
		if _, err := s.conn.ExecContext(ctx, "BEGIN TRANSACTION READ ONLY"); err != nil {
			return 0, wrapRunError(ctx, fmt.Errorf("begin read-only transaction: %w", err))
		}
	}
}

// parquetKind is how copyParquet writes a column.
type parquetKind uint8

const (
	parquetKeep     parquetKind = iota // as DuckDB writes it
	parquetDecimal                     // HUGEINT, UHUGEINT: DECIMAL(38,0), or fail with the marker
	parquetInterval                    // INTERVAL: kept if whole milliseconds, or fail with the marker
	parquetNested                      // cast to parquetCol.cast (128-bit integers inside as VARCHAR)
	parquetText                        // VARCHAR
)

type parquetCol struct {
	kind parquetKind
	cast string // the type of a parquetNested column
}

// parquetColOf is how a column whose DESCRIBE type is t is written.
func parquetColOf(t string) parquetCol {
	switch t {
	case "HUGEINT", "UHUGEINT":
		return parquetCol{kind: parquetDecimal}
	case "INTERVAL":
		return parquetCol{kind: parquetInterval}
	}
	if c := nestedWithoutHugeint(t); c != t {
		return parquetCol{kind: parquetNested, cast: c}
	}
	return parquetCol{}
}

// nestedWithoutHugeint is the nested type t with every HUGEINT and UHUGEINT
// element or field type replaced by VARCHAR. DESCRIBE quotes field names
// that need it ("x y") and leaves others bare, even one spelled HUGEINT; a
// type name is followed by ',', ')', '[' or the end, a field name by a
// space, so only types are replaced.
func nestedWithoutHugeint(t string) string {
	var sb strings.Builder
	quoted := false
	for i := 0; i < len(t); {
		if t[i] == '"' {
			quoted = !quoted // "" inside a quoted name toggles twice
		}
		if n := hugeintTypeAt(t, i); n > 0 && !quoted {
			sb.WriteString("VARCHAR")
			i += n
			continue
		}
		sb.WriteByte(t[i])
		i++
	}
	return sb.String()
}

// hugeintTypeAt is the length of the type name HUGEINT or UHUGEINT at t[i:]
// if one is there, else 0.
func hugeintTypeAt(t string, i int) int {
	if i > 0 && isIdentByte(t[i-1]) {
		return 0
	}
	for _, name := range []string{"UHUGEINT", "HUGEINT"} {
		end := i + len(name)
		if strings.HasPrefix(t[i:], name) && (end == len(t) || t[end] == ',' || t[end] == ')' || t[end] == '[') {
			return len(name)
		}
	}
	return 0
}

func isIdentByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// parquetRetryMarker starts the error a wrapped column raises when one of
// its values would not be exact in its Parquet type; the column's position
// (1-based) follows.
const parquetRetryMarker = "duckgate: parquet value needs text in column #"

// parquetRetryColumn is the index of the column whose value raised the
// marker in err, if that column can still fall back to text; otherwise -1.
func parquetRetryColumn(err error, cols []parquetCol) int {
	msg := cleanDuckDBError(err)
	at := strings.Index(msg, parquetRetryMarker)
	if at < 0 {
		return -1
	}
	digits := msg[at+len(parquetRetryMarker):]
	if end := strings.IndexFunc(digits, func(r rune) bool { return r < '0' || r > '9' }); end >= 0 {
		digits = digits[:end]
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n < 1 || n > len(cols) {
		return -1
	}
	if k := cols[n-1].kind; k != parquetDecimal && k != parquetInterval {
		return -1
	}
	return n - 1
}

// wrapParquet is q, or, if a column of cols is not parquetKeep, q wrapped
// to write its columns as cols say, by position, each aliased to its name.
func wrapParquet(q string, names []string, cols []parquetCol) string {
	q = trimStatement(q)
	wrap := false
	for _, c := range cols {
		wrap = wrap || c.kind != parquetKeep
	}
	if !wrap {
		return q
	}
	var sb strings.Builder
	sb.WriteString("SELECT ")
	for i, c := range cols {
		if i > 0 {
			sb.WriteString(", ")
		}
		ref := "#" + strconv.Itoa(i+1)
		marker := schema.QuoteString(parquetRetryMarker + strconv.Itoa(i+1))
		switch c.kind {
		case parquetKeep:
			sb.WriteString(ref)
		case parquetDecimal:
			// TRY_CAST is NULL for a value beyond 38 digits (and for NULL).
			fmt.Fprintf(&sb, "CASE WHEN %[1]s IS NOT NULL AND TRY_CAST(%[1]s AS DECIMAL(38,0)) IS NULL THEN error(%[2]s) ELSE TRY_CAST(%[1]s AS DECIMAL(38,0)) END", ref, marker)
		case parquetInterval:
			// An interval's microseconds part counts within the minute, a
			// multiple of 1000: below a millisecond shows in its remainder.
			// DuckDB refuses to write a negative part; its text shows one
			// as a '-'.
			fmt.Fprintf(&sb, "CASE WHEN datepart('microseconds', %[1]s) %% 1000 <> 0 OR strpos(CAST(%[1]s AS VARCHAR), '-') > 0 THEN error(%[2]s) ELSE %[1]s END", ref, marker)
		case parquetNested:
			sb.WriteString("CAST(" + ref + " AS " + c.cast + ")")
		case parquetText:
			sb.WriteString("CAST(" + ref + " AS VARCHAR)")
		}
		sb.WriteString(" AS ")
		sb.WriteString(schema.QuoteIdent(names[i]))
	}
	sb.WriteString(" FROM (")
	sb.WriteString(q)
	sb.WriteString("\n) AS q")
	return sb.String()
}
