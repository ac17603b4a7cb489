package share

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"duckgate/query"
)

// 100,000 ids never collide, all are valid, and none resolves with one
// character changed.
func TestIDsAreUniqueAndTamperProof(t *testing.T) {
	const n = 100_000
	s := &Service{cfg: Config{Now: time.Now}, byHash: make(map[[32]byte]*link, n)}
	ids := make([]string, 0, n)
	far := time.Now().Add(time.Hour)
	for range n {
		id, h, err := newID()
		if err != nil {
			t.Fatal(err)
		}
		if len(id) != idLen || idLen != 32 || !validID(id) {
			t.Fatalf("id %q: not 32 base64url characters", id)
		}
		if _, dup := s.byHash[h]; dup {
			t.Fatalf("id %q collides", id)
		}
		s.byHash[h] = &link{hash: h, tenant: "t", expires: far}
		ids = append(ids, id)
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i, id := range ids {
		if _, err := s.resolve(id); err != nil {
			t.Fatalf("id %d does not resolve: %v", i, err)
		}
		b := []byte(id)
		pos := i % len(b)
		c := alphabet[(i*7+1)%len(alphabet)]
		if c == b[pos] {
			c = alphabet[(i*7+2)%len(alphabet)]
		}
		b[pos] = c
		if _, err := s.resolve(string(b)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("tampered id %d resolves: %v", i, err)
		}
	}
	for _, bad := range []string{"", "abc", ids[0] + "A", ids[0][:31] + "/", ids[0][:31] + "=", ids[0][:31] + "+"} {
		if _, err := s.resolve(bad); !errors.Is(err, ErrNotFound) {
			t.Fatalf("resolve(%q) = %v; want ErrNotFound", bad, err)
		}
	}
}

func TestResolveStates(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	active := true
	s := &Service{cfg: Config{Now: func() time.Time { return now }, TenantActive: func(string) bool { return active }},
		byHash: map[[32]byte]*link{}}
	add := func(expires time.Time, revoked bool) string {
		id, h, _ := newID()
		l := &link{hash: h, tenant: "t", expires: expires}
		if revoked {
			l.revoked = now
		}
		s.byHash[h] = l
		return id
	}
	f := func(id string, want error) {
		t.Helper()
		if _, err := s.resolve(id); !errors.Is(err, want) {
			t.Fatalf("resolve = %v; want %v", err, want)
		}
	}
	fresh := add(now.Add(time.Second), false)
	f(fresh, nil)
	f(add(now, false), ErrGone)
	f(add(now.Add(time.Hour), true), ErrGone)
	active = false
	f(fresh, ErrSuspended)
}

func TestSlugAndFileName(t *testing.T) {
	f := func(name, want string) {
		t.Helper()
		l := &link{name: name, created: time.Date(2025, 3, 4, 23, 0, 0, 0, time.UTC)}
		if got := fileName(l, query.FormatCSV); got != want {
			t.Fatalf("fileName(%q) = %q; want %q", name, got, want)
		}
	}
	f("", "share-2025-03-04.csv")
	f("Weekly Report!", "weekly-report.csv")
	f("  --Sales: Q1/Q2 \"EU\"  ", "sales-q1-q2-eu.csv")
	f("日本語", "share-2025-03-04.csv")
	f("a\\b\r\nc", "a-b-c.csv")
	long := ""
	for range 50 {
		long += "ab "
	}
	if got := slug(long); len(got) > 64 {
		t.Fatalf("slug of a long name is %d bytes", len(got))
	}
}

func TestParseCreate(t *testing.T) {
	f := func(body string, wantErr string, want createRequest) {
		t.Helper()
		got, err := parseCreate([]byte(body), 1<<20)
		if wantErr != "" {
			if err == nil || !errors.Is(err, ErrBadRequest) || !contains(err.Error(), wantErr) {
				t.Fatalf("parseCreate(%s) = %v; want an error containing %q", body, err, wantErr)
			}
			return
		}
		if err != nil {
			t.Fatalf("parseCreate(%s): %v", body, err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("parseCreate(%s) = %+v; want %+v", body, got, want)
		}
	}
	f(`{"query":"select 1"}`, "", createRequest{SQL: "select 1"})
	f(`{"query":"select 1","duration":90,"name":"x","snapshot":true}`, "", createRequest{SQL: "select 1", Duration: 90 * time.Second, Name: "x", Snapshot: true})
	f(`{"query":"select 1","duration":1.5}`, "", createRequest{SQL: "select 1", Duration: 1500 * time.Millisecond})
	f(`{"query":"select ?","params":[1,"a",null]}`, "", createRequest{SQL: "select ?", Params: []any{"1", "a", nil}})
	f(`{"query":"select 1","duration":0.5}`, "at least 1 second", createRequest{})
	f(`{"query":"select 1","duration":-1}`, "at least 1 second", createRequest{})
	f(`{"query":" "}`, `"query" is required`, createRequest{})
	f(`{"query":"select 1"} {}`, "trailing data", createRequest{})
	f(`[1]`, "invalid JSON", createRequest{})
	f(`{"query":"select 1","key":"x"}`, "unknown field", createRequest{})
}

func TestHumanUntil(t *testing.T) {
	f := func(d time.Duration, want string) {
		t.Helper()
		if got := humanUntil(d); got != want {
			t.Fatalf("humanUntil(%s) = %q; want %q", d, got, want)
		}
	}
	f(30*24*time.Hour, "30 days")
	f(7*24*time.Hour-time.Second, "7 days")
	f(36*time.Hour, "36 hours")
	f(90*time.Minute, "90 minutes")
	f(time.Minute, "1 minute")
	f(time.Second, "a moment")
}

func contains(s, sub string) bool {
	return strings.Contains(s, sub)
}
