package api

import (
	"strings"

	"github.com/valyala/fasthttp"

	"duckgate/cluster"
)

// onWriter reports whether a tenant route reads or changes the tenant's
// database: queries, share link creation (checked against the tables) and
// the tenant's link list, table listings and rules, retention, quarantine,
// export. In cluster mode withTenant forwards them to the node that writes
// the database, and routeShare forwards a link's page and downloads there
// too; inserts, tracking calls and webhook deliveries are
// published from the node that received them, and keys, share links and
// webhook endpoints are shared state every node holds.
func onWriter(path string) bool {
	return path == "/api/data/query" || path == "/api/data/query/share" || strings.HasPrefix(path, "/api/data/query/share/") || path == "/api/export" || path == "/api/tables" || strings.HasPrefix(path, "/api/tables/") ||
		path == "/api/quarantine" || path == "/api/quarantine/replay"
}

// forward sends a tenant's query to the node that writes the tenant's
// database, in cluster mode; forwarded is false when this node serves it.
func (s *Server) forward(ctx *fasthttp.RequestCtx, tenantID string) (forwarded bool, err error) {
	if s.cfg.Cluster == nil {
		return false, nil
	}
	return s.cfg.Cluster.Forward(ctx, tenantID)
}

// clusterHealth answers /healthz in cluster mode: 200 with the partitions
// this node writes while it is connected to NATS, 503 while it is not (it
// can take no insert then).
func (s *Server) clusterHealth(ctx *fasthttp.RequestCtx) {
	h := s.cfg.Cluster.Health()
	body := struct {
		Status string `json:"status"`
		cluster.Health
	}{"ok", h}
	status := fasthttp.StatusOK
	if !h.Connected {
		body.Status = "disconnected from NATS"
		status = fasthttp.StatusServiceUnavailable
	}
	writeJSON(ctx, status, body)
}
