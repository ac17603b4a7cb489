package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	json "github.com/goccy/go-json"
	"github.com/valyala/bytebufferpool"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"duckgate/batcher"
	"duckgate/schema"
	"duckgate/tenant"
	"duckgate/tenantdb"
)

// Config configures a Handler.
type Config struct {
	// Metrics is the set the handler registers its series on. Nil keeps a
	// private one.
	Metrics *metrics.Set
	// MaxBodySize is the largest insert body accepted, after
	// decompression, in bytes. Default 64 MiB.
	MaxBodySize int64
	// WaitTimeout bounds how long an insert with ?wait=true waits for its
	// commit. Default 30 s.
	WaitTimeout time.Duration
	// Tenants is the registry of tenants and their plans. Required.
	Tenants *tenant.Store
	// Batcher takes the decoded rows. Required.
	Batcher *batcher.Batcher
	// Pool is the tenant databases, measured by the storage quota. Nil
	// disables the quota.
	Pool *tenantdb.Pool
	// QuotaCheckInterval is how long a tenant's measured database size is
	// trusted by the storage quota check. Default 5 s.
	QuotaCheckInterval time.Duration
}

// Handler serves inserts and admits rows against the tenants' plans.
type Handler struct {
	cfg     Config
	log     *zap.Logger
	states  tenantStates // per-tenant rate bucket, size, last ingest
	metrics handlerMetrics
	exports sync.Map // tenant id → struct{} while its export runs (export.go)
}

// handlerMetrics are the insert path's series; no tenant label.
type handlerMetrics struct {
	rowsAccepted  *metrics.Counter
	rowsRejected  *metrics.Counter
	bytesAccepted *metrics.Counter
	bytesRejected *metrics.Counter
}

// New returns a Handler.
func New(cfg Config, log *zap.Logger) *Handler {
	if cfg.MaxBodySize <= 0 {
		cfg.MaxBodySize = 64 << 20
	}
	if cfg.WaitTimeout <= 0 {
		cfg.WaitTimeout = 30 * time.Second
	}
	if cfg.QuotaCheckInterval <= 0 {
		cfg.QuotaCheckInterval = defaultQuotaCheckInterval
	}
	set := cfg.Metrics
	if set == nil {
		set = metrics.NewSet()
	}
	return &Handler{cfg: cfg, log: log, metrics: handlerMetrics{
		rowsAccepted:  set.NewCounter("duckgate_rows_accepted_total"),
		rowsRejected:  set.NewCounter("duckgate_rows_rejected_total"),
		bytesAccepted: set.NewCounter("duckgate_insert_bytes_accepted_total"),
		bytesRejected: set.NewCounter("duckgate_insert_bytes_rejected_total"),
	}}
}

// InsertResponse is the answer to an insert.
type InsertResponse struct {
	Accepted int        `json:"accepted"`
	Rejected int        `json:"rejected"`
	Errors   []RowError `json:"errors"`
}

// maxIdempotencyKey bounds the Idempotency-Key header.
const maxIdempotencyKey = 255

// Insert serves POST /api/data/insert/{table} for the authenticated tenant
// t. It writes the answer and returns nil, or writes nothing and returns
// the error for the caller to answer.
func (h *Handler) Insert(ctx *fasthttp.RequestCtx, t tenant.Tenant, table string) error {
	if err := schema.CheckTableName(table); err != nil {
		return fmt.Errorf("%w: %v", ErrBadTable, err)
	}
	idemKey := string(ctx.Request.Header.Peek("Idempotency-Key"))
	if idemKey == "" || ctx.QueryArgs().GetBool("dry_run") { // a dry run stores nothing, so it needs no key
		return h.insert(ctx, t, table, "")
	}
	if len(idemKey) > maxIdempotencyKey {
		return fmt.Errorf("%w: Idempotency-Key is longer than %d bytes", ErrBadRequest, maxIdempotencyKey)
	}
	resp, found, err := h.cfg.Batcher.BeginIdempotent(t.ID, idemKey)
	if err != nil {
		return err
	}
	if found {
		// A retry of an accepted insert: the same answer, nothing stored.
		ctx.Response.Header.Set("Idempotent-Replayed", "true")
		writeBody(ctx, resp)
		return nil
	}
	err = h.insert(ctx, t, table, idemKey)
	if err != nil && !errors.Is(err, ErrWaitTimeout) {
		// Nothing was stored (or it was quarantined): a retry may run
		// again. After a wait timeout the rows are durable and queued, so
		// the key stays taken.
		h.cfg.Batcher.AbortIdempotent(t.ID, idemKey)
	}
	return err
}

