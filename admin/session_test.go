package admin

import (
	"testing"
	"time"
)

func TestSessionsExpire(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	s := newSessions()
	s.now = func() time.Time { return now }
	id, sess := s.create()
	if len(id) != 43 || len(sess.csrf) != 43 || id == sess.csrf { // 256 bits, base64url
		t.Fatalf("id %q, csrf %q", id, sess.csrf)
	}
	if got, ok := s.get([]byte(id)); !ok || got.csrf != sess.csrf {
		t.Fatalf("get: %v %v", got, ok)
	}
	if _, ok := s.get([]byte(id + "x")); ok {
		t.Fatal("a wrong id found a session")
	}
	now = now.Add(SessionTTL - time.Second)
	if _, ok := s.get([]byte(id)); !ok {
		t.Fatal("session gone before its expiry")
	}
	now = now.Add(time.Second)
	if _, ok := s.get([]byte(id)); ok {
		t.Fatal("session alive at its expiry")
	}
	if len(s.byID) != 0 {
		t.Fatalf("%d sessions kept after expiry", len(s.byID))
	}
}

func TestSessionsBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	s := newSessions()
	s.now = func() time.Time { return now }
	first, _ := s.create()
	for range maxSessions {
		now = now.Add(time.Millisecond)
		s.create()
	}
	if len(s.byID) != maxSessions {
		t.Fatalf("%d sessions, want %d", len(s.byID), maxSessions)
	}
	if _, ok := s.get([]byte(first)); ok {
		t.Fatal("the oldest session survived past the bound")
	}
}
