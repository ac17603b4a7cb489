package wal

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// faults is shared by every faultFile a test's OpenFile returns. A non-nil
// error makes the matching operation fail; a failing Write first writes half
// of its input, as a disk that fills up part-way does.
type faults struct {
	mu                     sync.Mutex
	open, write, sync, cut error

	syncs     atomic.Int64
	syncDelay time.Duration
}

func (fs *faults) set(fn func(fs *faults)) {
	fs.mu.Lock()
	fn(fs)
	fs.mu.Unlock()
}

func (fs *faults) get(which *error) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return *which
}

func (fs *faults) openFile(name string, flag int, perm os.FileMode) (File, error) {
	if err := fs.get(&fs.open); err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: f, fs: fs}, nil
}

type faultFile struct {
	*os.File
	fs *faults
}

func (f *faultFile) Write(p []byte) (int, error) {
	if err := f.fs.get(&f.fs.write); err != nil {
		n, _ := f.File.Write(p[:len(p)/2])
		return n, &os.PathError{Op: "write", Path: f.Name(), Err: err}
	}
	return f.File.Write(p)
}

func (f *faultFile) Sync() error {
	f.fs.syncs.Add(1)
	if f.fs.syncDelay > 0 {
		time.Sleep(f.fs.syncDelay)
	}
	if err := f.fs.get(&f.fs.sync); err != nil {
		return &os.PathError{Op: "sync", Path: f.Name(), Err: err}
	}
	return f.File.Sync()
}

func (f *faultFile) Truncate(size int64) error {
	if err := f.fs.get(&f.fs.cut); err != nil {
		return &os.PathError{Op: "truncate", Path: f.Name(), Err: err}
	}
	return f.File.Truncate(size)
}

func TestGroupCommit(t *testing.T) {
	const goroutines, perG = 64, 50
	dir := t.TempDir()
	fs := &faults{syncDelay: time.Millisecond} // a disk where fsync takes 1 ms
	l := openT(t, Config{Dir: dir, SegmentSize: 64 << 10, OpenFile: fs.openFile})
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen = map[Position][]byte{}
	)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perG {
				r := rec(g*perG+i, 60)
				p, err := l.Append(r)
				if err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				mu.Lock()
				if _, dup := seen[p]; dup {
					t.Errorf("position %v acknowledged twice", p)
				}
				seen[p] = r
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	st := l.Stats()
	closeT(t, l)
	const appends = goroutines * perG
	if st.Appends != appends || len(seen) != appends {
		t.Fatalf("Appends %d, unique positions %d; want %d", st.Appends, len(seen), appends)
	}
	// The file saw the log's fsyncs plus the one of Close; with 64 writers
	// waiting through each 1 ms fsync, groups are large.
	if st.Fsyncs+1 != uint64(fs.syncs.Load()) {
		t.Fatalf("Stats.Fsyncs %d, file saw %d", st.Fsyncs, fs.syncs.Load())
	}
	if st.Fsyncs == 0 || st.Fsyncs > appends/4 {
		t.Fatalf("%d fsyncs for %d appends; group commit should need far fewer", st.Fsyncs, appends)
	}
	t.Logf("%d appends, %d fsyncs, %d groups", st.Appends, st.Fsyncs, st.Groups)

	l, r := reopenReplay(t, dir)
	defer l.Close()
	if len(r.recs) != appends {
		t.Fatalf("replayed %d records; want %d", len(r.recs), appends)
	}
	for i, p := range r.pos {
		if string(seen[p]) != string(r.recs[i]) {
			t.Fatalf("record at %v = %q; appended %q", p, r.recs[i], seen[p])
		}
	}
}

