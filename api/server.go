package api

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"duckgate/admin"
	"duckgate/cluster"
	"duckgate/ingest"
	"duckgate/query"
	"duckgate/schema"
	"duckgate/share"
	"duckgate/tenant"
	"duckgate/webhook"
)

// Config configures a Server. The feature handlers are built by the caller
// (package cmd) and handed in; a nil handler answers 404 on its routes.
type Config struct {
	// Metrics is the set served on /metrics; every package registers its
	// series on it. Nil keeps a private one.
	Metrics *metrics.Set
	// MaxBodySize is the largest request body fasthttp reads, in bytes: the
	// insert limit (ingest checks it again after decompression). Default
	// 64 MiB.
	MaxBodySize int64
	// Tenants is the registry of tenants and keys. Required.
	Tenants *tenant.Store
	// Ingest serves inserts. Required.
	Ingest *ingest.Handler
	// Query serves queries and table listings.
	Query *query.Engine
	// Share serves share links and their public pages.
	Share *share.Service
	// Webhooks serves webhook registration and deliveries.
	Webhooks *webhook.Handler
	// Admin serves the admin API.
	Admin *admin.Handler
	// Cluster, in cluster mode, forwards a tenant's queries to the node
	// that writes its database, and adds the node's cluster state to
	// /healthz and GET /api/admin/cluster. Nil on a single node.
	Cluster *cluster.Node
}

// Server routes and serves duckgate's HTTP API.
type Server struct {
	cfg     Config
	log     *zap.Logger
	ready   atomic.Bool
	metrics serverMetrics
}

// New returns a Server. Until SetReady it answers /healthz with 503 and
// every route but /metrics with 503 "starting".
func New(cfg Config, log *zap.Logger) *Server {
	if cfg.MaxBodySize <= 0 {
		cfg.MaxBodySize = 64 << 20
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.NewSet()
	}
	// # HELP and # TYPE lines on /metrics. The metrics library has only a
	// process-wide switch for them; the server that exposes the metrics
	// turns it on.
	metrics.ExposeMetadata(true)
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
				writeError(ctx, fmt.Errorf("%w: the limit is %d bytes; split the batch", ingest.ErrTooLarge, s.cfg.MaxBodySize))
				return
			}
			writeError(ctx, fmt.Errorf("%w: %v", errBadRequest, err))
		},
	}
}

