package wal

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// FuzzReplay writes 9 records over several segments, lets the fuzzer damage
// one segment (overwrite bytes, cut it and write bytes at the cut, or remove
// it), and checks that Replay returns a prefix of what was written,
// byte-equal, in order and at the Positions Append gave; that every record
// missing from that prefix is reported as corruption, unless the newest
// segment, whose length nothing vouches for, was cut or overwritten; and
// that after one Append the next Replay sees that same prefix plus the new
// record, clean.
func FuzzReplay(f *testing.F) {
	const (
		overwrite = iota
		cutThenWrite
		remove
		modes
	)
	f.Add(uint8(0), uint16(3), []byte{0xff}, uint8(overwrite))
	f.Add(uint8(1), uint16(0), []byte{0, 0, 0, 0, 0, 0, 0, 0}, uint8(overwrite))
	f.Add(uint8(2), uint16(20), []byte{}, uint8(cutThenWrite))
	f.Add(uint8(2), uint16(500), make([]byte, 64), uint8(overwrite))
	f.Add(uint8(1), uint16(40), []byte{0xff, 0xff, 0xff, 0x7f}, uint8(overwrite))
	f.Add(uint8(0), uint16(36), []byte{1, 0, 0, 0, 0x9e, 0xa4, 0x5b, 0x67, 'x'}, uint8(cutThenWrite))
	f.Add(uint8(0), uint16(0), []byte{}, uint8(cutThenWrite))
	f.Add(uint8(1), uint16(0), []byte{}, uint8(cutThenWrite))
	f.Add(uint8(0), uint16(0), []byte{}, uint8(remove))
	f.Add(uint8(2), uint16(0), []byte{}, uint8(remove))
	f.Add(uint8(4), uint16(0), []byte{}, uint8(remove))
	f.Fuzz(func(t *testing.T, segIdx uint8, off uint16, patch []byte, mode uint8) {
		dir := t.TempDir()
		l := openT(t, Config{Dir: dir, SegmentSize: 150, NoSync: true})
		var written [][]byte
		for i := range 9 {
			written = append(written, rec(i, 10+i*9))
		}
		pos := appendAll(t, l, written)
		closeT(t, l)

		files := walFiles(t, dir)
		damaged := int(segIdx) % len(files)
		path := filepath.Join(dir, files[damaged])
		switch mode % modes {
		case remove:
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		default:
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			at := int(off) % (len(data) + 1)
			if mode%modes == cutThenWrite {
				data = data[:at]
			}
			if end := at + len(patch); end > len(data) {
				data = append(data, make([]byte, end-len(data))...)
			}
			copy(data[at:], patch)
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
		}

		l, r := reopenReplay(t, dir)
		if len(r.recs) > len(written) {
			t.Fatalf("replayed %d records; %d were written", len(r.recs), len(written))
		}
		for i, b := range r.recs {
			if !bytes.Equal(b, written[i]) {
				t.Fatalf("record #%d = %q; written %q", i, b, written[i])
			}
			if r.pos[i] != pos[i] {
				t.Fatalf("record #%d replayed at %v; appended at %v", i, r.pos[i], pos[i])
			}
		}
		if (r.st.Corrupt != nil) != (r.st.CorruptErr != nil) {
			t.Fatalf("Corrupt %v but CorruptErr %v", r.st.Corrupt, r.st.CorruptErr)
		}
		if n := len(r.recs); n < len(written) && r.st.Corrupt == nil {
			// A silent loss may only be the end of the newest segment: nothing
			// vouches for its length.
			if newest := pos[len(pos)-1].Segment; damaged != len(files)-1 || mode%modes == remove || pos[n].Segment != newest {
				t.Fatalf("records #%d on (from %v) lost without corruption reported; damaged %s, stats %+v",
					n, pos[n], files[damaged], r.st)
			}
		}
		if r.st.Corrupt != nil && len(r.recs) > 0 && r.st.Corrupt.Less(r.pos[len(r.pos)-1]) {
			t.Fatalf("corruption reported at %v, before the last record replayed at %v", r.st.Corrupt, r.pos[len(r.pos)-1])
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
