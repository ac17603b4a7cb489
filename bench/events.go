package main

import (
	"math/rand/v2"
	"strconv"
	"time"
)

// event is one click event, the row every scenario sends. Its ten
// top-level keys make the table the gateway infers: id BIGINT, user,
// event, url, referrer, session_id, country VARCHAR, ts TIMESTAMPTZ,
// duration_ms BIGINT, props JSON.
type event struct {
	ID         int64
	User       string
	Event      string
	TS         time.Time
	URL        string
	Referrer   string
	SessionID  string
	Country    string
	DurationMS int64
	Props      string // compact JSON object
}

// eventsDDL is the table the raw baselines write into: the columns and
// types the gateway infers from the same events.
const eventsDDL = `CREATE TABLE events (id BIGINT, "user" VARCHAR, event VARCHAR, ts TIMESTAMPTZ,
	url VARCHAR, referrer VARCHAR, session_id VARCHAR, country VARCHAR, duration_ms BIGINT, props JSON)`

var (
	eventNames = []string{"click", "view", "scroll", "add_to_cart", "purchase", "signup"}
	countries  = []string{"DE", "US", "FR", "GB", "JP", "BR", "IN", "NL", "SE", "ES"}
	referrers  = []string{"https://www.google.com/search?q=duckdb", "https://news.ycombinator.com/", "", "https://t.co/abc123", "https://duckgate.example/docs"}
	plans      = []string{"free", "pro", "enterprise"}
)

// baseTime is the timestamp of the first generated event; fixed so every
// run sends the same bytes.
var baseTime = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// genEvents returns n deterministic events with ids first, first+1, ...
func genEvents(first int64, n int, seed uint64) []event {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	out := make([]event, n)
	for i := range out {
		id := first + int64(i)
		u := r.IntN(5000)
		var props []byte
		props = append(props, `{"button":"btn_`...)
		props = strconv.AppendInt(props, int64(r.IntN(40)), 10)
		props = append(props, `","plan":"`...)
		props = append(props, plans[r.IntN(len(plans))]...)
		props = append(props, `","ab":`...)
		props = strconv.AppendBool(props, r.IntN(2) == 0)
		props = append(props, `,"n":`...)
		props = strconv.AppendInt(props, int64(r.IntN(100)), 10)
		props = append(props, '}')
		out[i] = event{
			ID:         id,
			User:       "user_" + strconv.Itoa(u),
			Event:      eventNames[r.IntN(len(eventNames))],
			TS:         baseTime.Add(time.Duration(id) * 7 * time.Millisecond),
			URL:        "https://shop.example.com/p/" + strconv.Itoa(r.IntN(20000)) + "?ref=home",
			Referrer:   referrers[r.IntN(len(referrers))],
			SessionID:  "s-" + strconv.FormatUint(r.Uint64()&0xffffffffff, 16),
			Country:    countries[r.IntN(len(countries))],
			DurationMS: int64(r.IntN(120_000)),
			Props:      string(props),
		}
	}
	return out
}

// appendJSON appends e as one compact JSON object (no newline). The strings
// generated above need no escaping.
func (e *event) appendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, e.ID, 10)
	b = append(b, `,"user":"`...)
	b = append(b, e.User...)
	b = append(b, `","event":"`...)
	b = append(b, e.Event...)
	b = append(b, `","ts":"`...)
	b = e.TS.AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, `","url":"`...)
	b = append(b, e.URL...)
	b = append(b, `","referrer":"`...)
	b = append(b, e.Referrer...)
	b = append(b, `","session_id":"`...)
	b = append(b, e.SessionID...)
	b = append(b, `","country":"`...)
	b = append(b, e.Country...)
	b = append(b, `","duration_ms":`...)
	b = strconv.AppendInt(b, e.DurationMS, 10)
	b = append(b, `,"props":`...)
	b = append(b, e.Props...)
	return append(b, '}')
}

// ndjson returns evs as an NDJSON body.
func ndjson(evs []event) []byte {
	b := make([]byte, 0, len(evs)*320)
	for i := range evs {
		b = evs[i].appendJSON(b)
		b = append(b, '\n')
	}
	return b
}

// bodies cuts evs into NDJSON bodies of per events each.
func bodies(evs []event, per int) [][]byte {
	var out [][]byte
	for i := 0; i+per <= len(evs); i += per {
		out = append(out, ndjson(evs[i:i+per]))
	}
	return out
}
