package admin

import (
	"embed"
	"path"

	"github.com/valyala/fasthttp"
)

// ui is the dashboard: one HTML page, its script and its style sheet. It
// loads nothing from elsewhere, so it works offline.
//
//go:embed ui/index.html ui/app.js ui/app.css
var ui embed.FS

// uiCSP lets the dashboard load its own script and style sheet and call
// its own origin, nothing else: no inline script, no other host.
const uiCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

var uiTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
}

// ServeUI answers GET /admin/ (name "") and the dashboard's assets
// /admin/assets/{app.js,app.css} (name "app.js", "app.css"). It reports
// false, writing nothing, for any other name. No session is needed: the
// files hold no data; the page signs in before it asks for any.
func ServeUI(ctx *fasthttp.RequestCtx, name string) bool {
	switch name {
	case "":
		name = "index.html"
	case "app.js", "app.css":
	default:
		return false
	}
	b, err := ui.ReadFile("ui/" + name)
	if err != nil {
		return false
	}
	h := &ctx.Response.Header
	h.Set("Content-Security-Policy", uiCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-cache")
	ctx.SetContentType(uiTypes[path.Ext(name)])
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetBody(b)
	return true
}
