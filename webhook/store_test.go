package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const secret = "gh-8d0a2f1c9b7e4a63b5f0c2d9e1a7b3c4"

func open(t *testing.T, dir string, now func() time.Time) *Store {
	t.Helper()
	s, err := Open(StoreConfig{Dir: dir, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestSecretsSealedUnderTheKeyFile(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, nil)
	a, err := s.Create("t1", GitHub, "events", secret)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Create("t2", Shopify, "orders", "another-secret")
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()

	// Reopened with its key, the secrets are back.
	s = open(t, dir, nil)
	if _, got, err := s.Lookup(a.ID); err != nil || got != secret {
		t.Fatalf("Lookup after reopen: %q, %v", got, err)
	}
	_ = s.Close()

	// A sealed secret moved onto another endpoint does not open.
	p := filepath.Join(dir, EndpointsFile)
	orig, _ := os.ReadFile(p)
	var f struct{ Endpoints []record }
	if err := json.Unmarshal(orig, &f); err != nil {
		t.Fatal(err)
	}
	f.Endpoints[0].Sealed, f.Endpoints[1].Sealed = f.Endpoints[1].Sealed, f.Endpoints[0].Sealed
	swapped, _ := json.Marshal(map[string]any{"endpoints": f.Endpoints})
	_ = os.WriteFile(p, swapped, 0o600)
	if _, err := Open(StoreConfig{Dir: dir}); !errors.Is(err, ErrKey) {
		t.Fatalf("swapped sealed secrets: %v, want ErrKey", err)
	}
	_ = os.WriteFile(p, orig, 0o600)

	// Another key, or none, refuses to start rather than lose the endpoints.
	kp := filepath.Join(dir, KeyFile)
	key, _ := os.ReadFile(kp)
	_ = os.WriteFile(kp, []byte(strings.Repeat("ab", 32)), 0o600)
	if _, err := Open(StoreConfig{Dir: dir}); !errors.Is(err, ErrKey) {
		t.Fatalf("wrong key: %v, want ErrKey", err)
	}
	_ = os.Remove(kp)
	if _, err := Open(StoreConfig{Dir: dir}); !errors.Is(err, ErrKey) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing key: %v, want ErrKey", err)
	}
	_ = os.WriteFile(kp, key, 0o600)
	s = open(t, dir, nil)
	if _, got, _ := s.Lookup(b.ID); got != "another-secret" {
		t.Fatalf("Lookup(b) = %q", got)
	}
}

func TestLimitAndOwnership(t *testing.T) {
	s, err := Open(StoreConfig{Dir: t.TempDir(), MaxPerTenant: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, _ := s.Create("t1", GitHub, "a", secret)
	_, _ = s.Create("t1", GitHub, "b", secret)
	if _, err := s.Create("t1", GitHub, "c", secret); !errors.Is(err, ErrLimit) {
		t.Fatalf("third endpoint: %v, want ErrLimit", err)
	}
	if _, err := s.Create("t2", Standard, "c", "not base64!"); !errors.Is(err, ErrBadSecret) {
		t.Fatalf("bad secret: %v", err)
	}
	if err := s.Delete("t2", a.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete another tenant's: %v", err)
	}
	if err := s.Delete("t1", a.ID); err != nil {
		t.Fatal(err)
	}
	if l := s.List("t1"); len(l) != 1 || l[0].Table != "b" {
		t.Fatalf("List = %+v", l)
	}
	if n, err := s.DeleteTenant("t1"); n != 1 || err != nil {
		t.Fatalf("DeleteTenant = %d, %v", n, err)
	}
	if l := s.List("t1"); len(l) != 0 {
		t.Fatalf("List after DeleteTenant = %+v", l)
	}
}

func TestSeenWindowAndTornLog(t *testing.T) {
	dir := t.TempDir()
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	s := open(t, dir, clock)
	ctx := context.Background()
	claim := func(s *Store, ep, id string) (*Claim, bool) {
		t.Helper()
		c, dup, err := s.Claim(ctx, ep, id)
		if err != nil {
			t.Fatal(err)
		}
		return c, dup
	}
	c, dup := claim(s, "wh_a", "d1")
	if dup {
		t.Fatal("first claim is a duplicate")
	}
	if err := c.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, dup := claim(s, "wh_a", "d1"); !dup {
		t.Fatal("a committed id is not a duplicate")
	}
	// The same id at another endpoint is another delivery.
	c, dup = claim(s, "wh_b", "d1")
	if dup {
		t.Fatal("the id of another endpoint is a duplicate")
	}
	c.Release()
	_ = s.Close()

	// A torn last line (a crash mid-append) is dropped on open.
	f, _ := os.OpenFile(filepath.Join(dir, SeenFile), os.O_WRONLY|os.O_APPEND, 0)
	_, _ = f.WriteString("1700000000 abcd")
	f.Close()
	now = now.Add(6 * 24 * time.Hour)
	s = open(t, dir, clock)
	if _, dup := claim(s, "wh_a", "d1"); !dup {
		t.Fatal("the id is forgotten within the window")
	}
	_ = s.Close()
	b, _ := os.ReadFile(filepath.Join(dir, SeenFile))
	if strings.Count(string(b), "\n") != 1 || strings.Contains(string(b), "abcd\n") {
		t.Fatalf("compacted log: %q", b)
	}

	// Past the window the id is dropped from the log.
	now = now.Add(2 * 24 * time.Hour)
	s = open(t, dir, clock)
	if c, dup := claim(s, "wh_a", "d1"); dup {
		t.Fatal("the id is remembered past the window")
	} else {
		c.Release()
	}
	if b, _ := os.ReadFile(filepath.Join(dir, SeenFile)); len(b) != 0 {
		t.Fatalf("expired log: %q", b)
	}
}

func TestClaimWaitsForTheOneInFlight(t *testing.T) {
	s := open(t, t.TempDir(), nil)
	ctx := context.Background()
	first, _, _ := s.Claim(ctx, "wh_a", "d")
	got := make(chan bool)
	go func() {
		c, dup, err := s.Claim(ctx, "wh_a", "d")
		if err == nil && !dup {
			c.Release()
		}
		got <- dup
	}()
	select {
	case <-got:
		t.Fatal("the second claim did not wait")
	case <-time.After(20 * time.Millisecond):
	}
	first.Release() // the first failed: the second may store it
	if dup := <-got; dup {
		t.Fatal("after a release the second claim is a duplicate")
	}

	first, _, _ = s.Claim(ctx, "wh_a", "d")
	go func() {
		_, dup, _ := s.Claim(ctx, "wh_a", "d")
		got <- dup
	}()
	time.Sleep(10 * time.Millisecond)
	_ = first.Commit()
	if dup := <-got; !dup {
		t.Fatal("after a commit the second claim is not a duplicate")
	}

	first, _, _ = s.Claim(ctx, "wh_a", "e")
	tctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if _, _, err := s.Claim(tctx, "wh_a", "e"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("claim while in flight past ctx: %v", err)
	}
	first.Release()
}
