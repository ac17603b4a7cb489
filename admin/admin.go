package admin

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	json "github.com/goccy/go-json"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"duckgate/batcher"
	"duckgate/ingest"
	"duckgate/query"
	"duckgate/share"
	"duckgate/tenant"
	"duckgate/tenantdb"
	"duckgate/webhook"
)

// Timeout bounds the flushes, evictions and removals an admin call waits
// for.
const Timeout = 30 * time.Second

// Config configures a Handler.
type Config struct {
	// Tenants is the registry of tenants, keys and plans. Required.
	Tenants *tenant.Store
	// Batcher is flushed before a plan change, a deletion or a snapshot.
	// Required.
	Batcher *batcher.Batcher
	// Pool is the tenant databases: counted, measured, closed after a plan
	// change, deleted, snapshotted. Required.
	Pool *tenantdb.Pool
	// Ingest knows each tenant's last accepted insert and forgets a
	// deleted tenant's rate bucket. Required.
	Ingest *ingest.Handler
	// Share drops a deleted tenant's links; nil if share links are off.
	Share *share.Service
	// Webhooks drops a deleted tenant's endpoints; nil if webhooks are off.
	Webhooks *webhook.Store
	// Query configures the engine of operator queries; zero fields take
	// package query's defaults.
	Query query.Config
	// Metrics is the server's metric set, sampled every HistoryInterval
	// for the dashboard's node charts (GET /api/admin/node); nil keeps no
	// history.
	Metrics *metrics.Set
	// HistoryInterval is how often Metrics is sampled; zero means
	// DefaultHistoryInterval.
	HistoryInterval time.Duration
}

// Handler serves the admin API. Its background work (cleaning up after a
// deletion, removing an operator query's snapshots) is awaited by Close.
type Handler struct {
	cfg   Config
	log   *zap.Logger
	stats sync.Map // tenant id → *statsCache
	// sessions are the dashboard's sign-ins (session.go).
	sessions *sessions
	// history is the node's recent figures (history.go); nil without
	// Config.Metrics. Its sampler runs until Close.
	history *history
	// rates are the tenants' rows/s of the last hour (rates.go).
	rates *tenantRates

	wg      sync.WaitGroup // background work
	stop    chan struct{}  // closed by Close
	closeMu sync.Once
}

// New returns a Handler. It removes the snapshot directories of operator
// queries that a crash interrupted.
func New(cfg Config, log *zap.Logger) *Handler {
	h := &Handler{cfg: cfg, log: log, stop: make(chan struct{}), sessions: newSessions()}
	if cfg.Pool != nil {
		h.removeLeftovers()
	}
	if cfg.Metrics != nil {
		h.history = newHistory(cfg.Metrics, cfg.HistoryInterval)
		h.goBackground(h.history.run)
	}
	if cfg.Ingest != nil {
		h.rates = newTenantRates(cfg.Ingest.EachTenantRows, cfg.HistoryInterval)
		h.goBackground(h.rates.run)
	}
	return h
}

// Close stops the background work and waits for it until ctx is done.
func (h *Handler) Close(ctx context.Context) error {
	h.closeMu.Do(func() { close(h.stop) })
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("admin: background work still running: %w", ctx.Err())
	}
}

// goBackground runs f on a goroutine that Close waits for; f must return
// soon after stop is closed.
func (h *Handler) goBackground(f func(stop <-chan struct{})) {
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		f(h.stop)
	}()
}

// decodeJSON decodes a small JSON request body into v.
func decodeJSON(body []byte, v any) error {
	if len(body) == 0 {
		return fmt.Errorf("%w: the body is empty; send a JSON object", ErrBadRequest)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%w: invalid JSON body: %v", ErrBadRequest, err)
	}
	return nil
}

// CreateTenantResponse is the answer to a new tenant.
type CreateTenantResponse struct {
	TenantID string `json:"tenant_id"`
	Name     string `json:"name"`
	Plan     string `json:"plan"`
	KeyID    string `json:"key_id"`
	APIKey   string `json:"api_key"`
}

// CreateTenant serves POST /api/admin/tenants {"name","plan"}: 201.
func (h *Handler) CreateTenant(ctx *fasthttp.RequestCtx) (any, error) {
	var req struct {
		Name string `json:"name"`
		Plan string `json:"plan"`
	}
	if err := decodeJSON(ctx.PostBody(), &req); err != nil {
		return nil, err
	}
	t, k, key, err := h.cfg.Tenants.CreateTenant(req.Name, req.Plan)
	if err != nil {
		return nil, err
	}
	h.log.Info("tenant created", zap.String("tenant", t.ID), zap.String("plan", t.Plan))
	ctx.SetStatusCode(fasthttp.StatusCreated)
	return CreateTenantResponse{TenantID: t.ID, Name: t.Name, Plan: t.Plan, KeyID: k.ID, APIKey: key}, nil
}

