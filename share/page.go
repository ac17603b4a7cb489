package share

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"strconv"
	"strings"
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
// download links.
func (s *Service) servePage(ctx *fasthttp.RequestCtx, l *link, id string) {
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
		var re *runError
		if errors.As(err, &re) {
			status = re.status
		} else {
			status = StatusOf(err)
		}
		s.log.Warn("share page: shared query failed", zap.String("tenant", l.tenant), zap.String("link_id", l.linkID),
			zap.Int("status", status), zap.Error(err))
		switch status {
		case fasthttp.StatusServiceUnavailable:
			d.Error = "Too many downloads of this data are running: reload in a moment."
			ctx.Response.Header.Set("Retry-After", "1")
		case fasthttp.StatusGatewayTimeout:
			d.Error = "Reading this data took too long: try a download, or reload later."
		case fasthttp.StatusGone:
			d.Error = ErrGone.Error()
		default:
			d.Error = "This data cannot be read now: ask the owner of the link to check it."
			status = fasthttp.StatusOK // the page itself is fine; its downloads will say the same
		}
	}
	var buf bytes.Buffer
	if err := pageTmpl.Execute(&buf, d); err != nil {
		s.writeError(ctx, fmt.Errorf("render share page: %w", err))
		return
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("text/html; charset=utf-8")
	ctx.Response.Header.Set("Content-Security-Policy", pageCSP)
	ctx.SetBody(buf.Bytes())
}

// writeErrorPage answers err as a small HTML page with its status.
func (s *Service) writeErrorPage(ctx *fasthttp.RequestCtx, err error) {
	status := StatusOf(err)
	msg := err.Error()
	if status == fasthttp.StatusInternalServerError {
		s.log.Warn("share page failed", zap.Error(err))
		msg = "internal error"
	}
	var buf bytes.Buffer
	_ = errorTmpl.Execute(&buf, errorData{Status: status, Message: msg})
	ctx.SetStatusCode(status)
	ctx.SetContentType("text/html; charset=utf-8")
	ctx.Response.Header.Set("Content-Security-Policy", pageCSP)
	ctx.SetBody(buf.Bytes())
}

// preview fills d's row count and first rows.
func (s *Service) preview(l *link, d *pageData) error {
	n := s.cfg.PreviewRows
	var sql string
	var params []any
	if l.isSnapshot {
		path := s.snapshotPath(l)
		if path == "" {
			return ErrGone
		}
		sql = "SELECT * FROM read_parquet(" + schema.QuoteString(path) + ") LIMIT " + strconv.Itoa(n+1)
		d.Rows, d.RowsKnown = l.rows, true
	} else {
		var err error
		if params, err = decodeParams(l.params); err != nil {
			return err
		}
		sql = wrapLimit(l.sql, n+1)
	}
	recs, err := s.runSmall(l.tenant, query.Request{SQL: sql, Params: params})
	if err != nil {
		if l.isSnapshot && s.snapshotGone(l) {
			return ErrGone
		}
		return err
	}
	if len(recs) == 0 {
		return errors.New("share preview: no CSV header")
	}
	d.Columns = recs[0]
	rows := recs[1:]
	if len(rows) > n {
		rows, d.More = rows[:n], true
	}
	for _, r := range rows {
		for i, c := range r {
			r[i] = cut(c)
		}
	}
	d.Preview = rows
	if !l.isSnapshot {
		if !d.More {
			d.Rows, d.RowsKnown = int64(len(rows)), true
			return nil
		}
		recs, err := s.runSmall(l.tenant, query.Request{SQL: wrapCount(l.sql), Params: params})
		if err != nil {
			return err
		}
		if len(recs) != 2 || len(recs[1]) != 1 {
			return errors.New("share preview: bad count result")
		}
		if d.Rows, err = strconv.ParseInt(recs[1][0], 10, 64); err != nil {
			return fmt.Errorf("share preview: bad count %q", recs[1][0])
		}
		d.RowsKnown = true
	}
	return nil
}

// runError is an engine's error answer to runSmall.
type runError struct {
	status int
	msg    string
}

func (e *runError) Error() string { return e.msg }

// runSmall runs a small query (a preview, a count) through the engine, as
// a download would, and returns its CSV records, the header first.
func (s *Service) runSmall(tenantID string, req query.Request) ([][]string, error) {
	var rc fasthttp.RequestCtx
	req.Format = query.FormatCSV
	s.engine.Stream(&rc, tenantID, req, "")
	resp := &rc.Response
	defer func() { _ = resp.CloseBodyStream() }()
	if st := resp.StatusCode(); st != fasthttp.StatusOK {
		var body struct {
			Error string `json:"error"`
		}
		_ = decodeJSONBody(resp.Body(), &body)
		return nil, &runError{status: st, msg: body.Error}
	}
	r := csv.NewReader(resp.BodyStream())
	r.FieldsPerRecord = -1 // an "#error: ..." line ends a failed result
	var recs [][]string
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return recs, nil
		}
		if err != nil {
			return nil, &runError{status: fasthttp.StatusInternalServerError, msg: err.Error()}
		}
		if len(rec) >= 1 && strings.HasPrefix(rec[0], "#error: ") && len(recs) > 0 && len(rec) != len(recs[0]) {
			return nil, &runError{status: fasthttp.StatusInternalServerError, msg: rec[0]}
		}
		recs = append(recs, rec)
	}
}

func decodeJSONBody(b []byte, v any) error {
	return json.Unmarshal(b, v)
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
