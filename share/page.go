package share

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
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
	Title       string
	Expires     string // RFC 3339
	ExpiresText string // "2026-12-07 12:00 UTC", until the script shows local time
	ExpiresIn   string // "6 days", "3 hours"
	Snapshot    bool
	Created     string // RFC 3339
	CreatedText string
	Rows        int64
	RowsKnown   bool
	Columns     []string
	Preview     [][]string
	More        bool // the result has more rows than the preview
	Error       string
	Downloads   []download
	Chart       *chartData // nil: no date or time column with numbers (chart.go)
}

type download struct {
	Label string
	Href  string
}

var formatLabels = map[query.Format]string{
	query.FormatCSV: "CSV", query.FormatJSON: "JSON", query.FormatNDJSON: "NDJSON", query.FormatParquet: "Parquet",
}

// errorData is what the error page shows: what happened and what to do.
type errorData struct {
	Status int
	Kind   string // unknown, expired, revoked, suspended, error
	Title  string
	What   string
	ToDo   string
	When   string // RFC 3339: when the link expired or was revoked; "" if not told
}

// pageStyle is the style of the page and the error pages: system fonts, a
// table that scrolls inside its own box, nothing wider than a phone.
const pageStyle = `*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:1.5rem 1rem 3rem}
h1{font-size:1.5rem;line-height:1.25;margin:0 0 .4rem;overflow-wrap:anywhere}
.meta{color:#5b6474;margin:0 0 1rem}
.meta time{white-space:nowrap}
.downloads{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center;margin:0 0 1rem}
.downloads a{display:inline-block;padding:.45rem .9rem;border-radius:8px;background:#1f6feb;color:#fff;text-decoration:none;font-weight:600;font-size:.95rem}
.downloads a:hover{background:#1858bd}
.downloads span{color:#5b6474;margin-right:.25rem}
.rows{margin:0 0 .5rem;color:#5b6474}
.scroll{overflow:auto;max-height:70vh;background:#fff;border:1px solid #e3e6ec;border-radius:10px;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;font-size:.9rem;min-width:100%}
th,td{padding:.4rem .7rem;text-align:left;vertical-align:top;border-bottom:1px solid #eceff3;white-space:nowrap;max-width:28rem;overflow:hidden;text-overflow:ellipsis}
th{position:sticky;top:0;background:#f3f5f8;font-weight:600}
tbody tr:nth-child(even) td{background:#fafbfc}
.error{color:#b42318;background:#fff;border:1px solid #f3c5c0;border-radius:10px;padding:.75rem 1rem}
.card{max-width:560px;margin:12vh auto 0;background:#fff;border:1px solid #e3e6ec;border-radius:12px;padding:1.5rem}
.card h1{margin-bottom:.75rem}
.card p{margin:.5rem 0}
.card .todo{font-weight:600}
.card .code{color:#8a93a3;font-size:.85rem;margin-top:1.25rem}
footer{color:#8a93a3;font-size:.8rem;margin-top:1.5rem}
.chart{margin:0 0 1rem;background:#fff;border:1px solid #e3e6ec;border-radius:10px;padding:.6rem .75rem}
.chart figcaption{display:flex;flex-wrap:wrap;gap:.25rem .9rem;font-size:.85rem;color:#5b6474}
.chart .key{font-weight:600}
.chart .key::before{content:"";display:inline-block;width:.8rem;height:.2rem;margin-right:.3rem;vertical-align:middle;background:currentColor}
.chart svg{display:block;width:100%;height:160px;margin:.4rem 0 .1rem}
.chart polyline{stroke-width:2;vector-effect:non-scaling-stroke;stroke-linejoin:round}
.chart .axis{stroke:#e3e6ec;stroke-width:1;vector-effect:non-scaling-stroke}
.chart .range{display:flex;justify-content:space-between;font-size:.8rem;color:#8a93a3}
.s0{color:#1f6feb;stroke:#1f6feb}.s1{color:#d97706;stroke:#d97706}.s2{color:#7c3aed;stroke:#7c3aed}.s3{color:#0e9f6e;stroke:#0e9f6e}
@media (max-width:600px){main{padding:1rem .75rem 2rem}h1{font-size:1.3rem}}`