// insert decodes and submits one insert and answers it.
func (h *Handler) insert(ctx *fasthttp.RequestCtx, t tenant.Tenant, table, idemKey string) error {
	// Under overload, refuse before decoding: the CPU goes to committing.
	if err := h.cfg.Batcher.Full(); err != nil {
		return err
	}
	body := ctx.PostBody()
	if enc := ctx.Request.Header.Peek(fasthttp.HeaderContentEncoding); len(enc) > 0 {
		if !bytes.EqualFold(enc, []byte("gzip")) {
			return fmt.Errorf("%w: Content-Encoding %q is not supported; use gzip or none", ErrBadRequest, truncate(enc))
		}
		buf, err := gunzip(body, h.cfg.MaxBodySize)
		if err != nil {
			return err
		}
		defer bytebufferpool.Put(buf)
		body = buf.B
	}
	d, err := Decode(body)
	if err != nil {
		h.metrics.bytesRejected.Add(len(body))
		if d != nil {
			h.metrics.rowsRejected.Add(d.Rejected)
		}
		if d != nil && len(d.Errors) > 0 {
			return &RejectedError{err: err, Response: InsertResponse{Rejected: d.Rejected, Errors: d.Errors}}
		}
		return err
	}
	if ctx.QueryArgs().GetBool("dry_run") {
		return h.dryRun(ctx, t, table, d)
	}
	if err := h.Admit(t, d.Rows.Len()); err != nil {
		return err
	}
	resp, err := insertResponse(d)
	if err != nil {
		return err
	}
	wait := ctx.QueryArgs().GetBool("wait")
	ticket, err := h.cfg.Batcher.Submit(batcher.Request{Tenant: t.ID, Table: table, Rows: d.Rows, Wait: wait, IdempotencyKey: idemKey, Response: resp})
	if err != nil {
		return err
	}
	h.noteIngest(t.ID, d.Rows.Len())
	h.metrics.rowsAccepted.Add(d.Rows.Len())
	h.metrics.rowsRejected.Add(d.Rejected)
	h.metrics.bytesAccepted.Add(len(body))
	if ticket != nil {
		wctx, cancel := context.WithTimeout(context.Background(), h.cfg.WaitTimeout)
		err := ticket.Wait(wctx)
		cancel()
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			return fmt.Errorf("%w: %v; the rows are durable and stay queued, so do not resend them without an Idempotency-Key", ErrWaitTimeout, err)
		case err != nil:
			// The batch kept failing and was quarantined: the rows are
			// stored, as JSON, where the message says; resending fails alike.
			return fmt.Errorf("%w: %v", ErrQuarantined, err)
		}
	}
	writeBody(ctx, resp)
	return nil
}

// writeBody answers 200 with a JSON body.
func writeBody(ctx *fasthttp.RequestCtx, body []byte) {
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
}

// insertResponse encodes the answer to an accepted insert. The common
// answer, with no rejected element, is written by hand: it is on the path
// of every request.
func insertResponse(d *Decoded) ([]byte, error) {
	if d.Rejected == 0 {
		b := make([]byte, 0, 48)
		b = append(b, `{"accepted":`...)
		b = strconv.AppendInt(b, int64(d.Rows.Len()), 10)
		return append(b, `,"rejected":0,"errors":[]}`+"\n"...), nil
	}
	resp, err := json.Marshal(InsertResponse{Accepted: d.Rows.Len(), Rejected: d.Rejected, Errors: d.Errors})
	if err != nil {
		return nil, err
	}
	return append(resp, '\n'), nil
}
