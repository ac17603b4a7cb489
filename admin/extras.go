package admin

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/valyala/fasthttp"

	"duckgate/batcher"
	"duckgate/webhook"
)

// maxQuarantineGroups bounds the quarantine summary: one line per table
// and error, the most recent first.
const maxQuarantineGroups = 50

// QuarantineInfo is one table's quarantined rows that failed with one
// error.
type QuarantineInfo struct {
	Table string    `json:"table"`
	Error string    `json:"error"`
	Rows  int64     `json:"rows"`
	Last  time.Time `json:"last"`
}

// hasQuarantine reports whether the tenant's database in tx has a
// quarantine table (something was ever quarantined).
func hasQuarantine(ctx context.Context, tx *sql.Tx) (bool, error) {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM duckdb_tables()
		WHERE database_name = current_database() AND schema_name = 'main' AND table_name = ?`, batcher.QuarantineTable).Scan(&n); err != nil {
		return false, fmt.Errorf("look for quarantined rows: %w", err)
	}
	return n > 0, nil
}

// quarantinedRows counts the tenant's quarantined rows in tx.
func quarantinedRows(ctx context.Context, tx *sql.Tx) (int64, error) {
	ok, err := hasQuarantine(ctx, tx)
	if err != nil || !ok {
		return 0, err
	}
	var n int64
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM `+batcher.QuarantineTable).Scan(&n); err != nil {
		return 0, fmt.Errorf("count quarantined rows: %w", err)
	}
	return n, nil
}

// quarantine summarizes the tenant's quarantined rows in tx; none if the
// table does not exist (nothing was ever quarantined).
func quarantine(ctx context.Context, tx *sql.Tx) ([]QuarantineInfo, error) {
	out := []QuarantineInfo{}
	if ok, err := hasQuarantine(ctx, tx); err != nil || !ok {
		return out, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT table_name, error, count(*), max(quarantined_at) FROM `+batcher.QuarantineTable+`
		GROUP BY table_name, error ORDER BY 4 DESC LIMIT `+fmt.Sprint(maxQuarantineGroups))
	if err != nil {
		return nil, fmt.Errorf("read quarantined rows: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var q QuarantineInfo
		if err := rows.Scan(&q.Table, &q.Error, &q.Rows, &q.Last); err != nil {
			return nil, fmt.Errorf("read quarantined rows: %w", err)
		}
		out = append(out, q)
	}
	return out, rows.Err()
}

// TenantShares serves GET /api/admin/tenants/{id}/shares: the tenant's
// share links as the tenant's own list shows them (never an id or a URL).
func (h *Handler) TenantShares(ctx *fasthttp.RequestCtx, id string) (any, error) {
	if _, err := h.cfg.Tenants.Get(id); err != nil {
		return nil, err
	}
	if h.cfg.Share == nil {
		return map[string][]struct{}{"links": {}}, nil
	}
	return nil, h.cfg.Share.HandleList(ctx, id)
}

// RevokeShare serves DELETE /api/admin/tenants/{id}/shares/{link_id}.
func (h *Handler) RevokeShare(ctx *fasthttp.RequestCtx, id, linkID string) (any, error) {
	if _, err := h.cfg.Tenants.Get(id); err != nil {
		return nil, err
	}
	if h.cfg.Share == nil {
		return nil, fmt.Errorf("%w: share links are not enabled", ErrBadRequest)
	}
	return nil, h.cfg.Share.HandleRevoke(ctx, id, linkID)
}

// WebhookInfo is an endpoint as the dashboard lists it; the secret is
// never read.
type WebhookInfo struct {
	ID       string           `json:"id"`
	Provider webhook.Provider `json:"provider"`
	Table    string           `json:"table"`
	Created  time.Time        `json:"created"`
}

// TenantWebhooks serves GET /api/admin/tenants/{id}/webhooks.
func (h *Handler) TenantWebhooks(_ *fasthttp.RequestCtx, id string) (any, error) {
	if _, err := h.cfg.Tenants.Get(id); err != nil {
		return nil, err
	}
	out := []WebhookInfo{}
	if h.cfg.Webhooks != nil {
		for _, e := range h.cfg.Webhooks.List(id) {
			out = append(out, WebhookInfo{ID: e.ID, Provider: e.Provider, Table: e.Table, Created: e.Created})
		}
	}
	return struct {
		Webhooks []WebhookInfo `json:"webhooks"`
	}{out}, nil
}
