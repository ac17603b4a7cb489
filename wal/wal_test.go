package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

func openT(t testing.TB, cfg Config) *Log {
	t.Helper()
	l, err := Open(cfg, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

// rec returns a distinct test record of about size bytes.
func rec(i, size int) []byte {
	b := fmt.Appendf(nil, `{"i":%d,"pad":"`, i)
	for len(b) < size-2 {
		b = append(b, byte('a'+i%26))
	}
	return append(b, `"}`...)
}

type replayed struct {
	recs [][]byte
	pos  []Position
	st   ReplayStats
}

func replayT(t testing.TB, l *Log) replayed {
	t.Helper()
	var r replayed
	st, err := l.Replay(func(pos Position, b []byte) error {
		r.recs = append(r.recs, slices.Clone(b))
		r.pos = append(r.pos, pos)
		return nil
	})
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	r.st = st
	return r
}

// reopenReplay opens dir with NoSync and replays it.
func reopenReplay(t testing.TB, dir string) (*Log, replayed) {
	t.Helper()
	l := openT(t, Config{Dir: dir, NoSync: true})
	return l, replayT(t, l)
}

func appendAll(t testing.TB, l *Log, recs [][]byte) []Position {
	t.Helper()
	pos := make([]Position, len(recs))
	for i, r := range recs {
		p, err := l.Append(r)
		if err != nil {
			t.Fatalf("Append #%d: %v", i, err)
		}
		if i > 0 && !pos[i-1].Less(p) {
			t.Fatalf("Append #%d: position %v not after %v", i, p, pos[i-1])
		}
		pos[i] = p
	}
	return pos
}

func closeT(t testing.TB, l *Log) {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// segFiles lists the file names in dir, sorted.
func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func walFiles(t testing.TB, dir string) []string {
	var out []string
	for _, n := range segFiles(t, dir) {
		if strings.HasSuffix(n, segSuffix) {
			out = append(out, n)
		}
	}
	return out
}

func mustEqualRecs(t testing.TB, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("record #%d = %q, want %q", i, got[i], want[i])
		}
	}
}

// appendBatch appends recs in one group commit, all or none, and returns
// each record's Position.
func appendBatch(l *Log, recs [][]byte) ([]Position, error) {
	r := &request{done: make(chan struct{}, 1), recs: recs, pos: make([]Position, len(recs))}
	for _, rec := range recs {
		if len(rec) > MaxRecordSize {
			return nil, ErrTooLarge
		}
		r.size += hdrSize + int64(len(rec))
	}
	if err := l.submit(r); err != nil {
		return nil, err
	}
	return r.pos, nil
}

// waitFor polls cond until it holds, failing the test if it does not
// within a generous deadline (a hang, not a slow machine).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	timeout := time.After(time.Minute)
	for !cond() {
		select {
		case <-tick.C:
		case <-timeout:
			t.Fatalf("gave up waiting for %s", what)
		}
	}
}

func makeRecs(n, from int) [][]byte {
	recs := make([][]byte, n)
	for i := range recs {
		recs[i] = rec(from+i, 20+(from+i)*7%90)
	}
	return recs
}

func TestPositionLess(t *testing.T) {
	f := func(p, q Position, want bool) {
		t.Helper()
		if got := p.Less(q); got != want {
			t.Fatalf("%v.Less(%v) = %v; want %v", p, q, got, want)
		}
	}
	f(Position{1, 10}, Position{1, 11}, true)
	f(Position{1, 11}, Position{1, 10}, false)
	f(Position{1, 10}, Position{1, 10}, false)
	f(Position{1, 999}, Position{2, 0}, true)
	f(Position{2, 0}, Position{1, 999}, false)
}

