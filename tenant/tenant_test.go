package tenant

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func open(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestKeysSurviveReopenAndAreStoredAsHashes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.json")
	s := open(t, path)
	if !s.Empty() {
		t.Fatal("new store not empty")
	}
	ten, k, key, err := s.CreateTenant("acme", "")
	if err != nil {
		t.Fatal(err)
	}
	if ten.Plan != DefaultPlan || ten.Status != StatusActive || k.Scope != ScopeFull {
		t.Fatalf("tenant %+v key %+v", ten, k)
	}
	ik, ikey, err := s.CreateKey(ten.ID, ScopeIngest)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetAdminKey("admin-secret"); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	for _, secret := range []string{key, ikey, "admin-secret"} {
		if strings.Contains(string(raw), secret) {
			t.Fatalf("registry file contains a key in clear")
		}
	}

	s = open(t, path)
	got, gk, err := s.Authenticate([]byte(key))
	if err != nil || got.ID != ten.ID || gk.Scope != ScopeFull {
		t.Fatalf("Authenticate(full) = %+v %+v %v", got, gk, err)
	}
	_, gk, err = s.Authenticate([]byte(ikey))
	if err != nil || gk.ID != ik.ID || gk.Scope.Allows(ScopeQuery) || !gk.Scope.Allows(ScopeIngest) {
		t.Fatalf("Authenticate(ingest) = %+v %v", gk, err)
	}
	if !s.IsAdmin([]byte("admin-secret")) || s.IsAdmin([]byte("admin-secreT")) || s.IsAdmin(nil) {
		t.Fatal("IsAdmin wrong")
	}
	for _, bad := range []string{"", key + "x", key[:len(key)-1], "admin-secret"} {
		if _, _, err := s.Authenticate([]byte(bad)); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("Authenticate(%q) err = %v", bad, err)
		}
	}
	if err := s.RevokeKey(ten.ID, ik.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Authenticate([]byte(ikey)); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("revoked key still works: %v", err)
	}
	if err := s.Delete(ten.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Authenticate([]byte(key)); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("deleted tenant's key still works: %v", err)
	}
}

func TestCreateTenantValidates(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "meta.json"))
	if _, _, _, err := s.CreateTenant("", ""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty name: %v", err)
	}
	if _, _, _, err := s.CreateTenant("x", "platinum"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad plan: %v", err)
	}
	if _, _, _, err := s.CreateTenant("x", "pro"); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := s.CreateTenant("x", "pro"); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate: %v", err)
	}
	if p := s.PlanOf(s.List()[0].ID); p.MemoryLimit != "1GB" {
		t.Fatalf("plan of pro tenant: %+v", p)
	}
}

// Authenticate runs on every request: it must not allocate.
func TestAuthenticateAllocs(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "meta.json"))
	_, _, key, err := s.CreateTenant("acme", "")
	if err != nil {
		t.Fatal(err)
	}
	k := []byte(key)
	if n := testing.AllocsPerRun(100, func() {
		if _, _, err := s.Authenticate(k); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("Authenticate allocates %v times", n)
	}
}

// TestAuthenticateWhileSaving: a registry write in progress (an admin
// change being fsynced) holds up no request's authentication, and a write
// that fails leaves the registry as it was.
func TestAuthenticateWhileSaving(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.json")
	s := open(t, path)
	ten, _, key, err := s.CreateTenant("acme", "")
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	s.reg.WriteFile = func(string, []byte) error {
		close(entered)
		<-release
		return errors.New("disk full")
	}
	created := make(chan error, 1)
	go func() {
		_, _, err := s.CreateKey(ten.ID, ScopeIngest)
		created <- err
	}()
	<-entered
	authed := make(chan error, 1)
	go func() {
		_, _, err := s.Authenticate([]byte(key))
		authed <- err
	}()
	select {
	case err := <-authed:
		if err != nil {
			t.Fatalf("authenticate during a save: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("authenticate waited for the registry write")
	}
	close(release)
	if err := <-created; err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("CreateKey with a failing write: %v", err)
	}
	if keys, err := s.Keys(ten.ID); err != nil || len(keys) != 1 {
		t.Fatalf("the failed key stayed: %v %v", keys, err)
	}
}
