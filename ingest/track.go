package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	json "github.com/goccy/go-json"
	"github.com/valyala/bytebufferpool"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"

	"duckgate/batcher"
	"duckgate/tenant"
)

// The tracking API: Segment's HTTP Tracking API (which RudderStack's SDKs
// also speak) and PostHog's capture endpoints. See doc.go for the flow and
// README "Tracking API" for the table mapping.

const (
	// TrackMaxEvent is the largest event accepted, in bytes of compact
	// JSON: Segment's documented limit (32 KB), which its SDKs also check
	// before sending. A larger event is rejected alone.
	TrackMaxEvent = 32 << 10
	// TrackMaxBatch is the largest tracking request body, in bytes after
	// decompression: 8 × Segment's 500 KB, so that any batch an SDK sends
	// (Segment and RudderStack stop at 500 KB, posthog-node at 1 MB of
	// events by default) passes. A larger body is 413 as a whole.
	TrackMaxBatch = 4 << 20
	// trackMaxID bounds a messageId or uuid, as Idempotency-Key is bounded.
	trackMaxID = 200
	// timestampLayout is RFC 3339 in UTC with microseconds, DuckDB's
	// TIMESTAMPTZ precision; the batcher types such text as a timestamp.
	timestampLayout = "2006-01-02T15:04:05.000000Z07:00"
)

// TrackCall is what a tracking route receives.
type TrackCall int

// The tracking calls, by route.
const (
	// SegmentBatch is POST /v1/batch and /v1/import: {"batch":[...]}.
	SegmentBatch TrackCall = iota
	// SegmentTrack and the five below are the single-event routes
	// /v1/track, /v1/identify, /v1/page, /v1/screen, /v1/group, /v1/alias.
	SegmentTrack
	SegmentIdentify
	SegmentPage
	SegmentScreen
	SegmentGroup
	SegmentAlias
	// PostHogCapture is /batch/, /capture/, /e/ and /i/v0/e/ (with or
	// without the slash): one event, an array of events, or
	// {"batch":[...]}.
	PostHogCapture
)

// segmentType is the Segment "type" of a single-event route.
var segmentType = [...]string{SegmentTrack: "track", SegmentIdentify: "identify", SegmentPage: "page",
	SegmentScreen: "screen", SegmentGroup: "group", SegmentAlias: "alias"}

// The tables of the tracking API, after Segment's warehouse schema.
const (
	TableTracks     = "tracks"
	TableIdentifies = "identifies"
	TablePages      = "pages"
	TableScreens    = "screens"
	TableGroups     = "groups"
	TableAliases    = "aliases"
	// TableUsers is not written: it is the query over identifies that
	// README "Tracking API" gives. An event of this name gets a table
	// "event_users" like the others above.
	TableUsers = "users"
)

// TrackRequest is a tracking request read and parsed, before its key is
// checked. It holds a pooled parser: call Release once done.
type TrackRequest struct {
	// Key is the key found in the body (writeKey, api_key or token at the
	// top level of the body, of its first event or of that event's
	// properties, where posthog-js puts it); nil if none. It is
	// valid until Release.
	Key []byte

	call     TrackCall
	received time.Time
	p        *fastjson.Parser
	events   []*fastjson.Value
	sentAt   *fastjson.Value // the batch's sentAt or sent_at; nil if none
}

// Release returns the request's parser to its pool.
func (r *TrackRequest) Release() {
	if r.p != nil {
		parserPool.Put(r.p)
		r.p = nil
	}
}

// TrackError is one rejected event.
type TrackError struct {
	// Index is the 0-based position of the event in the request's batch
	// (0 for a single-event request).
	Index int    `json:"index"`
	Error string `json:"error"`
}

// TrackResponse is the answer to a tracking request: what the SDKs check
// (Success for Segment and RudderStack, Status 1 for PostHog) and what was
// done with each event.
type TrackResponse struct {
	// Success is Segment's and RudderStack's answer: true.
	Success bool `json:"success,omitempty"`
	// Status is PostHog's answer: 1.
	Status int `json:"status,omitempty"`
	// Accepted events are durable (in the write-ahead log).
	Accepted int `json:"accepted"`
	// Duplicates are events whose messageId or uuid was accepted before
	// within the idempotency window: nothing was stored again.
	Duplicates int `json:"duplicates"`
	// Rejected events could not be stored; Errors says why, by index (at
	// most 100 listed).
	Rejected int          `json:"rejected"`
	Errors   []TrackError `json:"errors,omitempty"`
}