func TestSegName(t *testing.T) {
	if got := segName(1); got != "00000000000000000001.wal" {
		t.Fatalf("segName(1) = %q", got)
	}
	for _, seq := range []uint64{1, 42, 1<<64 - 1} {
		if got, ok := parseSegName(segName(seq)); !ok || got != seq {
			t.Fatalf("parseSegName(segName(%d)) = %d, %v", seq, got, ok)
		}
	}
	for _, bad := range []string{"1.wal", "00000000000000000001.wal.corrupt", "0000000000000000000x.wal", "00000000000000000000.wal"} {
		if _, ok := parseSegName(bad); ok {
			t.Fatalf("parseSegName(%q) accepted", bad)
		}
	}
}

func TestRoundTripAcrossSegments(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, Config{Dir: dir, SegmentSize: 256})
	if r := replayT(t, l); r.st.Records != 0 || r.st.Segments != 0 {
		t.Fatalf("empty dir replayed %+v", r.st)
	}
	recs := makeRecs(200, 0)
	recs = append(recs, []byte{}) // an empty record is a record
	pos := appendAll(t, l, recs)
	closeT(t, l)

	files := walFiles(t, dir)
	if len(files) < 10 {
		t.Fatalf("SegmentSize 256 with ~12 KiB of records made only %d segments", len(files))
	}
	for _, name := range files {
		info, _ := os.Stat(filepath.Join(dir, name))
		if info.Size() > 256 {
			t.Fatalf("segment %s holds %d bytes, over SegmentSize 256", name, info.Size())
		}
	}

	l, r := reopenReplay(t, dir)
	mustEqualRecs(t, r.recs, recs)
	if !slices.Equal(r.pos, pos) {
		t.Fatalf("replayed positions differ from appended ones:\n%v\n%v", r.pos, pos)
	}
	if r.st.Segments != len(files) || r.st.Records != len(recs) || r.st.TornTail || r.st.Corrupt != nil {
		t.Fatalf("stats %+v; want %d segments, %d records, clean", r.st, len(files), len(recs))
	}
	// A reopened log writes into a new segment after the old ones.
	p, err := l.Append([]byte("after reopen"))
	if err != nil {
		t.Fatal(err)
	}
	if !pos[len(pos)-1].Less(p) || p.Segment != pos[len(pos)-1].Segment+1 {
		t.Fatalf("append after reopen at %v; last before %v", p, pos[len(pos)-1])
	}
	closeT(t, l)
	l, r = reopenReplay(t, dir)
	defer l.Close()
	mustEqualRecs(t, r.recs, append(recs, []byte("after reopen")))
}

func TestAppendBatch(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, Config{Dir: dir, NoSync: true})
	recs := makeRecs(5, 0)
	pos, err := appendBatch(l, recs)
	if err != nil {
		t.Fatal(err)
	}
	off := int64(segHdrSize)
	for i, p := range pos {
		off += hdrSize + int64(len(recs[i]))
		if p != (Position{Segment: 1, Offset: off}) {
			t.Fatalf("pos[%d] = %v; want 1:%d", i, p, off)
		}
	}
	if st := l.Stats(); st.Groups != 1 || st.Appends != uint64(len(recs)) {
		t.Fatalf("stats %+v; want %d records in one group", st, len(recs))
	}
	closeT(t, l)
	l, r := reopenReplay(t, dir)
	defer l.Close()
	mustEqualRecs(t, r.recs, recs)
}

