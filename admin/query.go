package admin

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	json "github.com/goccy/go-json"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"duckgate/query"
	"duckgate/tenant"
	"duckgate/tenantdb"

	"duckgate/schema"
)

// Operator queries (POST /api/admin/query) run over snapshots.
//
// A tenant's database file is open read-write by the pool in this process.
// DuckDB's file lock is a POSIX lock, which is per process, so a second
// DuckDB instance attaching the same file, even READ_ONLY, is not stopped
// and would read pages the writer is rewriting: DuckDB supports many
// readers or one writer process, not a writer and a reader of one file in
// one process. So each requested tenant's database first copies itself
// (tenantdb.Pool.Snapshot: ATTACH a new file in its scratch directory, COPY
// FROM DATABASE, DETACH; one consistent transaction, after flushing its
// buffered rows), the copies move into a private directory, and one
// throw-away sandboxed DuckDB attaches them READ_ONLY, each under its tenant
// id. The query then runs through package query like a tenant's, with the
// same formats and limits. The copies are deleted when the result has been
// sent. Results are a snapshot taken when the request arrived; the cost is
// a copy of each tenant's data per request, so name the tenants you need.

// adminQueryBody is the body of POST /api/admin/query.
type adminQueryBody struct {
	Query   string          `json:"query"`
	Tenants []string        `json:"tenants"`
	Params  []any           `json:"params"`
	Format  string          `json:"format"`
	Timeout json.RawMessage `json:"timeout"`
}

// Query serves POST /api/admin/query: read-only SQL across tenants,
// streamed like a tenant's query.
func (h *Handler) Query(ctx *fasthttp.RequestCtx) error {
	var body adminQueryBody
	d := json.NewDecoder(bytes.NewReader(ctx.PostBody()))
	d.UseNumber() // params keep exact integers, as in the tenant query API
	if len(bytes.TrimSpace(ctx.PostBody())) == 0 {
		return fmt.Errorf("%w: the body is empty; send {\"query\":\"...\",\"tenants\":[...]}", ErrBadRequest)
	}
	if err := d.Decode(&body); err != nil {
		return fmt.Errorf("%w: invalid JSON body: %v", ErrBadRequest, err)
	}
	if strings.TrimSpace(body.Query) == "" {
		return fmt.Errorf("%w: \"query\" is empty", ErrBadRequest)
	}
	if f := ctx.QueryArgs().Peek("format"); body.Format == "" && len(f) > 0 {
		body.Format = string(f)
	}
	format, err := query.ParseFormat(body.Format)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	req := query.Request{SQL: body.Query, Params: body.Params, Format: format}
	if t := strings.Trim(string(body.Timeout), `"`); t != "" && t != "null" {
		var secs float64
		if _, err := fmt.Sscan(t, &secs); err != nil || math.IsNaN(secs) || secs <= 0 || secs > 1e6 {
			return fmt.Errorf("%w: timeout must be a positive number of seconds, not %q", ErrBadRequest, t)
		}
		req.Timeout = time.Duration(secs * float64(time.Second))
	}
	pool := h.cfg.Pool
	var ids []string
	if len(body.Tenants) == 0 {
		for _, t := range h.cfg.Tenants.List() {
			ids = append(ids, t.ID)
		}
	} else {
		seen := map[string]bool{}
		for _, id := range body.Tenants {
			if !tenant.ValidID(id) {
				return fmt.Errorf("tenant %.64q: %w", id, tenant.ErrNotFound)
			}
			if _, err := h.cfg.Tenants.Get(id); err != nil {
				return err
			}
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}

	aq, err := h.newAdminQuery(pool, ids)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), Timeout+req.Timeout)
	err = aq.attach(sctx, ids)
	cancel()
	if err != nil {
		aq.cleanup(nil)
		return err
	}
	h.log.Info("operator query", zap.Int("tenants", len(ids)), zap.String("query", fmt.Sprintf("%.64s", req.SQL)))
	streamErr := aq.engine.Stream(ctx, aq.id, req, "")
	// Stream holds the admin database until the body is sent; cleanup
	// waits for that.
	h.goBackground(aq.cleanup)
	return streamErr
}

// adminQuery is one operator query's private database and its snapshots.
type adminQuery struct {
	h      *Handler
	id     string
	dir    string
	tenant *tenantdb.Pool // the tenants' databases
	pool   *tenantdb.Pool // the private database, in dir
	engine *query.Engine
}

