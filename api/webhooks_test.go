package api

import (
	"bytes"
	"compress/gzip"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"duckgate/webhook"
)

// Secrets of the tests' endpoints, shaped like the providers' own.
const (
	hookGHSecret      = "gh-8d0a2f1c9b7e4a63b5f0c2d9e1a7b3c4"
	hookStripeSecret  = "whsec_test_5f7a9c1e3b2d4f6a8c0e2b4d6f8a1c3e"
	hookShopifySecret = "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"
	hookStdSecret     = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
)

// startHookEnv starts an env on dir with a webhook store in the same data
// directory, as cmd/duckgate wires it.
func startHookEnv(t *testing.T, dir string) *env {
	t.Helper()
	st, err := webhook.Open(webhook.StoreConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return startEnv(t, dir, func(c *envConfig) { c.ingest.Webhooks = st })
}

func newHookEnv(t *testing.T) *env { return startHookEnv(t, t.TempDir()) }

// restartHooks stops e and starts a new env, webhook store included, on
// its directory.
func restartHooks(e *env) *env {
	e.stop()
	_ = e.hooks.Close()
	return startHookEnv(e.t, e.dir)
}

// registerWebhook creates an endpoint and fails the test unless it gets 201.
func (e *env) registerWebhook(key, provider, table, secret string) webhook.EndpointView {
	e.t.Helper()
	body, _ := json.Marshal(map[string]string{"provider": provider, "table": table, "secret": secret})
	r := e.do("POST", "/api/webhooks", body, "X-API-KEY", key)
	if r.status != fasthttp.StatusCreated {
		e.t.Fatalf("registerWebhook %s: %d %s", provider, r.status, r.body)
	}
	var ep webhook.EndpointView
	if err := json.Unmarshal(r.body, &ep); err != nil {
		e.t.Fatal(err)
	}
	return ep
}

func hookPayload(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "webhooks", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Headers each provider sends with a delivery.
func hookGitHubHeaders(secret, event, id string, body []byte) []string {
	h := []string{"Content-Type", "application/json", "User-Agent", "GitHub-Hookshot/044aadd",
		"X-GitHub-Event", event, "X-Hub-Signature-256", "sha256=" + hex.EncodeToString(mac([]byte(secret), body))}
	if id != "" {
		h = append(h, "X-GitHub-Delivery", id)
	}
	return h
}

func hookStripeHeaders(secret string, at time.Time, body []byte) []string {
	return []string{"Content-Type", "application/json; charset=utf-8", "User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
		"Stripe-Signature", "t=" + unix(at) + ",v1=" + hex.EncodeToString(mac([]byte(secret), []byte(unix(at)+"."), body))}
}

func hookShopifyHeaders(secret, topic, id string, body []byte) []string {
	return []string{"Content-Type", "application/json", "X-Shopify-Topic", topic, "X-Shopify-Shop-Domain", "example.myshopify.com",
		"X-Shopify-Webhook-Id", id, "X-Shopify-Hmac-Sha256", base64.StdEncoding.EncodeToString(mac([]byte(secret), body))}
}

func hookStandardHeaders(secret, id string, at time.Time, body []byte) []string {
	return []string{"Content-Type", "application/json", "Webhook-Id", id, "Webhook-Timestamp", strconv.FormatInt(at.Unix(), 10),
		"Webhook-Signature", "v1," + base64.StdEncoding.EncodeToString(mac(standardKey(secret), []byte(id+"."+unix(at)+"."), body))}
}

// hookExpect fails the test unless r has status.
func hookExpect(t *testing.T, what string, r response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: status %d, want %d: %s", what, r.status, status, r.body)
	}
}

// hookCount counts table's rows, 0 if the table does not exist.
func hookCount(t *testing.T, db *sql.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`select count(*) from information_schema.tables where table_name = ?`, table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		return 0
	}
	if err := db.QueryRow(`select count(*) from "` + table + `"`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// hookQuery runs q and returns its rows with every value as text, NULL as
// "null".
func hookQuery(t *testing.T, db *sql.DB, q string) [][]string {
	t.Helper()
	var out [][]string
	for _, row := range queryText(t, db, q) {
		r := make([]string, len(row))
		for i, v := range row {
			r[i] = "null"
			if s, ok := v.(string); ok {
				r[i] = s
			}
		}
		out = append(out, r)
	}
	return out
}

func hookRows(t *testing.T, db *sql.DB, q string, want ...[]string) {
	t.Helper()
	got := hookQuery(t, db, q)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s:\n got  %q\n want %q", q, got, want)
	}
}

func TestWebhookPayloadsLandAsRows(t *testing.T) {
	e := newHookEnv(t)
	id, key := e.tenant("acme")
	gh := e.registerWebhook(key, "github", "github_events", hookGHSecret)
	st := e.registerWebhook(key, "Stripe", "stripe_events", hookStripeSecret)
	sh := e.registerWebhook(key, "shopify", "shopify_orders", hookShopifySecret)
	sd := e.registerWebhook(key, "standard", "standard_events", hookStdSecret)
	if gh.URL != "/api/webhooks/"+gh.ID || st.Provider != "stripe" || sh.Table != "shopify_orders" {
		t.Fatalf("endpoints: %+v %+v %+v", gh, st, sh)
	}
	before := time.Now().UTC().Add(-time.Second)

	for _, d := range []struct{ file, event, id string }{
		{"github_push.json", "push", "72d3162e-cc78-11e3-81ab-4c9367dc0958"},
		{"github_pull_request.json", "pull_request", "8a6e6c30-cc78-11e3-8a1c-4c9367dc0958"},
		{"github_issues.json", "issues", "9b1f6f20-cc78-11e3-9c7a-4c9367dc0958"},
	} {
		body := hookPayload(t, d.file)
		r := e.do("POST", gh.URL, body, hookGitHubHeaders(hookGHSecret, d.event, d.id, body)...)
		hookExpect(t, d.file, r, fasthttp.StatusOK)
		if string(bytes.TrimSpace(r.body)) != `{"duplicate":false}` {
			t.Fatalf("%s: %s", d.file, r.body)
		}
	}
	for _, f := range []string{"stripe_charge_succeeded.json", "stripe_invoice_paid.json"} {
		body := hookPayload(t, f)
		hookExpect(t, f, e.do("POST", st.URL, body, hookStripeHeaders(hookStripeSecret, time.Now(), body)...), fasthttp.StatusOK)
	}
	body := hookPayload(t, "shopify_orders_create.json")
	hookExpect(t, "shopify", e.do("POST", sh.URL, body, hookShopifyHeaders(hookShopifySecret, "orders/create", "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043", body)...), fasthttp.StatusOK)
	// A payload that is not an object lands whole in "payload".
	arr := []byte(`[{"kind":"ping"},{"kind":"pong"}]`)
	hookExpect(t, "standard array", e.do("POST", sd.URL, arr, hookStandardHeaders(hookStdSecret, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", time.Now(), arr)...), fasthttp.StatusOK)
	scalar := []byte(`"hello"`)
	hookExpect(t, "standard scalar", e.do("POST", sd.URL, scalar, hookStandardHeaders(hookStdSecret, "msg_3", time.Now(), scalar)...), fasthttp.StatusOK)
	// A lone surrogate escape in a non-object payload becomes U+FFFD, as in
	// an insert: DuckDB's JSON would refuse it and block the table.
	lone := []byte(`["\ud800x"]`)
	hookExpect(t, "standard lone surrogate", e.do("POST", sd.URL, lone, hookStandardHeaders(hookStdSecret, "msg_4", time.Now(), lone)...), fasthttp.StatusOK)

	e.stop()
	db := e.openDB(id)
	hookRows(t, db, `select _webhook_event, _webhook_id, repository->>'full_name', sender->>'login', typeof(_received_at)
		from github_events order by _webhook_event`,
		[]string{"issues", "9b1f6f20-cc78-11e3-9c7a-4c9367dc0958", "Codertocat/Hello-World", "Codertocat", "TIMESTAMP WITH TIME ZONE"},
		[]string{"pull_request", "8a6e6c30-cc78-11e3-8a1c-4c9367dc0958", "Codertocat/Hello-World", "Codertocat", "TIMESTAMP WITH TIME ZONE"},
		[]string{"push", "72d3162e-cc78-11e3-81ab-4c9367dc0958", "Codertocat/Hello-World", "Codertocat", "TIMESTAMP WITH TIME ZONE"})
	hookRows(t, db, `select ref, head_commit->>'message', pull_request->>'title', issue->'labels'->0->>'name'
		from github_events order by _webhook_event`,
		[]string{"null", "null", "null", "bug"},
		[]string{"null", "null", "Update the README with new information.", "null"},
		[]string{"refs/heads/main", "Update README.md", "null", "null"})
	hookRows(t, db, `select _webhook_id, _webhook_event, data->'object'->>'id', (data->'object'->>'amount_paid')::int, type
		from stripe_events order by _webhook_event`,
		[]string{"evt_3MtwBwLkdIwHu7ix28a3tqPa", "charge.succeeded", "ch_3MtwBwLkdIwHu7ix28a3tqPa", "null", "charge.succeeded"},
		[]string{"evt_1NG8Du2eZvKYlo2CUI79vXWy", "invoice.paid", "in_1NG8Dt2eZvKYlo2CRZ0ck7Wo", "2000", "invoice.paid"})
	hookRows(t, db, `select _webhook_id, _webhook_event, customer->>'email', json_array_length(line_items), total_price, typeof(created_at)
		from shopify_orders`,
		[]string{"b54557e4-bdd9-4b37-8a5f-bf7d70bcd043", "orders/create", "john@example.com", "2", "403.00", "TIMESTAMP WITH TIME ZONE"})
	// No event name was sent, so there is no _webhook_event column.
	hookRows(t, db, `select _webhook_id, typeof(payload), json_type(payload), payload->>'$[1].kind'
		from standard_events order by _webhook_id`,
		[]string{"msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", "JSON", "ARRAY", "pong"},
		[]string{"msg_3", "JSON", "VARCHAR", "null"},
		[]string{"msg_4", "JSON", "ARRAY", "null"})
	hookRows(t, db, `select payload->>'$[0]' = chr(65533) || 'x' from standard_events where _webhook_id = 'msg_4'`, []string{"true"})

	var lo, hi time.Time
	if err := db.QueryRow(`select min(_received_at), max(_received_at) from github_events`).Scan(&lo, &hi); err != nil {
		t.Fatal(err)
	}
	if lo.Before(before) || hi.After(time.Now().Add(time.Second)) {
		t.Fatalf("_received_at %v..%v not within the test (%v..now)", lo, hi, before)
	}
}

func TestWebhookSignaturesEndToEnd(t *testing.T) {
	e := newHookEnv(t)
	id, key := e.tenant("acme")
	gh := e.registerWebhook(key, "github", "github_events", hookGHSecret)
	st := e.registerWebhook(key, "stripe", "stripe_events", hookStripeSecret)
	sh := e.registerWebhook(key, "shopify", "shopify_orders", hookShopifySecret)
	sd := e.registerWebhook(key, "standard", "standard_events", hookStdSecret)
	push := hookPayload(t, "github_push.json")
	charge := hookPayload(t, "stripe_charge_succeeded.json")
	order := hookPayload(t, "shopify_orders_create.json")
	tampered := func(b []byte) []byte { return bytes.Replace(b, []byte("Hello-World"), []byte("Hello-Wor1d"), 1) }

	f := func(what, url string, body []byte, status int, hdr ...string) {
		t.Helper()
		r := e.do("POST", url, body, hdr...)
		hookExpect(t, what, r, status)
		if status == fasthttp.StatusUnauthorized && !bytes.Contains(r.body, []byte("webhook:")) {
			t.Fatalf("%s: the 401 does not say why: %s", what, r.body)
		}
	}
	f("github right secret", gh.URL, push, 200, hookGitHubHeaders(hookGHSecret, "push", "d-1", push)...)
	f("github wrong secret", gh.URL, push, 401, hookGitHubHeaders("not-the-secret", "push", "d-2", push)...)
	f("github tampered body", gh.URL, tampered(push), 401, hookGitHubHeaders(hookGHSecret, "push", "d-3", push)...)
	f("github missing header", gh.URL, push, 401, "Content-Type", "application/json", "X-GitHub-Event", "push", "X-GitHub-Delivery", "d-4")
	f("github malformed header", gh.URL, push, 401, "X-Hub-Signature-256", "sha1=abc", "X-GitHub-Delivery", "d-5")

	f("stripe right secret", st.URL, charge, 200, hookStripeHeaders(hookStripeSecret, time.Now(), charge)...)
	f("stripe wrong secret", st.URL, charge, 401, hookStripeHeaders("whsec_wrong", time.Now(), charge)...)
	f("stripe tampered body", st.URL, bytes.Replace(charge, []byte("1099"), []byte("9999"), 1), 401, hookStripeHeaders(hookStripeSecret, time.Now(), charge)...)
	f("stripe stale timestamp", st.URL, charge, 401, hookStripeHeaders(hookStripeSecret, time.Now().Add(-6*time.Minute), charge)...)
	f("stripe future timestamp", st.URL, charge, 401, hookStripeHeaders(hookStripeSecret, time.Now().Add(6*time.Minute), charge)...)
	f("stripe missing header", st.URL, charge, 401, "Content-Type", "application/json")

	f("shopify wrong secret", sh.URL, order, 401, hookShopifyHeaders("wrong", "orders/create", "s-1", order)...)
	f("shopify missing header", sh.URL, order, 401, "X-Shopify-Topic", "orders/create")

	f("standard stale", sd.URL, push, 401, hookStandardHeaders(hookStdSecret, "msg_1", time.Now().Add(-time.Hour), push)...)
	// The signed id cannot be swapped for another.
	hdr := hookStandardHeaders(hookStdSecret, "msg_2", time.Now(), push)
	hdr[3] = "msg_other"
	f("standard swapped id", sd.URL, push, 401, hdr...)

	// An authentic Stripe delivery that is not an event: 400, not 401.
	notEvent := []byte(`[1,2,3]`)
	f("stripe not an object", st.URL, notEvent, 400, hookStripeHeaders(hookStripeSecret, time.Now(), notEvent)...)
	// Authentic but not JSON.
	form := []byte("hello=world")
	f("github not JSON", gh.URL, form, 400, hookGitHubHeaders(hookGHSecret, "push", "d-6", form)...)

	e.stop()
	db := e.openDB(id)
	for table, want := range map[string]int{"github_events": 1, "stripe_events": 1, "shopify_orders": 0, "standard_events": 0} {
		if n := hookCount(t, db, table); n != want {
			t.Errorf("%s has %d rows, want %d", table, n, want)
		}
	}
}

func TestWebhookToleranceIsConfigurable(t *testing.T) {
	dir := t.TempDir()
	st, err := webhook.Open(webhook.StoreConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	e := startEnv(t, dir, func(c *envConfig) {
		c.ingest.Webhooks = st
		c.ingest.WebhookTolerance = time.Hour
	})
	_, key := e.tenant("acme")
	ep := e.registerWebhook(key, "stripe", "stripe_events", hookStripeSecret)
	charge := hookPayload(t, "stripe_charge_succeeded.json")
	hookExpect(t, "30 min old", e.do("POST", ep.URL, charge, hookStripeHeaders(hookStripeSecret, time.Now().Add(-30*time.Minute), charge)...), 200)
	hookExpect(t, "2 h old", e.do("POST", ep.URL, charge, hookStripeHeaders(hookStripeSecret, time.Now().Add(-2*time.Hour), charge)...), 401)
}

func TestWebhookDedup(t *testing.T) {
	e := newHookEnv(t)
	id, key := e.tenant("acme")
	gh := e.registerWebhook(key, "github", "github_events", hookGHSecret)
	st := e.registerWebhook(key, "stripe", "stripe_events", hookStripeSecret)
	sd := e.registerWebhook(key, "standard", "standard_events", hookStdSecret)
	push := hookPayload(t, "github_push.json")
	charge := hookPayload(t, "stripe_charge_succeeded.json")

	dup := func(what string, r response, want bool) {
		t.Helper()
		hookExpect(t, what, r, 200)
		if got := string(bytes.TrimSpace(r.body)); got != fmt.Sprintf(`{"duplicate":%v}`, want) {
			t.Fatalf("%s: %s, want duplicate %v", what, got, want)
		}
	}
	dup("github first", e.do("POST", gh.URL, push, hookGitHubHeaders(hookGHSecret, "push", "dup-1", push)...), false)
	dup("github redelivery", e.do("POST", gh.URL, push, hookGitHubHeaders(hookGHSecret, "push", "dup-1", push)...), true)
	dup("github new id", e.do("POST", gh.URL, push, hookGitHubHeaders(hookGHSecret, "push", "dup-2", push)...), false)
	// No delivery id: nothing to dedup on, both are stored.
	dup("github no id", e.do("POST", gh.URL, push, hookGitHubHeaders(hookGHSecret, "push", "", push)...), false)
	dup("github no id again", e.do("POST", gh.URL, push, hookGitHubHeaders(hookGHSecret, "push", "", push)...), false)
	// Stripe's id is in the body; a retry is signed at a new time.
	dup("stripe first", e.do("POST", st.URL, charge, hookStripeHeaders(hookStripeSecret, time.Now(), charge)...), false)
	dup("stripe retry", e.do("POST", st.URL, charge, hookStripeHeaders(hookStripeSecret, time.Now().Add(time.Second), charge)...), true)

	// Concurrent deliveries of one id store one row.
	body := []byte(`{"type":"invoice.created","n":1}`)
	hdr := hookStandardHeaders(hookStdSecret, "msg_concurrent", time.Now(), body)
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[string]int{}
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.Header.SetMethod("POST")
			req.SetRequestURI("http://duckgate" + sd.URL)
			for i := 0; i+1 < len(hdr); i += 2 {
				req.Header.Set(hdr[i], hdr[i+1])
			}
			req.SetBody(body)
			got := "error"
			if err := e.client.DoTimeout(req, resp, time.Minute); err == nil {
				got = fmt.Sprintf("%d %s", resp.StatusCode(), bytes.TrimSpace(resp.Body()))
			}
			mu.Lock()
			statuses[got]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if statuses[`200 {"duplicate":false}`] != 1 || statuses[`200 {"duplicate":true}`] != 15 {
		t.Fatalf("concurrent deliveries: %v", statuses)
	}

	// The seen ids survive a restart.
	e = restartHooks(e)
	dup("github after restart", e.do("POST", gh.URL, push, hookGitHubHeaders(hookGHSecret, "push", "dup-1", push)...), true)
	dup("stripe after restart", e.do("POST", st.URL, charge, hookStripeHeaders(hookStripeSecret, time.Now(), charge)...), true)
	dup("standard after restart", e.do("POST", sd.URL, body, hdr...), true)
	dup("github new id after restart", e.do("POST", gh.URL, push, hookGitHubHeaders(hookGHSecret, "push", "dup-3", push)...), false)

	e.stop()
	db := e.openDB(id)
	hookRows(t, db, `select coalesce(_webhook_id, '-'), count(*) from github_events group by all order by 1`,
		[]string{"-", "2"}, []string{"dup-1", "1"}, []string{"dup-2", "1"}, []string{"dup-3", "1"})
	if n := hookCount(t, db, "stripe_events"); n != 1 {
		t.Fatalf("stripe_events has %d rows, want 1", n)
	}
	if n := hookCount(t, db, "standard_events"); n != 1 {
		t.Fatalf("standard_events has %d rows, want 1", n)
	}
}

func TestWebhookRegistry(t *testing.T) {
	e := newHookEnv(t)
	idA, keyA := e.tenant("acme")
	_, keyB := e.tenant("globex")
	gh := e.registerWebhook(keyA, "github", "github_events", hookGHSecret)
	st := e.registerWebhook(keyA, "stripe", "stripe_events", hookStripeSecret)
	e.registerWebhook(keyA, "standard", "standard_events", hookStdSecret)
	if len(strings.TrimPrefix(gh.ID, "wh_")) < 22 || gh.ID == st.ID {
		t.Fatalf("ids %q %q: want 128 random bits each", gh.ID, st.ID)
	}

	list := func(key string) []webhook.EndpointView {
		t.Helper()
		r := e.do("GET", "/api/webhooks", nil, "X-API-KEY", key)
		hookExpect(t, "list", r, 200)
		for _, s := range []string{hookGHSecret, hookStripeSecret, hookStdSecret, "secret"} {
			if bytes.Contains(r.body, []byte(s)) {
				t.Fatalf("the list shows %q: %s", s, r.body)
			}
		}
		var out struct{ Webhooks []webhook.EndpointView }
		if err := json.Unmarshal(r.body, &out); err != nil {
			t.Fatal(err)
		}
		return out.Webhooks
	}
	if l := list(keyA); len(l) != 3 || l[0].ID != gh.ID || l[1].ID != st.ID || l[0].Table != "github_events" {
		t.Fatalf("tenant A's list: %+v", l)
	}
	if l := list(keyB); len(l) != 0 {
		t.Fatalf("tenant B sees %+v", l)
	}
	// B cannot delete A's endpoint, nor tell it from a missing one.
	r := e.do("DELETE", gh.URL, nil, "X-API-KEY", keyB)
	hookExpect(t, "B deletes A's", r, 404)
	hookExpect(t, "B deletes a missing one", e.do("DELETE", "/api/webhooks/wh_nope", nil, "X-API-KEY", keyB), 404)

	// Managing endpoints needs a full key.
	k, ingestKey, err := e.tenants.CreateKey(idA, "ingest")
	if err != nil {
		t.Fatal(err)
	}
	_ = k
	hookExpect(t, "ingest key lists", e.do("GET", "/api/webhooks", nil, "X-API-KEY", ingestKey), 403)
	hookExpect(t, "ingest key registers", e.do("POST", "/api/webhooks", []byte(`{"provider":"github","table":"t","secret":"s"}`), "X-API-KEY", ingestKey), 403)
	hookExpect(t, "ingest key deletes", e.do("DELETE", gh.URL, nil, "X-API-KEY", ingestKey), 403)
	hookExpect(t, "no key", e.do("GET", "/api/webhooks", nil), 401)

	// The secrets are in no file of the data directory in clear, nor in
	// base64 or hex.
	grepSecrets := func() {
		t.Helper()
		var files int
		err := filepath.WalkDir(e.dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			files++
			for _, s := range []string{hookGHSecret, hookStripeSecret, hookStdSecret} {
				for _, form := range []string{s, fmt.Sprintf("%x", s), strings.TrimRight(hookB64(s), "=")} {
					if bytes.Contains(b, []byte(form)) {
						t.Errorf("%s holds a secret (%q)", p, form)
					}
				}
			}
			return nil
		})
		if err != nil || files < 3 {
			t.Fatalf("walk %s: %v (%d files)", e.dir, err, files)
		}
	}
	grepSecrets()
	for _, name := range []string{webhook.KeyFile, webhook.EndpointsFile, webhook.SeenFile} {
		fi, err := os.Stat(filepath.Join(e.dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, fi.Mode().Perm())
		}
	}

	// The endpoints and their secrets survive a restart.
	e = restartHooks(e)
	if l := list(keyA); len(l) != 3 {
		t.Fatalf("after restart: %+v", l)
	}
	push := hookPayload(t, "github_push.json")
	hookExpect(t, "delivery after restart", e.do("POST", gh.URL, push, hookGitHubHeaders(hookGHSecret, "push", "r-1", push)...), 200)

	// The owner deletes; the endpoint is gone for deliveries too.
	r = e.do("DELETE", gh.URL, nil, "X-API-KEY", keyA)
	hookExpect(t, "owner deletes", r, 204)
	hookExpect(t, "delete again", e.do("DELETE", gh.URL, nil, "X-API-KEY", keyA), 404)
	hookExpect(t, "delivery to deleted", e.do("POST", gh.URL, push, hookGitHubHeaders(hookGHSecret, "push", "r-2", push)...), 404)
	if l := list(keyA); len(l) != 2 || l[0].ID != st.ID {
		t.Fatalf("after delete: %+v", l)
	}
	e.stop()
	grepSecrets()
}

func hookB64(s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	_ = enc.Encode([]byte(s)) // base64, standard encoding, quoted
	return strings.Trim(strings.TrimSpace(buf.String()), `"`)
}

func TestWebhookHostile(t *testing.T) {
	e := newHookEnv(t)
	id, key := e.tenant("acme")
	gh := e.registerWebhook(key, "github", "github_events", hookGHSecret)
	push := hookPayload(t, "github_push.json")

	isJSONError := func(what string, r response) {
		t.Helper()
		var b errorBody
		if err := json.Unmarshal(r.body, &b); err != nil || b.Error == "" {
			t.Fatalf("%s: not a JSON error: %q", what, r.body)
		}
	}
	r := e.do("POST", "/api/webhooks/wh_AAAAAAAAAAAAAAAAAAAAAA", push, hookGitHubHeaders(hookGHSecret, "push", "x", push)...)
	hookExpect(t, "unknown id", r, 404)
	isJSONError("unknown id", r)
	hookExpect(t, "nested path", e.do("POST", gh.URL+"/x", push), 404)
	hookExpect(t, "GET a delivery url", e.do("GET", gh.URL, nil), 405)
	hookExpect(t, "PUT the collection", e.do("PUT", "/api/webhooks", nil, "X-API-KEY", key), 405)

	reg := func(what, body string, status int) {
		t.Helper()
		r := e.do("POST", "/api/webhooks", []byte(body), "X-API-KEY", key)
		hookExpect(t, what, r, status)
		isJSONError(what, r)
	}
	reg("empty body", "", 400)
	reg("not JSON", "{provider:", 400)
	reg("array", `[]`, 400)
	reg("oversized", `{"provider":"github","table":"t","secret":"`+strings.Repeat("a", 70<<10)+`"}`, 400)
	reg("bad provider", `{"provider":"gitlab","table":"t","secret":"s"}`, 400)
	reg("no provider", `{"table":"t","secret":"s"}`, 400)
	reg("bad table", `{"provider":"github","table":"drop table x;","secret":"s"}`, 400)
	reg("table starting with a digit", `{"provider":"github","table":"1t","secret":"s"}`, 400)
	reg("empty secret", `{"provider":"github","table":"t","secret":""}`, 400)
	reg("secret with newline", `{"provider":"github","table":"t","secret":"s\n"}`, 400)
	reg("long secret", `{"provider":"github","table":"t","secret":"`+strings.Repeat("a", 2000)+`"}`, 400)
	reg("standard secret not base64", `{"provider":"standard","table":"t","secret":"whsec_!!!"}`, 400)

	// A gzip delivery is refused, signed or not.
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	_, _ = zw.Write(push)
	_ = zw.Close()
	r = e.do("POST", gh.URL, zb.Bytes(), append(hookGitHubHeaders(hookGHSecret, "push", "gz", push), "Content-Encoding", "gzip")...)
	hookExpect(t, "gzip", r, 415)
	isJSONError("gzip", r)

	// GitHub's form content type carries the JSON in payload=.
	form := []byte("payload=" + hookURLEscape(string(push)))
	hdr := hookGitHubHeaders(hookGHSecret, "push", "form-1", form)
	hdr[1] = "application/x-www-form-urlencoded"
	hookExpect(t, "github form", e.do("POST", gh.URL, form, hdr...), 200)

	// A payload key named like a metadata column does not replace it.
	spoof := []byte(`{"_webhook_id":"spoofed","_received_at":"1999-01-01T00:00:00Z","zen":"ok"}`)
	hookExpect(t, "spoof", e.do("POST", gh.URL, spoof, hookGitHubHeaders(hookGHSecret, "ping", "real-id", spoof)...), 200)

	// A suspended tenant's deliveries are refused after verification.
	if _, err := e.tenants.SetStatus(id, "suspended"); err != nil {
		t.Fatal(err)
	}
	r = e.do("POST", gh.URL, push, hookGitHubHeaders(hookGHSecret, "push", "susp", push)...)
	hookExpect(t, "suspended", r, 403)
	isJSONError("suspended", r)
	hookExpect(t, "suspended, bad signature", e.do("POST", gh.URL, push, hookGitHubHeaders("x", "push", "susp", push)...), 401)

	e.stop()
	db := e.openDB(id)
	hookRows(t, db, `select _webhook_id, _webhook_event, repository->>'full_name' from github_events order by 1`,
		[]string{"form-1", "push", "Codertocat/Hello-World"}, []string{"real-id", "ping", "null"})
	var recv time.Time
	if err := db.QueryRow(`select _received_at from github_events where _webhook_id = 'real-id'`).Scan(&recv); err != nil {
		t.Fatal(err)
	}
	if recv.Year() < 2020 {
		t.Fatalf("the payload replaced _received_at: %v", recv)
	}
}

func hookURLEscape(s string) string {
	var a fasthttp.Args
	a.Set("x", s)
	return strings.TrimPrefix(a.String(), "x=")
}

// mac is HMAC-SHA256 of the concatenated parts under key: what every
// provider signs with, computed here independently of package webhook.
func mac(key []byte, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

func unix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// standardKey is a Standard Webhooks secret's key: the base64 after whsec_.
// The tests' secrets are constants, so a bad one is a bug in the test.
func standardKey(secret string) []byte {
	k, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		panic(err)
	}
	return k
}
