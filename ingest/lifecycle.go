package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"

	json "github.com/goccy/go-json"
	"github.com/valyala/fasthttp"

	"duckgate/batcher"
	"duckgate/schema"
	"duckgate/tenant"
)

// Bounds of the data lifecycle calls.
const (
	// maxLifecycleBody bounds the JSON body of a pin, a freeze or a
	// quarantine selector: a thousand ids fit in 25 KB.
	maxLifecycleBody = 64 << 10
	// maxSelectIDs bounds the ids of one quarantine selector.
	maxSelectIDs = 1000
	// maxReplay bounds the entries one replay sends; "more" says to call
	// again.
	maxReplay = 1000
	// defaultListLimit and maxListLimit bound a page of the quarantine.
	defaultListLimit = 100
	maxListLimit     = 1000
)

// decodeStrict decodes a small JSON body into v, refusing unknown fields
// and trailing data.
func decodeStrict(body []byte, v any) error {
	if len(body) > maxLifecycleBody {
		return fmt.Errorf("%w: the body is over %d bytes", ErrTooLarge, maxLifecycleBody)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: the body is not the JSON object this call takes: %v", ErrBadRequest, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: the body holds more than one JSON value", ErrBadRequest)
	}
	return nil
}

// timedOut turns a lifecycle call that outlasted WaitTimeout into a 504
// that says what to do.
func timedOut(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: the call did not finish in time (%v); it was aborted and may not have taken effect: check and retry", ErrWaitTimeout, err)
	}
	return err
}

// checkColumn checks a column name a tenant sends.
func checkColumn(column string) error {
	if !schema.ValidColumnName(column) {
		return fmt.Errorf("%w: column name %.64q cannot be pinned: it is empty, over 255 bytes or %s, which the server keeps", ErrBadRequest, column, schema.OverflowColumn)
	}
	return nil
}

// PinColumn serves PUT /api/tables/{table}/columns/{column} with
// {"type":"BIGINT"}: the column keeps that type (converted now if it
// exists and its values convert exactly), and values that do not fit go to
// the quarantine.
func (h *Handler) PinColumn(ctx *fasthttp.RequestCtx, t tenant.Tenant, table, column string) (any, error) {
	if err := schema.CheckTableName(table); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadTable, err)
	}
	if err := checkColumn(column); err != nil {
		return nil, err
	}
	var req struct {
		Type *string `json:"type"`
	}
	if err := decodeStrict(ctx.PostBody(), &req); err != nil {
		return nil, err
	}
	if req.Type == nil {
		return nil, fmt.Errorf(`%w: send {"type":"BIGINT"}, one of %s`, ErrBadRequest, batcher.PinnableTypes)
	}
	typ, ok := schema.ParseType(*req.Type)
	if !ok {
		return nil, fmt.Errorf("%w: type %.32q: use one of %s", ErrBadRequest, *req.Type, batcher.PinnableTypes)
	}
	c, cancel := context.WithTimeout(context.Background(), h.cfg.WaitTimeout)
	defer cancel()
	res, err := h.cfg.Batcher.PinColumn(c, t.ID, table, column, typ)
	if err != nil {
		return nil, timedOut(err)
	}
	return res, nil
}

// UnpinColumn serves DELETE /api/tables/{table}/columns/{column}.
func (h *Handler) UnpinColumn(_ *fasthttp.RequestCtx, t tenant.Tenant, table, column string) (any, error) {
	if err := schema.CheckTableName(table); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadTable, err)
	}
	if err := checkColumn(column); err != nil {
		return nil, err
	}
	c, cancel := context.WithTimeout(context.Background(), h.cfg.WaitTimeout)
	defer cancel()
	if err := h.cfg.Batcher.UnpinColumn(c, t.ID, table, column); err != nil {
		return nil, timedOut(err)
	}
	return map[string]any{"table": table, "column": column, "pinned": false}, nil
}

