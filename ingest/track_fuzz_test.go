package ingest

import (
	"testing"
	"time"

	"github.com/valyala/fastjson"

	"duckgate/schema"
)

// FuzzTrackEvent maps arbitrary events through every tracking call, as the
// handler does after parsing a batch: it never panics; every row it makes
// goes to a table a tenant may write, with at least one value, and no
// row keeps a key field (writeKey, api_key, token) as a column.
func FuzzTrackEvent(f *testing.F) {
	for _, seed := range []string{
		`{"type":"track","event":"Order Completed","userId":"u1","messageId":"m1","properties":{"total":9.5,"writeKey":"k"},"timestamp":"2024-01-01T00:00:00Z","sentAt":"2024-01-01T00:00:01Z"}`,
		`{"type":"identify","anonymousId":"a","traits":{"email":"x@example.com","api_key":"k"},"context":{"ip":"1.2.3.4"}}`,
		`{"type":"page","name":"Home","category":"Docs","properties":{"name":"Home","url":"/"}}`,
		`{"type":"group","groupId":42,"traits":{"name":"acme"}}`,
		`{"type":"alias","previousId":"old","userId":"new"}`,
		`{"event":"$pageview","distinct_id":"d","properties":{"$current_url":"/","token":"k"},"uuid":"0190","timestamp":"2024-01-01T00:00:00Z"}`,
		`{"event":"$identify","distinct_id":"d","properties":{"$set":{"email":"e"},"$set_once":{"first":"f"}}}`,
		`{"event":"123 ÜBER event!!","distinct_id":7}`,
		`{"type":"track"}`, `[]`, `"x"`, `{"type":"track","event":"` + string(make([]byte, 70)) + `"}`,
	} {
		f.Add(seed)
	}
	var p fastjson.Parser
	f.Fuzz(func(t *testing.T, body string) {
		v, err := p.Parse(body)
		if err != nil {
			return
		}
		for call := SegmentBatch; call <= PostHogCapture; call++ {
			m := trackMapper{received: time.Unix(1_700_000_000, 0)}
			rows, msg := m.event(nil, 0, v, call)
			if msg == "" && len(rows) == 0 {
				t.Fatalf("call %d: no row and no reason for %q", call, body)
			}
			for _, r := range rows {
				if err := schema.CheckTableName(r.table); err != nil {
					t.Fatalf("call %d: table %q: %v", call, r.table, err)
				}
				if r.rows == nil || r.rows.Len() != 1 {
					t.Fatalf("call %d: row of %q holds %v rows", call, r.table, r.rows)
				}
				for _, k := range r.rows.Keys {
					if k == "writeKey" || k == "api_key" || k == "token" {
						t.Fatalf("call %d: row of %q keeps %s as a column", call, r.table, k)
					}
				}
			}
		}
	})
}