// Handler routes a request: the route table of duckgate's HTTP API.
//
//	GET         /healthz                          no key
//	GET         /metrics                          no key (no tenant data, no tenant label)
//	GET         /debug/pprof/...                  admin key
//	POST        /api/data/insert/{table}          ingest scope   → ingest
//	GET|POST    /api/data/query                   query scope    → query
//	GET         /api/tables, /api/tables/{t}/columns  query scope → query
//	GET|PUT     /api/tables/{t}, PUT|DELETE /api/tables/{t}/columns/{c}  → ingest (pins, freezes: lifecycle.go)
//	GET|DELETE  /api/quarantine, POST /api/quarantine/replay             → ingest (lifecycle.go)
//	GET|PUT|DELETE /api/tables/{t}/retention      query scope (GET), full scope → ingest (retention.go)
//	GET         /api/export[?format=parquet]      full scope     → ingest (retention.go)
//	POST|GET    /api/data/query/share             query scope    → share
//	DELETE      /api/data/query/share/{link_id}   query scope    → share
//	GET         /share/{id}[/data.{format}]       no key: the id → share
//	POST|GET    /api/webhooks, DELETE /api/webhooks/{id}  full scope → webhook
//	POST        /api/webhooks/{id}                no key: the signature → webhook
//	...         /api/admin/...                    admin key      → admin
//	GET|POST    /admin, /admin/...                dashboard: page, sign-in, session cookie + CSRF token → admin (dashboard.go)
//	POST|OPTIONS /v1/{track,identify,page,screen,group,alias,batch,import}
//	             /batch/, /capture/, /e/, /i/v0/e/ (slash optional)
//	                                              ingest scope, key in Basic auth, Bearer or body → ingest (tracking API)
func (s *Server) Handler(ctx *fasthttp.RequestCtx) {
	path := string(ctx.Path())
	method := methodOf(ctx)
	switch {
	case path == "/healthz":
		if !s.ready.Load() {
			writeJSON(ctx, fasthttp.StatusServiceUnavailable, map[string]string{"status": "starting"})
			return
		}
		if s.cfg.Cluster != nil {
			s.clusterHealth(ctx)
			return
		}
		writeJSON(ctx, fasthttp.StatusOK, map[string]string{"status": "ok"})
		return
	case path == "/metrics":
		s.serveMetrics(ctx, method)
		return
	case !s.ready.Load():
		// Recovery is replaying the log: an insert now would overtake it.
		writeError(ctx, errStarting)
		return
	}
	switch {
	case strings.HasPrefix(path, "/api/data/insert/"):
		if method != fasthttp.MethodPost {
			writeError(ctx, methodNotAllowed("POST"))
		} else {
			s.withTenant(ctx, tenant.ScopeIngest, func(t tenant.Tenant) (any, error) {
				return nil, s.cfg.Ingest.Insert(ctx, t, strings.TrimPrefix(path, "/api/data/insert/"))
			})
		}
		s.metrics.inserts.inc(ctx.Response.StatusCode())
	case path == "/api/data/query":
		if method != fasthttp.MethodGet && method != fasthttp.MethodPost {
			writeError(ctx, methodNotAllowed("GET, POST"))
		} else {
			s.withTenant(ctx, tenant.ScopeQuery, func(t tenant.Tenant) (any, error) {
				if s.cfg.Query == nil {
					return nil, fmt.Errorf("%w: queries are not enabled", errNotFound)
				}
				start := time.Now()
				err := s.cfg.Query.HandleQuery(ctx, t.ID)
				s.metrics.queryFirstByte.UpdateDuration(start)
				return nil, err
			})
		}
		s.metrics.queries.inc(ctx.Response.StatusCode())
	case path == "/api/export":
		s.routeExport(ctx, method)
	case path == "/api/tables" || strings.HasPrefix(path, "/api/tables/"):
		if !s.routeTableRules(ctx, method, path) { // lifecycle.go
			s.routeTables(ctx, method, path)
		}
	case path == "/api/quarantine" || path == "/api/quarantine/replay":
		s.routeQuarantine(ctx, method, path) // lifecycle.go
	case path == "/api/webhooks" || strings.HasPrefix(path, "/api/webhooks/"):
		s.routeWebhooks(ctx, method, path)
	case strings.HasPrefix(path, "/api/admin/"):
		s.withAdmin(ctx, func() { s.routeAdmin(ctx, method, path) })
	case path == "/admin" || strings.HasPrefix(path, "/admin/"):
		s.routeDashboard(ctx, method, path)
	case path == "/debug/pprof" || strings.HasPrefix(path, "/debug/pprof/"):
		s.withAdmin(ctx, func() { s.servePprof(ctx, path) })
	case strings.HasPrefix(path, "/api/data/query/share") || strings.HasPrefix(path, "/share/"):
		s.routeShare(ctx, method, path)
	case isTrackPath(path):
		call, _ := trackCall(path)
		s.routeTrack(ctx, method, call)
		s.metrics.inserts.inc(ctx.Response.StatusCode())
	default:
		writeError(ctx, fmt.Errorf("%w: no route for %s %.64s", errNotFound, method, path))
	}
	if ctx.Response.StatusCode() == fasthttp.StatusInternalServerError {
		// A server fault: the client got the message, the operator gets it too.
		s.log.Error("internal error", zap.String("method", method), zap.String("route", routeOf(path)),
			zap.ByteString("answer", ctx.Response.Body()))
	}
}