// localTimeScript rewrites every <time data-local> into the reader's local
// time and the relative time ("in 6 days"); without it the page shows the
// UTC time the server wrote. It is the pages' only script, allowed by its
// hash in their Content-Security-Policy.
const localTimeScript = `(function(){var rtf=window.Intl&&Intl.RelativeTimeFormat?new Intl.RelativeTimeFormat(undefined,{numeric:"auto"}):null;` +
	`var u=[["year",31536e6],["month",2592e6],["day",864e5],["hour",36e5],["minute",6e4]];` +
	`document.querySelectorAll("time[data-local]").forEach(function(t){var d=new Date(t.getAttribute("datetime"));if(isNaN(d))return;` +
	`t.textContent=d.toLocaleString(undefined,{dateStyle:"medium",timeStyle:"short"});t.title=t.getAttribute("datetime");` +
	`var r=document.getElementById(t.getAttribute("data-local"));if(!r||!rtf)return;var ms=d-Date.now();` +
	`for(var i=0;i<u.length;i++){if(Math.abs(ms)>=u[i][1]||i==u.length-1){r.textContent=rtf.format(Math.round(ms/u[i][1]),u[i][0]);break}}});})();`

var pageTmpl = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<title>{{.Title}}</title>
<style>` + pageStyle + `</style>
</head>
<body>
<main>
<h1>{{.Title}}</h1>
<p class="meta">{{if .Snapshot}}A snapshot taken <time datetime="{{.Created}}" data-local="">{{.CreatedText}}</time>.{{else}}Live data: each download runs the query now.{{end}}
This link expires <time datetime="{{.Expires}}" data-local="expires-in">{{.ExpiresText}}</time> (<span id="expires-in">in {{.ExpiresIn}}</span>).</p>
<p class="downloads"><span>Download</span>
{{range .Downloads}}<a href="{{.Href}}" download>{{.Label}}</a>
{{end}}</p>
{{if .Error}}<p class="error">{{.Error}}</p>{{else}}{{with .Chart}}
<figure class="chart">
<figcaption>{{range .Series}}<span class="key {{.Class}}">{{.Name}}</span>{{end}}<span class="by">by {{.XName}}{{if .Summed}}, summed{{end}}, over the {{.Rows}} rows below; max {{.Max}}</span></figcaption>
<svg viewBox="0 0 640 200" preserveAspectRatio="none" role="img" aria-label="Line chart of{{range .Series}} {{.Name}}{{end}} by {{.XName}}">
<line class="axis" x1="0" x2="640" y1="178" y2="178"></line>
{{range .Series}}<polyline class="{{.Class}}" fill="none" points="{{.Points}}"></polyline>
{{end}}</svg>
<div class="range"><span>{{.From}}</span><span>{{.To}}</span></div>
</figure>{{end}}
<p class="rows">{{if .RowsKnown}}{{.Rows}} row{{if ne .Rows 1}}s{{end}}{{end}}{{if .More}}; the first {{len .Preview}} are shown{{end}}.</p>
<div class="scroll">
<table>
<thead><tr>{{range .Columns}}<th>{{.}}</th>{{end}}</tr></thead>
<tbody>
{{range .Preview}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</tbody>
</table>
</div>{{end}}
</main>
<script>` + localTimeScript + `</script>
</body>
</html>
`))

var errorTmpl = template.Must(template.New("error").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<title>{{.Title}}</title>
<style>` + pageStyle + `</style>
</head>
<body>
<main>
<div class="card {{.Kind}}">
<h1>{{.Title}}</h1>
<p>{{.What}}{{if .When}} <time datetime="{{.When}}" data-local="">{{.When}}</time>.{{end}}</p>
<p class="todo">{{.ToDo}}</p>
<p class="code">Error {{.Status}}</p>
</div>
</main>
<script>` + localTimeScript + `</script>
</body>
</html>
`))