// ListTenants serves GET /api/admin/tenants.
func (h *Handler) ListTenants(*fasthttp.RequestCtx) (any, error) {
	cctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	return struct {
		Tenants []TenantInfo `json:"tenants"`
	}{h.infos(cctx, h.cfg.Tenants.List())}, nil
}

// TenantDetail is GET /api/admin/tenants/{id}: the tenant and its plan.
type TenantDetail struct {
	TenantInfo
	Limits tenant.Plan `json:"limits"`
}

// GetTenant serves GET /api/admin/tenants/{id}.
func (h *Handler) GetTenant(_ *fasthttp.RequestCtx, id string) (any, error) {
	t, err := h.cfg.Tenants.Get(id)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	return TenantDetail{TenantInfo: h.info(cctx, t), Limits: h.cfg.Tenants.PlanOf(id)}, nil
}

// SetStatus serves POST /api/admin/tenants/{id}/suspend and /resume.
func (h *Handler) SetStatus(_ *fasthttp.RequestCtx, id, status string) (any, error) {
	t, err := h.cfg.Tenants.SetStatus(id, status)
	if err != nil {
		return nil, err
	}
	h.log.Info("tenant status changed", zap.String("tenant", id), zap.String("status", status))
	return t, nil
}

// PatchTenantResponse is the answer to a plan change.
type PatchTenantResponse struct {
	tenant.Tenant
	// LimitsApplied is false when the database was in use for longer than
	// the admin timeout: the new limits then apply when it next reopens.
	LimitsApplied bool `json:"limits_applied"`
}

// PatchTenant serves PATCH /api/admin/tenants/{id} {"plan":"...",
// "allowed_origins":[...]}: either or both.
func (h *Handler) PatchTenant(ctx *fasthttp.RequestCtx, id string) (any, error) {
	var req struct {
		Plan           *string   `json:"plan"`
		AllowedOrigins *[]string `json:"allowed_origins"`
	}
	if err := decodeJSON(ctx.PostBody(), &req); err != nil {
		return nil, err
	}
	if req.Plan == nil && req.AllowedOrigins == nil {
		return nil, fmt.Errorf("%w: nothing to change: send {\"plan\":\"...\"} or {\"allowed_origins\":[...]}", ErrBadRequest)
	}
	t, err := h.cfg.Tenants.Get(id)
	if err != nil {
		return nil, err
	}
	if req.AllowedOrigins != nil {
		if t, err = h.cfg.Tenants.SetAllowedOrigins(id, *req.AllowedOrigins); err != nil {
			return nil, err
		}
		h.log.Info("tenant allowed origins changed", zap.String("tenant", id), zap.Int("origins", len(t.AllowedOrigins)))
	}
	applied := true
	if req.Plan != nil {
		if t, err = h.cfg.Tenants.SetPlan(id, *req.Plan); err != nil {
			return nil, err
		}
		applied = h.applyPlan(id)
		h.log.Info("tenant plan changed", zap.String("tenant", id), zap.String("plan", t.Plan))
	}
	return PatchTenantResponse{Tenant: t, LimitsApplied: applied}, nil
}

// applyPlan flushes the tenant's buffers and closes its database, which
// keeps the memory_limit and threads it was opened with, so that the next
// use reopens it under the new plan. It reports whether that happened
// within Timeout; if not, the new limits apply when the database next
// reopens.
func (h *Handler) applyPlan(id string) bool {
	cctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	err := h.cfg.Batcher.Flush(cctx, id)
	if err == nil {
		err = h.cfg.Pool.Evict(id, Timeout)
	}
	if err != nil {
		h.log.Warn("plan changed; the database keeps its old limits until it reopens", zap.String("tenant", id), zap.Error(err))
		return false
	}
	return true
}

// straggleDelay is how long after a deletion its files are looked for
// again: an insert authenticated just before the registry change may still
// reach the batcher and recreate them.
const straggleDelay = time.Second