// routeOf is a path with its ids and secrets cut off, for logs: a share id
// is a secret, a table or tenant name the client's.
func routeOf(path string) string {
	for _, p := range []string{"/api/data/insert/", "/api/tables/", "/api/webhooks/", "/api/admin/tenants/", "/admin/api/tenants/", "/api/data/query/share/", "/share/"} {
		if strings.HasPrefix(path, p) {
			return p + "…"
		}
	}
	return fmt.Sprintf("%.64s", path)
}

func (s *Server) routeTables(ctx *fasthttp.RequestCtx, method, path string) {
	if table, ok := strings.CutSuffix(strings.TrimPrefix(path, "/api/tables/"), "/retention"); ok && path != "/api/tables" {
		s.routeRetention(ctx, method, table)
		return
	}
	if method != fasthttp.MethodGet {
		writeError(ctx, methodNotAllowed("GET"))
		return
	}
	s.withTenant(ctx, tenant.ScopeQuery, func(t tenant.Tenant) (any, error) {
		if s.cfg.Query == nil {
			return nil, fmt.Errorf("%w: queries are not enabled", errNotFound)
		}
		rest := strings.TrimPrefix(strings.TrimPrefix(path, "/api/tables"), "/")
		if rest == "" {
			return nil, s.cfg.Query.HandleTables(ctx, t.ID)
		}
		table, ok := strings.CutSuffix(rest, "/columns")
		if !ok || !schema.ValidTableName(table) {
			return nil, fmt.Errorf("%w: use /api/tables or /api/tables/{table}/columns", errNotFound)
		}
		return nil, s.cfg.Query.HandleColumns(ctx, t.ID, table)
	})
}

// routeWebhooks serves /api/webhooks and /api/webhooks/{id}.
func (s *Server) routeWebhooks(ctx *fasthttp.RequestCtx, method, path string) {
	h := s.cfg.Webhooks
	if h == nil {
		writeError(ctx, fmt.Errorf("%w: webhooks are not enabled", errNotFound))
		return
	}
	// Managing endpoints needs a "full" key: an endpoint both writes into a
	// table and holds a secret the tenant's admin owns; an ingest key
	// shipped in an app must not be able to add one.
	if path == "/api/webhooks" {
		switch method {
		case fasthttp.MethodPost:
			s.withTenant(ctx, tenant.ScopeFull, func(t tenant.Tenant) (any, error) { return h.Create(ctx, t) })
		case fasthttp.MethodGet:
			s.withTenant(ctx, tenant.ScopeFull, func(t tenant.Tenant) (any, error) { return h.List(ctx, t) })
		default:
			writeError(ctx, methodNotAllowed("GET, POST"))
		}
		return
	}
	id := strings.TrimPrefix(path, "/api/webhooks/")
	if id == "" || strings.Contains(id, "/") {
		writeError(ctx, fmt.Errorf("%w: use /api/webhooks or /api/webhooks/{id}", errNotFound))
		return
	}
	switch method {
	case fasthttp.MethodPost:
		p, v, err := h.Deliver(ctx, id)
		writeResult(ctx, v, err)
		s.metrics.deliveries.inc(string(p), ctx.Response.StatusCode())
	case fasthttp.MethodDelete:
		s.withTenant(ctx, tenant.ScopeFull, func(t tenant.Tenant) (any, error) { return h.Delete(ctx, t, id) })
	default:
		writeError(ctx, methodNotAllowed("POST, DELETE"))
	}
}

