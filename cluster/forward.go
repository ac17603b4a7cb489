package cluster

import (
	"fmt"
	"time"

	"github.com/valyala/fasthttp"
)

// ForwardedHeader marks a request one node forwarded to another: the
// receiver serves it itself or refuses it, never forwards it again.
const ForwardedHeader = "X-Duckgate-Forwarded-By"

// forwardTimeout bounds a forwarded request: longer than any query may
// run (-query.timeout is at most minutes).
const forwardTimeout = 15 * time.Minute

// Forward answers ctx from the writer of the tenant's partition when that
// is another node, and reports true. It reports false, with no error, when
// this node writes the partition: the caller serves the request. When the
// partition has no writer right now (a node died and its lease has not yet
// expired, or the partition is moving), or the writer cannot be reached,
// the error wraps ErrNoWriter (503: retry). The answer is copied whole,
// with its status and headers: a query's answer is bounded by
// -query.max-bytes.
func (n *Node) Forward(ctx *fasthttp.RequestCtx, tenantID string) (bool, error) {
	p := Partition(tenantID, n.cfg.Partitions)
	if n.parts[p].isOwned() {
		return false, nil
	}
	if len(ctx.Request.Header.Peek(ForwardedHeader)) > 0 {
		return false, fmt.Errorf("%w: partition %d moved while the request was forwarded; retry in a second", ErrNoWriter, p)
	}
	node, addr := n.writerOf(p)
	if node == "" || addr == "" || node == n.cfg.Node {
		return false, fmt.Errorf("%w (partition %d): a node is taking it over; retry in a second", ErrNoWriter, p)
	}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	ctx.Request.CopyTo(req)
	req.SetRequestURI("http://" + addr + string(ctx.RequestURI()))
	req.Header.Set(ForwardedHeader, n.cfg.Node)
	if err := n.client.DoTimeout(req, resp, forwardTimeout); err != nil {
		return false, fmt.Errorf("%w: forward to node %s, which writes partition %d: %v; retry in a second", ErrNoWriter, node, p, err)
	}
	resp.CopyTo(&ctx.Response)
	return true, nil
}