func (r *TrackResponse) reject(i int, msg string) {
	r.Rejected++
	if len(r.Errors) < maxReportedErrors {
		r.Errors = append(r.Errors, TrackError{Index: i, Error: msg})
	}
}

// TrackRejectedError is a tracking request none of whose events could be
// stored (ErrBadBody, 400): the answer lists why each was refused.
type TrackRejectedError struct {
	// Response is the answer's counts and per-event errors.
	Response TrackResponse
	err      error
}

// Error returns the message for the client.
func (e *TrackRejectedError) Error() string { return e.err.Error() }

// Unwrap makes errors.Is(err, ErrBadBody) true.
func (e *TrackRejectedError) Unwrap() error { return e.err }

var (
	keyWriteKey = []byte("writeKey")
	keyAPIKey   = []byte("api_key")
	keyToken    = []byte("token")
)

// ReadTrack reads a tracking request's body: gunzipped when it starts with
// the gzip magic or says Content-Encoding: gzip, whatever its Content-Type
// (RudderStack sends gzip as application/x-www-form-urlencoded), bounded by
// TrackMaxBatch, and parsed. It copies what it keeps of the body.
func (h *Handler) ReadTrack(ctx *fasthttp.RequestCtx, call TrackCall) (*TrackRequest, error) {
	received := time.Now().UTC()
	if err := h.cfg.Batcher.Full(); err != nil {
		return nil, err
	}
	body := ctx.PostBody()
	enc := ctx.Request.Header.Peek(fasthttp.HeaderContentEncoding)
	switch {
	case bytes.EqualFold(enc, []byte("gzip")) || bytes.HasPrefix(body, []byte{0x1f, 0x8b}):
		buf, err := gunzip(body, TrackMaxBatch)
		if err != nil {
			return nil, err
		}
		defer bytebufferpool.Put(buf)
		body = buf.B
	case len(enc) > 0 && !bytes.EqualFold(enc, []byte("identity")):
		return nil, fmt.Errorf("%w: Content-Encoding %q is not supported; use gzip or none", ErrBadRequest, truncate(enc))
	case len(body) > TrackMaxBatch:
		return nil, fmt.Errorf("%w: the body is %d bytes; the tracking API takes at most %d per request: send smaller batches", ErrTooLarge, len(body), TrackMaxBatch)
	}
	body = bytes.TrimSpace(bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")))
	if len(body) == 0 {
		return nil, fmt.Errorf("%w: the body is empty: send a JSON event or {\"batch\":[...]}", ErrBadBody)
	}
	r := &TrackRequest{call: call, received: received, p: parserPool.Get()}
	v, err := r.p.ParseBytes(body) // the parser copies body
	if err != nil {
		r.Release()
		return nil, fmt.Errorf("%w: the body is not valid JSON (%s)", ErrBadBody, shortErr(err))
	}
	switch v.Type() {
	case fastjson.TypeObject:
		r.Key = bodyKey(v)
		batch := v.Get("batch")
		switch {
		case batch != nil && batch.Type() == fastjson.TypeArray:
			r.events, _ = batch.Array()
			r.sentAt = v.Get("sentAt")
			if r.sentAt == nil {
				r.sentAt = v.Get("sent_at")
			}
		case call == SegmentBatch:
			r.Release()
			return nil, fmt.Errorf("%w: a batch body is {\"batch\":[events...]}; no \"batch\" array was found", ErrBadBody)
		default:
			r.events = []*fastjson.Value{v}
		}
	case fastjson.TypeArray:
		if call != PostHogCapture {
			r.Release()
			return nil, fmt.Errorf("%w: send {\"batch\":[events...]} or one event object, not an array", ErrBadBody)
		}
		r.events, _ = v.Array()
	default:
		r.Release()
		return nil, fmt.Errorf("%w: the body is a JSON %s; send an event object or {\"batch\":[...]}", ErrBadBody, v.Type())
	}
	if r.Key == nil && len(r.events) > 0 && r.events[0].Type() == fastjson.TypeObject {
		// A single event's, or posthog-js's properties.token.
		if r.Key = bodyKey(r.events[0]); r.Key == nil {
			r.Key = bodyKey(r.events[0].Get("properties"))
		}
	}
	return r, nil
}

// bodyKey returns the writeKey, api_key or token string of an object, or nil.
func bodyKey(v *fastjson.Value) []byte {
	for _, k := range [...]string{"writeKey", "api_key", "token"} {
		if s := v.GetStringBytes(k); len(s) > 0 {
			return s
		}
	}
	return nil
}

// trackRow is one row a tracking event becomes, before dedup.
type trackRow struct {
	index int // of the event in the batch
	table string
	key   string // idempotency key; "" without a messageId
	rows  *batcher.Rows
}

// trackReplay is what a retry of a stored event's key gets; the tracking
// API answers retries by counting them, so it is never sent.
var trackReplay = []byte(`{"duplicate":true}`)

// Track stores the events of r for the authenticated tenant t and answers
// as the SDK of the route expects. Each event becomes one row in its
// type's table (and a track also one in its event's table); each row is
// its own write-ahead log record carrying the idempotency key
// "track:<table>:<messageId>", the request's records appended together
// (batcher.SubmitAll). A row whose key was accepted within the idempotency
// window is skipped: a retried batch stores nothing twice, across crashes
// too, and after a log failure partway its retry stores only what is
// missing.
func (h *Handler) Track(ctx *fasthttp.RequestCtx, t tenant.Tenant, r *TrackRequest) error {
	resp := TrackResponse{}
	if r.call == PostHogCapture {
		resp.Status = 1
	} else {
		resp.Success = true
	}
	m := trackMapper{received: r.received, batchSent: r.sentAt}
	var rows []trackRow
	for i, ev := range r.events {
		var msg string
		rows, msg = m.event(rows, i, ev, r.call)
		if msg != "" {
			resp.reject(i, msg)
		}
	}
	if len(rows) == 0 && resp.Rejected > 0 {
		h.metrics.rowsRejected.Add(resp.Rejected)
		first := resp.Errors[0]
		resp.Success, resp.Status = false, 0 // an error, not the SDKs' "ok"
		return &TrackRejectedError{Response: resp, err: fmt.Errorf("%w: no event could be stored; event %d: %s", ErrBadBody, first.Index, first.Error)}
	}

	// Dedup: reserve every row's key; a key accepted before is a
	// duplicate, one taken earlier in this request is the same event sent
	// twice in one batch.
	var reserved []string
	mine := make(map[string]bool)
	abort := func() {
		for _, k := range reserved {
			h.cfg.Batcher.AbortIdempotent(t.ID, k)
		}
	}
	reqs := make([]batcher.Request, 0, len(rows))
	dupEvent := make(map[int]bool)
	stored := make(map[int]bool)
	nrows := 0
	for _, row := range rows {
		if row.key != "" {
			if mine[row.key] {
				dupEvent[row.index] = true
				continue
			}
			_, found, err := h.cfg.Batcher.BeginIdempotent(t.ID, row.key)
			switch {
			case errors.Is(err, batcher.ErrInProgress):
				abort()
				return fmt.Errorf("%w: event %d (%s) is being stored by another request right now; retry in a second", ErrInFlight, row.index, row.key)
			case err != nil:
				abort()
				return err
			case found:
				dupEvent[row.index] = true
				continue
			}
			reserved = append(reserved, row.key)
			mine[row.key] = true
		}
		stored[row.index] = true
		nrows += row.rows.Len()
		reqs = append(reqs, batcher.Request{Tenant: t.ID, Table: row.table, Rows: row.rows,
			IdempotencyKey: row.key, Response: trackReplay})
	}
	for i := range dupEvent {
		if !stored[i] {
			resp.Duplicates++
		}
	}
	resp.Accepted = len(stored)
	if nrows > 0 {
		if err := h.Admit(t, nrows); err != nil {
			abort()
			return err
		}
		if err := h.cfg.Batcher.SubmitAll(reqs); err != nil {
			abort()
			return err
		}
		h.noteIngest(t.ID, nrows)
	}
	h.metrics.rowsAccepted.Add(nrows)
	h.metrics.rowsRejected.Add(resp.Rejected)
	h.metrics.bytesAccepted.Add(len(ctx.PostBody()))
	b, err := json.Marshal(resp)
	if err != nil {
		return err
	}
	writeBody(ctx, append(b, '\n'))
	return nil
}

// trackMapper turns events into rows.
type trackMapper struct {
	received  time.Time
	batchSent *fastjson.Value
	scratch   []byte
}

// Column names of the tracking tables.
var (
	colID                = []byte("id")
	colAnonymousID       = []byte("anonymous_id")
	colUserID            = []byte("user_id")
	colEvent             = []byte("event")
	colEventText         = []byte("event_text")
	colName              = []byte("name")
	colCategory          = []byte("category")
	colGroupID           = []byte("group_id")
	colGroupType         = []byte("group_type")
	colPreviousID        = []byte("previous_id")
	colProperties        = []byte("properties")
	colTimestamp         = []byte("timestamp")
	colOriginalTimestamp = []byte("original_timestamp")
	colSentAt            = []byte("sent_at")
	colReceivedAt        = []byte("received_at")
)

// segmentFields are the event fields every type's mapping consumes, and
// segmentTypeFields those each type consumes besides; any other top-level
// field is stored under its own name (context, integrations, channel,
// _metadata, ...). The client's receivedAt is replaced by ours.
var (
	segmentFields = map[string]bool{
		"type": true, "messageId": true, "anonymousId": true, "userId": true,
		"timestamp": true, "originalTimestamp": true, "sentAt": true, "receivedAt": true,
		"writeKey": true, "api_key": true, "token": true,
	}
	segmentTypeFields = map[string]map[string]bool{
		"track":    {"event": true, "properties": true},
		"identify": {"traits": true},
		"page":     {"name": true, "category": true, "properties": true},
		"screen":   {"name": true, "category": true, "properties": true},
		"group":    {"groupId": true, "traits": true},
		"alias":    {"previousId": true},
	}
)

// event appends the rows of event i, or returns why it cannot be stored.
func (m *trackMapper) event(rows []trackRow, i int, ev *fastjson.Value, call TrackCall) ([]trackRow, string) {
	if ev.Type() != fastjson.TypeObject {
		return rows, "the event is a JSON " + ev.Type().String() + ", not an object"
	}
	m.scratch = ev.MarshalTo(m.scratch[:0])
	if len(m.scratch) > TrackMaxEvent {
		return rows, fmt.Sprintf("the event is %d bytes; the limit is %d", len(m.scratch), TrackMaxEvent)
	}
	if call == PostHogCapture {
		return m.posthog(rows, i, ev)
	}
	return m.segment(rows, i, ev, call)
}

// common holds what every row of an event carries.
type common struct {
	id, anonymousID, userID  []byte
	original, sent, adjusted time.Time // zero when unknown
}

// times computes original_timestamp, sent_at and the skew-corrected
// timestamp = original + (received − sent).
func (m *trackMapper) times(c *common, original, sent *fastjson.Value) string {
	var err error
	if c.original, err = timeOf(original); err != nil {
		return "timestamp: " + err.Error()
	}
	if sent == nil {
		sent = m.batchSent
	}
	if c.sent, err = timeOf(sent); err != nil {
		return "sentAt: " + err.Error()
	}
	switch {
	case c.original.IsZero():
		c.adjusted = m.received
	case c.sent.IsZero():
		c.adjusted = c.original
	default:
		c.adjusted = c.original.Add(m.received.Sub(c.sent))
	}
	return ""
}

// timeOf parses an RFC 3339 timestamp; a missing or null value is the zero
// time.
func timeOf(v *fastjson.Value) (time.Time, error) {
	if v == nil || v.Type() == fastjson.TypeNull {
		return time.Time{}, nil
	}
	s, err := v.StringBytes()
	if err != nil {
		return time.Time{}, errors.New("not a string; send an ISO 8601 timestamp")
	}
	t, err := time.Parse(time.RFC3339Nano, string(s))
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an ISO 8601 timestamp with a zone", truncate(s))
	}
	return t.UTC(), nil
}