// TableRulesResponse is a table's rules as GET /api/tables/{table} shows
// them.
type TableRulesResponse struct {
	Table  string            `json:"table"`
	Frozen bool              `json:"frozen"`
	Pins   map[string]string `json:"pins"`
}

// SetTable serves PUT /api/tables/{table} with {"frozen":true|false}.
func (h *Handler) SetTable(ctx *fasthttp.RequestCtx, t tenant.Tenant, table string) (any, error) {
	if err := schema.CheckTableName(table); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadTable, err)
	}
	var req struct {
		Frozen *bool `json:"frozen"`
	}
	if err := decodeStrict(ctx.PostBody(), &req); err != nil {
		return nil, err
	}
	if req.Frozen == nil {
		return nil, fmt.Errorf(`%w: send {"frozen":true} or {"frozen":false}`, ErrBadRequest)
	}
	c, cancel := context.WithTimeout(context.Background(), h.cfg.WaitTimeout)
	defer cancel()
	if err := h.cfg.Batcher.SetFrozen(c, t.ID, table, *req.Frozen); err != nil {
		return nil, timedOut(err)
	}
	return h.TableRules(ctx, t, table)
}

// TableRules serves GET /api/tables/{table}: its pinned columns and
// whether it is frozen.
func (h *Handler) TableRules(_ *fasthttp.RequestCtx, t tenant.Tenant, table string) (any, error) {
	if err := schema.CheckTableName(table); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadTable, err)
	}
	c, cancel := context.WithTimeout(context.Background(), h.cfg.WaitTimeout)
	defer cancel()
	r, err := h.cfg.Batcher.TableRules(c, t.ID, table)
	if err != nil {
		return nil, err
	}
	out := TableRulesResponse{Table: table, Frozen: r.Frozen, Pins: map[string]string{}}
	for col, typ := range r.Pins {
		out.Pins[col] = typ.String()
	}
	return out, nil
}

// dryRun answers an insert with ?dry_run=true: what it would change.
func (h *Handler) dryRun(ctx *fasthttp.RequestCtx, t tenant.Tenant, table string, d *Decoded) error {
	c, cancel := context.WithTimeout(context.Background(), h.cfg.WaitTimeout)
	defer cancel()
	plan, err := h.cfg.Batcher.DryRun(c, t.ID, table, d.Rows)
	if err != nil {
		return err
	}
	errs := d.Errors
	if errs == nil {
		errs = []RowError{}
	}
	body, err := json.Marshal(struct {
		DryRun   bool       `json:"dry_run"`
		Accepted int        `json:"accepted"`
		Rejected int        `json:"rejected"`
		Errors   []RowError `json:"errors"`
		batcher.DryRunResult
	}{true, d.Rows.Len(), d.Rejected, errs, plan})
	if err != nil {
		return err
	}
	writeBody(ctx, append(body, '\n'))
	return nil
}

// selector is the body of a quarantine replay or discard.
type selector struct {
	All   bool    `json:"all"`
	Table *string `json:"table"`
	IDs   []int64 `json:"ids"`
}

// parseSelector reads {"all":true}, {"table":"events"} or {"ids":[…]}
// (table and ids may combine). An empty body selects nothing and is an
// error: discarding everything must be asked for.
func parseSelector(body []byte) (batcher.QuarantineSelector, error) {
	var sel batcher.QuarantineSelector
	var s selector
	if len(bytes.TrimSpace(body)) == 0 {
		return sel, fmt.Errorf(`%w: say which entries: {"all":true}, {"table":"events"} or {"ids":[1,2]}`, ErrBadRequest)
	}
	if err := decodeStrict(body, &s); err != nil {
		return sel, err
	}
	if s.Table != nil {
		if err := schema.CheckTableName(*s.Table); err != nil {
			return sel, fmt.Errorf("%w: %v", ErrBadTable, err)
		}
		sel.Table = *s.Table
	}
	if s.IDs != nil {
		if len(s.IDs) == 0 || len(s.IDs) > maxSelectIDs {
			return sel, fmt.Errorf("%w: ids must list 1 to %d entries", ErrBadRequest, maxSelectIDs)
		}
		sel.IDs = s.IDs
	}
	if s.All == (s.Table != nil || s.IDs != nil) {
		return sel, fmt.Errorf(`%w: say which entries: {"all":true}, or a "table" and/or "ids" without "all"`, ErrBadRequest)
	}
	return sel, nil
}

