package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"duckgate/tenant"
	"duckgate/tenantdb"
)

// adminTimeout bounds the flushes, evictions and removals an admin call
// waits for.
const adminTimeout = 30 * time.Second

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
//	DELETE /api/admin/tenants/{id}/keys/{key_id}
//	POST   /api/admin/query                         {"query","tenants":[...],"format"}
func (s *Server) routeAdmin(ctx *fasthttp.RequestCtx, method, path string) {
	if path == "/api/admin/tenants" {
		switch method {
		case fasthttp.MethodPost:
			s.handleCreateTenant(ctx)
		case fasthttp.MethodGet:
			s.handleListTenants(ctx)
		default:
			methodNotAllowed(ctx, "GET, POST")
		}
		return
	}
	if path == "/api/admin/query" {
		if method != fasthttp.MethodPost {
			methodNotAllowed(ctx, "POST")
			return
		}
		s.handleAdminQuery(ctx)
		return
	}
	rest, ok := strings.CutPrefix(path, "/api/admin/tenants/")
	if !ok {
		writeError(ctx, fmt.Errorf("%w: no admin route for %s %s", ErrNotFound, method, path))
		return
	}
	parts := strings.Split(rest, "/")
	id := parts[0]
	if !validID(id, "t_", 16) {
		writeError(ctx, fmt.Errorf("tenant %q: %w", truncate([]byte(id)), tenant.ErrNotFound))
		return
	}
	switch {
	case len(parts) == 1:
		switch method {
		case fasthttp.MethodGet:
			s.handleGetTenant(ctx, id)
		case fasthttp.MethodPatch:
			s.handlePatchTenant(ctx, id)
		case fasthttp.MethodDelete:
			s.handleDeleteTenant(ctx, id)
		default:
			methodNotAllowed(ctx, "GET, PATCH, DELETE")
		}
	case len(parts) == 2 && (parts[1] == "suspend" || parts[1] == "resume"):
		if method != fasthttp.MethodPost {
			methodNotAllowed(ctx, "POST")
			return
		}
		status := tenant.StatusSuspended
		if parts[1] == "resume" {
			status = tenant.StatusActive
		}
		s.handleSetStatus(ctx, id, status)
	case len(parts) == 2 && parts[1] == "keys":
		switch method {
		case fasthttp.MethodPost:
			s.handleCreateKey(ctx, id)
		case fasthttp.MethodGet:
			s.handleListKeys(ctx, id)
		default:
			methodNotAllowed(ctx, "GET, POST")
		}
	case len(parts) == 3 && parts[1] == "keys":
		if method != fasthttp.MethodDelete {
			methodNotAllowed(ctx, "DELETE")
			return
		}
		s.handleRevokeKey(ctx, id, parts[2])
	default:
		writeError(ctx, fmt.Errorf("%w: no admin route for %s %s", ErrNotFound, method, path))
	}
}

