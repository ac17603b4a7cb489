package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestWriteReplacesAndLeavesNoTemp(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sub")
	p := filepath.Join(dir, "reg.json")
	for _, content := range []string{"first", "second, longer than the first"} {
		if err := Write(p, []byte(content)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != content {
			t.Fatalf("read %q, %v; want %q", got, err, content)
		}
	}
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", st.Mode(), err)
	}
	if _, err := os.Stat(p + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("temporary file left: %v", err)
	}
}

func TestWriteFailsWithoutDamagingTheOldFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "reg.json")
	if err := Write(p, []byte("old")); err != nil {
		t.Fatal(err)
	}
	// A directory where the temporary file must go makes the write fail.
	if err := os.Mkdir(p+".tmp", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, []byte("new")); err == nil {
		t.Fatal("want an error")
	}
	if got, _ := os.ReadFile(p); string(got) != "old" {
		t.Fatalf("old file changed to %q", got)
	}
}

func TestSyncDir(t *testing.T) {
	if err := SyncDir(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if err := SyncDir(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("SyncDir of a missing directory: %v; want ErrNotExist", err)
	}
}

// Registry writes what apply encoded, with the owner's lock released during
// the write; an apply error writes nothing; a failed write runs the undo.
func TestRegistryChange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reg.json")
	var mu sync.Mutex
	state := "a"
	r := Registry{Path: path}
	set := func(v string) func() ([]byte, func(), error) {
		return func() ([]byte, func(), error) {
			old := state
			state = v
			return []byte(v), func() { state = old }, nil
		}
	}
	if err := r.Change(&mu, set("b")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "b" || state != "b" {
		t.Fatalf("file %q, state %q", b, state)
	}
	refused := errors.New("refused")
	if err := r.Change(&mu, func() ([]byte, func(), error) { return nil, nil, refused }); err != refused {
		t.Fatalf("apply error: %v", err)
	}
	r.WriteFile = func(string, []byte) error {
		if !mu.TryLock() {
			t.Error("the owner's lock is held during the write")
		} else {
			mu.Unlock()
		}
		return errors.New("disk full")
	}
	if err := r.Change(&mu, set("c")); err == nil {
		t.Fatal("a failed write succeeded")
	}
	if b, _ := os.ReadFile(path); string(b) != "b" || state != "b" {
		t.Fatalf("after a failed write: file %q, state %q", b, state)
	}
}