func TestTornTail(t *testing.T) {
	f := func(name string, damage func(t *testing.T, path string, lastLen int), keepLast bool) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			l := openT(t, Config{Dir: dir, SegmentSize: 512, NoSync: true})
			recs := makeRecs(40, 0)
			appendAll(t, l, recs)
			closeT(t, l)
			files := walFiles(t, dir)
			last := filepath.Join(dir, files[len(files)-1])
			damage(t, last, len(recs[len(recs)-1]))

			want := recs
			if !keepLast {
				want = recs[:len(recs)-1]
			}
			set := metrics.NewSet()
			l = openT(t, Config{Dir: dir, NoSync: true, Metrics: set})
			r := replayT(t, l)
			mustEqualRecs(t, r.recs, want)
			if !r.st.TornTail || r.st.TornBytes <= 0 || r.st.Corrupt != nil {
				t.Fatalf("stats %+v; want a torn tail and no corruption", r.st)
			}
			if st := l.Stats(); st.TornTailBytes != uint64(r.st.TornBytes) || st.CorruptSegments != 0 {
				t.Fatalf("Stats %+v; want TornTailBytes %d", st, r.st.TornBytes)
			}
			var out bytes.Buffer
			set.WritePrometheus(&out)
			if want := fmt.Sprintf("duckgate_wal_torn_tail_bytes_total %d\n", r.st.TornBytes); !strings.Contains(out.String(), want) {
				t.Fatalf("metrics:\n%s\nwant %q", out.String(), want)
			}
			if _, err := l.Append([]byte("new")); err != nil {
				t.Fatal(err)
			}
			closeT(t, l)
			l, r = reopenReplay(t, dir)
			defer l.Close()
			mustEqualRecs(t, r.recs, append(slices.Clone(want), []byte("new")))
			if r.st.TornTail || r.st.Corrupt != nil {
				t.Fatalf("second replay %+v; want clean", r.st)
			}
		})
	}
	truncateBy := func(n int) func(t *testing.T, path string, lastLen int) {
		return func(t *testing.T, path string, lastLen int) {
			info, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, info.Size()-int64(n)); err != nil {
				t.Fatal(err)
			}
		}
	}
	appendBytes := func(b []byte) func(t *testing.T, path string, lastLen int) {
		return func(t *testing.T, path string, lastLen int) {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.Write(b); err != nil {
				t.Fatal(err)
			}
		}
	}
	garbage := make([]byte, 3000)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	f("cut mid-payload", truncateBy(3), false)
	f("cut mid-header", func(t *testing.T, path string, lastLen int) {
		truncateBy(lastLen+5)(t, path, lastLen)
	}, false)
	f("garbage appended", appendBytes(garbage), true)
	f("half a header appended", appendBytes([]byte{9, 0, 0}), true)
	f("cut mid-payload then zero-filled", func(t *testing.T, path string, lastLen int) {
		truncateBy(lastLen/2)(t, path, lastLen)
		appendBytes(make([]byte, 8192))(t, path, lastLen)
	}, false)
}

// The writer repairs a torn tail itself when Append comes without Replay:
// otherwise the next start would find it in the middle of the log.
func TestAppendWithoutReplayCutsTornTail(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, Config{Dir: dir, NoSync: true})
	recs := makeRecs(5, 0)
	appendAll(t, l, recs)
	closeT(t, l)
	path := filepath.Join(dir, segName(1))
	info, _ := os.Stat(path)
	if err := os.Truncate(path, info.Size()-2); err != nil {
		t.Fatal(err)
	}
	l = openT(t, Config{Dir: dir, NoSync: true})
	if _, err := l.Append([]byte("new")); err != nil {
		t.Fatal(err)
	}
	closeT(t, l)
	l, r := reopenReplay(t, dir)
	defer l.Close()
	mustEqualRecs(t, r.recs, append(recs[:4:4], []byte("new")))
	if r.st.TornTail || r.st.Corrupt != nil {
		t.Fatalf("stats %+v; want clean", r.st)
	}
}

// An emptied newest segment found by the writer's own check, when Append
// comes without Replay, is set aside and counted; the log goes on after the
// segment before it.
func TestAppendWithoutReplaySetsEmptySegmentAside(t *testing.T) {
	dir := t.TempDir()
	l, recs, _ := fiveSegments(t, dir)
	closeT(t, l)
	if err := os.Truncate(filepath.Join(dir, segName(5)), 0); err != nil {
		t.Fatal(err)
	}
	l = openT(t, Config{Dir: dir, NoSync: true})
	if _, err := l.Append([]byte("new")); err != nil {
		t.Fatal(err)
	}
	if st := l.Stats(); st.CorruptSegments != 1 {
		t.Fatalf("Stats %+v; want 1 corrupt segment", st)
	}
	closeT(t, l)
	if _, err := os.Stat(filepath.Join(dir, segName(5)+".corrupt")); err != nil {
		t.Fatalf("emptied segment not set aside: %v", err)
	}
	l, r := reopenReplay(t, dir)
	defer l.Close()
	mustEqualRecs(t, r.recs, append(slices.Clone(recs[:16]), []byte("new")))
	if r.st.TornTail || r.st.Corrupt != nil {
		t.Fatalf("stats %+v; want clean", r.st)
	}
}

