package query

import (
	"context"
	"fmt"
	"strings"

	"github.com/valyala/fasthttp"

	"duckgate/jsonstr"

	"duckgate/schema"
)

// internalPrefix marks the gateway's own schemas and tables, hidden from tenants.
const internalPrefix = "_duckgate"

// tableInfo is one entry of GET /api/tables.
type tableInfo struct {
	Name string `json:"name"`
	Rows int64  `json:"rows"`
}

// columnInfo is one entry of GET /api/tables/{table}/columns.
type columnInfo struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// tables lists the tenant's tables of the main schema with their exact row
// counts (count(*) each), sorted by name, without internal ones.
func (e *Engine) tables(ctx context.Context, tenantID string) ([]tableInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	s, err := e.open(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	defer s.close()
	rows, err := s.conn.QueryContext(ctx, `SELECT table_name FROM duckdb_tables()
		WHERE database_name = current_database() AND schema_name = 'main' AND NOT temporary
		ORDER BY table_name`)
	if err != nil {
		return nil, wrapRunError(ctx, err)
	}
	var tables []tableInfo
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			_ = rows.Close()
			return nil, err
		}
		if !strings.HasPrefix(name, internalPrefix) {
			tables = append(tables, tableInfo{Name: name})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, wrapRunError(ctx, err)
	}
	for i := range tables {
		q := "SELECT count(*) FROM main." + schema.QuoteIdent(tables[i].Name)
		if err := s.conn.QueryRowContext(ctx, q).Scan(&tables[i].Rows); err != nil {
			return nil, wrapRunError(ctx, fmt.Errorf("count rows of %s: %w", tables[i].Name, err))
		}
	}
	return tables, nil
}

// columns lists the columns of a table (or view) of the main schema. An
// unknown or internal table is ErrNoTable.
func (e *Engine) columns(ctx context.Context, tenantID, table string) ([]columnInfo, error) {
	if strings.HasPrefix(table, internalPrefix) {
		return nil, fmt.Errorf("%w: %q", ErrNoTable, table)
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	s, err := e.open(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	defer s.close()
	rows, err := s.conn.QueryContext(ctx, `SELECT column_name, data_type FROM duckdb_columns()
		WHERE database_name = current_database() AND schema_name = 'main' AND table_name = ?
		ORDER BY column_index`, table)
	if err != nil {
		return nil, wrapRunError(ctx, err)
	}
	cols := []columnInfo{}
	for rows.Next() {
		var c columnInfo
		if err := rows.Scan(&c.Name, &c.Type); err != nil {
			_ = rows.Close()
			return nil, err
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, wrapRunError(ctx, err)
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("%w: %q", ErrNoTable, table)
	}
	return cols, nil
}

// HandleTables serves GET /api/tables: [{"name":"events","rows":123}, ...].
// On an error it writes nothing and returns it, for the caller to answer.
func (e *Engine) HandleTables(ctx *fasthttp.RequestCtx, tenantID string) error {
	tables, err := e.tables(context.Background(), tenantID)
	if err != nil {
		return err
	}
	b := []byte{'['}
	for i, t := range tables {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = jsonstr.Append(b, t.Name)
		b = append(b, `,"rows":`...)
		b = appendJSONValue(b, t.Rows, kindOther)
		b = append(b, '}')
	}
	writeJSON(ctx, append(b, ']', '\n'))
	return nil
}

// HandleColumns serves GET /api/tables/{table}/columns:
// [{"name":"a","type":"BIGINT"}, ...]. An unknown table is ErrNoTable. On
// an error it writes nothing and returns it, for the caller to answer.
func (e *Engine) HandleColumns(ctx *fasthttp.RequestCtx, tenantID, table string) error {
	cols, err := e.columns(context.Background(), tenantID, table)
	if err != nil {
		return err
	}
	b := []byte{'['}
	for i, c := range cols {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = jsonstr.Append(b, c.Name)
		b = append(b, `,"type":`...)
		b = jsonstr.Append(b, c.Type)
		b = append(b, '}')
	}
	writeJSON(ctx, append(b, ']', '\n'))
	return nil
}

// writeJSON answers a success body b with status 200.
func writeJSON(ctx *fasthttp.RequestCtx, b []byte) {
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetBody(b)
}
