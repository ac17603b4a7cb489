package share

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"duckgate/query"
	"duckgate/schema"
)

// maxCellRunes is the longest cell shown in the preview; longer is cut.
const maxCellRunes = 200

// pageData is what the page template shows. Never the SQL, never a key.
type pageData struct {
	Title     string
	Expires   string // RFC 3339
	ExpiresIn string // "6 days", "3 hours"
	Snapshot  bool
	Created   string
	Rows      int64
	RowsKnown bool
	Columns   []string
	Preview   [][]string
	More      bool // the result has more rows than the preview
	Error     string
	Downloads []download
}

type download struct {
	Label string
	Href  string
}

var formatLabels = map[query.Format]string{
	query.FormatCSV: "CSV", query.FormatJSON: "JSON", query.FormatNDJSON: "NDJSON", query.FormatParquet: "Parquet",
}

// errorData is what the error page shows.
type errorData struct {
	Status  int
	Message string
}

var pageTmpl = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<title>{{.Title}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;font-size:.9rem;margin:1rem 0}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}
.meta{color:#555}
.downloads a{margin-right:1rem}
.error{color:#a00}
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<p class="meta">{{if .Snapshot}}A snapshot taken {{.Created}}.{{else}}Live data: each download runs the query now.{{end}}
This link expires <time datetime="{{.Expires}}">{{.Expires}}</time> (in {{.ExpiresIn}}).</p>
{{if .Error}}<p class="error">{{.Error}}</p>{{else}}
<p class="rows">{{if .RowsKnown}}{{.Rows}} row{{if ne .Rows 1}}s{{end}}{{end}}{{if .More}}; the first {{len .Preview}} are shown{{end}}.</p>
<table>
<thead><tr>{{range .Columns}}<th>{{.}}</th>{{end}}</tr></thead>
<tbody>
{{range .Preview}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</tbody>
</table>{{end}}
<p class="downloads">Download:
{{range .Downloads}}<a href="{{.Href}}" download>{{.Label}}</a>
{{end}}</p>
</body>
</html>
`))

var errorTmpl = template.Must(template.New("error").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="robots" content="noindex, nofollow">
<title>{{.Status}}</title>
</head>
<body>
<h1>{{.Message}}</h1>
</body>
</html>
`))

// pageCSP allows the page nothing but its own inline style.
const pageCSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// servePage renders the link's page: name, expiry, row count, preview,
// download links. A failing preview is told on the page.
func (s *Service) servePage(ctx *fasthttp.RequestCtx, l *link, id string) error {
	now := s.cfg.Now()
	d := pageData{
		Title:     l.name,
		Expires:   l.expires.UTC().Format(time.RFC3339),
		ExpiresIn: humanUntil(l.expires.Sub(now)),
		Snapshot:  l.isSnapshot,
		Created:   l.created.UTC().Format(time.RFC3339),
	}
	if d.Title == "" {
		d.Title = "Shared data"
	}
	base := s.urlOf(id)
	for _, f := range []query.Format{query.FormatCSV, query.FormatJSON, query.FormatNDJSON, query.FormatParquet} {
		d.Downloads = append(d.Downloads, download{Label: formatLabels[f], Href: base + "/data." + f.Ext()})
	}
	status := fasthttp.StatusOK
	if err := s.preview(l, &d); err != nil {
		switch {
		case errors.Is(err, query.ErrBusy):
			status = fasthttp.StatusServiceUnavailable
			d.Error = "Too many downloads of this data are running: reload in a moment."
		case errors.Is(err, query.ErrTimeout):
			status = fasthttp.StatusGatewayTimeout
			d.Error = "Reading this data took too long: try a download, or reload later."
		case errors.Is(err, ErrGone):
			status = fasthttp.StatusGone
			d.Error = ErrGone.Error()
		default:
			d.Error = "This data cannot be read now: ask the owner of the link to check it."
			// status stays 200: the page itself is fine; its downloads will say the same
		}
		s.log.Warn("share page: shared query failed", zap.String("tenant", l.tenant), zap.String("link_id", l.linkID),
			zap.Int("status", status), zap.Error(err))
	}
	var buf bytes.Buffer
	if err := pageTmpl.Execute(&buf, d); err != nil {
		return fmt.Errorf("render share page: %w", err)
	}
	setPublicHeaders(ctx)
	if status == fasthttp.StatusServiceUnavailable {
		ctx.Response.Header.Set("Retry-After", "1")
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("text/html; charset=utf-8")
	ctx.Response.Header.Set("Content-Security-Policy", pageCSP)
	ctx.SetBody(buf.Bytes())
	return nil
}

// WriteErrorPage answers err as a small HTML page with status, for the
// errors of HandlePage: people, not programs, open /share/{id}. The status
// is the caller's mapping of err (see errors.go); a 5xx shows no detail.
func WriteErrorPage(ctx *fasthttp.RequestCtx, status int, err error) {
	msg := err.Error()
	if status >= 500 {
		msg = "internal error"
	}
	var buf bytes.Buffer
	_ = errorTmpl.Execute(&buf, errorData{Status: status, Message: msg})
	setPublicHeaders(ctx)
	ctx.SetStatusCode(status)
	ctx.SetContentType("text/html; charset=utf-8")
	ctx.Response.Header.Set("Content-Security-Policy", pageCSP)
	ctx.SetBody(buf.Bytes())
}

// preview fills d's columns, first rows and row count.
func (s *Service) preview(l *link, d *pageData) error {
	n := s.cfg.PreviewRows
	var req query.Request
	if l.isSnapshot {
		path := s.snapshotPath(l)
		if path == "" {
			return ErrGone
		}
		req.SQL = "SELECT * FROM read_parquet(" + schema.QuoteString(path) + ") LIMIT " + strconv.Itoa(n+1)
		req.ScratchFile = path // the sandbox lets read_parquet read this one file
		d.Rows, d.RowsKnown = l.rows, true
	} else {
		var err error
		if req.Params, err = decodeParams(l.params); err != nil {
			return err
		}
		req.SQL = wrapLimit(l.sql, n+1)
	}
	err := s.readPreview(l.tenant, req, n, d)
	if err != nil {
		if l.isSnapshot && s.snapshotGone(l) {
			return ErrGone
		}
		return err
	}
	if l.isSnapshot {
		return nil
	}
	if !d.More {
		d.Rows, d.RowsKnown = int64(len(d.Preview)), true
		return nil
	}
	rows, err := s.engine.Rows(context.Background(), l.tenant, query.Request{SQL: wrapCount(l.sql), Params: req.Params})
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return errors.New("share preview: the count has no row")
	}
	count, ok := rows.Values()[0].(int64)
	if !ok {
		return fmt.Errorf("share preview: the count is a %T", rows.Values()[0])
	}
	d.Rows, d.RowsKnown = count, true
	return nil
}

// readPreview runs req and fills d's columns and its first n rows as
// text; More if there are more.
func (s *Service) readPreview(tenantID string, req query.Request, n int, d *pageData) error {
	rows, err := s.engine.Rows(context.Background(), tenantID, req)
	if err != nil {
		return err
	}
	defer rows.Close()
	for _, c := range rows.Columns() {
		d.Columns = append(d.Columns, c.Name)
	}
	var b []byte
	for rows.Next() {
		if len(d.Preview) == n {
			d.More = true
			break
		}
		row := make([]string, len(d.Columns))
		for i := range row {
			b = rows.AppendText(b[:0], i)
			row[i] = cut(string(b))
		}
		d.Preview = append(d.Preview, row)
	}
	return rows.Err()
}

// cut shortens a cell for display.
func cut(s string) string {
	if utf8.RuneCountInString(s) <= maxCellRunes {
		return s
	}
	r := []rune(s)
	return string(r[:maxCellRunes]) + "…"
}

// humanUntil writes a remaining time rounded: "7 days", "3 hours",
// "12 minutes", "a moment".
func humanUntil(d time.Duration) string {
	plural := func(n int64, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return strconv.FormatInt(n, 10) + " " + unit + "s"
	}
	round := func(unit time.Duration) int64 { return int64((d + unit/2) / unit) }
	switch {
	case d >= 48*time.Hour:
		return plural(round(24*time.Hour), "day")
	case d >= 2*time.Hour:
		return plural(round(time.Hour), "hour")
	case d >= time.Minute:
		return plural(round(time.Minute), "minute")
	}
	return "a moment"
}