func TestWriteFaults(t *testing.T) {
	dir := t.TempDir()
	fs := &faults{}
	l := openT(t, Config{Dir: dir, SegmentSize: 1 << 20, OpenFile: fs.openFile})
	var acked [][]byte
	n := 0
	appendOK := func() {
		t.Helper()
		r := rec(n, 50)
		n++
		if _, err := l.Append(r); err != nil {
			t.Fatalf("Append: %v", err)
		}
		acked = append(acked, r)
	}
	// appendFail appends from several goroutines at once, so that a failed
	// group holds more than one caller, and wants every one to fail with want.
	appendFail := func(want error) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = l.Append(rec(1000000+i, 50))
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if !errors.Is(err, want) {
				t.Fatalf("Append = %v; want an error wrapping %v", err, want)
			}
		}
	}

	appendOK()
	appendOK()
	fs.set(func(fs *faults) { fs.write = syscall.ENOSPC })
	appendFail(syscall.ENOSPC)
	fs.set(func(fs *faults) { fs.write = nil })
	appendOK()

	fs.set(func(fs *faults) { fs.sync = syscall.EIO })
	appendFail(syscall.EIO)
	fs.set(func(fs *faults) { fs.sync = syscall.ENOSPC })
	appendFail(syscall.ENOSPC)
	fs.set(func(fs *faults) { fs.sync = nil })
	appendOK()

	// The disk is so full that even the new segment cannot be created.
	fs.set(func(fs *faults) { fs.write, fs.open = syscall.ENOSPC, syscall.ENOSPC })
	appendFail(syscall.ENOSPC)
	appendFail(syscall.ENOSPC)
	fs.set(func(fs *faults) { fs.write, fs.open = nil, nil })
	appendOK()

	// A failed write that cannot even be cut back blocks every append until
	// the cut succeeds: nothing may be acknowledged behind it.
	fs.set(func(fs *faults) { fs.write, fs.cut = syscall.ENOSPC, syscall.EIO })
	appendFail(syscall.ENOSPC)
	fs.set(func(fs *faults) { fs.write = nil })
	appendFail(syscall.EIO)
	fs.set(func(fs *faults) { fs.cut = nil })
	appendOK()
	appendOK()

	st := l.Stats()
	if st.Appends != uint64(len(acked)) || st.WriteErrors == 0 {
		t.Fatalf("stats %+v; want %d appends and some write errors", st, len(acked))
	}
	closeT(t, l)

	l, r := reopenReplay(t, dir)
	defer l.Close()
	mustEqualRecs(t, r.recs, acked)
	if r.st.TornTail || r.st.Corrupt != nil {
		t.Fatalf("replay %+v; failed writes must leave nothing to repair", r.st)
	}
	if l.Size() != st.Size {
		t.Fatalf("Size after reopen %d; the log counted %d", l.Size(), st.Size)
	}
}

// A segment that cannot be moved aside after a corrupt one fails the
// replay instead of passing unnoticed, and the next start still recovers
// the good prefix (followed by the intact later segments it kept).
func TestCorruptRepairMoveFails(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, Config{Dir: dir, SegmentSize: 512, NoSync: true})
	recs := makeRecs(40, 0)
	pos := appendAll(t, l, recs)
	closeT(t, l)
	const bad = 5
	path := filepath.Join(dir, segName(pos[bad].Segment))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	start := int64(0)
	if pos[bad-1].Segment == pos[bad].Segment {
		start = pos[bad-1].Offset
	}
	b[start+hdrSize+3] ^= 0x40
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}

	renameAside = func(string, string) error { return syscall.EIO }
	l = openT(t, Config{Dir: dir, NoSync: true})
	_, err = l.Replay(func(Position, []byte) error { return nil })
	renameAside = os.Rename
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("Replay with a failing move: %v; want EIO", err)
	}
	_ = l.Close()

	l, r := reopenReplay(t, dir)
	defer l.Close()
	if len(r.recs) < bad {
		t.Fatalf("second start recovered %d records; want the %d before the damage", len(r.recs), bad)
	}
	mustEqualRecs(t, r.recs[:bad], recs[:bad])
}
