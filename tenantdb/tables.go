package tenantdb

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"

	"duckgate/schema"
)

// Querier runs statements on a tenant's database: a *sql.DB (a Handle's DB),
// a *sql.Conn or a *sql.Tx.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Table is one of a tenant's tables.
type Table struct {
	Name string
	// Rows is the exact number of rows (count(*)).
	Rows int64
}

// Column is one column of a table, as DuckDB names its type ("BIGINT",
// "TIMESTAMP WITH TIME ZONE", "JSON", ...).
type Column struct {
	Name, Type string
}

// Tables lists the tenant's own tables of the main schema, sorted by name,
// with their exact row counts; duckgate's internal tables (schema.IsReserved) are
// left out. It runs two statements, the listing and one that counts every
// table: pass a *sql.Tx for counts of one consistent view.
func Tables(ctx context.Context, q Querier) ([]Table, error) {
	rows, err := q.QueryContext(ctx, `SELECT table_name FROM duckdb_tables()
		WHERE database_name = current_database() AND schema_name = 'main' AND NOT internal AND NOT temporary
		ORDER BY table_name`)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	var tables []Table
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			_ = rows.Close()
			return nil, fmt.Errorf("list tables: %w", err)
		}
		if !schema.IsReserved(name) {
			tables = append(tables, Table{Name: name})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	if len(tables) == 0 {
		return nil, nil
	}
	// One statement counts them all: SELECT 0, count(*) FROM main."a"
	// UNION ALL SELECT 1, count(*) FROM main."b" ...
	var sb strings.Builder
	for i, t := range tables {
		if i > 0 {
			sb.WriteString(" UNION ALL ")
		}
		sb.WriteString("SELECT " + strconv.Itoa(i) + ", count(*) FROM main." + schema.QuoteIdent(t.Name))
	}
	rows, err = q.QueryContext(ctx, sb.String())
	if err != nil {
		return nil, fmt.Errorf("count rows: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var i int
		var n int64
		if err := rows.Scan(&i, &n); err != nil {
			return nil, fmt.Errorf("count rows: %w", err)
		}
		if i < 0 || i >= len(tables) {
			return nil, fmt.Errorf("count rows: unexpected table index %d", i)
		}
		tables[i].Rows = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count rows: %w", err)
	}
	return tables, nil
}

// Columns lists the columns of a table (or view) of the main schema in
// order; an unknown table has none. It does not refuse internal tables:
// callers that serve tenants check schema.IsReserved first.
func Columns(ctx context.Context, q Querier, table string) ([]Column, error) {
	rows, err := q.QueryContext(ctx, `SELECT column_name, data_type FROM duckdb_columns()
		WHERE database_name = current_database() AND schema_name = 'main' AND table_name = ?
		ORDER BY column_index`, table)
	if err != nil {
		return nil, fmt.Errorf("list columns of %s: %w", table, err)
	}
	defer rows.Close()
	var cols []Column
	for rows.Next() {
		var c Column
		if err := rows.Scan(&c.Name, &c.Type); err != nil {
			return nil, fmt.Errorf("list columns of %s: %w", table, err)
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list columns of %s: %w", table, err)
	}
	return cols, nil
}