// DeleteTenant serves DELETE /api/admin/tenants/{id}?confirm=true.
func (h *Handler) DeleteTenant(ctx *fasthttp.RequestCtx, id string) (any, error) {
	if !ctx.QueryArgs().GetBool("confirm") {
		return nil, fmt.Errorf("%w: deleting tenant %s removes all its data for good: add ?confirm=true", ErrBadRequest, id)
	}
	// The registry goes first, so that the tenant's keys stop at once. A
	// tenant already gone from the registry whose files remain (an earlier
	// DELETE that could not remove them) is cleaned up again.
	if err := h.cfg.Tenants.Delete(id); err != nil && !(errors.Is(err, tenant.ErrNotFound) && h.cfg.Pool.Exists(id)) {
		return nil, err
	}
	if err := h.removeTenantData(id); err != nil {
		return nil, fmt.Errorf("tenant %s is deleted and its keys revoked, but its files remain: %w; retry the DELETE", id, err)
	}
	h.goBackground(func(stop <-chan struct{}) {
		t := time.NewTimer(straggleDelay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-stop:
		}
		if _, err := h.cfg.Tenants.Get(id); errors.Is(err, tenant.ErrNotFound) {
			if err := h.removeTenantData(id); err != nil {
				h.log.Warn("remove files of deleted tenant", zap.String("tenant", id), zap.Error(err))
			}
		}
	})
	h.cfg.Ingest.Forget(id)
	h.stats.Delete(id)
	// Its share links and webhook endpoints go too: their ids must not
	// resolve to a tenant that no longer exists.
	if h.cfg.Share != nil {
		if err := h.cfg.Share.DropTenant(id); err != nil {
			h.log.Warn("drop share links of deleted tenant", zap.String("tenant", id), zap.Error(err))
		}
	}
	if h.cfg.Webhooks != nil {
		if _, err := h.cfg.Webhooks.DeleteTenant(id); err != nil {
			h.log.Warn("drop webhooks of deleted tenant", zap.String("tenant", id), zap.Error(err))
		}
	}
	h.log.Info("tenant deleted", zap.String("tenant", id))
	return map[string]string{"deleted": id}, nil
}

// removeTenantData stops the tenant's writer (its buffered rows are flushed
// first, then deleted with the files) and removes its database files.
func (h *Handler) removeTenantData(id string) error {
	cctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := h.cfg.Batcher.Forget(cctx, id); err != nil {
		h.log.Warn("flush before deleting tenant", zap.String("tenant", id), zap.Error(err))
	}
	return h.cfg.Pool.Remove(id, Timeout)
}

// KeyInfo is a key as the admin API lists it: never the key or its hash.
type KeyInfo struct {
	ID       string       `json:"key_id"`
	Scope    tenant.Scope `json:"scope"`
	Created  time.Time    `json:"created"`
	LastUsed *time.Time   `json:"last_used"`
}

// CreateKeyResponse is the answer to a new key; the key is shown once.
type CreateKeyResponse struct {
	TenantID string       `json:"tenant_id"`
	KeyID    string       `json:"key_id"`
	Scope    tenant.Scope `json:"scope"`
	APIKey   string       `json:"api_key"`
}

// CreateKey serves POST /api/admin/tenants/{id}/keys {"scope":"..."}: 201.
func (h *Handler) CreateKey(ctx *fasthttp.RequestCtx, id string) (any, error) {
	var req struct {
		Scope string `json:"scope"`
	}
	if err := decodeJSON(ctx.PostBody(), &req); err != nil {
		return nil, err
	}
	scope, err := tenant.ParseScope(req.Scope)
	if err != nil {
		return nil, err
	}
	k, key, err := h.cfg.Tenants.CreateKey(id, scope)
	if err != nil {
		return nil, err
	}
	h.log.Info("key created", zap.String("tenant", id), zap.String("key_id", k.ID), zap.String("scope", string(scope)))
	ctx.SetStatusCode(fasthttp.StatusCreated)
	return CreateKeyResponse{TenantID: id, KeyID: k.ID, Scope: k.Scope, APIKey: key}, nil
}

// ListKeys serves GET /api/admin/tenants/{id}/keys.
func (h *Handler) ListKeys(_ *fasthttp.RequestCtx, id string) (any, error) {
	keys, err := h.cfg.Tenants.Keys(id)
	if err != nil {
		return nil, err
	}
	out := make([]KeyInfo, len(keys))
	for i, k := range keys {
		out[i] = KeyInfo{ID: k.ID, Scope: k.Scope, Created: k.Created}
		if !k.LastUsed.IsZero() {
			lu := k.LastUsed
			out[i].LastUsed = &lu
		}
	}
	return struct {
		Keys []KeyInfo `json:"keys"`
	}{out}, nil
}

// RevokeKey serves DELETE /api/admin/tenants/{id}/keys/{key_id}.
func (h *Handler) RevokeKey(_ *fasthttp.RequestCtx, id, keyID string) (any, error) {
	if _, err := h.cfg.Tenants.Get(id); err != nil {
		return nil, err
	}
	if err := h.cfg.Tenants.RevokeKey(id, keyID); err != nil {
		return nil, err
	}
	h.log.Info("key revoked", zap.String("tenant", id), zap.String("key_id", keyID))
	return map[string]string{"revoked": keyID}, nil
}
