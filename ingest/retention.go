package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	json "github.com/goccy/go-json"
	"github.com/valyala/fasthttp"

	"duckgate/batcher"
	"duckgate/schema"
	"duckgate/tenant"
)

// maxRetentionBody bounds the body of PUT /api/tables/{table}/retention:
// two short fields.
const maxRetentionBody = 4 << 10

// retentionTimeout bounds a retention call: it waits for the tenant's
// writer, which may be busy with a flush or a sweep step.
const retentionTimeout = 30 * time.Second

// RetentionBody is the body of PUT /api/tables/{table}/retention. Both
// fields are optional; what is left out falls back (the plan's retention,
// the default time column).
type RetentionBody struct {
	// Retention is "7d" (whole days) or a Go duration ("72h", "90m");
	// null or absent is the plan's.
	Retention *string `json:"retention"`
	// TimeColumn is the column whose time a row's age is measured by (a
	// TIMESTAMPTZ, TIMESTAMP or DATE column); null or absent is the
	// default: received_at, else _received_at, if the table has it.
	TimeColumn *string `json:"time_column"`
}

// RetentionResponse is what applies to a table.
type RetentionResponse struct {
	Table string `json:"table"`
	// Retention is how long rows are kept; null is forever.
	Retention *string `json:"retention"`
	// TableRetention is the table's own setting; null is the plan's.
	TableRetention *string `json:"table_retention"`
	// PlanRetention is the plan's bound; null is none.
	PlanRetention *string `json:"plan_retention"`
	// TimeColumn is the column the sweep compares; null: no sweep.
	TimeColumn *string `json:"time_column"`
	// TableTimeColumn is the table's own time_column setting; null is the
	// default. When it names a column that is gone or no longer a time,
	// TimeColumn is null and nothing is swept.
	TableTimeColumn *string `json:"table_time_column"`
	// TimeColumnSource is "setting", "default" or "none".
	TimeColumnSource string `json:"time_column_source"`
	// Sweeps is true when rows of this table are deleted once old enough:
	// it has a retention and a time column.
	Sweeps bool `json:"sweeps"`
}

func retentionResponse(tr batcher.TableRetention) RetentionResponse {
	str := func(d time.Duration) *string {
		if d <= 0 {
			return nil
		}
		s := tenant.FormatRetention(d)
		return &s
	}
	r := RetentionResponse{Table: tr.Table, Retention: str(tr.Effective), TableRetention: str(tr.Setting.Retention),
		PlanRetention: str(tr.Plan), TimeColumnSource: tr.TimeColumnSource, Sweeps: tr.Effective > 0 && tr.TimeColumn != ""}
	if tr.TimeColumn != "" {
		c := tr.TimeColumn
		r.TimeColumn = &c
	}
	if tr.Setting.TimeColumn != "" {
		c := tr.Setting.TimeColumn
		r.TableTimeColumn = &c
	}
	return r
}

// retentionError maps the batcher's errors to this package's.
func retentionError(err error) error {
	switch {
	case errors.Is(err, batcher.ErrNoTable):
		return fmt.Errorf("%w: %v; insert rows first or check the name", ErrNoTable, err)
	case errors.Is(err, batcher.ErrBadRetention):
		return fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	return err
}

// GetRetention serves GET /api/tables/{table}/retention.
func (h *Handler) GetRetention(_ *fasthttp.RequestCtx, t tenant.Tenant, table string) (any, error) {
	if err := schema.CheckTableName(table); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadTable, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), retentionTimeout)
	defer cancel()
	tr, err := h.cfg.Batcher.Retention(ctx, t.ID, table)
	if err != nil {
		return nil, retentionError(err)
	}
	return retentionResponse(tr), nil
}

// PutRetention serves PUT /api/tables/{table}/retention: the table's own
// retention and time column. A retention longer than the plan's is
// refused.
func (h *Handler) PutRetention(ctx *fasthttp.RequestCtx, t tenant.Tenant, table string) (any, error) {
	if err := schema.CheckTableName(table); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadTable, err)
	}
	body := ctx.PostBody()
	if len(body) > maxRetentionBody {
		return nil, fmt.Errorf("%w: a retention setting is at most %d bytes", ErrTooLarge, maxRetentionBody)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, fmt.Errorf("%w: the body is empty; send {\"retention\":\"7d\"} and/or {\"time_column\":\"ts\"}", ErrBadRequest)
	}
	var b RetentionBody
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(&b); err != nil {
		return nil, fmt.Errorf("%w: invalid JSON body (fields: retention, time_column): %v", ErrBadRequest, err)
	}
	if d.More() {
		return nil, fmt.Errorf("%w: one JSON object expected", ErrBadRequest)
	}
	var s batcher.RetentionSetting
	if b.Retention != nil {
		r, err := tenant.ParseRetention(*b.Retention)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
		}
		if plan := time.Duration(h.cfg.Tenants.PlanOf(t.ID).Retention); plan > 0 && r > plan {
			return nil, fmt.Errorf("%w: retention %s is longer than your plan keeps rows (%s); choose at most %s",
				ErrBadRequest, tenant.FormatRetention(r), tenant.FormatRetention(plan), tenant.FormatRetention(plan))
		}
		s.Retention = r
	}
	if b.TimeColumn != nil {
		if !schema.ValidColumnName(*b.TimeColumn) {
			return nil, fmt.Errorf("%w: time_column %.64q is not a column name", ErrBadRequest, *b.TimeColumn)
		}
		s.TimeColumn = *b.TimeColumn
	}
	if s == (batcher.RetentionSetting{}) {
		return nil, fmt.Errorf("%w: set retention or time_column; DELETE the setting to go back to the plan's", ErrBadRequest)
	}
	rctx, cancel := context.WithTimeout(context.Background(), retentionTimeout)
	defer cancel()
	tr, err := h.cfg.Batcher.SetRetention(rctx, t.ID, table, s)
	if err != nil {
		return nil, retentionError(err)
	}
	return retentionResponse(tr), nil
}

// DeleteRetention serves DELETE /api/tables/{table}/retention: the table
// goes back to the plan's retention and the default time column.
func (h *Handler) DeleteRetention(_ *fasthttp.RequestCtx, t tenant.Tenant, table string) (any, error) {
	if err := schema.CheckTableName(table); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadTable, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), retentionTimeout)
	defer cancel()
	tr, err := h.cfg.Batcher.SetRetention(ctx, t.ID, table, batcher.RetentionSetting{})
	if err != nil {
		return nil, retentionError(err)
	}
	return retentionResponse(tr), nil
}
