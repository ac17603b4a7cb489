package query

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"duckgate/schema"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// ExportParquet runs req as Stream does (the tenant's concurrency slot, the
// flush if asked, the sandbox check, a read-only transaction, the timeout)
// and has DuckDB write the result to the file name in the tenant's scratch
// directory, which it keeps: share snapshots use it. name is a plain file
// name, not a path. It returns the file's path and its number of rows. A
// result over Config.MaxRows or Config.MaxBytes is ErrTooLarge and leaves
// no file.
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
	// As in runParquet: the newline ends a trailing -- comment, and checkOne
	// makes sure the whole text is one COPY before anything runs.
	copySQL := "COPY (" + trimStatement(req.SQL) + "\n) TO " + schema.QuoteString(path) + " (FORMAT parquet)"
	if err := checkOne(s.conn, copySQL, duckdb.STATEMENT_TYPE_COPY); err != nil {
		return "", 0, fmt.Errorf("%w: the query cannot be exported as Parquet (remove a trailing comment?)", ErrBadQuery)
	}
	res, err := s.conn.ExecContext(ctx, copySQL, s.params...)
	if err != nil {
		return "", 0, wrapRunError(ctx, err)
	}
	if rows, err = res.RowsAffected(); err != nil {
		return "", 0, fmt.Errorf("count exported rows: %w", err)
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