// pageCSP allows the pages nothing but their own inline style and their one
// inline script, by its hash.
var pageCSP = func() string {
	h := sha256.Sum256([]byte(localTimeScript))
	return "default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-" + base64.StdEncoding.EncodeToString(h[:]) +
		"'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}()

// servePage renders the link's page: name, expiry, row count, preview,
// download links. A failing preview is told on the page.
func (s *Service) servePage(ctx *fasthttp.RequestCtx, l *link, id string) error {
	now := s.cfg.Now()
	d := pageData{
		Title:       l.name,
		Expires:     l.expires.UTC().Format(time.RFC3339),
		ExpiresText: l.expires.UTC().Format(textTime),
		ExpiresIn:   humanUntil(l.expires.Sub(now)),
		Snapshot:    l.isSnapshot,
		Created:     l.created.UTC().Format(time.RFC3339),
		CreatedText: l.created.UTC().Format(textTime),
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

// textTime is how a time reads before the page's script rewrites it in
// the reader's zone.
const textTime = "2 Jan 2006 15:04 UTC"

// WriteErrorPage answers err as a styled HTML page with status, for the
// errors of HandlePage: people, not programs, open /share/{id}. The status
// is the caller's mapping of err (see errors.go); a 5xx shows no detail.
// The page says what happened and what to do; ErrGone is told as one
// (see Service.WritePageError to tell expired and revoked apart).
func WriteErrorPage(ctx *fasthttp.RequestCtx, status int, err error) {
	writeErrorPage(ctx, status, errorPageOf(status, err))
}

// WritePageError is WriteErrorPage for the link of id: a link that is gone
// is told as expired (and since when) or as revoked.
func (s *Service) WritePageError(ctx *fasthttp.RequestCtx, id string, status int, err error) {
	d := errorPageOf(status, err)
	if errors.Is(err, ErrGone) && validID(id) {
		s.mu.Lock()
		l := s.byHash[sha256.Sum256([]byte(id))]
		var revoked, expires time.Time
		if l != nil {
			revoked, expires = l.revoked, l.expires
		}
		s.mu.Unlock()
		switch {
		case l == nil:
		case !revoked.IsZero():
			d = revokedPage(status, revoked)
		default:
			d = expiredPage(status, expires)
		}
	}
	writeErrorPage(ctx, status, d)
}

const askSender = "Ask the person who sent you this link for a new one."

func revokedPage(status int, at time.Time) errorData {
	d := errorData{Status: status, Kind: "revoked", Title: "This link was revoked",
		What: "Its owner turned this share link off, so its data is no longer shown here.", ToDo: askSender}
	if !at.IsZero() {
		d.What, d.When = "Its owner turned this share link off on", at.UTC().Format(time.RFC3339)
	}
	return d
}

func expiredPage(status int, at time.Time) errorData {
	d := errorData{Status: status, Kind: "expired", Title: "This link has expired",
		What: "Share links work for a limited time, and this one has run out.", ToDo: askSender}
	if !at.IsZero() {
		d.What, d.When = "Share links work for a limited time; this one stopped working on", at.UTC().Format(time.RFC3339)
	}
	return d
}

// errorPageOf is what the error page of err says.
func errorPageOf(status int, err error) errorData {
	switch {
	case status >= 500:
		return errorData{Status: status, Kind: "error", Title: "Something went wrong",
			What: "The shared data cannot be shown right now.", ToDo: "Reload the page in a minute. If it keeps failing, tell the person who sent you the link."}
	case errors.Is(err, ErrNotFound):
		return errorData{Status: status, Kind: "unknown", Title: "This link does not exist",
			What: "No shared data has this address. The link may be incomplete (check that you copied all of it), or it was removed.",
			ToDo: askSender}
	case errors.Is(err, ErrGone):
		return errorData{Status: status, Kind: "expired", Title: "This link has expired or was revoked",
			What: "Its data is no longer shown here.", ToDo: askSender}
	case errors.Is(err, ErrSuspended):
		return errorData{Status: status, Kind: "suspended", Title: "This link is paused",
			What: "The account that shared this data is suspended. The link works again once the account is resumed.",
			ToDo: "Ask the person who sent you this link when it will be back, or for the data another way."}
	}
	return errorData{Status: status, Kind: "error", Title: "This link cannot be opened", What: err.Error(), ToDo: askSender}
}

func writeErrorPage(ctx *fasthttp.RequestCtx, status int, d errorData) {
	var buf bytes.Buffer
	_ = errorTmpl.Execute(&buf, d)
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
	var types []string
	for _, c := range rows.Columns() {
		d.Columns = append(d.Columns, c.Name)
		types = append(types, c.Type)
	}
	chart := newChartBuilder(types)
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
		if chart != nil {
			chart.add(rows.Values())
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	d.Chart = chart.build(d.Columns)
	return nil
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