func TestCorruptRecord(t *testing.T) {
	// f corrupts record #bad (by damage at its header offset) and expects
	// replay to stop right before it.
	f := func(name string, bad int, damage func(b []byte, hdrOff int)) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			l := openT(t, Config{Dir: dir, SegmentSize: 512, NoSync: true})
			recs := makeRecs(40, 0)
			pos := appendAll(t, l, recs)
			closeT(t, l)

			seg := pos[bad].Segment
			start := int64(segHdrSize)
			if bad > 0 && pos[bad-1].Segment == seg {
				start = pos[bad-1].Offset
			}
			path := filepath.Join(dir, segName(seg))
			orig, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			damaged := slices.Clone(orig)
			damage(damaged, int(start))
			if err := os.WriteFile(path, damaged, 0o644); err != nil {
				t.Fatal(err)
			}

			l, r := reopenReplay(t, dir)
			mustEqualRecs(t, r.recs, recs[:bad])
			if r.st.Corrupt == nil || *r.st.Corrupt != (Position{Segment: seg, Offset: start}) {
				t.Fatalf("Corrupt = %v; want %d:%d", r.st.Corrupt, seg, start)
			}
			if !errors.Is(r.st.CorruptErr, ErrCorrupt) || r.st.TornTail {
				t.Fatalf("CorruptErr = %v, TornTail = %v", r.st.CorruptErr, r.st.TornTail)
			}
			// The damaged segment was copied aside intact, later ones moved.
			aside, err := os.ReadFile(path + ".corrupt")
			if err != nil || !bytes.Equal(aside, damaged) {
				t.Fatalf("copy aside: %v, equal %v", err, bytes.Equal(aside, damaged))
			}
			lastSeg := pos[len(pos)-1].Segment
			if want := int(lastSeg-seg) + 1; len(r.st.Quarantined) != want {
				t.Fatalf("quarantined %v; want %d files", r.st.Quarantined, want)
			}
			for s := seg + 1; s <= lastSeg; s++ {
				if _, err := os.Stat(filepath.Join(dir, segName(s)+".corrupt")); err != nil {
					t.Fatalf("segment %d not moved aside: %v", s, err)
				}
			}

			p, err := l.Append([]byte("new"))
			if err != nil {
				t.Fatal(err)
			}
			if p.Segment <= lastSeg {
				t.Fatalf("append after corruption went to segment %d; want a fresh one after %d", p.Segment, lastSeg)
			}
			closeT(t, l)
			l, r = reopenReplay(t, dir)
			defer l.Close()
			mustEqualRecs(t, r.recs, append(slices.Clone(recs[:bad]), []byte("new")))
			if r.st.Corrupt != nil || r.st.TornTail {
				t.Fatalf("second replay %+v; want clean", r.st)
			}
		})
	}
	flipPayload := func(b []byte, off int) { b[off+hdrSize+3] ^= 0x40 }
	f("payload byte in an early segment", 5, flipPayload)
	f("payload byte of a middle segment's first record", 12, flipPayload)
	f("crc byte", 7, func(b []byte, off int) { b[off+5] ^= 1 })
	f("length over MaxRecordSize", 9, func(b []byte, off int) {
		binary.LittleEndian.PutUint32(b[off:], 0xffffffff)
	})
	f("length past segment end", 9, func(b []byte, off int) {
		binary.LittleEndian.PutUint32(b[off:], 100000)
	})
	// In the newest segment, a bad record followed by good ones is
	// corruption, not a torn tail.
	f("payload byte in the newest segment, valid records after", 37, flipPayload)
}

