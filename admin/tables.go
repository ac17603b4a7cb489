package admin

import (
	"context"
	"fmt"

	"github.com/valyala/fasthttp"

	"duckgate/batcher"
	"duckgate/tenantdb"
)

// TableInfo is one of a tenant's tables as the dashboard shows it.
type TableInfo struct {
	Name    string       `json:"name"`
	Rows    int64        `json:"rows"`
	Columns []ColumnInfo `json:"columns"`
}

// ColumnInfo is a column and its DuckDB type.
type ColumnInfo struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// TenantTables serves GET /api/admin/tenants/{id}/tables: the tenant's
// tables with exact row counts, columns and types, and its quarantined
// rows by table and error, read in one read-only transaction, and its
// latest schema changes since the server started. A tenant that never
// stored a row has none (its database is not created by looking).
func (h *Handler) TenantTables(_ *fasthttp.RequestCtx, id string) (any, error) {
	if _, err := h.cfg.Tenants.Get(id); err != nil {
		return nil, err
	}
	out := struct {
		Tables     []TableInfo      `json:"tables"`
		Quarantine []QuarantineInfo `json:"quarantine"`
		// SchemaChanges are the latest changes since the server started,
		// newest first.
		SchemaChanges []batcher.SchemaChange `json:"schema_changes"`
	}{Tables: []TableInfo{}, Quarantine: []QuarantineInfo{}, SchemaChanges: h.cfg.Batcher.SchemaChanges(id)}
	if _, mod, err := statFile(h.cfg.Pool.Path(id)); err != nil {
		return nil, err
	} else if mod == 0 {
		return out, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	db, err := h.cfg.Pool.Acquire(ctx, id)
	if err != nil {
		return nil, err
	}
	defer db.Release()
	tx, err := db.DB.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("list tables of %s: %w", id, err)
	}
	defer func() { _ = tx.Rollback() }()
	tables, err := tenantdb.Tables(ctx, tx)
	if err != nil {
		return nil, err
	}
	for _, t := range tables {
		cols, err := tenantdb.Columns(ctx, tx, t.Name)
		if err != nil {
			return nil, err
		}
		ti := TableInfo{Name: t.Name, Rows: t.Rows, Columns: make([]ColumnInfo, len(cols))}
		for i, c := range cols {
			ti.Columns[i] = ColumnInfo{Name: c.Name, Type: c.Type}
		}
		out.Tables = append(out.Tables, ti)
	}
	if out.Quarantine, err = quarantine(ctx, tx); err != nil {
		return nil, err
	}
	return out, nil
}
