package api

import (
	"github.com/valyala/fasthttp"

	"duckgate/cluster"
)

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