func TestRelease(t *testing.T) {
	dir := t.TempDir()
	// 40-byte records take 48 bytes: two per 132-byte segment, after the
	// 36-byte segment header.
	l := openT(t, Config{Dir: dir, SegmentSize: 132, NoSync: true})
	recs := make([][]byte, 10)
	for i := range recs {
		recs[i] = rec(i, 40)
	}
	pos := appendAll(t, l, recs)
	for i, p := range pos {
		if want := uint64(i/2 + 1); p.Segment != want {
			t.Fatalf("record %d in segment %d; want %d", i, p.Segment, want)
		}
	}
	check := func(p Position, wantSegs ...uint64) {
		t.Helper()
		if err := l.Release(p); err != nil {
			t.Fatalf("Release(%v): %v", p, err)
		}
		var want []string
		for _, s := range wantSegs {
			want = append(want, segName(s))
		}
		if got := walFiles(t, dir); !slices.Equal(got, want) {
			t.Fatalf("after Release(%v) files = %v; want %v", p, got, want)
		}
		if got, want := l.Size(), int64(len(wantSegs))*132; got != want {
			t.Fatalf("Size() = %d; want %d", got, want)
		}
	}
	check(Position{}, 1, 2, 3, 4, 5)
	check(pos[0], 1, 2, 3, 4, 5) // half of segment 1
	check(pos[2], 2, 3, 4, 5)    // segment 1 whole, half of 2
	check(pos[3], 3, 4, 5)       // exactly the end of segment 2
	check(pos[1], 3, 4, 5)       // lower than before: no-op
	check(pos[9], 5)             // the active segment stays
	check(Position{Segment: 1 << 60}, 5)
	if st := l.Stats(); st.SegmentsDeleted != 4 || st.SegmentsCreated != 5 || st.Segments != 1 {
		t.Fatalf("stats %+v", st)
	}
	p, err := l.Append(rec(10, 40))
	if err != nil || p.Segment != 6 {
		t.Fatalf("Append after Release = %v, %v; want segment 6", p, err)
	}
	closeT(t, l)
	l, r := reopenReplay(t, dir)
	defer l.Close()
	mustEqualRecs(t, r.recs, [][]byte{recs[8], recs[9], rec(10, 40)})
	if r.st.Corrupt != nil || r.st.TornTail {
		t.Fatalf("replay after releases %+v; want clean", r.st)
	}
	// With no active segment after reopen, everything released goes.
	if err := l.Release(p); err != nil {
		t.Fatal(err)
	}
	if got := walFiles(t, dir); len(got) != 0 {
		t.Fatalf("files %v; want none", got)
	}
	// The next segment is numbered past the released ones and replays clean.
	if p, err := l.Append(rec(11, 40)); err != nil || p.Segment != 7 {
		t.Fatalf("Append after releasing everything = %v, %v; want segment 7", p, err)
	}
	closeT(t, l)
	l, r = reopenReplay(t, dir)
	defer l.Close()
	mustEqualRecs(t, r.recs, [][]byte{rec(11, 40)})
	if r.st.Corrupt != nil || r.st.TornTail {
		t.Fatalf("replay after releasing everything %+v; want clean", r.st)
	}
}

