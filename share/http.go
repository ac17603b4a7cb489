package share

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	json "github.com/goccy/go-json"
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

// maxCreateBody bounds the create request: twice the engine's SQL limit
// (JSON escapes) plus room for params. The SQL's own limit is the engine's.
func (s *Service) maxCreateBody() int {
	return 2*s.engine.MaxSQLBytes() + 1<<20
}

// HandleCreate serves POST /api/data/query/share for an authenticated
// tenant: {"query":"...","params":[...],"name":"...","duration":<seconds>,
// "snapshot":false} → 201 {"id","link_id","url","expires_at","snapshot"}.
// On an error it writes nothing and returns it (see errors.go).
func (s *Service) HandleCreate(ctx *fasthttp.RequestCtx, tenantID string) error {
	req, err := parseCreate(ctx.PostBody(), s.maxCreateBody())
	if err != nil {
		return err
	}
	c, err := s.create(ctx, tenantID, req)
	if err != nil {
		return err
	}
	return writeJSON(ctx, fasthttp.StatusCreated, c)
}

// parseCreate decodes a create request. The body is copied: nothing of it
// is kept.
func parseCreate(body []byte, maxBody int) (createRequest, error) {
	var req createRequest
	if len(body) > maxBody {
		return req, fmt.Errorf("%w: the body is %d bytes, the limit is %d", query.ErrSQLTooLarge, len(body), maxBody)
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

// HandleList serves GET /api/data/query/share: {"links":[{"link_id",
// "name","created","expires_at","snapshot","downloads","revoked",
// "expired"}, ...]}, newest first; never an id or a URL.
func (s *Service) HandleList(ctx *fasthttp.RequestCtx, tenantID string) error {
	return writeJSON(ctx, fasthttp.StatusOK, struct {
		Links []linkInfo `json:"links"`
	}{s.list(tenantID)})
}

// HandleRevoke serves DELETE /api/data/query/share/{link_id or id}. On an
// error it writes nothing and returns it (see errors.go).
func (s *Service) HandleRevoke(ctx *fasthttp.RequestCtx, tenantID, ref string) error {
	info, err := s.revoke(tenantID, ref)
	if err != nil {
		return err
	}
	return writeJSON(ctx, fasthttp.StatusOK, info)
}

// HandlePage serves GET /share/{id}, the link's HTML page; id is the path
// after "/share/" and holds no slash. No key is needed: the id is the
// secret. A failing preview is told on the page, which HandlePage writes
// itself with the status of the failure (200 when the page is still of
// use); it returns an error (the link is unknown, gone or suspended) only
// with nothing written, for the caller to answer with WriteErrorPage.
func (s *Service) HandlePage(ctx *fasthttp.RequestCtx, id string) error {
	l, err := s.resolve(id)
	if err != nil {
		return err
	}
	return s.servePage(ctx, l, id)
}

// HandleDownload serves GET /share/{id}/{file}, the link's result as an
// attachment; file is data.csv, data.json, data.ndjson or data.parquet
// (anything else is ErrNotFound). A live link runs its query now, with the
// tenant's sandbox, concurrency slot and limits. On an error it writes
// nothing and returns it (see errors.go), for the caller to answer as
// JSON; errors of the link's query are reduced to ErrQueryFailed, or kept
// when they say nothing of the SQL (query.ErrBusy, ErrTimeout, ErrTooLarge).
func (s *Service) HandleDownload(ctx *fasthttp.RequestCtx, id, file string) error {
	ext, ok := strings.CutPrefix(file, "data.")
	f, err := query.ParseFormat(ext)
	if !ok || ext == "" || err != nil || ext != f.Ext() {
		return fmt.Errorf("%w: downloads are data.csv, data.json, data.ndjson and data.parquet", ErrNotFound)
	}
	l, err := s.resolve(id)
	if err != nil {
		return err
	}
	return s.download(ctx, l, f)
}

// TenantOf is the tenant whose data the live link id shows, for a router
// that sends the request to the node holding that tenant's database
// (cluster mode); ok is false when the link is unknown, gone or refused,
// which HandlePage and HandleDownload then answer themselves.
func (s *Service) TenantOf(id string) (tenantID string, ok bool) {
	l, err := s.resolve(id)
	if err != nil {
		return "", false
	}
	return l.tenant, true
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
func (s *Service) download(ctx *fasthttp.RequestCtx, l *link, f query.Format) error {
	filename := fileName(l, f)
	var req query.Request
	if l.isSnapshot {
		path := s.snapshotPath(l)
		if path == "" {
			return ErrGone
		}
		if f == query.FormatParquet {
			return s.sendFile(ctx, l, path, filename)
		}
		// The sandbox lets read_parquet read this one file.
		req = query.Request{SQL: "SELECT * FROM read_parquet(" + schema.QuoteString(path) + ")", Format: f, ScratchFile: path}
	} else {
		params, err := decodeParams(l.params)
		if err != nil {
			return err
		}
		req = query.Request{SQL: l.sql, Params: params, Format: f}
	}
	if err := s.engine.Stream(ctx, l.tenant, req, filename); err != nil {
		if l.isSnapshot && s.snapshotGone(l) {
			return ErrGone // revoked or expired while the query started
		}
		return s.scrub(l, err)
	}
	setPublicHeaders(ctx)
	s.noteDownload(l)
	return nil
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
func (s *Service) sendFile(ctx *fasthttp.RequestCtx, l *link, path, filename string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return ErrGone // revoked or expired since resolve
	}
	if err != nil {
		return fmt.Errorf("open snapshot: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("stat snapshot: %w", err)
	}
	setPublicHeaders(ctx)
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType(query.FormatParquet.ContentType())
	ctx.Response.Header.Set("Content-Disposition", `attachment; filename="`+filename+`"`)
	ctx.Response.SetBodyStream(f, int(st.Size())) // fasthttp closes f
	s.noteDownload(l)
	return nil
}

// scrub replaces an error of a link's query, whose message may quote the
// SQL (DuckDB's errors show the offending line), by one that does not, and
// logs the cause. Busy, timeout and too-large errors say nothing of the SQL
// and stay.
func (s *Service) scrub(l *link, err error) error {
	if errors.Is(err, query.ErrBusy) || errors.Is(err, query.ErrTimeout) || errors.Is(err, query.ErrTooLarge) {
		return err
	}
	s.log.Warn("shared query failed", zap.String("tenant", l.tenant), zap.String("link_id", l.linkID), zap.Error(err))
	switch {
	case errors.Is(err, query.ErrBadQuery), errors.Is(err, query.ErrNotReadOnly), errors.Is(err, query.ErrNotAllowed),
		errors.Is(err, query.ErrMultipleStatements), errors.Is(err, query.ErrBadRequest), errors.Is(err, query.ErrSQLTooLarge):
		return ErrQueryFailed
	}
	return errInternal
}

// writeJSON answers v as JSON with status. Answers of this package hold
// secrets (a new link's id) or nothing worth caching.
func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode the response: %w", err)
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetBody(append(b, '\n'))
	return nil
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
