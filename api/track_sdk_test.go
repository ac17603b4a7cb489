package api

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"duckgate/tenant"
)

// sdkDir holds package.json, the lockfile and send.js of the SDK test.
const sdkDir = "testdata/sdk"

// npmInstall runs npm ci in sdkDir unless its node_modules is there (.ci/run
// installs it), and skips the test when node or npm is absent.
func npmInstall(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: the SDK test needs Node.js and npm (CI installs them)", tool)
		}
	}
	if _, err := os.Stat(filepath.Join(sdkDir, "node_modules", ".package-lock.json")); err == nil {
		return
	} else if !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = sdkDir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", sdkDir, err, out)
	}
}

// listenTCP serves the env's server on a real loopback port as well, for
// clients that are other processes; it returns the base URL and a stop
// function.
func (e *env) listenTCP() (string, func()) {
	e.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	hs := e.server.HTTPServer()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = hs.Serve(ln)
	}()
	stop := func() {
		_ = hs.Shutdown()
		<-done
	}
	e.t.Cleanup(stop)
	return "http://" + ln.Addr().String(), stop
}

// sendSDK runs send.js against host with key; sdk names one SDK, "" all.
func sendSDK(t *testing.T, host, key, sdk string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "send.js", host, key)
	cmd.Dir = sdkDir
	cmd.Env = append(os.Environ(), "SDK="+sdk)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node send.js: %v\n%s", err, out)
	}
	return string(out)
}

// The official Segment, RudderStack and PostHog node SDKs, pointed at
// duckgate with nothing but the host, flush successfully; every call is in
// its table with its values and types, the timestamp is skew-corrected, the
// key is nowhere, and the SDK's retry of a batch stores nothing twice.
func TestTrackSDKs(t *testing.T) {
	npmInstall(t)
	e := newEnv(t)
	id, _ := e.tenant("acme")
	_, key, err := e.tenants.CreateKey(id, tenant.ScopeIngest)
	if err != nil {
		t.Fatal(err)
	}
	host, stop := e.listenTCP()
	out := sendSDK(t, host, key, "")
	for _, sdk := range []string{"segment", "rudder", "posthog"} {
		if !strings.Contains(out, "ok "+sdk+"\n") {
			t.Errorf("send.js did not flush %s:\n%s", sdk, out)
		}
	}
	// The same Segment batch again, as after a lost answer: all duplicates.
	sendSDK(t, host, key, "segment")
	stop()
	e.stop()
	db := e.openDB(id)

	for table, n := range map[string]int{"tracks": 3, "order_completed": 3, "identifies": 3, "pages": 3, "screens": 3, "groups": 3, "aliases": 3} {
		if got := countRows(t, db, table); got != n {
			t.Errorf("%s has %d rows; want %d", table, got, n)
		}
	}
	wantTypes(t, db, "order_completed", map[string]string{"revenue": "DOUBLE", "items": "BIGINT", "paid": "BOOLEAN",
		"coupon": "VARCHAR", "tags": "JSON", "timestamp": "TIMESTAMP WITH TIME ZONE", "received_at": "TIMESTAMP WITH TIME ZONE"})
	wantTypes(t, db, "identifies", map[string]string{"email": "VARCHAR", "plan": "VARCHAR", "age": "BIGINT"})
	wantTypes(t, db, "groups", map[string]string{"employees": "BIGINT", "group_id": "VARCHAR"})

	rows := func(q string) []string {
		t.Helper()
		r, err := db.Query(q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		defer r.Close()
		cols, _ := r.Columns()
		var out []string
		for r.Next() {
			vals := make([]sql.NullString, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := r.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			s := make([]string, len(vals))
			for i, v := range vals {
				s[i] = v.String
			}
			out = append(out, strings.Join(s, "|"))
		}
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	check := func(q string, want ...string) {
		t.Helper()
		if got := rows(q); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s:\n got %q\nwant %q", q, got, want)
		}
	}
	check(`SELECT id, user_id, event, event_text FROM tracks ORDER BY id`,
		"01900000-0000-7000-8000-000000000001|ph-u1|order_completed|Order Completed",
		"rs-track-1|rs-u1|order_completed|Order Completed",
		"seg-track-1|seg-u1|order_completed|Order Completed")
	check(`SELECT id, revenue, items, paid, coupon, tags::VARCHAR FROM order_completed ORDER BY id`,
		"01900000-0000-7000-8000-000000000001|3.5|2|true|PH|[\"d\"]",
		"rs-track-1|7.25|1|false|RS|[\"c\"]",
		"seg-track-1|12.5|3|true|SPRING|[\"a\",\"b\"]")
	check(`SELECT user_id, email, plan, age FROM identifies ORDER BY user_id`,
		"ph-u1|pat@example.com|team|27",
		"rs-u1|rob@example.com|free|44",
		"seg-u1|ann@example.com|pro|31")
	check(`SELECT user_id, name, coalesce(category, ''), coalesce(url, "$current_url") FROM pages ORDER BY user_id`,
		"ph-u1|Blog||https://example.com/blog",
		"rs-u1|Pricing|Docs|https://example.com/pricing",
		"seg-u1|Home|Docs|https://example.com/")
	check(`SELECT user_id, name FROM screens ORDER BY user_id`, "ph-u1|Inbox", "rs-u1|Profile", "seg-u1|Settings")
	check(`SELECT group_id, name, employees FROM groups ORDER BY group_id`, "ph-g1|Initech|12", "rs-g1|Globex|7", "seg-g1|Acme|50")
	check(`SELECT user_id, previous_id FROM aliases ORDER BY user_id`, "ph-u1|ph-anon-1", "rs-u1|rs-anon-1", "seg-u1|seg-anon-1")
	check(`SELECT id, context->>'$.library.name', channel FROM tracks WHERE id NOT LIKE '0190%' ORDER BY id`,
		"rs-track-1|analytics-node|server", "seg-track-1|@segment/analytics-node|")

	// Every row of every table: the SDK's timestamp is the original one,
	// and timestamp = original + (received − sent).
	for _, table := range []string{"tracks", "order_completed", "identifies", "pages", "screens", "groups", "aliases"} {
		check(`SELECT count(*) FROM `+table+` WHERE sent_at IS NULL OR original_timestamp IS NULL OR received_at IS NULL
			OR timestamp IS DISTINCT FROM original_timestamp + (received_at - sent_at)`, "0")
	}
	check(`SELECT count(*) FROM order_completed WHERE original_timestamp = '2024-05-06 07:08:09.123+00'`, "3")
	assertNoKey(t, db, key)
}
