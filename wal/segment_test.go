package wal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"
)

// fiveSegments opens a log in dir and appends 20 records of 40 bytes to it,
// 4 in each of 5 segments.
func fiveSegments(t *testing.T, dir string) (*Log, [][]byte, []Position) {
	t.Helper()
	// 4 records of 40+8 bytes after a 36-byte header: 228 bytes.
	l := openT(t, Config{Dir: dir, SegmentSize: 228, NoSync: true})
	recs := make([][]byte, 20)
	for i := range recs {
		recs[i] = rec(i, 40)
	}
	pos := appendAll(t, l, recs)
	if pos[19].Segment != 5 || pos[4].Segment != 2 {
		t.Fatalf("records not 4 per segment: %v", pos)
	}
	return l, recs, pos
}

// Whole segments lost, emptied or cut short are corruption, reported where
// the loss starts: the records before it are replayed, nothing after it is,
// and every byte that was on disk is kept aside.
func TestSegmentDamage(t *testing.T) {
	// f writes 20 records over 5 segments (4 each), lets damage change the
	// directory, and wants the first want records replayed, then corruption
	// at corrupt.
	f := func(name string, damage func(t *testing.T, dir string, pos []Position), want int, corrupt func(pos []Position) Position) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			l, recs, pos := fiveSegments(t, dir)
			closeT(t, l)
			damage(t, dir, pos)
			before := map[string][]byte{}
			for _, name := range walFiles(t, dir) {
				b, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				before[name] = b
			}

			set := metrics.NewSet()
			l = openT(t, Config{Dir: dir, NoSync: true, Metrics: set})
			r := replayT(t, l)
			mustEqualRecs(t, r.recs, recs[:want])
			wantPos := corrupt(pos)
			if r.st.Corrupt == nil || *r.st.Corrupt != wantPos || !errors.Is(r.st.CorruptErr, ErrCorrupt) {
				t.Fatalf("Corrupt = %v, %v; want %v", r.st.Corrupt, r.st.CorruptErr, wantPos)
			}
			t.Logf("%v", r.st.CorruptErr)
			if st := l.Stats(); st.CorruptSegments != 1 {
				t.Fatalf("Stats.CorruptSegments = %d; want 1", st.CorruptSegments)
			}
			var out bytes.Buffer
			set.WritePrometheus(&out)
			if !strings.Contains(out.String(), "duckgate_wal_corrupt_segments_total 1\n") {
				t.Fatalf("metrics:\n%s", out.String())
			}
			// Every damaged or later segment is kept aside, byte for byte.
			for _, aside := range r.st.Quarantined {
				orig, ok := before[strings.TrimSuffix(filepath.Base(aside), ".corrupt")]
				got, err := os.ReadFile(aside)
				if !ok || err != nil || !bytes.Equal(got, orig) {
					t.Fatalf("%s: %v; kept aside as it was: %v", aside, err, bytes.Equal(got, orig))
				}
			}
			for s := wantPos.Segment + 1; s <= 5; s++ {
				if _, ok := before[segName(s)]; ok && !slices.Contains(r.st.Quarantined, filepath.Join(dir, segName(s)+".corrupt")) {
					t.Fatalf("segment %d not moved aside: %v", s, r.st.Quarantined)
				}
			}

			// Reported once: the next start finds the good prefix, clean.
			closeT(t, l)
			l, r = reopenReplay(t, dir)
			mustEqualRecs(t, r.recs, recs[:want])
			if r.st.Corrupt != nil || r.st.TornTail {
				t.Fatalf("replay after the repair %+v; want clean", r.st)
			}
			p, err := l.Append([]byte("new"))
			if err != nil {
				t.Fatal(err)
			}
			// A fresh segment: not one kept aside (a missing one's number
			// may come again).
			if _, ok := before[segName(p.Segment)]; ok || (want > 0 && p.Segment <= pos[want-1].Segment) {
				t.Fatalf("append after corruption went to segment %d; want a fresh one", p.Segment)
			}
			closeT(t, l)
			l, r = reopenReplay(t, dir)
			defer l.Close()
			mustEqualRecs(t, r.recs, append(slices.Clone(recs[:want]), []byte("new")))
			if r.st.Corrupt != nil || r.st.TornTail {
				t.Fatalf("second replay %+v; want clean", r.st)
			}
		})
	}
	truncate := func(seg uint64, size func(pos []Position) int64) func(t *testing.T, dir string, pos []Position) {
		return func(t *testing.T, dir string, pos []Position) {
			if err := os.Truncate(filepath.Join(dir, segName(seg)), size(pos)); err != nil {
				t.Fatal(err)
			}
		}
	}
	remove := func(seg uint64) func(t *testing.T, dir string, pos []Position) {
		return func(t *testing.T, dir string, pos []Position) {
			if err := os.Remove(filepath.Join(dir, segName(seg))); err != nil {
				t.Fatal(err)
			}
		}
	}
	zero := func([]Position) int64 { return 0 }
	at := func(seg uint64, off func(pos []Position) int64) func([]Position) Position {
		return func(pos []Position) Position { return Position{Segment: seg, Offset: off(pos)} }
	}

	f("empty first segment", truncate(1, zero), 0, at(1, zero))
	f("empty middle segment", truncate(3, zero), 8, at(3, zero))
	f("empty newest segment", truncate(5, zero), 16, at(5, zero))
	f("header cut short", truncate(2, func([]Position) int64 { return segHdrSize - 1 }), 4, at(2, zero))
	f("first segment missing", remove(1), 0, at(1, zero))
	f("middle segment missing", remove(3), 8, at(3, zero))
	f("newest segment missing", remove(5), 16, at(5, zero))
	f("newest two segments missing", func(t *testing.T, dir string, pos []Position) {
		remove(5)(t, dir, pos)
		remove(4)(t, dir, pos)
	}, 12, at(4, zero))
	f("every segment missing", func(t *testing.T, dir string, pos []Position) {
		for s := uint64(1); s <= 5; s++ {
			remove(s)(t, dir, pos)
		}
	}, 0, at(1, zero))
	f("newest segment missing, the one before it torn", func(t *testing.T, dir string, pos []Position) {
		remove(5)(t, dir, pos)
		truncate(4, func(pos []Position) int64 { return pos[14].Offset + 3 })(t, dir, pos)
	}, 15, at(4, func(pos []Position) int64 { return pos[14].Offset }))
	endOf5 := func(pos []Position) int64 { return pos[5].Offset }
	f("segment cut at a record boundary", truncate(2, endOf5), 6, at(2, endOf5))
	f("segment cut to its header", truncate(2, func([]Position) int64 { return segHdrSize }), 4, at(2, func([]Position) int64 { return segHdrSize }))
	f("segment cut mid-record", truncate(2, func(pos []Position) int64 { return pos[5].Offset + 11 }), 6, at(2, endOf5))
	endOf7 := func(pos []Position) int64 { return pos[7].Offset }
	f("segment longer than it was left", func(t *testing.T, dir string, pos []Position) {
		fl, err := os.OpenFile(filepath.Join(dir, segName(2)), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer fl.Close()
		if _, err := fl.Write(appendHeader(nil, []byte("x"))); err != nil {
			t.Fatal(err)
		}
		if _, err := fl.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}, 8, at(2, endOf7))
	f("header of a middle segment damaged", func(t *testing.T, dir string, pos []Position) {
		path := filepath.Join(dir, segName(4))
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b[20] ^= 1 // the predecessor's number
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}, 12, at(4, zero))
	f("segment in the format before headers", func(t *testing.T, dir string, pos []Position) {
		path := filepath.Join(dir, segName(3))
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b[segHdrSize:], 0o600); err != nil {
			t.Fatal(err)
		}
	}, 8, at(3, zero))
}