// validID reports whether id is prefix followed by n lowercase hex digits,
// the shape of the ids package tenant makes. Ids name files, so nothing
// else may reach the pool.
func validID(id, prefix string, n int) bool {
	hex, ok := strings.CutPrefix(id, prefix)
	if !ok || len(hex) != n {
		return false
	}
	for _, c := range []byte(hex) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// pool returns the tenant database pool, or an error naming the missing
// configuration.
func (s *Server) pool() (*tenantdb.Pool, error) {
	if s.cfg.Pool == nil {
		return nil, errors.New("the server has no tenant database pool configured (ingest.Config.Pool)")
	}
	return s.cfg.Pool, nil
}

func (s *Server) handleListTenants(ctx *fasthttp.RequestCtx) {
	cctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	infos := s.infos(cctx, s.cfg.Tenants.List())
	writeJSON(ctx, fasthttp.StatusOK, struct {
		Tenants []TenantInfo `json:"tenants"`
	}{infos})
}

// TenantDetail is GET /api/admin/tenants/{id}: the tenant and its plan.
type TenantDetail struct {
	TenantInfo
	Limits tenant.Plan `json:"limits"`
}

func (s *Server) handleGetTenant(ctx *fasthttp.RequestCtx, id string) {
	t, err := s.cfg.Tenants.Get(id)
	if err != nil {
		writeError(ctx, err)
		return
	}
	cctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	writeJSON(ctx, fasthttp.StatusOK, TenantDetail{TenantInfo: s.info(cctx, t), Limits: s.cfg.Tenants.PlanOf(id)})
}

func (s *Server) handleSetStatus(ctx *fasthttp.RequestCtx, id, status string) {
	t, err := s.cfg.Tenants.SetStatus(id, status)
	if err != nil {
		writeError(ctx, err)
		return
	}
	s.log.Info("tenant status changed", zap.String("tenant", id), zap.String("status", status))
	writeJSON(ctx, fasthttp.StatusOK, t)
}

// PatchTenantResponse is the answer to a plan change.
type PatchTenantResponse struct {
	tenant.Tenant
	// LimitsApplied is false when the database was in use for longer than
	// the admin timeout: the new limits then apply when it next reopens.
	LimitsApplied bool `json:"limits_applied"`
}

func (s *Server) handlePatchTenant(ctx *fasthttp.RequestCtx, id string) {
	var req struct {
		Plan *string `json:"plan"`
	}
	if err := decodeJSON(ctx.PostBody(), &req); err != nil {
		writeError(ctx, err)
		return
	}
	if req.Plan == nil {
		writeError(ctx, fmt.Errorf("%w: nothing to change: send {\"plan\":\"...\"}", ErrBadRequest))
		return
	}
	t, err := s.cfg.Tenants.SetPlan(id, *req.Plan)
	if err != nil {
		writeError(ctx, err)
		return
	}
	// The open database keeps the memory_limit and threads it was opened
	// with: flush, then close it so that the next use reopens it.
	applied := true
	if pool, err := s.pool(); err == nil {
		cctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
		err := s.cfg.Batcher.Flush(cctx, id)
		cancel()
		if err == nil {
			err = pool.Evict(id, adminTimeout)
		}
		if err != nil {
			applied = false
			s.log.Warn("plan changed; the database keeps its old limits until it reopens", zap.String("tenant", id), zap.Error(err))
		}
	}
	s.log.Info("tenant plan changed", zap.String("tenant", id), zap.String("plan", t.Plan))
	writeJSON(ctx, fasthttp.StatusOK, PatchTenantResponse{Tenant: t, LimitsApplied: applied})
}

func (s *Server) handleDeleteTenant(ctx *fasthttp.RequestCtx, id string) {
	if !ctx.QueryArgs().GetBool("confirm") {
		writeError(ctx, fmt.Errorf("%w: deleting tenant %s removes all its data for good: add ?confirm=true", ErrBadRequest, id))
		return
	}
	pool, err := s.pool()
	if err != nil {
		writeError(ctx, err)
		return
	}
	// The registry goes first, so that the tenant's keys stop at once. A
	// tenant already gone from the registry whose files remain (an earlier
	// DELETE that could not remove them) is cleaned up again.
	if err := s.cfg.Tenants.Delete(id); err != nil && !(errors.Is(err, tenant.ErrNotFound) && pool.Exists(id)) {
		writeError(ctx, err)
		return
	}
	if err := s.removeTenantData(id); err != nil {
		writeError(ctx, fmt.Errorf("tenant %s is deleted and its keys revoked, but its files remain: %w; retry the DELETE", id, err))
		return
	}
	// An insert authenticated just before the registry change may still
	// reach the batcher after Forget and recreate the file: look again
	// once such a request has had time to finish.
	time.AfterFunc(time.Second, func() {
		if _, err := s.cfg.Tenants.Get(id); errors.Is(err, tenant.ErrNotFound) {
			if err := s.removeTenantData(id); err != nil {
				s.log.Warn("remove files of deleted tenant", zap.String("tenant", id), zap.Error(err))
			}
		}
	})
	s.states.drop(id)
	// Its share links and webhook endpoints go too: their ids must not
	// resolve to a tenant that no longer exists.
	if s.cfg.Share != nil {
		if err := s.cfg.Share.DropTenant(id); err != nil {
			s.log.Warn("drop share links of deleted tenant", zap.String("tenant", id), zap.Error(err))
		}
	}
	if s.cfg.Webhooks != nil {
		if _, err := s.cfg.Webhooks.DeleteTenant(id); err != nil {
			s.log.Warn("drop webhooks of deleted tenant", zap.String("tenant", id), zap.Error(err))
		}
	}
	s.log.Info("tenant deleted", zap.String("tenant", id))
	writeJSON(ctx, fasthttp.StatusOK, map[string]string{"deleted": id})
}

// removeTenantData stops the tenant's writer (its buffered rows are flushed
// first, then deleted with the files) and removes its database files.
func (s *Server) removeTenantData(id string) error {
	cctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	if err := s.cfg.Batcher.Forget(cctx, id); err != nil {
		s.log.Warn("flush before deleting tenant", zap.String("tenant", id), zap.Error(err))
	}
	return s.cfg.Pool.Remove(id, adminTimeout)
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

func (s *Server) handleCreateKey(ctx *fasthttp.RequestCtx, id string) {
	var req struct {
		Scope string `json:"scope"`
	}
	if err := decodeJSON(ctx.PostBody(), &req); err != nil {
		writeError(ctx, err)
		return
	}
	scope, err := tenant.ParseScope(req.Scope)
	if err != nil {
		writeError(ctx, err)
		return
	}
	k, key, err := s.cfg.Tenants.CreateKey(id, scope)
	if err != nil {
		writeError(ctx, err)
		return
	}
	s.log.Info("key created", zap.String("tenant", id), zap.String("key_id", k.ID), zap.String("scope", string(scope)))
	writeJSON(ctx, fasthttp.StatusCreated, CreateKeyResponse{TenantID: id, KeyID: k.ID, Scope: k.Scope, APIKey: key})
}

func (s *Server) handleListKeys(ctx *fasthttp.RequestCtx, id string) {
	keys, err := s.cfg.Tenants.Keys(id)
	if err != nil {
		writeError(ctx, err)
		return
	}
	out := make([]KeyInfo, len(keys))
	for i, k := range keys {
		out[i] = KeyInfo{ID: k.ID, Scope: k.Scope, Created: k.Created}
		if !k.LastUsed.IsZero() {
			lu := k.LastUsed
			out[i].LastUsed = &lu
		}
	}
	writeJSON(ctx, fasthttp.StatusOK, struct {
		Keys []KeyInfo `json:"keys"`
	}{out})
}

func (s *Server) handleRevokeKey(ctx *fasthttp.RequestCtx, id, keyID string) {
	if _, err := s.cfg.Tenants.Get(id); err != nil {
		writeError(ctx, err)
		return
	}
	if err := s.cfg.Tenants.RevokeKey(id, keyID); err != nil {
		writeError(ctx, err)
		return
	}
	s.log.Info("key revoked", zap.String("tenant", id), zap.String("key_id", keyID))
	writeJSON(ctx, fasthttp.StatusOK, map[string]string{"revoked": keyID})
}