// newAdminQuery makes an operator query's private database; ids are the
// tenants whose snapshots attach will attach, the databases its SQL may name.
func (h *Handler) newAdminQuery(tenants *tenantdb.Pool, ids []string) (*adminQuery, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	id := "admin_" + hex.EncodeToString(b[:])
	// Beside the tenant databases, so that snapshots move by rename.
	dir := filepath.Join(filepath.Dir(tenants.Path("x")), "."+id)
	p, err := tenantdb.New(tenantdb.Config{Dir: dir, MaxOpen: 1}, h.log)
	if err != nil {
		return nil, err
	}
	qc := h.cfg.Query
	qc.Attached = ids
	return &adminQuery{h: h, id: id, dir: dir, tenant: tenants, pool: p,
		engine: query.New(qc, p, nil, h.log)}, nil
}

// attach snapshots each tenant and attaches the copies READ_ONLY.
func (aq *adminQuery) attach(ctx context.Context, ids []string) error {
	h, err := aq.pool.Acquire(ctx, aq.id)
	if err != nil {
		return err
	}
	defer h.Release()
	scratch := aq.pool.ScratchDir(aq.id)
	for _, id := range ids {
		dst := filepath.Join(scratch, id+".duckdb")
		if aq.tenant.Exists(id) {
			if err := aq.h.cfg.Batcher.Flush(ctx, id); err != nil {
				return fmt.Errorf("flush tenant %s: %w", id, err)
			}
			src, err := aq.tenant.Snapshot(ctx, id, aq.id+".duckdb")
			if err != nil {
				return err
			}
			if err := os.Rename(src, dst); err != nil {
				_ = os.Remove(src)
				return fmt.Errorf("snapshot of tenant %s: %w", id, err)
			}
		} else {
			// No data yet: an empty database, so that the name resolves.
			if _, err := h.DB.ExecContext(ctx, `ATTACH `+schema.QuoteString(dst)+` AS `+schema.QuoteIdent(id)+`; DETACH `+schema.QuoteIdent(id)); err != nil {
				return fmt.Errorf("empty database for tenant %s: %w", id, err)
			}
		}
		if _, err := h.DB.ExecContext(ctx, `ATTACH `+schema.QuoteString(dst)+` AS `+schema.QuoteIdent(id)+` (READ_ONLY)`); err != nil {
			return fmt.Errorf("attach snapshot of tenant %s: %w", id, err)
		}
	}
	return nil
}

// cleanupTimeout bounds how long an operator query's result may still be
// streaming when cleanup gives up waiting and closes its database anyway.
const cleanupTimeout = 10 * time.Minute

// cleanup waits until the result is sent (the engine released the private
// database), closes it and deletes the snapshots. When stop is closed (the
// server is shutting down, its HTTP connections already closed) or the
// result is still streaming after cleanupTimeout, it closes the database
// regardless: a stream still reading from it then fails.
func (aq *adminQuery) cleanup(stop <-chan struct{}) {
	deadline := time.Now().Add(cleanupTimeout)
	for time.Now().Before(deadline) {
		if aq.pool.Evict(aq.id, time.Second) == nil {
			break
		}
		select {
		case <-stop:
			deadline = time.Time{}
		default:
		}
	}
	if err := aq.pool.Close(); err != nil {
		aq.h.log.Warn("close operator query database", zap.String("query", aq.id), zap.Error(err))
	}
	if err := os.RemoveAll(aq.dir); err != nil {
		aq.h.log.Warn("remove operator query snapshots", zap.String("query", aq.id), zap.Error(err))
	}
}

// removeLeftovers deletes the private directories (".admin_<hex>", beside
// the tenant databases) of operator queries that a crash interrupted.
func (h *Handler) removeLeftovers() {
	dirs, err := filepath.Glob(filepath.Join(filepath.Dir(h.cfg.Pool.Path("x")), ".admin_*"))
	if err != nil {
		return
	}
	for _, d := range dirs {
		if err := os.RemoveAll(d); err != nil {
			h.log.Warn("remove an interrupted operator query's snapshots", zap.String("dir", d), zap.Error(err))
			continue
		}
		h.log.Info("removed an interrupted operator query's snapshots", zap.String("dir", filepath.Base(d)))
	}
}
