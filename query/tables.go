package query

import (
	"context"
	"fmt"

	json "github.com/goccy/go-json"

	"github.com/valyala/fasthttp"

	"duckgate/schema"
	"duckgate/tenantdb"
)

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
// counts, sorted by name, without internal ones (tenantdb.Tables).
func (e *Engine) tables(ctx context.Context, tenantID string) ([]tableInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	s, err := e.open(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	defer s.close()
	ts, err := tenantdb.Tables(ctx, s.conn)
	if err != nil {
		return nil, wrapRunError(ctx, err)
	}
	tables := make([]tableInfo, len(ts))
	for i, t := range ts {
		tables[i] = tableInfo{Name: t.Name, Rows: t.Rows}
	}
	return tables, nil
}

// columns lists the columns of a table (or view) of the main schema. An
// unknown or internal table is ErrNoTable.
func (e *Engine) columns(ctx context.Context, tenantID, table string) ([]columnInfo, error) {
	if schema.IsReserved(table) {
		return nil, fmt.Errorf("%w: %q", ErrNoTable, table)
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	s, err := e.open(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	defer s.close()
	cs, err := tenantdb.Columns(ctx, s.conn, table)
	if err != nil {
		return nil, wrapRunError(ctx, err)
	}
	if len(cs) == 0 {
		return nil, fmt.Errorf("%w: %q", ErrNoTable, table)
	}
	cols := make([]columnInfo, len(cs))
	for i, c := range cs {
		cols[i] = columnInfo{Name: c.Name, Type: c.Type}
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
	return writeJSON(ctx, tables)
}

// HandleColumns serves GET /api/tables/{table}/columns:
// [{"name":"a","type":"BIGINT"}, ...]. An unknown table is ErrNoTable. On
// an error it writes nothing and returns it, for the caller to answer.
func (e *Engine) HandleColumns(ctx *fasthttp.RequestCtx, tenantID, table string) error {
	cols, err := e.columns(context.Background(), tenantID, table)
	if err != nil {
		return err
	}
	return writeJSON(ctx, cols)
}

// writeJSON answers v, a small listing, as JSON with status 200.
func writeJSON(ctx *fasthttp.RequestCtx, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode the listing: %w", err)
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetBody(append(b, '\n'))
	return nil
}