// QuarantineList is the answer of GET /api/quarantine.
type QuarantineList struct {
	// Total counts every entry of the tenant.
	Total int64 `json:"total"`
	// Reasons counts entries by table and reason.
	Reasons []batcher.QuarantineReason `json:"reasons"`
	// Entries is one page, in id order.
	Entries []batcher.QuarantineEntry `json:"entries"`
	// NextAfter, when set, is the after= of the next page.
	NextAfter *int64 `json:"next_after"`
}

// ListQuarantine serves GET /api/quarantine[?table=…&after=<id>&limit=<n>].
func (h *Handler) ListQuarantine(ctx *fasthttp.RequestCtx, t tenant.Tenant) (any, error) {
	args := ctx.QueryArgs()
	var sel batcher.QuarantineSelector
	if table := string(args.Peek("table")); table != "" {
		if err := schema.CheckTableName(table); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadTable, err)
		}
		sel.Table = table
	}
	after := int64(math.MinInt64)
	if v := args.Peek("after"); len(v) > 0 {
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: after=%.32q is not an entry id", ErrBadRequest, v)
		}
		after = n
	}
	limit := defaultListLimit
	if v := args.Peek("limit"); len(v) > 0 {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 1 || n > maxListLimit {
			return nil, fmt.Errorf("%w: limit must be 1 to %d", ErrBadRequest, maxListLimit)
		}
		limit = n
	}
	c, cancel := context.WithTimeout(context.Background(), h.cfg.WaitTimeout)
	defer cancel()
	total, reasons, err := h.cfg.Batcher.QuarantineSummary(c, t.ID)
	if err != nil {
		return nil, err
	}
	entries, err := h.cfg.Batcher.Quarantined(c, t.ID, sel, after, limit+1)
	if err != nil {
		return nil, err
	}
	out := QuarantineList{Total: total, Reasons: reasons, Entries: entries}
	if len(entries) > limit {
		out.Entries = entries[:limit]
		next := entries[limit-1].ID
		out.NextAfter = &next
	}
	return out, nil
}

// DiscardQuarantine serves DELETE /api/quarantine with a selector.
func (h *Handler) DiscardQuarantine(ctx *fasthttp.RequestCtx, t tenant.Tenant) (any, error) {
	sel, err := parseSelector(ctx.PostBody())
	if err != nil {
		return nil, err
	}
	c, cancel := context.WithTimeout(context.Background(), h.cfg.WaitTimeout)
	defer cancel()
	n, err := h.cfg.Batcher.DiscardQuarantined(c, t.ID, sel)
	if err != nil {
		return nil, timedOut(err)
	}
	return map[string]int64{"discarded": n}, nil
}

// ReplayResponse is the answer of POST /api/quarantine/replay.
type ReplayResponse struct {
	// Replayed entries were sent through ingest again.
	Replayed int `json:"replayed"`
	// Landed of them are stored in their table now (their entries are
	// gone); QuarantinedAgain did not fit again and are new entries
	// (replayed_from names the old one).
	Landed           int64 `json:"landed"`
	QuarantinedAgain int64 `json:"quarantined_again"`
	// Pending entries are being replayed by an earlier call and were not
	// sent again (exactly once); Waiting of those sent now are not
	// committed yet (see FlushError).
	Pending int   `json:"pending"`
	Waiting int64 `json:"waiting"`
	// FlushError, when set, says why the tenant's flush after the replay
	// failed: the rows waiting are durable and the writer retries them.
	FlushError string `json:"flush_error,omitempty"`
	// Errors lists entries that cannot be sent (they stay).
	Errors []ReplayError `json:"errors"`
	// More is true when the selector holds more than one call replays
	// (1,000 entries): call again.
	More bool `json:"more"`
}

