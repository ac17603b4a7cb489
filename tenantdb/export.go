package tenantdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"duckgate/schema"
)

// Whole-tenant exports. Both kinds are one transaction's view of the
// tenant's database, taken on its own open instance: every batch the
// writer committed before the transaction began is in it whole, none after
// it in part (a flush is one transaction). They hold the tenant's tables
// (those Tables lists) and the reserved tables the caller names (the
// quarantine: rows that did not fit are the tenant's data too); the rest of
// duckgate's _duckgate_* bookkeeping means nothing outside duckgate and is
// left out.

// ExportTable is one table of an export, as its manifest lists it.
type ExportTable struct {
	// Name is the table's name.
	Name string `json:"name"`
	// File is its file in a Parquet export ("events.parquet").
	File string `json:"file,omitempty"`
	// Rows is its number of rows in the export.
	Rows int64 `json:"rows"`
	// Columns are its columns in order.
	Columns []ExportColumn `json:"columns"`
}

// ExportColumn is one column of an exported table.
type ExportColumn struct {
	// Name is the column's name.
	Name string `json:"name"`
	// Type is its DuckDB type ("BIGINT", "TIMESTAMP WITH TIME ZONE", "JSON").
	Type string `json:"type"`
	// ParquetType is set when the Parquet file holds the column as another
	// type to keep every value exact: HUGEINT as VARCHAR (Parquet has no
	// 128-bit integer and DuckDB would write a rounded DOUBLE).
	ParquetType string `json:"parquet_type,omitempty"`
}

// Manifest describes a Parquet export: manifest.json in the zip.
type Manifest struct {
	// ExportedAt is when the export's transaction began, about.
	ExportedAt time.Time `json:"exported_at"`
	// Tables are the exported tables, sorted by name.
	Tables []ExportTable `json:"tables"`
}

// ExportDatabase writes the tenant's tables and the reserved tables named
// in extra to a new DuckDB file in its scratch directory (as Snapshot, the
// name with the snapshot prefix, deleted by New if a crash leaves it) and
// returns its path and tables. The caller owns the file. Columns keep their
// DuckDB types; constraints are not copied (tenant tables have none).
func (p *Pool) ExportDatabase(ctx context.Context, tenantID, name string, extra []string) (string, []ExportTable, error) {
	var tables []ExportTable
	path, err := p.copyInto(ctx, tenantID, name, func(conn *sql.Conn, _, alias string) (err error) {
		if _, err := conn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
			return err
		}
		defer func() { err = endTx(ctx, conn, err) }()
		if tables, err = exportTables(ctx, conn, extra); err != nil {
			return err
		}
		for i := range tables {
			t := &tables[i]
			q := schema.QuoteIdent(t.Name)
			if _, err := conn.ExecContext(ctx, "CREATE TABLE "+alias+".main."+q+" AS SELECT * FROM main."+q); err != nil {
				return fmt.Errorf("export %s: %w", t.Name, err)
			}
			if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM "+alias+".main."+q).Scan(&t.Rows); err != nil {
				return fmt.Errorf("export %s: %w", t.Name, err)
			}
		}
		return nil
	})
	if err != nil {
		return "", nil, err
	}
	return path, tables, nil
}

// ExportParquet writes each of the tenant's tables and the reserved
// tables named in extra to a Parquet file in a new directory of its
// scratch directory, all in one transaction, and returns the directory and
// the manifest. The caller removes the directory (New removes one a crash
// left behind).
func (p *Pool) ExportParquet(ctx context.Context, tenantID string, extra []string) (dir string, m Manifest, err error) {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	dir = filepath.Join(p.ScratchDir(tenantID), snapshotPrefix+"export-"+hex.EncodeToString(rnd[:]))
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", m, fmt.Errorf("export of tenant %s: %w", tenantID, err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
			dir = ""
		}
	}()
	h, err := p.Acquire(ctx, tenantID)
	if err != nil {
		return "", m, err
	}
	defer h.Release()
	conn, err := h.DB.Conn(ctx)
	if err != nil {
		return "", m, fmt.Errorf("export of tenant %s: %w", tenantID, err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN TRANSACTION READ ONLY"); err != nil {
		return "", m, fmt.Errorf("export of tenant %s: %w", tenantID, err)
	}
	m.ExportedAt = time.Now().UTC()
	err = func() (err error) {
		defer func() { err = endTx(ctx, conn, err) }()
		if m.Tables, err = exportTables(ctx, conn, extra); err != nil {
			return err
		}
		for i := range m.Tables {
			t := &m.Tables[i]
			t.File = t.Name + ".parquet"
			if !schema.ValidTableName(t.Name) {
				t.File = "table_" + strconv.Itoa(i) + ".parquet"
			}
			sel := make([]string, len(t.Columns))
			for j := range t.Columns {
				c := &t.Columns[j]
				sel[j] = schema.QuoteIdent(c.Name)
				if c.Type == "HUGEINT" || c.Type == "UHUGEINT" {
					c.ParquetType = "VARCHAR"
					sel[j] = "CAST(" + sel[j] + " AS VARCHAR) AS " + sel[j]
				}
			}
			q := "COPY (SELECT " + strings.Join(sel, ", ") + " FROM main." + schema.QuoteIdent(t.Name) + ") TO " +
				schema.QuoteString(filepath.Join(dir, t.File)) + " (FORMAT parquet)"
			res, err := conn.ExecContext(ctx, q)
			if err != nil {
				return fmt.Errorf("export %s: %w", t.Name, err)
			}
			if t.Rows, err = res.RowsAffected(); err != nil {
				return fmt.Errorf("export %s: %w", t.Name, err)
			}
		}
		return nil
	}()
	if err != nil {
		return "", m, fmt.Errorf("export of tenant %s: %w", tenantID, err)
	}
	return dir, m, nil
}

// exportTables lists, inside the caller's transaction, the tables an
// export holds with their columns, sorted by name.
func exportTables(ctx context.Context, conn *sql.Conn, extra []string) ([]ExportTable, error) {
	rows, err := conn.QueryContext(ctx, `SELECT c.table_name, c.column_name, c.data_type
		FROM duckdb_columns() c JOIN duckdb_tables() t USING (database_name, schema_name, table_name)
		WHERE c.database_name = current_database() AND c.schema_name = 'main' AND NOT t.temporary AND NOT t.internal
		ORDER BY c.table_name, c.column_index`)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	defer rows.Close()
	var out []ExportTable
	for rows.Next() {
		var t, c, typ string
		if err := rows.Scan(&t, &c, &typ); err != nil {
			return nil, fmt.Errorf("list tables: %w", err)
		}
		if schema.IsReserved(t) && !contains(extra, t) {
			continue
		}
		if len(out) == 0 || out[len(out)-1].Name != t {
			out = append(out, ExportTable{Name: t})
		}
		last := &out[len(out)-1]
		last.Columns = append(last.Columns, ExportColumn{Name: c, Type: typ})
	}
	return out, rows.Err()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// endTx commits the transaction open on conn if err is nil, else rolls it
// back, and returns the error.
func endTx(ctx context.Context, conn *sql.Conn, err error) error {
	if err != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, rerr := conn.ExecContext(rctx, "ROLLBACK"); rerr != nil {
			err = errors.Join(err, fmt.Errorf("rollback: %w", rerr))
		}
		return err
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