// idText returns a string or number value as text; nil for missing or null.
func idText(v *fastjson.Value, name string) ([]byte, string) {
	if v == nil {
		return nil, ""
	}
	switch v.Type() {
	case fastjson.TypeNull:
		return nil, ""
	case fastjson.TypeString:
		s, _ := v.StringBytes()
		return s, ""
	case fastjson.TypeNumber:
		return v.MarshalTo(nil), ""
	}
	return nil, name + " is a JSON " + v.Type().String() + "; send a string"
}

// builder starts a row with the common columns.
func (m *trackMapper) builder(c *common) *batcher.Builder {
	b := batcher.NewBuilderFor(2 * len(m.scratch))
	addText(b, colID, c.id)
	addText(b, colAnonymousID, c.anonymousID)
	addText(b, colUserID, c.userID)
	addTime(b, colTimestamp, c.adjusted)
	addTime(b, colOriginalTimestamp, c.original)
	addTime(b, colSentAt, c.sent)
	addTime(b, colReceivedAt, m.received)
	return b
}

func addText(b *batcher.Builder, col, v []byte) {
	if v != nil {
		b.AddString(col, v)
	}
}

func addTime(b *batcher.Builder, col []byte, t time.Time) {
	if !t.IsZero() {
		b.AddString(col, t.AppendFormat(nil, timestampLayout))
	}
}

