package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	json "github.com/goccy/go-json"
	"github.com/valyala/bytebufferpool"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"duckgate/batcher"
	"duckgate/query"
	"duckgate/schema"
	"duckgate/share"
	"duckgate/tenant"
	"duckgate/tenantdb"
	"duckgate/webhook"
)

// QueryAPI serves reads for an authenticated tenant (package query). A
// handler that returns an error has written nothing: the caller answers it.
type QueryAPI interface {
	HandleQuery(ctx *fasthttp.RequestCtx, tenantID string) error
	HandleTables(ctx *fasthttp.RequestCtx, tenantID string) error
	HandleColumns(ctx *fasthttp.RequestCtx, tenantID, table string) error
}

// Config configures a Server.
type Config struct {
	// Metrics is the set served on /metrics; every package registers its
	// series on it. Nil keeps a private one.
	Metrics *metrics.Set
	// MaxBodySize is the largest insert body accepted, after
	// decompression, in bytes. Default 64 MiB.
	MaxBodySize int64
	// WaitTimeout bounds how long an insert with ?wait=true waits for its
	// commit. Default 30 s.
	WaitTimeout time.Duration
	// Tenants is the registry of tenants and keys. Required.
	Tenants *tenant.Store
	// Batcher takes the decoded rows. Required.
	Batcher *batcher.Batcher
	// Query serves queries and table listings; nil answers 404.
	Query QueryAPI
	// Pool is the tenant databases. The admin API counts tables and rows
	// in them, measures them, closes one after a plan change, deletes a
	// tenant's files and snapshots them for operator queries; the storage
	// quota measures them. Nil disables those calls and the quota.
	Pool *tenantdb.Pool
	// QuotaCheckInterval is how long a tenant's measured database size is
	// trusted by the storage quota check. Default 5 s.
	QuotaCheckInterval time.Duration
	// AdminQuery configures the engine of operator queries
	// (POST /api/admin/query); zero fields take package query's defaults.
	AdminQuery query.Config
	// Webhooks keeps webhook endpoints and seen delivery ids; nil answers
	// 404 on /api/webhooks.
	Webhooks *webhook.Store
	// WebhookTolerance is how far a Stripe or Standard Webhooks signed
	// timestamp may be from now. Default webhook.DefaultTolerance (5 min).
	WebhookTolerance time.Duration
	// Share keeps share links and serves /share/{id}; nil answers 404 on
	// /api/data/query/share and /share/.
	Share *share.Service
}

// Server routes and serves duckgate's HTTP API.
type Server struct {
	cfg     Config
	log     *zap.Logger
	ready   atomic.Bool
	states  tenantStates // per-tenant rate bucket, size, last ingest, stats
	metrics serverMetrics
}

// New returns a Server. It answers /healthz with 503 until SetReady.
func New(cfg Config, log *zap.Logger) *Server {
	if cfg.MaxBodySize <= 0 {
		cfg.MaxBodySize = 64 << 20
	}
	if cfg.WaitTimeout <= 0 {
		cfg.WaitTimeout = 30 * time.Second
	}
	return &Server{cfg: cfg, log: log, metrics: newServerMetrics(cfg.Metrics)}
}

// SetReady makes /healthz answer 200: recovery is done.
func (s *Server) SetReady() { s.ready.Store(true) }

// HTTPServer returns a fasthttp server for Handler with the body limit set
// and transport errors answered as JSON.
func (s *Server) HTTPServer() *fasthttp.Server {
	return &fasthttp.Server{
		Handler: s.Handler,
		Name:    "duckgate",
		// A gzip body is decompressed under the same limit in the handler.
		MaxRequestBodySize:           int(s.cfg.MaxBodySize),
		ReadTimeout:                  60 * time.Second,
		IdleTimeout:                  120 * time.Second,
		NoDefaultServerHeader:        true,
		CloseOnShutdown:              true,
		Logger:                       zapPrintf{s.log},
		DisablePreParseMultipartForm: true,
		ErrorHandler: func(ctx *fasthttp.RequestCtx, err error) {
			if errors.Is(err, fasthttp.ErrBodyTooLarge) {
				writeError(ctx, fmt.Errorf("%w: the limit is %d bytes; split the batch", ErrTooLarge, s.cfg.MaxBodySize))
				return
			}
			writeError(ctx, fmt.Errorf("%w: %v", ErrBadRequest, err))
		},
	}
}

