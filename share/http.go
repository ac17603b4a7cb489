package share

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"duckgate/query"
	"duckgate/schema"
)

// createBody is the JSON body of POST /api/data/query/share.
type createBody struct {
	Query    *string     `json:"query"`
	Params   []any       `json:"params"`
	Name     string      `json:"name"`
	Duration json.Number `json:"duration"` // seconds
	Snapshot bool        `json:"snapshot"`
}

// maxCreateBody bounds the create request: the SQL's own limit plus room
// for params.
const maxCreateBody = query.MaxSQLBytes + 1<<20

// HandleCreate serves POST /api/data/query/share for an authenticated
// tenant: {"query":"...","params":[...],"name":"...","duration":<seconds>,
// "snapshot":false} → 201 {"id","link_id","url","expires_at","snapshot"}.
func (s *Service) HandleCreate(ctx *fasthttp.RequestCtx, tenantID string) {
	req, err := parseCreate(ctx.PostBody())
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	c, err := s.Create(ctx, tenantID, req)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	writeJSON(ctx, fasthttp.StatusCreated, c)
}

// parseCreate decodes a create request. The body is copied: nothing of it
// is kept.
func parseCreate(body []byte) (CreateRequest, error) {
	var req CreateRequest
	if len(body) > maxCreateBody {
		return req, fmt.Errorf("%w: the body is %d bytes, the limit is %d", ErrBadRequest, len(body), maxCreateBody)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return req, fmt.Errorf(`%w: the body is empty; send {"query":"select ...","duration":<seconds>}`, ErrBadRequest)
	}
	var b createBody
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	d.DisallowUnknownFields()
	if err := d.Decode(&b); err != nil {
		return req, fmt.Errorf("%w: invalid JSON body: %v", ErrBadRequest, err)
	}
	if d.More() {
		return req, fmt.Errorf("%w: invalid JSON body: trailing data after the object", ErrBadRequest)
	}
	if b.Query == nil || strings.TrimSpace(*b.Query) == "" {
		return req, fmt.Errorf(`%w: "query" is required`, ErrBadRequest)
	}
	req.SQL, req.Params, req.Name, req.Snapshot = *b.Query, b.Params, b.Name, b.Snapshot
	if b.Duration != "" {
		secs, err := strconv.ParseFloat(string(b.Duration), 64)
		switch {
		case err != nil || math.IsNaN(secs):
			return req, fmt.Errorf("%w: duration must be a number of seconds, not %s", ErrBadRequest, b.Duration)
		case secs < 1:
			return req, fmt.Errorf("%w: duration must be at least 1 second; leave it out for the default", ErrBadRequest)
		case secs > float64(math.MaxInt64/int64(time.Second)):
			req.Duration = math.MaxInt64 // over any cap: Create says so
		default:
			req.Duration = time.Duration(secs * float64(time.Second))
		}
	}
	return req, nil
}

// HandleList serves GET /api/data/query/share: {"links":[Info...]}.
func (s *Service) HandleList(ctx *fasthttp.RequestCtx, tenantID string) {
	writeJSON(ctx, fasthttp.StatusOK, struct {
		Links []Info `json:"links"`
	}{s.List(tenantID)})
}

// HandleRevoke serves DELETE /api/data/query/share/{link_id or id}.
func (s *Service) HandleRevoke(ctx *fasthttp.RequestCtx, tenantID, ref string) {
	info, err := s.Revoke(tenantID, ref)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, info)
}

// HandlePublic serves GET /share/{id} (the page) and
// GET /share/{id}/data.{csv,json,ndjson,parquet} (the downloads); rest is
// the path after "/share/". No key is needed: the id is the secret.
func (s *Service) HandlePublic(ctx *fasthttp.RequestCtx, rest string) {
	setPublicHeaders(ctx)
	id, sub, _ := strings.Cut(rest, "/")
	method := string(ctx.Method())
	if method != fasthttp.MethodGet && method != fasthttp.MethodHead {
		ctx.Response.Header.Set("Allow", "GET, HEAD")
		query.WriteError(ctx, fasthttp.StatusMethodNotAllowed, "method not allowed: use GET")
		return
	}
	var f query.Format
	if sub != "" {
		ext, ok := strings.CutPrefix(sub, "data.")
		var err error
		if f, err = query.ParseFormat(ext); !ok || ext == "" || err != nil || ext != f.Ext() {
			s.writeError(ctx, fmt.Errorf("%w: downloads are data.csv, data.json, data.ndjson and data.parquet", ErrNotFound))
			return
		}
	}
	l, err := s.resolve(id)
	if err != nil {
		if sub == "" {
			s.writeErrorPage(ctx, err)
		} else {
			s.writeError(ctx, err)
		}
		return
	}
	if sub == "" {
		s.servePage(ctx, l, id)
		return
	}
	s.download(ctx, l, f)
}