// idKey is the idempotency key of an event's row in table.
func idKey(table string, id []byte) string {
	if id == nil {
		return ""
	}
	return "track:" + table + ":" + string(id)
}

// segment maps a Segment or RudderStack event.
func (m *trackMapper) segment(rows []trackRow, i int, ev *fastjson.Value, call TrackCall) ([]trackRow, string) {
	typ := string(ev.GetStringBytes("type"))
	if call != SegmentBatch {
		typ = segmentType[call]
	}
	var c common
	var msg string
	if c.id, msg = idText(ev.Get("messageId"), "messageId"); msg != "" {
		return rows, msg
	}
	if len(c.id) > trackMaxID {
		return rows, fmt.Sprintf("messageId is longer than %d bytes", trackMaxID)
	}
	if c.anonymousID, msg = idText(ev.Get("anonymousId"), "anonymousId"); msg != "" {
		return rows, msg
	}
	if c.userID, msg = idText(ev.Get("userId"), "userId"); msg != "" {
		return rows, msg
	}
	// RudderStack's SDKs send originalTimestamp (the call's time) and
	// keep timestamp only when the caller set one: that one wins.
	original := ev.Get("timestamp")
	if original == nil {
		original = ev.Get("originalTimestamp")
	}
	if msg = m.times(&c, original, ev.Get("sentAt")); msg != "" {
		return rows, msg
	}
	stripKeys(ev)

	// rest adds the event's other top-level fields under their own names.
	own := segmentTypeFields[typ]
	rest := func(b *batcher.Builder) string {
		return addFields(b, ev, func(k []byte) bool { return segmentFields[string(k)] || own[string(k)] })
	}
	switch typ {
	case "track":
		name := ev.GetStringBytes("event")
		if len(name) == 0 {
			return rows, `a track needs a non-empty string "event"`
		}
		table, msg := EventTable(name)
		if msg != "" {
			return rows, msg
		}
		b := m.builder(&c)
		b.AddString(colEvent, []byte(table))
		b.AddString(colEventText, name)
		if msg := rest(b); msg != "" {
			return rows, msg
		}
		rows = m.end(rows, i, TableTracks, b, &c)
		b = m.builder(&c)
		b.AddString(colEvent, []byte(table))
		b.AddString(colEventText, name)
		if msg := rest(b); msg != "" {
			return rows[:len(rows)-1], msg
		}
		if msg := addFields(b, ev.Get("properties"), nil); msg != "" {
			return rows[:len(rows)-1], "properties: " + msg
		}
		return m.end(rows, i, table, b, &c), ""
	case "identify", "group":
		table := TableIdentifies
		if typ == "group" {
			table = TableGroups
		}
		b := m.builder(&c)
		if typ == "group" {
			gid, msg := idText(ev.Get("groupId"), "groupId")
			if msg != "" {
				return rows, msg
			}
			addText(b, colGroupID, gid)
		}
		if msg := rest(b); msg != "" {
			return rows, msg
		}
		traits := ev.Get("traits")
		if traits == nil {
			traits = ev.Get("context", "traits") // RudderStack's identify
		}
		if msg := addFields(b, traits, nil); msg != "" {
			return rows, "traits: " + msg
		}
		return m.end(rows, i, table, b, &c), ""
	case "page", "screen":
		table := TablePages
		if typ == "screen" {
			table = TableScreens
		}
		b := m.builder(&c)
		name, category := nonEmpty(ev.GetStringBytes("name")), nonEmpty(ev.GetStringBytes("category"))
		addText(b, colName, name)
		addText(b, colCategory, category)
		if msg := rest(b); msg != "" {
			return rows, msg
		}
		// Segment's SDKs copy name and category into properties too: the
		// columns have them already.
		dup := func(k []byte) bool {
			return name != nil && string(k) == "name" || category != nil && string(k) == "category"
		}
		if msg := addFields(b, ev.Get("properties"), dup); msg != "" {
			return rows, "properties: " + msg
		}
		return m.end(rows, i, table, b, &c), ""
	case "alias":
		b := m.builder(&c)
		prev, msg := idText(ev.Get("previousId"), "previousId")
		if msg != "" {
			return rows, msg
		}
		addText(b, colPreviousID, prev)
		if msg := rest(b); msg != "" {
			return rows, msg
		}
		return m.end(rows, i, TableAliases, b, &c), ""
	case "":
		return rows, `the event has no "type": use track, identify, page, screen, group or alias`
	}
	return rows, fmt.Sprintf("type %q: use track, identify, page, screen, group or alias", truncate([]byte(typ)))
}

