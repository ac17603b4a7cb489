package wal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

// faults is shared by every faultFile a test's OpenFile returns. A non-nil
// error makes the matching operation fail; a failing Write first writes half
// of its input, as a disk that fills up part-way does. A non-nil gate makes
// Sync signal entered and then wait until gate is closed.
type faults struct {
	mu                     sync.Mutex
	open, write, sync, cut error
	gate, entered          chan struct{}

	syncs atomic.Int64
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

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.fs.get(&f.fs.write); err != nil {
		n, _ := f.File.WriteAt(p[:len(p)/2], off)
		return n, &os.PathError{Op: "write", Path: f.Name(), Err: err}
	}
	return f.File.WriteAt(p, off)
}

func (f *faultFile) Sync() error {
	f.fs.syncs.Add(1)
	f.fs.mu.Lock()
	gate, entered := f.fs.gate, f.fs.entered
	f.fs.mu.Unlock()
	if gate != nil {
		entered <- struct{}{}
		<-gate
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

// While one group's fsync runs, every append that arrives waits for the
// next group: all of them share one write and one fsync.
func TestGroupCommit(t *testing.T) {
	const waiting = 63
	dir := t.TempDir()
	fs := &faults{}
	l := openT(t, Config{Dir: dir, SegmentSize: 64 << 10, OpenFile: fs.openFile})
	first := rec(0, 60)
	appendAll(t, l, [][]byte{first}) // creates the segment
	before := l.Stats()

	gate, entered := make(chan struct{}), make(chan struct{}, 1)
	fs.set(func(fs *faults) { fs.gate, fs.entered = gate, entered })
	var wg sync.WaitGroup
	recs := make([][]byte, waiting+1)
	pos := make([]Position, len(recs))
	appendAsync := func(i int) {
		recs[i] = rec(i+1, 60)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if pos[i], err = l.Append(recs[i]); err != nil {
				t.Errorf("Append: %v", err)
			}
		}()
	}
	appendAsync(0)
	<-entered // the writer is in the fsync of a group of one
	fs.set(func(fs *faults) { fs.gate = nil })
	for i := 1; i <= waiting; i++ {
		appendAsync(i)
	}
	// 60-byte records take 68 bytes: the group in its fsync and the queue.
	waitFor(t, "every append queued", func() bool { return l.Stats().Queued == (waiting+1)*68 })
	close(gate)
	wg.Wait()

	st := l.Stats()
	if groups := st.Groups - before.Groups; groups != 2 {
		t.Fatalf("%d appends took %d group commits; want 2", waiting+1, groups)
	}
	if fsyncs := st.Fsyncs - before.Fsyncs; fsyncs != 2 {
		t.Fatalf("%d appends took %d fsyncs; want 2", waiting+1, fsyncs)
	}
	closeT(t, l)
	// The file saw the log's fsyncs (its header's included) plus Close's.
	if st.Fsyncs+1 != uint64(fs.syncs.Load()) {
		t.Fatalf("Stats.Fsyncs %d, file saw %d", st.Fsyncs, fs.syncs.Load())
	}

	l, r := reopenReplay(t, dir)
	defer l.Close()
	byPos := map[Position][]byte{}
	for i, p := range pos {
		if _, dup := byPos[p]; dup {
			t.Fatalf("position %v acknowledged twice", p)
		}
		byPos[p] = recs[i]
	}
	if len(r.recs) != len(recs)+1 || !bytes.Equal(r.recs[0], first) {
		t.Fatalf("replayed %d records; want %d", len(r.recs), len(recs)+1)
	}
	for i, p := range r.pos[1:] {
		if !bytes.Equal(byPos[p], r.recs[i+1]) {
			t.Fatalf("record at %v = %q; appended %q", p, r.recs[i+1], byPos[p])
		}
	}
}

// Many writers at once: every acknowledged record has its own Position and
// replays as appended.
func TestConcurrentAppends(t *testing.T) {
	const goroutines, perG = 64, 50
	dir := t.TempDir()
	l := openT(t, Config{Dir: dir, SegmentSize: 64 << 10, NoSync: true})
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
	t.Logf("%d appends in %d groups", st.Appends, st.Groups)

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
	start := int64(segHdrSize)
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
