package wal

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// FuzzReplay writes a few records over three segments, lets the fuzzer
// overwrite (or cut) bytes of one segment, and checks that Replay returns a
// prefix of what was written, byte-equal and in order; and that after one
// Append the next Replay sees that same prefix plus the new record, clean.
func FuzzReplay(f *testing.F) {
	f.Add(uint8(0), uint16(3), []byte{0xff}, false)
	f.Add(uint8(1), uint16(0), []byte{0, 0, 0, 0, 0, 0, 0, 0}, false)
	f.Add(uint8(2), uint16(20), []byte{}, true)
	f.Add(uint8(2), uint16(500), make([]byte, 64), false)
	f.Add(uint8(1), uint16(4), []byte{0xff, 0xff, 0xff, 0x7f}, false)
	f.Add(uint8(0), uint16(0), []byte{1, 0, 0, 0, 0x9e, 0xa4, 0x5b, 0x67, 'x'}, true)
	f.Fuzz(func(t *testing.T, segIdx uint8, off uint16, patch []byte, cut bool) {
		dir := t.TempDir()
		l := openT(t, Config{Dir: dir, SegmentSize: 150, NoSync: true})
		var written [][]byte
		for i := range 9 {
			written = append(written, rec(i, 10+i*9))
		}
		appendAll(t, l, written)
		closeT(t, l)

		files := walFiles(t, dir)
		path := filepath.Join(dir, files[int(segIdx)%len(files)])
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		at := int(off) % (len(data) + 1)
		if cut {
			data = data[:at]
		}
		if end := at + len(patch); end > len(data) {
			data = append(data, make([]byte, end-len(data))...)
		}
		copy(data[at:], patch)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}

		l, r := reopenReplay(t, dir)
		if len(r.recs) > len(written) {
			t.Fatalf("replayed %d records; %d were written", len(r.recs), len(written))
		}
		for i, b := range r.recs {
			if !bytes.Equal(b, written[i]) {
				t.Fatalf("record #%d = %q; written %q", i, b, written[i])
			}
			if i > 0 && !r.pos[i-1].Less(r.pos[i]) {
				t.Fatalf("positions out of order: %v then %v", r.pos[i-1], r.pos[i])
			}
		}
		if (r.st.Corrupt != nil) != (r.st.CorruptErr != nil) {
			t.Fatalf("Corrupt %v but CorruptErr %v", r.st.Corrupt, r.st.CorruptErr)
		}
		if _, err := l.Append([]byte("new")); err != nil {
			t.Fatal(err)
		}
		closeT(t, l)

		l, r2 := reopenReplay(t, dir)
		defer l.Close()
		mustEqualRecs(t, r2.recs, append(slices.Clone(r.recs), []byte("new")))
		if r2.st.TornTail || r2.st.Corrupt != nil {
			t.Fatalf("second replay %+v; want clean", r2.st)
		}
	})
}