func nonEmpty(s []byte) []byte {
	if len(s) == 0 {
		return nil
	}
	return s
}

// end ends b's row and appends it.
func (m *trackMapper) end(rows []trackRow, i int, table string, b *batcher.Builder, c *common) []trackRow {
	b.EndRow()
	return append(rows, trackRow{index: i, table: table, key: idKey(table, c.id), rows: b.Rows()})
}

// posthog maps a PostHog event: $identify → identifies, $pageview → pages,
// $screen → screens, $groupidentify → groups, $create_alias → aliases,
// any other → tracks and its event's table.
func (m *trackMapper) posthog(rows []trackRow, i int, ev *fastjson.Value) ([]trackRow, string) {
	name := ev.GetStringBytes("event")
	if len(name) == 0 {
		return rows, `the event needs a non-empty string "event"`
	}
	var c common
	var msg string
	if c.id, msg = idText(ev.Get("uuid"), "uuid"); msg != "" {
		return rows, msg
	}
	if len(c.id) > trackMaxID {
		return rows, fmt.Sprintf("uuid is longer than %d bytes", trackMaxID)
	}
	props := ev.Get("properties")
	if props != nil && props.Type() != fastjson.TypeObject && props.Type() != fastjson.TypeNull {
		return rows, "properties is a JSON " + props.Type().String() + ", not an object"
	}
	distinct := ev.Get("distinct_id")
	if distinct == nil && props != nil {
		distinct = props.Get("distinct_id")
	}
	if c.userID, msg = idText(distinct, "distinct_id"); msg != "" {
		return rows, msg
	}
	if msg = m.times(&c, ev.Get("timestamp"), ev.Get("sent_at")); msg != "" {
		return rows, msg
	}
	stripKeys(ev)
	if props != nil {
		stripKeys(props)
		props.Del("distinct_id") // it is user_id
	}
	switch string(name) {
	case "$identify", "$groupidentify":
		table := TableIdentifies
		var set *fastjson.Value
		if string(name) == "$identify" {
			if c.anonymousID, msg = idText(props.Get("$anon_distinct_id"), "$anon_distinct_id"); msg != "" {
				return rows, msg
			}
			set = props.Get("$set")
		} else {
			table = TableGroups
			set = props.Get("$group_set")
		}
		b := m.builder(&c)
		if table == TableGroups {
			gid, msg := idText(props.Get("$group_key"), "$group_key")
			if msg != "" {
				return rows, msg
			}
			addText(b, colGroupID, gid)
			addText(b, colGroupType, nonEmpty(props.GetStringBytes("$group_type")))
		}
		// Traits: $set, then the keys of $set_once that $set has not.
		if msg := addFields(b, set, nil); msg != "" {
			return rows, "$set: " + msg
		}
		if once := props.Get("$set_once"); once != nil && table == TableIdentifies {
			if msg := addFields(b, once, func(k []byte) bool { return set != nil && set.Get(string(k)) != nil }); msg != "" {
				return rows, "$set_once: " + msg
			}
		}
		if msg := m.addProperties(b, props); msg != "" {
			return rows, msg
		}
		return m.end(rows, i, table, b, &c), ""
	case "$create_alias":
		b := m.builder(&c)
		prev, msg := idText(props.Get("alias"), "properties.alias")
		if msg != "" {
			return rows, msg
		}
		addText(b, colPreviousID, prev)
		if msg := m.addProperties(b, props); msg != "" {
			return rows, msg
		}
		return m.end(rows, i, TableAliases, b, &c), ""
	case "$pageview", "$screen":
		table := TablePages
		var nameProp *fastjson.Value
		if string(name) == "$screen" {
			table, nameProp = TableScreens, props.Get("$screen_name")
		} else {
			nameProp = props.Get("title")
		}
		b := m.builder(&c)
		if nameProp != nil && nameProp.Type() == fastjson.TypeString {
			s, _ := nameProp.StringBytes()
			addText(b, colName, nonEmpty(s))
		}
		if msg := addFields(b, props, nil); msg != "" {
			return rows, "properties: " + msg
		}
		return m.end(rows, i, table, b, &c), ""
	}
	table, msg := EventTable(name)
	if msg != "" {
		return rows, msg
	}
	b := m.builder(&c)
	b.AddString(colEvent, []byte(table))
	b.AddString(colEventText, name)
	rows = m.end(rows, i, TableTracks, b, &c)
	b = m.builder(&c)
	b.AddString(colEvent, []byte(table))
	b.AddString(colEventText, name)
	if msg := addFields(b, props, nil); msg != "" {
		return rows[:len(rows)-1], "properties: " + msg
	}
	return m.end(rows, i, table, b, &c), ""
}

