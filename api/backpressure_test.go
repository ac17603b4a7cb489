package api

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// At the buffer cap inserts get 503 with Retry-After and a message saying
// what to do; nothing acknowledged is lost, nothing refused is stored.
func TestBufferCapAnswers503(t *testing.T) {
	e := newEnv(t, func(c *envConfig) {
		c.batcher.FlushInterval = time.Hour
		c.batcher.MaxBufferedBytes = 64 << 10
	})
	id, key := e.tenant("acme")
	accepted, refused := 0, 0
	for i := range 200 {
		r := e.do("POST", "/api/data/insert/events", fmt.Appendf(nil, `{"i":%d,"pad":%q}`, i, strings.Repeat("x", 200)), "X-API-KEY", key)
		switch r.status {
		case 200:
			accepted++
		case 503:
			refused++
			if r.header["Retry-After"] == "" || !strings.Contains(string(r.body), "buffer is full") || !strings.Contains(string(r.body), "retry") {
				t.Fatalf("503 without Retry-After or a useful message: %v %s", r.header, r.body)
			}
		default:
			t.Fatalf("insert %d: %d %s", i, r.status, r.body)
		}
	}
	if accepted == 0 || refused == 0 {
		t.Fatalf("accepted %d, refused %d: the cap did not bite", accepted, refused)
	}
	e.stop()
	if n := queryInt(t, e, id, `SELECT count(*) FROM events`); n != accepted {
		t.Fatalf("stored %d rows, acknowledged %d", n, accepted)
	}
}
