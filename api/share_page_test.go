package api

import (
	"crypto/sha256"
	"encoding/base64"
	"regexp"
	"strings"
	"testing"
	"time"

	"duckgate/tenant"
)

// inlineScriptsAllowed checks that every inline script of page is allowed
// by its CSP's hash, and that the CSP allows no other script.
func inlineScriptsAllowed(t *testing.T, r response) {
	t.Helper()
	csp := r.header["Content-Security-Policy"]
	scripts := regexp.MustCompile(`(?s)<script>(.*?)</script>`).FindAllStringSubmatch(string(r.body), -1)
	if len(scripts) == 0 {
		t.Fatalf("no inline script in\n%s", r.body)
	}
	for _, s := range scripts {
		h := sha256.Sum256([]byte(s[1]))
		if !strings.Contains(csp, "script-src 'sha256-"+base64.StdEncoding.EncodeToString(h[:])+"';") {
			t.Fatalf("CSP %q does not allow the inline script %q", csp, s[1])
		}
	}
	_, scriptSrc, _ := strings.Cut(csp, "script-src ")
	scriptSrc, _, _ = strings.Cut(scriptSrc, ";")
	if strings.Count(scriptSrc, "'") != 2 || !strings.Contains(csp, "default-src 'none'") { // one hash, nothing else

		t.Fatalf("CSP too wide: %q", csp)
	}
}

func TestSharePageReadsWell(t *testing.T) {
	clock := newFakeClock()
	e := newEnv(t, withShare(clock))
	_, key := e.tenant("a")
	wantStatus(t, e.insert(key, "events", `[{"id":1,"name":"ann"},{"id":2,"name":"bob"}]`), 200, "insert")
	c := e.shareLink(key, map[string]any{"query": "SELECT id, name FROM events ORDER BY id", "duration": 6 * 86400, "name": "Report"})
	r := e.do("GET", c.URL, nil)
	wantStatus(t, r, 200, "page")
	page := string(r.body)
	// Downloads come before the table; the table scrolls in its own box;
	// the expiry is machine-readable for the script, readable without it.
	dl, tbl := strings.Index(page, `class="downloads"`), strings.Index(page, "<table>")
	if dl < 0 || tbl < 0 || dl > tbl {
		t.Fatalf("downloads at %d, table at %d", dl, tbl)
	}
	exp := c.ExpiresAt.UTC()
	for _, w := range []string{`<div class="scroll">`, `<time datetime="` + exp.Format(time.RFC3339) + `" data-local="expires-in">` + exp.Format("2 Jan 2006 15:04 UTC") + `</time>`,
		"in 6 days", `name="viewport"`} {
		if !strings.Contains(page, w) {
			t.Fatalf("page lacks %q:\n%s", w, page)
		}
	}
	inlineScriptsAllowed(t, r)
}

func TestShareErrorPagesTellWhatHappened(t *testing.T) {
	clock := newFakeClock()
	e := newEnv(t, withShare(clock))
	id, key := e.tenant("a")
	wantStatus(t, e.insert(key, "events", `{"id":1}`), 200, "insert")
	q := map[string]any{"query": "SELECT * FROM events", "duration": 60}
	revoked, expired, suspended := e.shareLink(key, q), e.shareLink(key, q), e.shareLink(key, q)
	wantStatus(t, e.do("DELETE", "/api/data/query/share/"+revoked.LinkID, nil, "X-API-KEY", key), 200, "revoke")
	f := func(url string, status int, want ...string) {
		t.Helper()
		r := e.do("GET", url, nil)
		wantStatus(t, r, status, url)
		page := string(r.body)
		if !strings.HasPrefix(r.header["Content-Type"], "text/html") || !strings.Contains(page, "Ask the person who sent you this link") {
			t.Fatalf("%s: %s\n%s", url, r.header["Content-Type"], page)
		}
		for _, w := range want {
			if !strings.Contains(page, w) {
				t.Fatalf("%s lacks %q:\n%s", url, w, page)
			}
		}
		inlineScriptsAllowed(t, r)
	}
	f("/share/"+strings.Repeat("A", 32), 404, "This link does not exist")
	f(revoked.URL, 410, "This link was revoked", "turned this share link off")
	if _, err := e.tenants.SetStatus(id, tenant.StatusSuspended); err != nil {
		t.Fatal(err)
	}
	f(suspended.URL, 403, "This link is paused", "suspended")
	if _, err := e.tenants.SetStatus(id, tenant.StatusActive); err != nil {
		t.Fatal(err)
	}
	clock.add(61 * time.Second)
	f(expired.URL, 410, "This link has expired", `<time datetime="`+expired.ExpiresAt.UTC().Format(time.RFC3339)+`"`)
	// A revoked link that has also expired is told as revoked.
	f(revoked.URL, 410, "This link was revoked")
}

func TestSharePageChartsDatesAndNumbers(t *testing.T) {
	e := newEnv(t, withShare(newFakeClock()))
	_, key := e.tenant("a")
	wantStatus(t, e.insert(key, "sales", `[{"day":"2026-11-01","n":3,"city":"x"},{"day":"2026-11-02","n":5,"city":"y"},{"day":"2026-11-02","n":1,"city":"z"}]`), 200, "insert")
	page := func(q string) string {
		t.Helper()
		c := e.shareLink(key, map[string]any{"query": q})
		r := e.do("GET", c.URL, nil)
		wantStatus(t, r, 200, q)
		return string(r.body)
	}
	p := page("SELECT CAST(day AS DATE) AS day, n, city FROM sales ORDER BY day")
	chart, tbl := strings.Index(p, `<figure class="chart">`), strings.Index(p, "<table>")
	if chart < 0 || chart > tbl || strings.Count(p, "<polyline") != 1 || !strings.Contains(p, "by day, summed, over the 3 rows below; max 6") {
		t.Fatalf("chart at %d, table at %d:\n%s", chart, tbl, p)
	}
	for _, q := range []string{"SELECT day, n FROM sales", "SELECT CAST(day AS DATE) AS day, city FROM sales", "SELECT CAST(day AS DATE) AS day, n FROM sales LIMIT 1"} {
		if p := page(q); strings.Contains(p, "<svg") {
			t.Fatalf("%s: a chart without a date and numbers, or of one point:\n%s", q, p)
		}
	}
}