// posthogTraitProps are the properties of $identify and $groupidentify
// that became columns; the others go to the properties JSON column.
var posthogTraitProps = map[string]bool{"$set": true, "$set_once": true, "$anon_distinct_id": true,
	"$group_set": true, "$group_key": true, "$group_type": true, "alias": true}

// addProperties stores what is left of a PostHog identify's, group's or
// alias's properties as one JSON column "properties".
func (m *trackMapper) addProperties(b *batcher.Builder, props *fastjson.Value) string {
	if props == nil || props.Type() != fastjson.TypeObject {
		return ""
	}
	o, _ := props.Object()
	var out fastjson.Arena
	rest := out.NewObject()
	n := 0
	o.Visit(func(k []byte, v *fastjson.Value) {
		if !posthogTraitProps[string(k)] {
			rest.Set(string(k), v)
			n++
		}
	})
	if n == 0 {
		return ""
	}
	m.scratch = rest.MarshalTo(m.scratch[:0])
	if !json.Valid(m.scratch) {
		return "properties is not valid JSON"
	}
	b.AddJSON(colProperties, m.scratch)
	return ""
}

// stripKeys deletes the key fields from an object, so that no key is
// ever stored, and from its context.
func stripKeys(v *fastjson.Value) {
	if v == nil || v.Type() != fastjson.TypeObject {
		return
	}
	for _, k := range [...][]byte{keyWriteKey, keyAPIKey, keyToken} {
		v.Del(string(k))
	}
	for _, nested := range [...]string{"context", "properties", "traits", "$set", "$set_once"} {
		if n := v.Get(nested); n != nil && n.Type() == fastjson.TypeObject {
			for _, k := range [...][]byte{keyWriteKey, keyAPIKey, keyToken} {
				n.Del(string(k))
			}
		}
	}
}