// Handler routes a request.
func (s *Server) Handler(ctx *fasthttp.RequestCtx) {
	path := string(ctx.Path())
	method := string(ctx.Method())
	if !s.ready.Load() && path != "/healthz" {
		// Recovery is replaying the log: an insert now would overtake it.
		ctx.Response.Header.Set("Retry-After", "1")
		writeJSON(ctx, fasthttp.StatusServiceUnavailable, errorBody{Error: "starting: recovering the write-ahead log; retry in a second"})
		return
	}
	switch {
	case path == "/healthz":
		if !s.ready.Load() {
			writeJSON(ctx, fasthttp.StatusServiceUnavailable, map[string]string{"status": "starting"})
			return
		}
		writeJSON(ctx, fasthttp.StatusOK, map[string]string{"status": "ok"})
	case strings.HasPrefix(path, "/api/data/insert/"):
		if method != fasthttp.MethodPost {
			methodNotAllowed(ctx, "POST")
			return
		}
		s.handleInsert(ctx, strings.TrimPrefix(path, "/api/data/insert/"))
		s.metrics.inserts.inc(ctx.Response.StatusCode())
	case path == "/api/data/query":
		if method != fasthttp.MethodGet && method != fasthttp.MethodPost {
			methodNotAllowed(ctx, "GET, POST")
			return
		}
		s.withTenant(ctx, tenant.ScopeQuery, func(t tenant.Tenant) {
			if s.cfg.Query == nil {
				writeError(ctx, fmt.Errorf("%w: queries are not enabled", ErrNotFound))
				return
			}
			start := time.Now()
			if err := s.cfg.Query.HandleQuery(ctx, t.ID); err != nil {
				writeError(ctx, err)
			}
			s.metrics.queryFirstByte.UpdateDuration(start)
		})
		s.metrics.queries.inc(ctx.Response.StatusCode())
	case path == "/api/tables" || strings.HasPrefix(path, "/api/tables/"):
		s.routeTables(ctx, method, path)
	case path == "/api/webhooks" || strings.HasPrefix(path, "/api/webhooks/"):
		s.routeWebhooks(ctx, method, path)
	case strings.HasPrefix(path, "/api/admin/"):
		s.withAdmin(ctx, func() { s.routeAdmin(ctx, method, path) })
	case path == "/metrics" || strings.HasPrefix(path, "/debug/pprof"):
		s.routeOps(ctx, method, path)
	case strings.HasPrefix(path, "/api/data/query/share") || strings.HasPrefix(path, "/share/"):
		s.routeShare(ctx, method, path)
	default:
		writeError(ctx, fmt.Errorf("%w: no route for %s %s", ErrNotFound, method, path))
	}
}

func (s *Server) routeTables(ctx *fasthttp.RequestCtx, method, path string) {
	if method != fasthttp.MethodGet {
		methodNotAllowed(ctx, "GET")
		return
	}
	s.withTenant(ctx, tenant.ScopeQuery, func(t tenant.Tenant) {
		if s.cfg.Query == nil {
			writeError(ctx, fmt.Errorf("%w: queries are not enabled", ErrNotFound))
			return
		}
		rest := strings.TrimPrefix(strings.TrimPrefix(path, "/api/tables"), "/")
		if rest == "" {
			if err := s.cfg.Query.HandleTables(ctx, t.ID); err != nil {
				writeError(ctx, err)
			}
			return
		}
		table, ok := strings.CutSuffix(rest, "/columns")
		if !ok || !schema.ValidTableName(table) {
			writeError(ctx, fmt.Errorf("%w: use /api/tables or /api/tables/{table}/columns", ErrNotFound))
			return
		}
		if err := s.cfg.Query.HandleColumns(ctx, t.ID, table); err != nil {
			writeError(ctx, err)
		}
	})
}