func TestBacklogFull(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, Config{Dir: dir, SegmentSize: 132, MaxBacklog: 500, NoSync: true})
	defer l.Close()
	var pos []Position
	for i := 0; ; i++ {
		p, err := l.Append(rec(i, 40))
		if errors.Is(err, ErrBacklogFull) {
			break
		}
		if err != nil || i > 20 {
			t.Fatalf("Append #%d: %v", i, err)
		}
		pos = append(pos, p)
	}
	// 7 records of 48 bytes in 4 segments of 36-byte header: 480. The 8th
	// would need 480 + 48 and perhaps a new segment's 36 > 500.
	if len(pos) != 7 || l.Size() != 480 {
		t.Fatalf("%d appends fit, Size %d; want 7 and 480", len(pos), l.Size())
	}
	if _, err := appendBatch(l, [][]byte{{1}, rec(98, 40)}); !errors.Is(err, ErrBacklogFull) {
		t.Fatalf("appendBatch over backlog: %v", err)
	}
	if st := l.Stats(); st.BacklogFull != 2 || st.Appends != 7 {
		t.Fatalf("stats %+v", st)
	}
	if err := l.Release(pos[5]); err != nil { // segments 1-3
		t.Fatal(err)
	}
	if l.Size() != 84 {
		t.Fatalf("Size after Release = %d; want 84", l.Size())
	}
	if _, err := l.Append(rec(99, 40)); err != nil {
		t.Fatalf("Append after Release: %v", err)
	}
}

func TestTooLarge(t *testing.T) {
	l := openT(t, Config{Dir: t.TempDir(), NoSync: true})
	defer l.Close()
	big := make([]byte, MaxRecordSize+1)
	if _, err := l.Append(big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Append: %v", err)
	}
	if l.Size() != 0 {
		t.Fatalf("Size %d after refused appends", l.Size())
	}
}

func TestClose(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, Config{Dir: dir, SegmentSize: 4096})
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		acked = map[string]bool{}
	)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				r := rec(g*100000+i, 30)
				if _, err := l.Append(r); err != nil {
					if !errors.Is(err, ErrClosed) {
						t.Errorf("Append: %v", err)
					}
					return
				}
				mu.Lock()
				acked[string(r)] = true
				mu.Unlock()
			}
		}()
	}
	waitFor(t, "200 appends", func() bool { return l.Stats().Appends >= 200 })
	closeT(t, l)
	wg.Wait()
	if _, err := l.Append([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	if err := l.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := l.Replay(nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Replay after Close: %v", err)
	}
	if err := l.Release(Position{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Release after Close: %v", err)
	}
	l, r := reopenReplay(t, dir)
	defer l.Close()
	if len(r.recs) != len(acked) {
		t.Fatalf("replayed %d records; %d were acknowledged", len(r.recs), len(acked))
	}
	for _, b := range r.recs {
		if !acked[string(b)] {
			t.Fatalf("replayed %q, never acknowledged", b)
		}
	}
}

func TestReplayOrder(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, Config{Dir: dir, NoSync: true})
	appendAll(t, l, makeRecs(3, 0))
	if _, err := l.Replay(nil); !errors.Is(err, ErrReplayOrder) {
		t.Fatalf("Replay after Append: %v", err)
	}
	closeT(t, l)

	l = openT(t, Config{Dir: dir, NoSync: true})
	defer l.Close()
	stop := errors.New("stop")
	n := 0
	_, err := l.Replay(func(pos Position, b []byte) error {
		n++
		if _, err := l.Append([]byte("x")); !errors.Is(err, ErrReplayOrder) {
			t.Errorf("Append during Replay: %v", err)
		}
		// Release during Replay is deferred until Replay returns.
		if err := l.Release(Position{Segment: 2}); err != nil {
			t.Errorf("Release during Replay: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, segName(1))); err != nil {
			t.Errorf("segment deleted during Replay: %v", err)
		}
		return stop
	})
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("Replay = %v after %d records; want the callback's error after 1", err, n)
	}
	if got := walFiles(t, dir); len(got) != 0 {
		t.Fatalf("released segment still there after Replay: %v", got)
	}
}

func TestAppendAllocs(t *testing.T) {
	l := openT(t, Config{Dir: t.TempDir(), NoSync: true})
	defer l.Close()
	r := rec(1, 200)
	if _, err := l.Append(r); err != nil { // warm up the pool and buffers
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(1000, func() {
		if _, err := l.Append(r); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("Append allocates %v times per call; want 0", n)
	}
}
