package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"duckgate/admin"
	"duckgate/tenant"
)

// findChromium is the browser the browser tests drive: $DUCKGATE_CHROMIUM,
// or Debian's chromium (.ci/run installs it), or another Chrome on PATH.
func findChromium() string {
	if p := os.Getenv("DUCKGATE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// tab is one browser tab of the browser tests.
type tab struct {
	t    *testing.T
	ctx  context.Context
	base string // http://127.0.0.1:port
}

// do runs steps, failing the test on an error or after a minute.
func (b *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatal(err)
	}
}

// run runs one action that returns a value.
func run[T any](b *tab, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatal(err)
	}
	return v
}

// eval evaluates js in the page, awaiting a promise.
func eval[T any](b *tab, js string) T {
	b.t.Helper()
	return run(b, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
}

// poll waits until js is truthy in the page.
func (b *tab) poll(js string) {
	b.t.Helper()
	b.do(chromedp.Poll[chromedp.Void](js, chromedp.WithPollingTimeout(30*time.Second)))
}

// screenshot saves the viewport as name.png in $DUCKGATE_SCREENSHOTS, if
// set: the README's pictures are taken this way.
func (b *tab) screenshot(name string) {
	b.t.Helper()
	dir := os.Getenv("DUCKGATE_SCREENSHOTS")
	if dir == "" {
		return
	}
	png := run(b, chromedp.CaptureScreenshot())
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// pageWidths is what a page measures of its own width.
type pageWidths struct {
	Page     int  `json:"page"`     // document.documentElement.scrollWidth
	Viewport int  `json:"viewport"` // window.innerWidth
	Box      int  `json:"box"`      // the table box's scrollWidth
	BoxShown int  `json:"boxShown"` // and its clientWidth
	Above    bool `json:"above"`    // the downloads are above the table
}

const measureJS = `(() => {
	const box = document.querySelector('.scroll'), dl = document.querySelector('.downloads');
	return {page: document.documentElement.scrollWidth, viewport: window.innerWidth,
		box: box ? box.scrollWidth : 0, boxShown: box ? box.clientWidth : 0,
		above: !!(box && dl && dl.getBoundingClientRect().bottom <= box.getBoundingClientRect().top)};
})()`

// TestBrowser drives the dashboard and the share page in headless Chromium:
// one browser, one tab, subtests in order (each builds on the last).
func TestBrowser(t *testing.T) {
	chromium := findChromium()
	if chromium == "" {
		t.Skip("chromium not found: install Debian's chromium (apt-get install chromium; .ci/run does) or set DUCKGATE_CHROMIUM to run the browser tests")
	}
	clock := newFakeClock()
	e := newEnv(t, withShare(clock), func(c *envConfig) { c.ingest.HistoryInterval = 100 * time.Millisecond })
	base, _ := e.listenTCP()

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("disable-gpu", true), chromedp.WindowSize(1280, 800))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	if err := chromedp.Do(bctx); err != nil { // starts the browser; no timeout on this first call
		t.Fatalf("start %s: %v", chromium, err)
	}
	b := &tab{t: t, ctx: bctx, base: base}
	sub := func(name string, f func()) {
		t.Run(name, func(st *testing.T) {
			b.t = st
			defer func() { b.t = t }()
			f()
		})
		if t.Failed() {
			t.FailNow() // the next steps build on this one
		}
	}
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	status := func(js string) int { b.t.Helper(); return eval[int](b, js) }

	_, tenantKey := e.tenant("demo")
	tenantsNow := func() int { return len(e.tenants.List()) }

	sub("wrong key and tenant key cannot sign in", func() {
		b.do(chromedp.Navigate(base+"/admin/"), chromedp.WaitVisible(css("#key")))
		for _, key := range []string{"wrong-key", tenantKey} {
			b.do(chromedp.Evaluate[chromedp.Void](`document.getElementById('signin-error').textContent = ''`),
				chromedp.SendKeys(css("#key"), key), chromedp.Click(css("#signin-form button[type=submit]")))
			b.poll(`document.getElementById('signin-error').textContent !== ''`)
			if got := status(`fetch('/admin/session').then(r => r.status)`); got != 401 {
				b.t.Fatalf("after a refused sign-in, /admin/session answers %d", got)
			}
			if !eval[bool](b, `document.getElementById('tenants').hidden`) {
				b.t.Fatal("the tenants list shows after a refused sign-in")
			}
		}
	})

	sub("sign in", func() {
		b.do(chromedp.SendKeys(css("#key"), testAdminKey), chromedp.Click(css("#signin-form button[type=submit]")),
			chromedp.WaitVisible(css("#tenant-table")))
		b.poll(`document.querySelector('#tenant-table tbody tr[data-tenant]')`)
		// The key is in no URL, no storage, no script-readable cookie.
		seen := eval[string](b, `location.href + JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie + document.getElementById('key').value`)
		if strings.Contains(seen, testAdminKey) || strings.Contains(seen, "duckgate_admin") {
			b.t.Fatalf("the key or the session is readable by the page: %s", seen)
		}
	})

	var acmeID, acmeKey string
	sub("create a tenant and see it listed", func() {
		n := tenantsNow()
		b.do(chromedp.SendKeys(css("#new-name"), "acme"), chromedp.Click(css("#create-form button[type=submit]")),
			chromedp.WaitVisible(css("#created")))
		acmeKey = run(b, chromedp.Text(css("#created-key")))
		b.poll(`[...document.querySelectorAll('#tenant-table tbody tr')].some(r => r.textContent.includes('acme'))`)
		if tenantsNow() != n+1 {
			b.t.Fatalf("%d tenants, want %d", tenantsNow(), n+1)
		}
		tn, _, err := e.tenants.Authenticate([]byte(acmeKey))
		if err != nil || tn.Name != "acme" {
			b.t.Fatalf("the key shown (%q) is not acme's: %v", acmeKey, err)
		}
		acmeID = tn.ID
		wantStatus(b.t, e.insert(acmeKey, "orders", `[{"id":1,"city":"Lisbon","total":12.5},{"id":2,"city":"Osaka","total":40}]`), 200, "insert")
	})

	openTenant := func(id, name string) {
		b.t.Helper()
		b.do(chromedp.Evaluate[chromedp.Void](`location.hash = '#/t/` + id + `'`))
		b.poll(`!document.getElementById('tenant').hidden && document.getElementById('t-name').textContent === '` + name + `'`)
	}

	sub("tables, columns and types", func() {
		openTenant(acmeID, "acme")
		b.poll(`document.querySelector('details[data-table="orders"]')`)
		text := run(b, chromedp.TextContent(css(`details[data-table="orders"]`)))
		for _, w := range []string{"2 rows", "city", "VARCHAR", "total", "DOUBLE"} {
			if !strings.Contains(text, w) {
				b.t.Fatalf("the orders table lacks %q: %s", w, text)
			}
		}
	})

	sub("create and revoke a key", func() {
		before, _ := e.tenants.Keys(acmeID)
		b.do(chromedp.SetValue(css("#key-scope"), "ingest"), chromedp.Click(css("#key-form button[type=submit]")),
			chromedp.WaitVisible(css("#key-created")))
		newKey := run(b, chromedp.Text(css("#key-created-key")))
		after, _ := e.tenants.Keys(acmeID)
		if len(after) != len(before)+1 {
			b.t.Fatalf("%d keys, want %d", len(after), len(before)+1)
		}
		_, k, err := e.tenants.Authenticate([]byte(newKey))
		if err != nil || k.Scope != tenant.ScopeIngest {
			b.t.Fatalf("the key shown is not a new ingest key: %+v %v", k, err)
		}
		wantStatus(b.t, e.insert(newKey, "orders", `{"id":3}`), 200, "insert with the new key")
		row := `tr[data-key="` + k.ID + `"]`
		b.poll(`document.querySelector('` + row + `')`)
		b.do(chromedp.Click(css(row + " button.revoke")))
		b.poll(`document.querySelector('` + row + ` button.armed')`)
		b.do(chromedp.Click(css(row + " button.revoke")))
		b.poll(`!document.querySelector('` + row + `')`)
		wantStatus(b.t, e.insert(newKey, "orders", `{"id":4}`), 401, "insert with the revoked key")
	})

	sub("change plan, suspend and resume", func() {
		b.do(chromedp.SetValue(css("#t-plan"), "pro"), chromedp.Click(css("#plan-form button[type=submit]")))
		b.poll(`document.getElementById('flash').textContent.includes('pro')`)
		if tn, _ := e.tenants.Get(acmeID); tn.Plan != "pro" {
			b.t.Fatalf("plan %q, want pro", tn.Plan)
		}
		b.do(chromedp.Click(css("#t-suspend")))
		b.poll(`document.getElementById('t-status').textContent === 'suspended'`)
		if tn, _ := e.tenants.Get(acmeID); tn.Status != tenant.StatusSuspended {
			b.t.Fatalf("status %q after suspend", tn.Status)
		}
		wantStatus(b.t, e.insert(acmeKey, "orders", `{"id":5}`), 403, "insert while suspended")
		b.do(chromedp.Click(css("#t-suspend")))
		b.poll(`document.getElementById('t-status').textContent === 'active'`)
		wantStatus(b.t, e.insert(acmeKey, "orders", `{"id":5}`), 200, "insert after resume")
	})

	sub("without the session or with a forged CSRF token nothing changes", func() {
		n := tenantsNow()
		post := `fetch('/admin/api/tenants', {method: 'POST', headers: %s, body: '{"name":"evil"}'}).then(r => r.status)`
		if got := status(fmt.Sprintf(post, `{'Content-Type': 'application/json', 'X-CSRF-Token': 'forged'}`)); got != 403 {
			b.t.Fatalf("forged token: %d", got)
		}
		if got := status(fmt.Sprintf(post, `{'Content-Type': 'application/json'}`)); got != 403 {
			b.t.Fatalf("no token: %d", got)
		}
		if got := status(`fetch('/admin/api/tenants/` + acmeID + `/suspend', {method: 'POST', credentials: 'omit'}).then(r => r.status)`); got != 401 {
			b.t.Fatalf("no cookie: %d", got)
		}
		// Another site's page posts a form to the dashboard API: SameSite=Strict
		// keeps the cookie off it, and it has no token anyway.
		evil := serveEvil(b.t, `<form id="f" method="POST" enctype="text/plain" action="`+base+`/admin/api/tenants">`+
			`<input name='{"name":"evil","x":"' value='"}'></form><script>document.getElementById('f').submit()</script>`)
		b.do(chromedp.Navigate(evil))
		b.poll(`location.href.startsWith('` + base + `/admin/api/tenants') && document.body && document.body.textContent.includes('error')`)
		if body := eval[string](b, `document.body.textContent`); !strings.Contains(body, "not signed in") {
			b.t.Fatalf("the cross-site form was answered %s; want the no-session refusal", body)
		}
		if tenantsNow() != n {
			b.t.Fatalf("%d tenants, want %d", tenantsNow(), n)
		}
		if tn, _ := e.tenants.Get(acmeID); tn.Status != tenant.StatusActive {
			b.t.Fatalf("acme is %s", tn.Status)
		}
		b.do(chromedp.Navigate(base+"/admin/"), chromedp.WaitVisible(css("#tenant-table")))
	})

	sub("the tenant list shows each tenant's rate and quarantined rows; a tenant's page its schema changes", func() {
		// Wait until the sampler has a rate point for acme (one every 12
		// node samples), then load the list.
		for deadline := time.Now().Add(20 * time.Second); ; {
			wantStatus(b.t, e.insert(acmeKey, "orders", `{"id":6}`), 200, "insert")
			r := e.admin("GET", "/api/admin/tenants/"+acmeID, "")
			if strings.Contains(string(r.body), `"rows_per_s":[`) && !strings.Contains(string(r.body), `"rows_per_s":[]`) {
				break
			}
			if time.Now().After(deadline) {
				b.t.Fatalf("no rate point for acme: %s", r.body)
			}
			_ = e.batcher.Flush(b.t.Context(), acmeID) // each round commits, as the page will show
		}
		b.do(chromedp.Navigate(base+"/admin/"), chromedp.WaitVisible(css("#tenant-table")))
		b.poll(`document.querySelectorAll('#tenant-table thead th').length === 9 && ` +
			`!!document.querySelector('#tenant-table tr[data-tenant="` + acmeID + `"] svg.spark polyline')`)
		b.do(chromedp.Navigate(base + "/admin/#/t/" + acmeID))
		b.poll(`document.querySelector('#schema-table tbody').textContent.includes('CREATE TABLE')`)
	})

	sub("delete a tenant with a typed confirmation", func() {
		doomed, _, _, err := e.tenants.CreateTenant("doomed", "")
		if err != nil {
			b.t.Fatal(err)
		}
		openTenant(doomed.ID, "doomed")
		b.do(chromedp.Click(css("#t-delete")), chromedp.WaitVisible(css("#delete-box")), chromedp.SendKeys(css("#delete-confirm"), "doomed"))
		if !eval[bool](b, `document.getElementById('delete-go').disabled`) {
			b.t.Fatal("delete is enabled before the id is typed")
		}
		b.do(chromedp.Evaluate[chromedp.Void](`document.getElementById('delete-confirm').value = ''`), chromedp.SendKeys(css("#delete-confirm"), doomed.ID))
		b.poll(`!document.getElementById('delete-go').disabled`)
		b.do(chromedp.Click(css("#delete-go")))
		b.poll(`location.hash === '#/' && !document.getElementById('tenants').hidden`)
		if _, err := e.tenants.Get(doomed.ID); !errors.Is(err, tenant.ErrNotFound) {
			b.t.Fatalf("doomed still there: %v", err)
		}
	})

	// A second tenant with data, for the list (and the README's picture).
	globex, _, gkey, err := e.tenants.CreateTenant("globex", "enterprise")
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, e.insert(gkey, "pageviews", strings.Repeat(`{"path":"/","ms":12}`+"\n", 250)), 200, "insert")
	wantStatus(t, e.insert(gkey, "signups", `{"plan":"team","seats":5}`), 200, "insert")

	sub("the node's charts show the rows stored", func() {
		// Insert until the history holds a dozen samples, some of them
		// with rows.
		for i := 0; ; i++ {
			wantStatus(b.t, e.insert(gkey, "pageviews", `[{"path":"/a","ms":3},{"path":"/b","ms":5},{"path":"/c","ms":8}]`), 200, "insert")
			v, _ := e.server.cfg.Admin.Node(nil)
			samples, rows := v.(admin.NodeHistory).Samples, 0.0
			for _, s := range samples {
				rows = max(rows, s.RowsPerSec)
			}
			if len(samples) >= 12 && rows > 0 {
				break
			}
			if i > 100_000 {
				b.t.Fatal("the node history does not grow")
			}
		}
		b.do(chromedp.EmulateViewport(1280, 900), chromedp.Navigate(base+"/admin/?charts"))
		b.poll(`document.querySelectorAll('#node figure svg.chart').length === 6`)
		b.poll(`document.querySelector('#node figure[data-chart="Rows/s"] polyline.s0')`)
		if top := eval[float64](b, `Math.min(...document.querySelector('#node figure[data-chart="Rows/s"] polyline.s0').getAttribute('points').split(' ').map(p => +p.split(',')[1]))`); top >= 87 {
			b.t.Fatalf("the rows/s line stays on the axis (highest point y=%v)", top)
		}
	})

	sub("dashboard pictures", func() {
		b.do(chromedp.EmulateViewport(1280, 900), chromedp.Navigate(base+"/admin/?list"))
		b.poll(`[...document.querySelectorAll('#tenant-table tbody tr')].some(r => r.textContent.includes('globex'))`)
		b.screenshot("dashboard-tenants")
		openTenant(acmeID, "acme")
		b.poll(`document.querySelector('details[data-table="orders"]') && document.querySelector('#key-table tbody tr[data-key]')`)
		b.do(chromedp.Evaluate[chromedp.Void](`document.querySelector('details[data-table="orders"]').open = true`))
		b.screenshot("dashboard-tenant")
	})

	sub("the dashboard on a phone", func() {
		for _, hash := range []string{"#/t/" + acmeID, "#/"} {
			b.do(chromedp.EmulateViewport(390, 844), chromedp.Evaluate[chromedp.Void](`location.hash = '`+hash+`'`))
			b.poll(`document.querySelector('main section:not([hidden]) table tbody tr')`)
			if m := eval[pageWidths](b, measureJS); m.Page > m.Viewport {
				b.t.Fatalf("%s: the page is %d px wide in a %d px viewport", hash, m.Page, m.Viewport)
			}
		}
	})

	// The share page, on a phone and on a laptop.
	wide := `{"day":"2026-11-%02d","city":"São Paulo","orders":%d,"revenue_eur":%d.5,"avg_basket":31.2,"channel":"partner-referral","note":"a rather long free-text note that never wraps"}`
	var rows []string
	for i := 1; i <= 25; i++ {
		orders := 40 + (i*37)%60 + i*3
		rows = append(rows, fmt.Sprintf(wide, i, orders, orders*9))
	}
	wantStatus(t, e.insert(gkey, "daily_sales", strings.Join(rows, "\n")), 200, "insert")
	link := e.shareLink(gkey, map[string]any{"name": "November sales by city", "duration": 6 * 86400,
		"query": "SELECT CAST(day AS DATE) AS day, city, orders, revenue_eur, avg_basket, channel, note FROM daily_sales ORDER BY day"})
	for _, w := range []int64{390, 1280} {
		sub(fmt.Sprintf("share page at %d px", w), func() {
			b.do(chromedp.EmulateViewport(w, 844), chromedp.Navigate(base+link.URL), chromedp.WaitVisible(css("table")))
			m := eval[pageWidths](b, measureJS)
			if m.Page > m.Viewport || m.Viewport != int(w) {
				b.t.Fatalf("the page is %d px wide in a %d px viewport (want %d)", m.Page, m.Viewport, w)
			}
			if !m.Above {
				b.t.Fatal("the downloads are not above the table")
			}
			// A date column and numbers: a line per number column.
			if n := eval[int](b, `document.querySelectorAll('figure.chart svg polyline').length`); n != 3 {
				b.t.Fatalf("%d chart lines, want 3 (orders, revenue_eur, avg_basket)", n)
			}
			if w == 390 && m.Box <= m.BoxShown {
				b.t.Fatalf("at 390 px the table (%d px) does not scroll in its box (%d px)", m.Box, m.BoxShown)
			}
			if rel := run(b, chromedp.Text(css("#expires-in"))); rel != "in 6 days" {
				b.t.Fatalf("relative expiry %q", rel)
			}
			if local := run(b, chromedp.Text(css(".meta time"))); strings.Contains(local, "UTC") || !strings.Contains(local, "2026") && !strings.Contains(local, "2027") {
				b.t.Fatalf("expiry not in local time: %q", local)
			}
			b.screenshot(fmt.Sprintf("share-%d", w))
		})
	}

	sub("revoke a share link from the dashboard", func() {
		c := e.shareLink(gkey, map[string]any{"query": "SELECT 1 AS x", "name": "to revoke"})
		b.do(chromedp.EmulateViewport(1280, 900), chromedp.Navigate(base+"/admin/#/t/"+globex.ID))
		row := `tr[data-link="` + c.LinkID + `"]`
		b.poll(`document.querySelector('` + row + ` button.revoke')`)
		b.do(chromedp.Click(css(row + " button.revoke")))
		b.poll(`document.querySelector('` + row + ` button.armed')`)
		b.do(chromedp.Click(css(row + " button.revoke")))
		b.poll(`(document.querySelector('` + row + `') || {}).textContent?.includes('revoked')`)
		b.do(chromedp.Navigate(base+c.URL), chromedp.WaitVisible(css("h1")))
		if h := run(b, chromedp.Text(css("h1"))); h != "This link was revoked" {
			b.t.Fatalf("h1 %q", h)
		}
	})

	sub("an expired link's page", func() {
		c := e.shareLink(gkey, map[string]any{"query": "SELECT 1 AS x", "duration": 60})
		clock.add(61 * time.Second)
		b.do(chromedp.EmulateViewport(390, 844), chromedp.Navigate(base+c.URL), chromedp.WaitVisible(css("h1")))
		if h := run(b, chromedp.Text(css("h1"))); h != "This link has expired" {
			b.t.Fatalf("h1 %q", h)
		}
		if text := run(b, chromedp.Text(css("main"))); !strings.Contains(text, "Ask the person who sent you this link") {
			b.t.Fatalf("page: %s", text)
		}
		if m := eval[pageWidths](b, measureJS); m.Page > m.Viewport {
			b.t.Fatalf("the page is %d px wide in a %d px viewport", m.Page, m.Viewport)
		}
		b.screenshot("share-expired")
	})

	sub("sign out", func() {
		b.do(chromedp.EmulateViewport(1280, 800), chromedp.Navigate(base+"/admin/"), chromedp.WaitVisible(css("#signout")),
			chromedp.Click(css("#signout")), chromedp.WaitVisible(css("#key")))
		if got := status(`fetch('/admin/session').then(r => r.status)`); got != 401 {
			b.t.Fatalf("after sign-out /admin/session answers %d", got)
		}
	})
}

// serveEvil serves page on another site (localhost, not 127.0.0.1) and
// returns its URL.
func serveEvil(t *testing.T, page string) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, page)
	}))
	t.Cleanup(s.Close) // closes the browser's idle connections too
	return strings.Replace(s.URL, "127.0.0.1", "localhost", 1) + "/"
}
