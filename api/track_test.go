package api

import (
	"bytes"
	"compress/gzip"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"duckgate/tenant"
)

// basicAuth is Segment's and RudderStack's Authorization header: the key as
// the user name, an empty password.
func basicAuth(key string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(key+":"))
}

func gzipped(t *testing.T, s string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// trackAnswer is the body of a tracking answer.
type trackAnswer struct {
	Success    bool   `json:"success"`
	Status     int    `json:"status"`
	Accepted   int    `json:"accepted"`
	Duplicates int    `json:"duplicates"`
	Rejected   int    `json:"rejected"`
	Error      string `json:"error"`
	Errors     []struct {
		Index int    `json:"index"`
		Error string `json:"error"`
	} `json:"errors"`
}

func decodeAnswer(t *testing.T, r response) trackAnswer {
	t.Helper()
	var a trackAnswer
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatalf("answer %d %q is not JSON: %v", r.status, r.body, err)
	}
	return a
}

// segmentBatch is a batch of the six Segment calls, with the key in the
// body as analytics-node sends it, sent 10 s after its events' timestamp.
func segmentBatch(key, prefix string) string {
	return `{"writeKey":"` + key + `","sentAt":"2024-05-06T07:08:19.123Z","batch":[
 {"type":"track","messageId":"` + prefix + `-1","userId":"u1","anonymousId":"a1","event":"Order Completed","timestamp":"2024-05-06T07:08:09.123Z",
  "properties":{"revenue":12.5,"items":3,"coupon":"SPRING","paid":true,"tags":["a","b"],"token":"` + key + `"},
  "context":{"library":{"name":"analytics-node","version":"3.1.0"},"ip":"10.0.0.1"},"integrations":{"All":true}},
 {"type":"identify","messageId":"` + prefix + `-2","userId":"u1","timestamp":"2024-05-06T07:08:09.123Z","traits":{"email":"ann@example.com","plan":"pro","age":31}},
 {"type":"page","messageId":"` + prefix + `-3","userId":"u1","timestamp":"2024-05-06T07:08:09.123Z","name":"Home","category":"Docs","properties":{"url":"https://example.com/","category":"Docs"}},
 {"type":"screen","messageId":"` + prefix + `-4","userId":"u1","timestamp":"2024-05-06T07:08:09.123Z","name":"Settings","properties":{"theme":"dark"}},
 {"type":"group","messageId":"` + prefix + `-5","userId":"u1","timestamp":"2024-05-06T07:08:09.123Z","groupId":"g1","traits":{"name":"Acme","employees":50}},
 {"type":"alias","messageId":"` + prefix + `-6","userId":"u1","previousId":"anon-1","timestamp":"2024-05-06T07:08:09.123Z"}
]}`
}

