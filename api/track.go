package api

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/valyala/fasthttp"

	"duckgate/ingest"
	"duckgate/tenant"
)

// trackRoutes are the tracking API's paths: Segment's HTTP Tracking API
// (which RudderStack's SDKs share) and PostHog's capture endpoints, with
// and without the trailing slash.
var trackRoutes = map[string]ingest.TrackCall{
	"/v1/batch":    ingest.SegmentBatch,
	"/v1/import":   ingest.SegmentBatch,
	"/v1/track":    ingest.SegmentTrack,
	"/v1/identify": ingest.SegmentIdentify,
	"/v1/page":     ingest.SegmentPage,
	"/v1/screen":   ingest.SegmentScreen,
	"/v1/group":    ingest.SegmentGroup,
	"/v1/alias":    ingest.SegmentAlias,
	"/batch":       ingest.PostHogCapture,
	"/capture":     ingest.PostHogCapture,
	"/e":           ingest.PostHogCapture,
	"/i/v0/e":      ingest.PostHogCapture,
}

// trackCall returns the call of a tracking path.
func trackCall(path string) (ingest.TrackCall, bool) {
	if len(path) > 1 && path[len(path)-1] == '/' {
		path = path[:len(path)-1]
	}
	c, ok := trackRoutes[path]
	return c, ok
}

// errTrackKey is a missing or unknown key on a tracking route (401). It does
// not wrap tenant.ErrUnauthorized, whose answer names the insert API's key
// places.
var errTrackKey = errors.New("missing or invalid write key: send an ingest key as the Basic auth user name, in Authorization: Bearer, or as writeKey, api_key or token in the body")

// routeTrack serves a tracking route: CORS preflights, and POSTs
// authenticated by a key with the ingest scope from the headers or, failing
// that, the body.
//
// CORS: a preflight carries no key, so it is answered for any origin; the
// POST is then checked against the tenant's allowed origins
// (tenant.Tenant.AllowedOrigins, set by the operator; empty allows any): a
// page of another origin gets 403, without Access-Control-Allow-Origin.
// Requests without an Origin header (app backends, SDKs on servers) are
// never refused for it.
func (s *Server) routeTrack(ctx *fasthttp.RequestCtx, method string, call ingest.TrackCall) {
	setCORS(ctx)
	switch method {
	case fasthttp.MethodOptions:
		ctx.Response.Header.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
		if h := ctx.Request.Header.Peek("Access-Control-Request-Headers"); len(h) > 0 {
			ctx.Response.Header.SetBytesV("Access-Control-Allow-Headers", h)
		} else {
			ctx.Response.Header.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Content-Encoding")
		}
		ctx.Response.Header.Set("Access-Control-Max-Age", "86400")
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		return
	case fasthttp.MethodPost:
	default:
		writeError(ctx, methodNotAllowed("POST, OPTIONS"))
		return
	}
	if s.cfg.Ingest == nil {
		writeError(ctx, fmt.Errorf("%w: ingest is not enabled", errNotFound))
		return
	}
	// A key in the headers is checked before the body is read.
	key := trackHeaderKey(ctx)
	var t tenant.Tenant
	var err error
	if key != nil {
		if t, err = s.trackTenant(key); err != nil {
			writeError(ctx, err)
			return
		}
	}
	req, err := s.cfg.Ingest.ReadTrack(ctx, call)
	if err != nil {
		writeError(ctx, err)
		return
	}
	defer req.Release()
	if key == nil {
		if t, err = s.trackTenant(req.Key); err != nil {
			writeError(ctx, err)
			return
		}
	}
	if o := ctx.Request.Header.Peek("Origin"); len(o) > 0 && !t.AllowsOrigin(o) {
		ctx.Response.Header.Del("Access-Control-Allow-Origin")
		writeError(ctx, fmt.Errorf("%w: pages of origin %.64q may not post events for this tenant; the operator sets its allowed origins", errForbidden, o))
		return
	}
	writeResult(ctx, nil, s.cfg.Ingest.Track(ctx, t, req))
}

// trackTenant authenticates a tracking key, which needs the ingest scope.
func (s *Server) trackTenant(key []byte) (tenant.Tenant, error) {
	t, err := s.authorize(key, tenant.ScopeIngest)
	if errors.Is(err, tenant.ErrUnauthorized) {
		return t, errTrackKey
	}
	return t, err
}

// setCORS lets a web page of any origin read the answer.
func setCORS(ctx *fasthttp.RequestCtx) {
	if o := ctx.Request.Header.Peek("Origin"); len(o) > 0 {
		ctx.Response.Header.SetBytesV("Access-Control-Allow-Origin", o)
		ctx.Response.Header.Set("Vary", "Origin")
	} else {
		ctx.Response.Header.Set("Access-Control-Allow-Origin", "*")
	}
}

// trackHeaderKey returns the key of a tracking request's headers: the user
// of Basic auth (Segment, RudderStack: "<key>:"), a Bearer token, or
// X-API-KEY; nil if none.
func trackHeaderKey(ctx *fasthttp.RequestCtx) []byte {
	a := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)
	if len(a) > 6 && bytes.EqualFold(a[:6], []byte("basic ")) {
		raw, err := base64.StdEncoding.AppendDecode(nil, bytes.TrimSpace(a[6:]))
		if err != nil {
			return []byte{} // present but unreadable: 401, not a body key
		}
		user, _, _ := bytes.Cut(raw, []byte(":"))
		return user
	}
	if k := APIKey(ctx); len(k) > 0 {
		return k
	}
	return nil
}

// isTrackPath reports whether path is a tracking route.
func isTrackPath(path string) bool {
	_, ok := trackCall(path)
	return ok
}