// Segments the log released are legitimately gone: the first one left
// follows a released one, and that is no corruption.
func TestReleasedSegmentsAreNoGap(t *testing.T) {
	dir := t.TempDir()
	l, recs, pos := fiveSegments(t, dir)
	if err := l.Release(pos[9]); err != nil { // segments 1 and 2
		t.Fatal(err)
	}
	closeT(t, l)
	l, r := reopenReplay(t, dir)
	mustEqualRecs(t, r.recs, recs[8:])
	if r.st.Corrupt != nil || r.st.TornTail {
		t.Fatalf("replay after Release %+v; want clean", r.st)
	}
	closeT(t, l)

	// But a segment after the released ones that goes missing is a gap.
	if err := os.Remove(filepath.Join(dir, segName(3))); err != nil {
		t.Fatal(err)
	}
	l, r = reopenReplay(t, dir)
	defer l.Close()
	if len(r.recs) != 0 || r.st.Corrupt == nil || *r.st.Corrupt != (Position{Segment: 3}) {
		t.Fatalf("replayed %d records, Corrupt %v; want none and corruption at 3:0", len(r.recs), r.st.Corrupt)
	}
}

// The log's directory and files hold tenants' rows: only the gateway's
// user may read them.
func TestPermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wal")
	l := openT(t, Config{Dir: dir, SegmentSize: 100, NoSync: true})
	pos := appendAll(t, l, makeRecs(6, 0))
	if err := l.Release(pos[1]); err != nil {
		t.Fatal(err)
	}
	closeT(t, l)
	// Damage the newest segment's header so that a copy and a move aside
	// happen too.
	if err := os.Truncate(filepath.Join(dir, segName(pos[5].Segment)), 0); err != nil {
		t.Fatal(err)
	}
	l, r := reopenReplay(t, dir)
	defer l.Close()
	if r.st.Corrupt == nil {
		t.Fatalf("stats %+v; want corruption", r.st)
	}
	if _, err := l.Append([]byte("new")); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(dir)
	if err != nil || info.Mode().Perm() != 0o700 {
		t.Fatalf("directory mode %v, %v; want 0700", info.Mode().Perm(), err)
	}
	names := segFiles(t, dir)
	if !slices.Contains(names, releasedFile) || !slices.ContainsFunc(names, func(n string) bool { return strings.HasSuffix(n, ".corrupt") }) {
		t.Fatalf("files %v; want segments, %s and a .corrupt copy", names, releasedFile)
	}
	for _, name := range names {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Fatalf("%s mode %v, %v; want 0600", name, info.Mode().Perm(), err)
		}
	}
}