// queryRow scans one row of q.
func queryRow(t *testing.T, db *sql.DB, q string, dst ...any) {
	t.Helper()
	if err := db.QueryRow(q).Scan(dst...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// columnTypes returns the DuckDB types of a table's columns by name.
func columnTypes(t *testing.T, db *sql.DB, table string) map[string]string {
	t.Helper()
	rows, err := db.Query(`SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ?`, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var n, ty string
		if err := rows.Scan(&n, &ty); err != nil {
			t.Fatal(err)
		}
		out[n] = ty
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// wantTypes checks some columns' types.
func wantTypes(t *testing.T, db *sql.DB, table string, want map[string]string) {
	t.Helper()
	got := columnTypes(t, db, table)
	for col, ty := range want {
		if got[col] != ty {
			t.Errorf("%s.%s has type %q; want %q (columns %v)", table, col, got[col], ty, got)
		}
	}
}

// assertNoKey checks that no column of any user table is named after a key
// field and that no stored value contains key.
func assertNoKey(t *testing.T, db *sql.DB, key string) {
	t.Helper()
	rows, err := db.Query(`SELECT table_name, column_name FROM information_schema.columns WHERE table_name NOT LIKE '\_duckgate%' ESCAPE '\'`)
	if err != nil {
		t.Fatal(err)
	}
	tables := map[string]bool{}
	for rows.Next() {
		var tbl, col string
		if err := rows.Scan(&tbl, &col); err != nil {
			t.Fatal(err)
		}
		tables[tbl] = true
		switch strings.ToLower(col) {
		case "writekey", "api_key", "token":
			t.Errorf("table %s has a column %q", tbl, col)
		}
	}
	rows.Close()
	if len(tables) == 0 {
		t.Fatal("no table was stored")
	}
	for tbl := range tables {
		var n int
		queryRow(t, db, fmt.Sprintf(`SELECT count(*) FROM %q r WHERE CAST(r AS VARCHAR) LIKE '%%%s%%'`, tbl, key), &n)
		if n != 0 {
			t.Errorf("%d rows of %s hold the key", n, tbl)
		}
	}
}

// countRows returns count(*) of a table.
func countRows(t *testing.T, db *sql.DB, table string) int {
	t.Helper()
	var n int
	queryRow(t, db, `SELECT count(*) FROM `+table, &n)
	return n
}

// A Segment batch lands in Segment's warehouse tables, typed, with the
// skew-corrected timestamp, and no trace of the key.
func TestTrackSegmentBatch(t *testing.T) {
	e := newEnv(t)
	id, key := e.tenant("acme")
	before := time.Now().UTC()
	r := e.do("POST", "/v1/batch", []byte(segmentBatch(key, "m")), "Content-Type", "application/json")
	after := time.Now().UTC()
	if r.status != 200 {
		t.Fatalf("batch: %d %s", r.status, r.body)
	}
	if a := decodeAnswer(t, r); !a.Success || a.Accepted != 6 || a.Rejected != 0 || a.Duplicates != 0 {
		t.Fatalf("answer %s", r.body)
	}
	e.stop()
	db := e.openDB(id)

	for table, n := range map[string]int{"tracks": 1, "order_completed": 1, "identifies": 1, "pages": 1, "screens": 1, "groups": 1, "aliases": 1} {
		if got := countRows(t, db, table); got != n {
			t.Errorf("%s has %d rows; want %d", table, got, n)
		}
	}
	common := map[string]string{"id": "VARCHAR", "user_id": "VARCHAR", "timestamp": "TIMESTAMP WITH TIME ZONE",
		"original_timestamp": "TIMESTAMP WITH TIME ZONE", "sent_at": "TIMESTAMP WITH TIME ZONE", "received_at": "TIMESTAMP WITH TIME ZONE"}
	for _, table := range []string{"tracks", "order_completed", "identifies", "pages", "screens", "groups", "aliases"} {
		wantTypes(t, db, table, common)
	}
	wantTypes(t, db, "tracks", map[string]string{"event": "VARCHAR", "event_text": "VARCHAR", "context": "JSON", "integrations": "JSON", "anonymous_id": "VARCHAR"})
	wantTypes(t, db, "order_completed", map[string]string{"revenue": "DOUBLE", "items": "BIGINT", "paid": "BOOLEAN", "tags": "JSON", "coupon": "VARCHAR", "context": "JSON"})
	wantTypes(t, db, "identifies", map[string]string{"email": "VARCHAR", "age": "BIGINT"})
	wantTypes(t, db, "groups", map[string]string{"group_id": "VARCHAR", "employees": "BIGINT"})

	var msgID, event, eventText, userID, anon, ctxJSON string
	queryRow(t, db, `SELECT id, event, event_text, user_id, anonymous_id, context::VARCHAR FROM tracks`, &msgID, &event, &eventText, &userID, &anon, &ctxJSON)
	if msgID != "m-1" || event != "order_completed" || eventText != "Order Completed" || userID != "u1" || anon != "a1" ||
		ctxJSON != `{"library":{"name":"analytics-node","version":"3.1.0"},"ip":"10.0.0.1"}` {
		t.Errorf("tracks row: %q %q %q %q %q %s", msgID, event, eventText, userID, anon, ctxJSON)
	}
	var revenue float64
	var items int64
	var paid bool
	var coupon, tags string
	queryRow(t, db, `SELECT revenue, items, paid, coupon, tags::VARCHAR FROM order_completed WHERE id = 'm-1'`, &revenue, &items, &paid, &coupon, &tags)
	if revenue != 12.5 || items != 3 || !paid || coupon != "SPRING" || tags != `["a","b"]` {
		t.Errorf("order_completed row: %v %v %v %q %s", revenue, items, paid, coupon, tags)
	}

	// timestamp = original + (received − sent): sent 10 s after original.
	var ts, orig, sent, recv time.Time
	queryRow(t, db, `SELECT timestamp, original_timestamp, sent_at, received_at FROM tracks`, &ts, &orig, &sent, &recv)
	if !orig.Equal(time.Date(2024, 5, 6, 7, 8, 9, 123e6, time.UTC)) || !sent.Equal(time.Date(2024, 5, 6, 7, 8, 19, 123e6, time.UTC)) {
		t.Errorf("original_timestamp %v, sent_at %v", orig, sent)
	}
	if recv.Before(before.Truncate(time.Microsecond)) || recv.After(after) {
		t.Errorf("received_at %v not within the request (%v .. %v)", recv, before, after)
	}
	if want := orig.Add(recv.Sub(sent)); !ts.Equal(want) {
		t.Errorf("timestamp %v; want original + (received − sent) = %v", ts, want)
	}

	var email, plan string
	var age int64
	queryRow(t, db, `SELECT email, plan, age FROM identifies WHERE user_id = 'u1'`, &email, &plan, &age)
	if email != "ann@example.com" || plan != "pro" || age != 31 {
		t.Errorf("identifies row: %q %q %d", email, plan, age)
	}
	var name, category, url string
	queryRow(t, db, `SELECT name, category, url FROM pages`, &name, &category, &url)
	if name != "Home" || category != "Docs" || url != "https://example.com/" {
		t.Errorf("pages row: %q %q %q", name, category, url)
	}
	if _, ok := columnTypes(t, db, "pages")["_overflow"]; ok {
		t.Errorf("pages has an overflow column: properties.category collided with the column")
	}
	var theme string
	queryRow(t, db, `SELECT name, theme FROM screens`, &name, &theme)
	if name != "Settings" || theme != "dark" {
		t.Errorf("screens row: %q %q", name, theme)
	}
	var groupID string
	var employees int64
	queryRow(t, db, `SELECT group_id, name, employees FROM groups`, &groupID, &name, &employees)
	if groupID != "g1" || name != "Acme" || employees != 50 {
		t.Errorf("groups row: %q %q %d", groupID, name, employees)
	}
	var prev string
	queryRow(t, db, `SELECT previous_id, user_id FROM aliases`, &prev, &userID)
	if prev != "anon-1" || userID != "u1" {
		t.Errorf("aliases row: %q %q", prev, userID)
	}
	assertNoKey(t, db, key)
}

// The users query of README "Tracking API" gives each user's latest traits.
func TestTrackUsersQuery(t *testing.T) {
	e := newEnv(t)
	id, key := e.tenant("acme")
	body := `{"batch":[
 {"type":"identify","messageId":"i1","userId":"u1","timestamp":"2024-01-01T00:00:00Z","traits":{"plan":"free","email":"a@example.com"}},
 {"type":"identify","messageId":"i2","userId":"u1","timestamp":"2024-02-01T00:00:00Z","traits":{"plan":"pro"}},
 {"type":"identify","messageId":"i3","userId":"u2","timestamp":"2024-01-15T00:00:00Z","traits":{"plan":"team"}}]}`
	if r := e.do("POST", "/v1/batch", []byte(body), "Authorization", basicAuth(key)); r.status != 200 {
		t.Fatalf("batch: %d %s", r.status, r.body)
	}
	e.stop()
	db := e.openDB(id)
	// The query from README (keep them alike).
	rows, err := db.Query(`
SELECT user_id AS id,
       arg_max(plan, timestamp) FILTER (WHERE plan IS NOT NULL) AS plan,
       arg_max(email, timestamp) FILTER (WHERE email IS NOT NULL) AS email,
       max(timestamp) AS last_seen
FROM identifies WHERE user_id IS NOT NULL GROUP BY user_id ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var id, plan string
		var email sql.NullString
		var last time.Time
		if err := rows.Scan(&id, &plan, &email, &last); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %s %s %s", id, plan, email.String, last.UTC().Format(time.DateOnly)))
	}
	if want := []string{"u1 pro a@example.com 2024-02-01", "u2 team  2024-01-15"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("users: %q; want %q", got, want)
	}
}

// Every route takes its events, with the key where its SDK puts it, gzip
// whatever the Content-Type says, and answers as its SDK expects.
func TestTrackRoutes(t *testing.T) {
	e := newEnv(t)
	id, key := e.tenant("acme")
	ev := func(typ, mid, extra string) string {
		return `{"type":"` + typ + `","messageId":"` + mid + `","userId":"u1","timestamp":"2024-05-06T07:08:09Z"` + extra + `}`
	}
	cases := []struct {
		path, body string
		hdr        []string
		gz         bool
		posthog    bool
	}{
		{"/v1/track", ev("track", "r1", `,"event":"Signed Up","properties":{"plan":"pro","id":"prop-id"}`), []string{"Authorization", basicAuth(key)}, false, false},
		{"/v1/identify", ev("identify", "r2", `,"traits":{"plan":"pro"}`), []string{"Authorization", "Bearer " + key}, false, false},
		{"/v1/page", ev("page", "r3", `,"name":"Home","writeKey":"`+key+`"`), nil, false, false},
		{"/v1/screen", ev("screen", "r4", `,"name":"Home"`), []string{"Authorization", basicAuth(key)}, false, false},
		{"/v1/group", ev("group", "r5", `,"groupId":"g1"`), []string{"Authorization", basicAuth(key)}, false, false},
		{"/v1/alias", ev("alias", "r6", `,"previousId":"p1"`), []string{"Authorization", basicAuth(key)}, false, false},
		{"/v1/import", `{"batch":[` + ev("track", "r7", `,"event":"Signed Up"`) + `]}`, []string{"Authorization", basicAuth(key)}, false, false},
		// RudderStack: gzip sent as a form.
		{"/v1/batch", `{"batch":[` + ev("track", "r8", `,"event":"Signed Up","originalTimestamp":"2024-05-06T07:08:09Z"`) + `],"sentAt":"2024-05-06T07:08:09Z"}`,
			[]string{"Authorization", basicAuth(key), "Content-Type", "application/x-www-form-urlencoded", "Content-Encoding", "gzip"}, true, false},
		{"/batch/", `{"api_key":"` + key + `","batch":[{"event":"Signed Up","uuid":"r9","distinct_id":"u1","properties":{"plan":"pro"}}],"sent_at":"2024-05-06T07:08:09Z"}`,
			[]string{"Content-Encoding", "gzip"}, true, true},
		{"/batch", `{"api_key":"` + key + `","batch":[{"event":"Signed Up","uuid":"r10","distinct_id":"u1"}]}`, nil, false, true},
		{"/capture/", `{"api_key":"` + key + `","event":"Signed Up","uuid":"r11","distinct_id":"u1"}`, nil, false, true},
		{"/e/", `[{"event":"Signed Up","uuid":"r12","properties":{"token":"` + key + `","distinct_id":"u1"}}]`, nil, false, true},
		// gzip without Content-Encoding (posthog-js ?compression=gzip-js).
		{"/i/v0/e", `{"token":"` + key + `","event":"Signed Up","uuid":"r13","distinct_id":"u1"}`, []string{"Content-Type", "text/plain"}, true, true},
		{"/i/v0/e/", `{"event":"$pageview","uuid":"r14","distinct_id":"u1","properties":{"$current_url":"https://example.com/"}}`, []string{"Authorization", "Bearer " + key}, false, true},
	}
	for _, c := range cases {
		body := []byte(c.body)
		if c.gz {
			body = gzipped(t, c.body)
		}
		r := e.do("POST", c.path, body, c.hdr...)
		if r.status != 200 {
			t.Errorf("%s: %d %s", c.path, r.status, r.body)
			continue
		}
		a := decodeAnswer(t, r)
		if c.posthog && (a.Status != 1 || a.Success) || !c.posthog && (!a.Success || a.Status != 0) || a.Accepted != 1 {
			t.Errorf("%s: answer %s", c.path, r.body)
		}
		if r.header["Access-Control-Allow-Origin"] != "*" {
			t.Errorf("%s: Access-Control-Allow-Origin %q", c.path, r.header["Access-Control-Allow-Origin"])
		}
	}
	e.stop()
	db := e.openDB(id)
	for table, n := range map[string]int{"tracks": 8, "signed_up": 8, "identifies": 1, "pages": 2, "screens": 1, "groups": 1, "aliases": 1} {
		if got := countRows(t, db, table); got != n {
			t.Errorf("%s has %d rows; want %d", table, got, n)
		}
	}
	// A property named like a common column goes to the overflow column.
	var plan, overflow string
	queryRow(t, db, `SELECT plan, _overflow::VARCHAR FROM signed_up WHERE id = 'r1'`, &plan, &overflow)
	if plan != "pro" || overflow != `{"id":"prop-id"}` {
		t.Errorf("signed_up r1: plan %q, _overflow %s", plan, overflow)
	}
	var n int
	queryRow(t, db, `SELECT count(*) FROM signed_up WHERE user_id = 'u1'`, &n)
	if n != 8 {
		t.Errorf("%d signed_up rows have user_id u1; want 8", n)
	}
	assertNoKey(t, db, key)
}

// Bad input is refused with a status and a reason; a bad event among good
// ones is refused alone, by index.
func TestTrackBadInput(t *testing.T) {
	e := newEnv(t)
	id, key := e.tenant("acme")
	_, queryKey, err := e.tenants.CreateKey(id, tenant.ScopeQuery)
	if err != nil {
		t.Fatal(err)
	}
	_, ingestKey, err := e.tenants.CreateKey(id, tenant.ScopeIngest)
	if err != nil {
		t.Fatal(err)
	}
	good := `{"type":"track","messageId":"g1","userId":"u1","event":"Ok"}`
	big := `{"type":"track","messageId":"big","event":"Big","properties":{"s":"` + strings.Repeat("x", 33<<10) + `"}}`

	check := func(name string, r response, status int, contains string) trackAnswer {
		t.Helper()
		if r.status != status {
			t.Errorf("%s: status %d; want %d (%s)", name, r.status, status, r.body)
		}
		a := decodeAnswer(t, r)
		if contains != "" && !strings.Contains(string(r.body), contains) {
			t.Errorf("%s: body %s does not say %q", name, r.body, contains)
		}
		return a
	}

	r := e.do("POST", "/v1/batch", []byte(`{"batch":[`+good+`,{"type":"bogus","messageId":"b1"},{"type":"track","messageId":"b2"},`+big+`,7,
		{"type":"track","messageId":"b3","event":"x","timestamp":"yesterday"}]}`), "Authorization", basicAuth(ingestKey))
	a := check("one bad among good", r, 200, "")
	if !a.Success || a.Accepted != 1 || a.Rejected != 5 || len(a.Errors) != 5 {
		t.Fatalf("answer %s", r.body)
	}
	for i, want := range []struct {
		index int
		says  string
	}{{1, `type "bogus"`}, {2, `"event"`}, {3, "the limit is 32768"}, {4, "not an object"}, {5, "timestamp"}} {
		if a.Errors[i].Index != want.index || !strings.Contains(a.Errors[i].Error, want.says) {
			t.Errorf("error %d: %+v; want index %d saying %q", i, a.Errors[i], want.index, want.says)
		}
	}

	a = check("oversized single event", e.do("POST", "/v1/track", []byte(big), "Authorization", basicAuth(key)), 400, "the limit is 32768")
	if a.Success || a.Rejected != 1 || len(a.Errors) != 1 || a.Errors[0].Index != 0 {
		t.Errorf("oversized: %+v", a)
	}
	check("body over the batch limit", e.do("POST", "/v1/batch", []byte(`{"batch":[`+strings.Repeat(good+",", (4<<20)/len(good))+good+`]}`),
		"Authorization", basicAuth(key)), 413, "at most 4194304")
	check("missing key", e.do("POST", "/v1/batch", []byte(`{"batch":[`+good+`]}`)), 401, "writeKey")
	check("unknown key", e.do("POST", "/v1/batch", []byte(`{"batch":[`+good+`]}`), "Authorization", basicAuth("nope")), 401, "Basic auth")
	check("unknown key in the body", e.do("POST", "/batch/", []byte(`{"api_key":"nope","batch":[{"event":"x","distinct_id":"u"}]}`)), 401, "api_key")
	check("query-scope key", e.do("POST", "/v1/batch", []byte(`{"batch":[`+good+`]}`), "Authorization", basicAuth(queryKey)), 403, `this key has scope \"query\"`)
	check("non-JSON body", e.do("POST", "/v1/batch", []byte(`hello`), "Authorization", basicAuth(key)), 400, "not valid JSON")
	check("batch without batch", e.do("POST", "/v1/batch", []byte(`{"events":[]}`), "Authorization", basicAuth(key)), 400, "array was found")
	check("bad gzip", e.do("POST", "/v1/batch", []byte("\x1f\x8bnot gzip"), "Authorization", basicAuth(key)), 400, "gzip")
	check("method", e.do("GET", "/v1/batch", nil, "Authorization", basicAuth(key)), 405, "POST, OPTIONS")

	if _, err := e.tenants.SetStatus(id, tenant.StatusSuspended); err != nil {
		t.Fatal(err)
	}
	check("suspended tenant", e.do("POST", "/v1/batch", []byte(`{"batch":[`+good+`]}`), "Authorization", basicAuth(key)), 403, "suspended")

	e.stop()
	db := e.openDB(id)
	if n := countRows(t, db, "tracks"); n != 1 {
		t.Errorf("tracks has %d rows; want the one good event", n)
	}
	var mid string
	queryRow(t, db, `SELECT id FROM ok`, &mid)
	if mid != "g1" {
		t.Errorf("ok row id %q", mid)
	}
}

// A retried batch stores nothing twice, even after a crash; an event sent
// twice in one batch is stored once.
func TestTrackRetryStoresOnce(t *testing.T) {
	e := newEnv(t)
	id, key := e.tenant("acme")
	batch := []byte(segmentBatch(key, "m"))
	for i, want := range []trackAnswer{{Accepted: 6}, {Duplicates: 6}} {
		r := e.do("POST", "/v1/batch", batch)
		a := decodeAnswer(t, r)
		if r.status != 200 || a.Accepted != want.Accepted || a.Duplicates != want.Duplicates {
			t.Fatalf("try %d: %d %s", i, r.status, r.body)
		}
	}
	// The same event twice in one batch, and a crash before any flush.
	twice := `{"type":"track","messageId":"dup","userId":"u1","event":"Order Completed"}`
	r := e.do("POST", "/v1/batch", []byte(`{"batch":[`+twice+`,`+twice+`]}`), "Authorization", basicAuth(key))
	if a := decodeAnswer(t, r); r.status != 200 || a.Accepted != 1 || a.Duplicates != 1 {
		t.Fatalf("in-batch duplicate: %d %s", r.status, r.body)
	}
	e.crash()
	e2 := startEnv(t, e.dir)
	r = e2.do("POST", "/v1/batch", []byte(`{"batch":[`+twice+`]}`), "Authorization", basicAuth(key))
	if a := decodeAnswer(t, r); r.status != 200 || a.Accepted != 0 || a.Duplicates != 1 {
		t.Fatalf("retry after crash: %d %s", r.status, r.body)
	}
	r = e2.do("POST", "/v1/batch", batch)
	if a := decodeAnswer(t, r); r.status != 200 || a.Duplicates != 6 {
		t.Fatalf("batch retry after crash: %d %s", r.status, r.body)
	}
	e2.stop()
	db := e2.openDB(id)
	for table, n := range map[string]int{"tracks": 2, "order_completed": 2, "identifies": 1, "pages": 1, "screens": 1, "groups": 1, "aliases": 1} {
		if got := countRows(t, db, table); got != n {
			t.Errorf("%s has %d rows; want %d", table, got, n)
		}
	}
}

// The tracking routes answer CORS preflights for any origin.
func TestTrackCORSPreflight(t *testing.T) {
	e := newEnv(t)
	r := e.do("OPTIONS", "/v1/batch", nil, "Origin", "https://shop.example", "Access-Control-Request-Method", "POST",
		"Access-Control-Request-Headers", "authorization, content-type")
	if r.status != 204 {
		t.Fatalf("preflight: %d %s", r.status, r.body)
	}
	for h, want := range map[string]string{
		"Access-Control-Allow-Origin":  "https://shop.example",
		"Access-Control-Allow-Methods": "POST, OPTIONS",
		"Access-Control-Allow-Headers": "authorization, content-type",
		"Vary":                         "Origin",
	} {
		if r.header[h] != want {
			t.Errorf("%s: %q; want %q", h, r.header[h], want)
		}
	}
	if r := e.do("OPTIONS", "/i/v0/e/", nil, "Origin", "https://a.example"); r.status != 204 || r.header["Access-Control-Allow-Origin"] != "https://a.example" {
		t.Errorf("posthog preflight: %d %v", r.status, r.header)
	}
}

// trackBatch is a Segment batch of n track events with ids prefix-0…
func trackBatch(prefix string, n int) []byte {
	var b strings.Builder
	b.WriteString(`{"batch":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"type":"track","messageId":"%s-%d","userId":"u","event":"Tick","properties":{"pad":%q}}`, prefix, i, strings.Repeat("x", 200))
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

// At the buffer cap the tracking routes answer 503 with Retry-After; what
// was acknowledged is stored, what was refused is not, and its retry later
// stores it once.
func TestTrackBufferCap503(t *testing.T) {
	e := newEnv(t, func(c *envConfig) {
		c.batcher.FlushInterval = time.Hour
		c.batcher.MaxBufferedBytes = 64 << 10
	})
	id, key := e.tenant("acme")
	accepted, refused := 0, 0
	for i := range 60 {
		r := e.do("POST", "/v1/batch", trackBatch(fmt.Sprint(i), 5), "Authorization", basicAuth(key))
		switch r.status {
		case 200:
			accepted += decodeAnswer(t, r).Accepted
		case 503:
			refused++
			if r.header["Retry-After"] == "" || !strings.Contains(string(r.body), "buffer is full") {
				t.Fatalf("503 without Retry-After or a useful message: %v %s", r.header, r.body)
			}
		default:
			t.Fatalf("batch %d: %d %s", i, r.status, r.body)
		}
	}
	if accepted == 0 || refused == 0 {
		t.Fatalf("accepted %d events, refused %d batches: the cap did not bite", accepted, refused)
	}
	e.stop()
	db := e.openDB(id)
	if n := countRows(t, db, "tick"); n != accepted {
		t.Fatalf("stored %d events, acknowledged %d", n, accepted)
	}
}

// The plan's rate limit applies to tracked events as to inserts.
func TestTrackRateLimit(t *testing.T) {
	e := newAdminEnv(t, adminEnvConfig{plans: limitPlans()})
	_, key := e.tenantOn("limited", "free") // plan free: 10 rows per second
	// 13 events are 26 rows (tracks and tick): past one second of rows.
	wantStatus(t, e.do("POST", "/v1/batch", trackBatch("a", 13), "Authorization", basicAuth(key)), 200, "first batch")
	r := e.do("POST", "/v1/batch", trackBatch("b", 1), "Authorization", basicAuth(key))
	wantStatus(t, r, 429, "over the rate")
	if r.header["Retry-After"] == "" || !strings.Contains(string(r.body), "10 rows per second") {
		t.Fatalf("429: %v %s", r.header, r.body)
	}
	// Nothing of the refused batch was kept: its retry is not a duplicate.
	r = e.do("POST", "/v1/batch", trackBatch("b", 1), "Authorization", basicAuth(key))
	if r.status == 200 {
		if a := decodeAnswer(t, r); a.Duplicates != 0 {
			t.Fatalf("retry after 429: %s", r.body)
		}
	}
}

// A tenant's allowed origins: a page of another origin is refused (403,
// nothing stored, no Access-Control-Allow-Origin); an allowed one and a
// request without Origin (a server-side SDK) are stored; the list survives
// a restart; a malformed origin is refused by the admin API.
func TestTrackAllowedOrigins(t *testing.T) {
	e := newEnv(t)
	id, key := e.tenant("acme")
	wantStatus(t, e.admin("PATCH", "/api/admin/tenants/"+id, `{"allowed_origins":["https://App.example","http://localhost:3000/"]}`), 200, "set origins")
	for _, bad := range []string{`["*"]`, `["app.example"]`, `["https://app.example/path"]`, `["ftp://app.example"]`, `"https://app.example"`} {
		wantStatus(t, e.admin("PATCH", "/api/admin/tenants/"+id, `{"allowed_origins":`+bad+`}`), 400, "origins "+bad)
	}
	e = e.restart()
	if tn, err := e.tenants.Get(id); err != nil || len(tn.AllowedOrigins) != 2 || tn.AllowedOrigins[0] != "https://app.example" {
		t.Fatalf("after restart: %+v %v", tn, err)
	}
	post := func(msgID string, hdr ...string) response {
		body := []byte(`{"batch":[{"type":"track","event":"Signed Up","userId":"u1","messageId":"` + msgID + `"}]}`)
		return e.do("POST", "/v1/batch", body, append([]string{"Authorization", basicAuth(key)}, hdr...)...)
	}
	r := post("evil", "Origin", "https://evil.example")
	if r.status != 403 || r.header["Access-Control-Allow-Origin"] != "" || !strings.Contains(string(r.body), "origin") {
		t.Errorf("a foreign origin: %d %v %s", r.status, r.header, r.body)
	}
	if r := post("ok", "Origin", "https://app.example"); r.status != 200 || r.header["Access-Control-Allow-Origin"] != "https://app.example" {
		t.Errorf("an allowed origin: %d %v %s", r.status, r.header, r.body)
	}
	if r := post("server"); r.status != 200 {
		t.Errorf("no Origin header: %d %s", r.status, r.body)
	}
	// An empty list allows any origin again.
	wantStatus(t, e.admin("PATCH", "/api/admin/tenants/"+id, `{"allowed_origins":[]}`), 200, "clear origins")
	if r := post("any", "Origin", "https://elsewhere.example"); r.status != 200 {
		t.Errorf("after clearing: %d %s", r.status, r.body)
	}
	e.stop()
	db := e.openDB(id)
	var ids string
	queryRow(t, db, `SELECT string_agg(id, ',' ORDER BY id) FROM signed_up`, &ids)
	if ids != "any,ok,server" {
		t.Errorf("stored events %q; want any,ok,server", ids)
	}
}