func methodNotAllowed(ctx *fasthttp.RequestCtx, allow string) {
	ctx.Response.Header.Set("Allow", allow)
	writeJSON(ctx, fasthttp.StatusMethodNotAllowed, errorBody{Error: "method not allowed: use " + allow})
}

// APIKey returns the key a request carries in X-API-KEY, Authorization:
// Bearer, or the api_key query parameter, in that order.
func APIKey(ctx *fasthttp.RequestCtx) []byte {
	if k := ctx.Request.Header.Peek("X-API-KEY"); len(k) > 0 {
		return k
	}
	if a := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization); len(a) > 7 && bytes.EqualFold(a[:7], []byte("bearer ")) {
		return bytes.TrimSpace(a[7:])
	}
	return ctx.QueryArgs().Peek("api_key")
}

// withTenant authenticates the request's key, checks its scope and the
// tenant's status, and calls f.
func (s *Server) withTenant(ctx *fasthttp.RequestCtx, need tenant.Scope, f func(tenant.Tenant)) {
	t, k, err := s.cfg.Tenants.Authenticate(APIKey(ctx))
	if err != nil {
		writeError(ctx, err)
		return
	}
	if !k.Scope.Allows(need) {
		writeError(ctx, fmt.Errorf("%w: this key has scope %q; this call needs a %q or \"full\" key", ErrForbidden, k.Scope, need))
		return
	}
	if t.Status != tenant.StatusActive {
		writeError(ctx, fmt.Errorf("%w: tenant %s is %s; its data is kept, ask the operator to resume it", ErrForbidden, t.ID, t.Status))
		return
	}
	f(t)
}

// withAdmin checks the admin key and calls f.
func (s *Server) withAdmin(ctx *fasthttp.RequestCtx, f func()) {
	if !s.cfg.Tenants.IsAdmin(APIKey(ctx)) {
		writeError(ctx, tenant.ErrUnauthorized)
		return
	}
	f()
}

// InsertResponse is the answer to an insert.
type InsertResponse struct {
	Accepted int        `json:"accepted"`
	Rejected int        `json:"rejected"`
	Errors   []RowError `json:"errors"`
}

func (s *Server) handleInsert(ctx *fasthttp.RequestCtx, table string) {
	s.withTenant(ctx, tenant.ScopeIngest, func(t tenant.Tenant) {
		if !schema.ValidTableName(table) {
			writeError(ctx, fmt.Errorf("%w: %q: use letters, digits and underscore, starting with a letter or underscore, at most 63 characters", ErrBadTable, truncate([]byte(table))))
			return
		}
		idemKey := string(ctx.Request.Header.Peek("Idempotency-Key"))
		if idemKey != "" {
			if len(idemKey) > maxIdempotencyKey {
				writeError(ctx, fmt.Errorf("%w: Idempotency-Key is longer than %d bytes", ErrBadRequest, maxIdempotencyKey))
				return
			}
			resp, found, err := s.cfg.Batcher.BeginIdempotent(t.ID, idemKey)
			if err != nil {
				writeError(ctx, err)
				return
			}
			if found {
				// A retry of an accepted insert: the same answer, nothing stored.
				ctx.Response.Header.Set("Idempotent-Replayed", "true")
				ctx.SetStatusCode(fasthttp.StatusOK)
				ctx.SetContentType("application/json")
				ctx.SetBody(resp)
				return
			}
		}
		status, err := s.insert(ctx, t, table, idemKey)
		if err != nil {
			if idemKey != "" && status != fasthttp.StatusGatewayTimeout {
				s.cfg.Batcher.AbortIdempotent(t.ID, idemKey)
			}
			writeError(ctx, err)
		}
	})
}

// maxIdempotencyKey bounds the Idempotency-Key header.
const maxIdempotencyKey = 255

