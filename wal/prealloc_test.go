package wal

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// copyDir copies the files of src into a new directory: what a crash at
// this moment would leave on disk (every acknowledged group was fsynced).
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	for _, name := range segFiles(t, src) {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}

// The writer extends a segment with zeros ahead of its records; a crash
// leaves them, and Replay cuts them without calling them a torn tail. Close
// cuts them itself.
func TestPreallocatedTail(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, Config{Dir: dir})
	recs := makeRecs(50, 0)
	pos := appendAll(t, l, recs)
	end := pos[len(pos)-1]
	seg := filepath.Join(dir, segName(end.Segment))
	if size := fileSize(t, seg); size != segHdrSize+preallocSize {
		t.Fatalf("open segment is %d bytes; want %d (header and one preallocated chunk)", size, segHdrSize+preallocSize)
	}

	crashed := copyDir(t, dir)
	c := openT(t, Config{Dir: crashed})
	r := replayT(t, c)
	mustEqualRecs(t, r.recs, recs)
	if r.st.TornTail || r.st.TornBytes != 0 || r.st.Corrupt != nil {
		t.Fatalf("replay after a crash %+v; want clean", r.st)
	}
	if st := c.Stats(); st.TornTailBytes != 0 || st.Size != end.Offset {
		t.Fatalf("Stats %+v; want no torn bytes and Size %d", st, end.Offset)
	}
	if size := fileSize(t, filepath.Join(crashed, segName(end.Segment))); size != end.Offset {
		t.Fatalf("segment after replay is %d bytes; want %d", size, end.Offset)
	}
	more := makeRecs(3, 50)
	appendAll(t, c, more)
	closeT(t, c)
	c, r = reopenReplay(t, crashed)
	mustEqualRecs(t, r.recs, append(slices.Clone(recs), more...))
	if r.st.TornTail || r.st.Corrupt != nil {
		t.Fatalf("second replay %+v; want clean", r.st)
	}
	closeT(t, c)

	// Append without Replay: the writer's own tail check cuts the zeros.
	crashed = copyDir(t, dir)
	c = openT(t, Config{Dir: crashed})
	appendAll(t, c, more)
	closeT(t, c)
	c, r = reopenReplay(t, crashed)
	mustEqualRecs(t, r.recs, append(slices.Clone(recs), more...))
	if r.st.TornTail || r.st.Corrupt != nil {
		t.Fatalf("replay after Append without Replay %+v; want clean", r.st)
	}
	closeT(t, c)

	closeT(t, l)
	if size := fileSize(t, seg); size != end.Offset {
		t.Fatalf("segment after Close is %d bytes; want %d", size, end.Offset)
	}
}

// A record torn inside the preallocated space (its first bytes written,
// the rest still zeros) is a torn tail, as in a segment that grows.
func TestTornRecordInPreallocatedSpace(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, Config{Dir: dir})
	recs := makeRecs(20, 0)
	pos := appendAll(t, l, recs)
	crashed := copyDir(t, dir)
	closeT(t, l)
	end := pos[len(pos)-1]
	// Half of a record after the last one, over the zeros.
	f, err := os.OpenFile(filepath.Join(crashed, segName(end.Segment)), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	torn := appendHeader(nil, rec(99, 200))
	torn = append(torn, rec(99, 200)[:100]...)
	if _, err := f.WriteAt(torn, end.Offset); err != nil {
		t.Fatal(err)
	}
	f.Close()
	c := openT(t, Config{Dir: crashed, NoSync: true})
	defer c.Close()
	r := replayT(t, c)
	mustEqualRecs(t, r.recs, recs)
	if !r.st.TornTail || r.st.TornBytes != preallocSize+segHdrSize-end.Offset || r.st.Corrupt != nil {
		t.Fatalf("stats %+v; want a torn tail of %d bytes", r.st, preallocSize+segHdrSize-end.Offset)
	}
}

// Groups past the preallocated chunk extend it again; a roll cuts the old
// segment to its records, which its successor's header vouches for.
func TestPreallocationAcrossChunksAndSegments(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, Config{Dir: dir, SegmentSize: 3 * preallocSize})
	var recs [][]byte
	for i := range 400 {
		recs = append(recs, rec(i, 20<<10)) // 20 KiB: 400 of them span 3 segments
	}
	pos := appendAll(t, l, recs)
	closeT(t, l)
	files := walFiles(t, dir)
	if len(files) < 3 {
		t.Fatalf("%d segments; want at least 3", len(files))
	}
	for _, name := range files {
		seq, _ := parseSegName(name)
		var last int64
		for _, p := range pos {
			if p.Segment == seq {
				last = p.Offset
			}
		}
		if size := fileSize(t, filepath.Join(dir, name)); size != last {
			t.Fatalf("%s is %d bytes; its last record ends at %d", name, size, last)
		}
	}
	l, r := reopenReplay(t, dir)
	defer l.Close()
	mustEqualRecs(t, r.recs, recs)
	if r.st.TornTail || r.st.Corrupt != nil {
		t.Fatalf("replay %+v; want clean", r.st)
	}
}