// routeAdmin serves /api/admin/...; the caller checked the admin key.
//
//	POST   /api/admin/tenants                       create {"name","plan"}
//	GET    /api/admin/tenants                       list, with tables, rows, bytes, last ingest
//	GET    /api/admin/tenants/{id}                  one, with its plan's limits
//	PATCH  /api/admin/tenants/{id}                  {"plan":"pro"}
//	DELETE /api/admin/tenants/{id}?confirm=true     delete it and its data
//	POST   /api/admin/tenants/{id}/suspend|resume
//	POST   /api/admin/tenants/{id}/keys             {"scope":"ingest|query|full"}
//	GET    /api/admin/tenants/{id}/keys
//	GET    /api/admin/tenants/{id}/tables           tables with row counts, columns and types; quarantined rows
//	GET    /api/admin/tenants/{id}/shares           its share links; DELETE .../shares/{link_id} revokes one
//	GET    /api/admin/tenants/{id}/webhooks         its webhook endpoints (never a secret)
//	DELETE /api/admin/tenants/{id}/keys/{key_id}
//	POST   /api/admin/query                         {"query","tenants":[...],"format"}
//	GET    /api/admin/node                          the node's figures of the last hour (dashboard charts)
//	GET    /api/admin/cluster                       cluster mode: the live nodes and the writer of each partition
func (s *Server) routeAdmin(ctx *fasthttp.RequestCtx, method, path string) {
	h := s.cfg.Admin
	if h == nil {
		writeError(ctx, fmt.Errorf("%w: the admin API is not enabled", errNotFound))
		return
	}
	res := func(v any, err error) { writeResult(ctx, v, err) }
	if path == "/api/admin/tenants" {
		switch method {
		case fasthttp.MethodPost:
			res(h.CreateTenant(ctx))
		case fasthttp.MethodGet:
			res(h.ListTenants(ctx))
		default:
			writeError(ctx, methodNotAllowed("GET, POST"))
		}
		return
	}
	if path == "/api/admin/node" {
		if method != fasthttp.MethodGet {
			writeError(ctx, methodNotAllowed("GET"))
			return
		}
		res(h.Node(ctx))
		return
	}
	if path == "/api/admin/cluster" {
		if method != fasthttp.MethodGet {
			writeError(ctx, methodNotAllowed("GET"))
			return
		}
		if s.cfg.Cluster == nil {
			writeError(ctx, fmt.Errorf("%w: this node runs alone (no -nats)", errNotFound))
			return
		}
		writeJSON(ctx, fasthttp.StatusOK, s.cfg.Cluster.Status())
		return
	}
	if path == "/api/admin/query" {
		if method != fasthttp.MethodPost {
			writeError(ctx, methodNotAllowed("POST"))
			return
		}
		if err := h.Query(ctx); err != nil {
			writeError(ctx, err)
		}
		return
	}
	rest, ok := strings.CutPrefix(path, "/api/admin/tenants/")
	if !ok {
		writeError(ctx, fmt.Errorf("%w: no admin route for %s %.64s", errNotFound, method, path))
		return
	}
	parts := strings.Split(rest, "/")
	id := parts[0]
	if !tenant.ValidID(id) {
		writeError(ctx, fmt.Errorf("tenant %.64q: %w", id, tenant.ErrNotFound))
		return
	}
	// In cluster mode one tenant's admin calls run on its writer, which
	// holds its database (statistics, tables, deletion of its files); the
	// registry they change is shared by every node.
	if forwarded, err := s.forward(ctx, id); forwarded || err != nil {
		writeResult(ctx, nil, err)
		return
	}
	switch {
	case len(parts) == 1:
		switch method {
		case fasthttp.MethodGet:
			res(h.GetTenant(ctx, id))
		case fasthttp.MethodPatch:
			res(h.PatchTenant(ctx, id))
		case fasthttp.MethodDelete:
			res(h.DeleteTenant(ctx, id))
		default:
			writeError(ctx, methodNotAllowed("GET, PATCH, DELETE"))
		}
	case len(parts) == 2 && (parts[1] == "suspend" || parts[1] == "resume"):
		if method != fasthttp.MethodPost {
			writeError(ctx, methodNotAllowed("POST"))
			return
		}
		status := tenant.StatusSuspended
		if parts[1] == "resume" {
			status = tenant.StatusActive
		}
		res(h.SetStatus(ctx, id, status))
	case len(parts) == 2 && parts[1] == "keys":
		switch method {
		case fasthttp.MethodPost:
			res(h.CreateKey(ctx, id))
		case fasthttp.MethodGet:
			res(h.ListKeys(ctx, id))
		default:
			writeError(ctx, methodNotAllowed("GET, POST"))
		}
	case len(parts) == 2 && (parts[1] == "tables" || parts[1] == "shares" || parts[1] == "webhooks"):
		if method != fasthttp.MethodGet {
			writeError(ctx, methodNotAllowed("GET"))
			return
		}
		switch parts[1] {
		case "tables":
			res(h.TenantTables(ctx, id))
		case "shares":
			res(h.TenantShares(ctx, id))
		default:
			res(h.TenantWebhooks(ctx, id))
		}
	case len(parts) == 3 && parts[1] == "shares":
		if method != fasthttp.MethodDelete {
			writeError(ctx, methodNotAllowed("DELETE"))
			return
		}
		res(h.RevokeShare(ctx, id, parts[2]))
	case len(parts) == 3 && parts[1] == "keys":
		if method != fasthttp.MethodDelete {
			writeError(ctx, methodNotAllowed("DELETE"))
			return
		}
		res(h.RevokeKey(ctx, id, parts[2]))
	default:
		writeError(ctx, fmt.Errorf("%w: no admin route for %s %.64s", errNotFound, method, path))
	}
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
// tenant's status, and calls f; what f returns is answered by writeResult.
func (s *Server) withTenant(ctx *fasthttp.RequestCtx, need tenant.Scope, f func(tenant.Tenant) (any, error)) {
	t, err := s.authorize(APIKey(ctx), need)
	if err != nil {
		writeError(ctx, err)
		return
	}
	if onWriter(string(ctx.Path())) {
		if forwarded, err := s.forward(ctx, t.ID); forwarded || err != nil {
			writeResult(ctx, nil, err)
			return
		}
	}
	v, err := f(t)
	writeResult(ctx, v, err)
}

// authorize authenticates key and checks its scope and the tenant's status.
func (s *Server) authorize(key []byte, need tenant.Scope) (tenant.Tenant, error) {
	t, k, err := s.cfg.Tenants.Authenticate(key)
	if err != nil {
		return t, err
	}
	if !k.Scope.Allows(need) {
		return t, fmt.Errorf("%w: this key has scope %q; this call needs a %q or \"full\" key", errForbidden, k.Scope, need)
	}
	if t.Status != tenant.StatusActive {
		return t, fmt.Errorf("%w: tenant %s is %s; its data is kept, ask the operator to resume it", errForbidden, t.ID, t.Status)
	}
	return t, nil
}

// withAdmin checks the admin key and calls f. A tenant's key is told that
// the route needs the admin key.
func (s *Server) withAdmin(ctx *fasthttp.RequestCtx, f func()) {
	key := APIKey(ctx)
	if s.cfg.Tenants.IsAdmin(key) {
		f()
		return
	}
	if _, _, err := s.cfg.Tenants.Authenticate(key); err == nil {
		writeError(ctx, errTenantKey)
		return
	}
	writeError(ctx, errAdminKey)
}

// methodOf returns the request's method, without allocating for the
// common ones.
func methodOf(ctx *fasthttp.RequestCtx) string {
	switch m := ctx.Method(); string(m) {
	case fasthttp.MethodGet:
		return fasthttp.MethodGet
	case fasthttp.MethodPost:
		return fasthttp.MethodPost
	case fasthttp.MethodPut:
		return fasthttp.MethodPut
	case fasthttp.MethodDelete:
		return fasthttp.MethodDelete
	case fasthttp.MethodOptions:
		return fasthttp.MethodOptions
	case fasthttp.MethodHead:
		return fasthttp.MethodHead
	case fasthttp.MethodPatch:
		return fasthttp.MethodPatch
	default:
		return string(m)
	}
}

// zapPrintf adapts zap to fasthttp's logger: connection-level errors (a
// body over the limit, a client gone) at debug level.
type zapPrintf struct{ log *zap.Logger }

// Printf logs a fasthttp message.
func (z zapPrintf) Printf(format string, args ...any) {
	z.log.Debug("http: " + fmt.Sprintf(format, args...))
}