// insert decodes and submits one insert and answers it. On error it answers
// nothing and returns the error (and its status) for the caller.
func (s *Server) insert(ctx *fasthttp.RequestCtx, t tenant.Tenant, table, idemKey string) (int, error) {
	// Under overload, refuse before decoding: the CPU goes to committing.
	if err := s.cfg.Batcher.Full(); err != nil {
		return 0, err
	}
	body := ctx.PostBody()
	if enc := ctx.Request.Header.Peek(fasthttp.HeaderContentEncoding); len(enc) > 0 {
		if !bytes.EqualFold(enc, []byte("gzip")) {
			return 0, fmt.Errorf("%w: Content-Encoding %q is not supported; use gzip or none", ErrBadRequest, enc)
		}
		buf, err := gunzip(body, s.cfg.MaxBodySize)
		if err != nil {
			return 0, err
		}
		defer bytebufferpool.Put(buf)
		body = buf.B
	}
	d, err := Decode(body)
	if err != nil {
		s.metrics.bytesRejected.Add(len(body))
		if d != nil {
			s.metrics.rowsRejected.Add(d.Rejected)
		}
		if d != nil && len(d.Errors) > 0 {
			return 0, &rejectedError{err: err, resp: InsertResponse{Rejected: d.Rejected, Errors: d.Errors}}
		}
		return 0, err
	}
	if err := s.admit(t, d.Rows.Len()); err != nil {
		return 0, err
	}
	resp, err := insertResponse(d)
	if err != nil {
		return 0, err
	}
	wait := ctx.QueryArgs().GetBool("wait")
	ticket, err := s.cfg.Batcher.Submit(batcher.Request{Tenant: t.ID, Table: table, Rows: d.Rows, Wait: wait, IdempotencyKey: idemKey, Response: resp})
	if err != nil {
		return 0, err
	}
	s.noteIngest(t.ID)
	s.metrics.rowsAccepted.Add(d.Rows.Len())
	s.metrics.rowsRejected.Add(d.Rejected)
	s.metrics.bytesAccepted.Add(len(body))
	if ticket != nil {
		wctx, cancel := context.WithTimeout(context.Background(), s.cfg.WaitTimeout)
		err := ticket.Wait(wctx)
		cancel()
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			writeJSON(ctx, fasthttp.StatusGatewayTimeout, errorBody{Error: err.Error() +
				"; the rows are durable and stay queued, so do not resend them without an Idempotency-Key"})
			return fasthttp.StatusGatewayTimeout, nil
		case err != nil:
			// The batch kept failing and was quarantined: the rows are
			// stored, as JSON, where the message says; resending fails alike.
			writeJSON(ctx, fasthttp.StatusUnprocessableEntity, errorBody{Error: err.Error()})
			return fasthttp.StatusUnprocessableEntity, nil
		}
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	ctx.SetBody(resp)
	return fasthttp.StatusOK, nil
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

// rejectedError is a body with nothing storable: the answer lists why.
type rejectedError struct {
	err  error
	resp InsertResponse
}

func (e *rejectedError) Error() string { return e.err.Error() }

func (e *rejectedError) Unwrap() error { return e.err }

// CreateTenantResponse is the admin API's answer to a new tenant.
type CreateTenantResponse struct {
	TenantID string `json:"tenant_id"`
	Name     string `json:"name"`
	Plan     string `json:"plan"`
	KeyID    string `json:"key_id"`
	APIKey   string `json:"api_key"`
}

func (s *Server) handleCreateTenant(ctx *fasthttp.RequestCtx) {
	var req struct {
		Name string `json:"name"`
		Plan string `json:"plan"`
	}
	if err := decodeJSON(ctx.PostBody(), &req); err != nil {
		writeError(ctx, err)
		return
	}
	t, k, key, err := s.cfg.Tenants.CreateTenant(req.Name, req.Plan)
	if err != nil {
		writeError(ctx, err)
		return
	}
	s.log.Info("tenant created", zap.String("tenant", t.ID), zap.String("plan", t.Plan))
	writeJSON(ctx, fasthttp.StatusCreated, CreateTenantResponse{TenantID: t.ID, Name: t.Name, Plan: t.Plan, KeyID: k.ID, APIKey: key})
}

// zapPrintf adapts zap to fasthttp's logger: connection-level errors (a
// body over the limit, a client gone) at debug level.
type zapPrintf struct{ log *zap.Logger }

// Printf logs a fasthttp message.
func (z zapPrintf) Printf(format string, args ...any) {
	z.log.Debug("http: " + fmt.Sprintf(format, args...))
}