// ReplayError is an entry that cannot be replayed.
type ReplayError struct {
	ID    int64  `json:"id"`
	Error string `json:"error"`
}

// replayAnswer is what the idempotency store keeps for a replayed entry.
var replayAnswer = []byte(`{"replayed":true}`)

// ReplayQuarantine serves POST /api/quarantine/replay with a selector:
// each entry goes through ingest again, once (its idempotency key is
// derived from its id), and the flush that stores it deletes the entry in
// the same transaction. It answers once the replayed rows are committed, or
// their flush failed (then they wait, durable, for the writer's retry).
func (h *Handler) ReplayQuarantine(ctx *fasthttp.RequestCtx, t tenant.Tenant) (any, error) {
	sel, err := parseSelector(ctx.PostBody())
	if err != nil {
		return nil, err
	}
	c, cancel := context.WithTimeout(context.Background(), h.cfg.WaitTimeout)
	defer cancel()
	b := h.cfg.Batcher
	entries, err := b.Quarantined(c, t.ID, sel, math.MinInt64, maxReplay+1)
	if err != nil {
		return nil, err
	}
	resp := ReplayResponse{Errors: []ReplayError{}}
	if len(entries) > maxReplay {
		entries, resp.More = entries[:maxReplay], true
	}
	var reqs []batcher.Request
	var ids []int64
	nrows := 0
	abort := func() {
		for _, r := range reqs {
			b.AbortIdempotent(t.ID, r.IdempotencyKey)
		}
	}
	for _, e := range entries {
		key := batcher.QuarantineReplayKey(e.ID)
		_, found, err := b.BeginIdempotent(t.ID, key)
		switch {
		case found, errors.Is(err, batcher.ErrInProgress):
			resp.Pending++
			continue
		case err != nil:
			abort()
			return nil, err
		}
		rb := batcher.NewBuilder()
		row := e.Replay()
		if len(row) == 0 || row[0] != '{' {
			err = fmt.Errorf("%w: not an object", ErrBadBody)
		} else {
			err = DecodeOne(rb, row, nil)
		}
		if err != nil {
			b.AbortIdempotent(t.ID, key)
			resp.Errors = append(resp.Errors, ReplayError{ID: e.ID, Error: err.Error()})
			continue
		}
		rows := rb.Rows()
		nrows += rows.Len()
		reqs = append(reqs, batcher.Request{Tenant: t.ID, Table: e.Table, Rows: rows, IdempotencyKey: key, Response: replayAnswer})
		ids = append(ids, e.ID)
	}
	if len(reqs) == 0 {
		return resp, nil
	}
	if err := h.Admit(t, nrows); err != nil {
		abort()
		return nil, err
	}
	if err := b.SubmitAll(reqs); err != nil {
		abort()
		return nil, err
	}
	h.noteIngest(t.ID, nrows)
	resp.Replayed = len(reqs)
	if err := b.Flush(c, t.ID); err != nil {
		// The replayed rows are durable: they are committed when the
		// writer's retry succeeds, and a replay asked again skips them.
		resp.FlushError = err.Error()
	}
	pc, pcancel := context.WithTimeout(context.Background(), h.cfg.WaitTimeout)
	defer pcancel()
	waiting, again, err := b.ReplayProgress(pc, t.ID, ids)
	if err != nil {
		return nil, err
	}
	resp.Waiting, resp.QuarantinedAgain = waiting, again
	resp.Landed = int64(len(reqs)) - waiting - again
	return resp, nil
}