// addFields adds an object's fields as columns, as an insert would
// (nested values as JSON), skipping keys for which skip is true. A missing
// or null object adds nothing; any other non-object is an error.
func addFields(b *batcher.Builder, v *fastjson.Value, skip func([]byte) bool) string {
	if v == nil || v.Type() == fastjson.TypeNull {
		return ""
	}
	if v.Type() != fastjson.TypeObject {
		return "a JSON " + v.Type().String() + ", not an object"
	}
	return addValues(b, v, skip)
}

// EventTable returns the table of a track event's name, after Segment's
// warehouse rule: ASCII letters lowercased, every run of other characters
// (spaces, punctuation, non-ASCII) one underscore, leading and trailing
// underscores dropped, "_" prefixed if it starts with a digit, cut to 63
// bytes; a name equal to a table of the tracking API gets the prefix
// "event_". "Order Completed" → order_completed, "$autocapture" →
// autocapture. It returns a reason instead when nothing is left.
func EventTable(name []byte) (string, string) {
	out := make([]byte, 0, len(name)+1)
	under := false
	for _, c := range name {
		switch {
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
			fallthrough
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9':
			if under && len(out) > 0 {
				out = append(out, '_')
			}
			under = false
			out = append(out, c)
		default:
			under = true
		}
	}
	if len(out) == 0 {
		return "", fmt.Sprintf("event name %q has no letter or digit to name its table", truncate(name))
	}
	if out[0] >= '0' && out[0] <= '9' {
		out = append([]byte{'_'}, out...)
	}
	s := string(out)
	switch s {
	case TableTracks, TableIdentifies, TablePages, TableScreens, TableGroups, TableAliases, TableUsers:
		s = "event_" + s
	}
	if len(s) > 63 {
		s = s[:63]
	}
	if s[len(s)-1] == '_' {
		s = s[:len(s)-1]
	}
	return s, ""
}

