package atomicfile

import (
	"os"
	"path/filepath"
	"sync"
)

// Write replaces path with b, mode 0600: it writes a temporary file next to
// path, fsyncs it, renames it over path and fsyncs the directory, so the
// rename itself survives a power loss. The directory is created if missing.
func Write(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory, making the creation, renaming or removal of
// its entries durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Registry is a small file that mirrors state its owner keeps in memory
// under a lock of its own (the tenant registry, webhook endpoints, share
// links). Change applies a change and encodes the new contents under that
// lock, then writes them with the lock released, so that readers of the
// state never wait for the disk; changes and their writes are serialized,
// so the file always follows the order of the changes.
type Registry struct {
	// Path is the file.
	Path string
	// WriteFile writes it; nil means Write. Tests use it to stall or fail
	// the write.
	WriteFile func(path string, b []byte) error

	mu sync.Mutex // serializes Change; taken before the owner's lock
}

// Change calls apply with lock held. apply changes the state and returns
// the file's new contents and how to undo the change (nil if nothing to
// undo); if it fails, nothing is written and its error is returned. The
// contents are then written without lock; if that fails, undo runs with
// lock held and the write's error is returned.
func (r *Registry) Change(lock sync.Locker, apply func() (contents []byte, undo func(), err error)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	lock.Lock()
	b, undo, err := apply()
	lock.Unlock()
	if err != nil {
		return err
	}
	write := r.WriteFile
	if write == nil {
		write = Write
	}
	if err := write(r.Path, b); err != nil {
		if undo != nil {
			lock.Lock()
			undo()
			lock.Unlock()
		}
		return err
	}
	return nil
}
