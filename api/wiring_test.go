package api

import (
	"testing"

	"time"

	"github.com/VictoriaMetrics/metrics"

	"go.uber.org/zap"

	"duckgate/admin"
	"duckgate/batcher"
	"duckgate/ingest"
	"duckgate/query"
	"duckgate/share"
	"duckgate/tenant"
	"duckgate/tenantdb"
	"duckgate/webhook"
)

// serverConfig is what a test adjusts of a server's wiring; build wires the
// handlers from it as cmd/duckgate serve does.
type serverConfig struct {
	Metrics            *metrics.Set
	Tenants            *tenant.Store
	Batcher            *batcher.Batcher
	Pool               *tenantdb.Pool
	Query              *query.Engine
	Share              *share.Service
	Webhooks           *webhook.Store
	WebhookTolerance   time.Duration
	MaxBodySize        int64
	WaitTimeout        time.Duration
	QuotaCheckInterval time.Duration
	AdminQuery         query.Config
	HistoryInterval    time.Duration // the dashboard's node samples; 0 for the default
}

// build returns the Server; its admin handler is closed when the test ends.
func (c serverConfig) build(t testing.TB, log *zap.Logger) *Server {
	t.Helper()
	ih := ingest.New(ingest.Config{Metrics: c.Metrics, MaxBodySize: c.MaxBodySize, WaitTimeout: c.WaitTimeout, Tenants: c.Tenants,
		Batcher: c.Batcher, Pool: c.Pool, QuotaCheckInterval: c.QuotaCheckInterval}, log)
	cfg := Config{Metrics: c.Metrics, MaxBodySize: c.MaxBodySize, Tenants: c.Tenants, Ingest: ih, Query: c.Query, Share: c.Share}
	if c.Webhooks != nil {
		cfg.Webhooks = webhook.NewHandler(webhook.Config{Store: c.Webhooks, Tenants: c.Tenants, Batcher: c.Batcher,
			Ingest: ih, Tolerance: c.WebhookTolerance}, log)
	}
	if c.Pool != nil {
		cfg.Admin = admin.New(admin.Config{Tenants: c.Tenants, Batcher: c.Batcher, Pool: c.Pool, Ingest: ih,
			Share: c.Share, Webhooks: c.Webhooks, Query: c.AdminQuery, Metrics: c.Metrics, HistoryInterval: c.HistoryInterval}, log)
		t.Cleanup(func() { _ = cfg.Admin.Close(t.Context()) })
	}
	return New(cfg, log)
}