// setPublicHeaders keeps public answers out of caches, search engines and
// Referer headers (the URL is the secret).
func setPublicHeaders(ctx *fasthttp.RequestCtx) {
	h := &ctx.Response.Header
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Robots-Tag", "noindex, nofollow")
	h.Set("X-Content-Type-Options", "nosniff")
}

// download streams the link's result in format f as an attachment.
func (s *Service) download(ctx *fasthttp.RequestCtx, l *link, f query.Format) {
	filename := fileName(l, f)
	var req query.Request
	if l.isSnapshot {
		path := s.snapshotPath(l)
		if path == "" {
			s.writeError(ctx, ErrGone)
			return
		}
		if f == query.FormatParquet {
			s.sendFile(ctx, l, path, filename)
			return
		}
		req = query.Request{SQL: "SELECT * FROM read_parquet(" + schema.QuoteString(path) + ")", Format: f}
	} else {
		params, err := decodeParams(l.params)
		if err != nil {
			s.writeError(ctx, err)
			return
		}
		req = query.Request{SQL: l.sql, Params: params, Format: f}
	}
	s.engine.Stream(ctx, l.tenant, req, filename)
	if st := ctx.Response.StatusCode(); st != fasthttp.StatusOK {
		if l.isSnapshot && s.snapshotGone(l) {
			s.writeError(ctx, ErrGone) // revoked or expired while the query started
			return
		}
		s.scrub(ctx, l, st)
		return
	}
	s.noteDownload(l)
}

// snapshotGone reports whether a snapshot link's file was deleted.
func (s *Service) snapshotGone(l *link) bool {
	path := s.snapshotPath(l)
	if path == "" {
		return true
	}
	_, err := os.Stat(path)
	return errors.Is(err, os.ErrNotExist)
}

// sendFile sends a snapshot's Parquet file as is.
func (s *Service) sendFile(ctx *fasthttp.RequestCtx, l *link, path, filename string) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		s.writeError(ctx, ErrGone) // revoked or expired since resolve
		return
	}
	if err != nil {
		s.writeError(ctx, fmt.Errorf("open snapshot: %w", err))
		return
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		s.writeError(ctx, fmt.Errorf("stat snapshot: %w", err))
		return
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType(query.FormatParquet.ContentType())
	ctx.Response.Header.Set("Content-Disposition", `attachment; filename="`+filename+`"`)
	ctx.Response.SetBodyStream(f, int(st.Size())) // fasthttp closes f
	s.noteDownload(l)
}

// scrub replaces an error answer of the engine whose message may quote the
// SQL (DuckDB's errors show the offending line) by one that does not. Busy,
// timeout and too-large answers say nothing of the SQL and stay.
func (s *Service) scrub(ctx *fasthttp.RequestCtx, l *link, status int) {
	switch status {
	case fasthttp.StatusServiceUnavailable, fasthttp.StatusGatewayTimeout, fasthttp.StatusUnprocessableEntity:
		return
	}
	s.log.Warn("shared query failed", zap.String("tenant", l.tenant), zap.String("link_id", l.linkID),
		zap.Int("status", status), zap.ByteString("error", bytes.TrimSpace(ctx.Response.Body())))
	if status < 500 {
		status = fasthttp.StatusUnprocessableEntity
	}
	query.WriteError(ctx, status, errCannotRun)
}

// errCannotRun is what a visitor is told when the shared query fails.
const errCannotRun = "the shared query cannot run now: ask the owner of the link to check it"

// writeError answers err as JSON with its status; internal errors are
// logged and not detailed.
func (s *Service) writeError(ctx *fasthttp.RequestCtx, err error) {
	status := StatusOf(err)
	msg := err.Error()
	if status == fasthttp.StatusInternalServerError {
		s.log.Warn("share request failed", zap.Error(err))
		msg = "internal error"
	}
	if status == fasthttp.StatusServiceUnavailable {
		ctx.Response.Header.Set("Retry-After", "1")
	}
	query.WriteError(ctx, status, msg)
}

// writeJSON answers v as JSON with status. Answers of this package hold
// secrets (a new link's id) or nothing worth caching.
func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		query.WriteError(ctx, fasthttp.StatusInternalServerError, "internal error: cannot encode the response")
		return
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetBody(append(b, '\n'))
}

// fileName is the download's name: the link's name as a slug, else
// share-<creation date>, with the format's extension.
func fileName(l *link, f query.Format) string {
	base := slug(l.name)
	if base == "" {
		base = "share-" + l.created.UTC().Format("2006-01-02")
	}
	return base + "." + f.Ext()
}

// slug keeps ASCII letters and digits of s, lower-cased, with single
// hyphens for the rest; at most 64 bytes.
func slug(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		switch {
		case 'a' <= r && r <= 'z', '0' <= r && r <= '9':
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
		default:
			dash = true
		}
		if b.Len() >= 64 {
			break
		}
	}
	return strings.TrimRight(b.String(), "-")
}