// addValues adds the fields of object v to b, typed as an insert types
// them: null stores nothing, nested values go whole as JSON. It returns
// why a field cannot be stored.
func addValues(b *batcher.Builder, v *fastjson.Value, skip func([]byte) bool) string {
	o, _ := v.Object()
	var msg string
	var scratch []byte
	o.Visit(func(key []byte, v *fastjson.Value) {
		if msg != "" || (skip != nil && skip(key)) {
			return
		}
		if !utf8.Valid(key) {
			msg = "a key is not valid UTF-8"
			return
		}
		switch v.Type() {
		case fastjson.TypeNull:
		case fastjson.TypeTrue:
			b.AddBool(key, true)
		case fastjson.TypeFalse:
			b.AddBool(key, false)
		case fastjson.TypeNumber:
			scratch = v.MarshalTo(scratch[:0])
			if !validNumber(scratch) {
				msg = fmt.Sprintf("value of %q is not a valid JSON number", truncate(key))
				return
			}
			b.AddNumber(key, scratch)
		case fastjson.TypeString:
			s, _ := v.StringBytes()
			if !utf8.Valid(s) {
				msg = fmt.Sprintf("value of %q is not valid UTF-8", truncate(key))
				return
			}
			b.AddString(key, s)
		default: // object or array
			scratch = v.MarshalTo(scratch[:0])
			// fastjson lets invalid numbers, escapes and control
			// characters through inside nested values: DuckDB's JSON
			// column would refuse them (see decoder.row).
			if !utf8.Valid(scratch) || !json.Valid(scratch) {
				msg = fmt.Sprintf("value of %q is not valid JSON", truncate(key))
				return
			}
			b.AddJSON(key, scratch)
		}
	})
	return msg
}
