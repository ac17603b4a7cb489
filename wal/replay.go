package wal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"go.uber.org/zap"

	"duckgate/atomicfile"
)

// ReplayStats reports what Replay read and repaired.
type ReplayStats struct {
	Records  int   // records passed to fn
	Bytes    int64 // payload bytes passed to fn
	Segments int   // segments read
	// TornTail is set when the newest segment ended in a damaged record with
	// no valid record after it: a write cut short by a crash, or damage to
	// the end of the file. The newest segment has no successor to vouch for
	// its length, so the two cannot be told apart. Those TornBytes were
	// truncated.
	TornTail  bool
	TornBytes int64
	// Corrupt is where the first damage that is not a torn tail starts, nil
	// if none: a bad record, a missing or bad segment header, a segment
	// missing from the chain or at the end of the log (Offset 0 of the
	// missing segment), or a segment shorter or longer than the length its
	// successor recorded (where what is left ends, or where it should have
	// ended). Replay stopped there; CorruptErr (wrapping ErrCorrupt) says
	// why, and Quarantined lists the files the unreadable rest was moved or
	// copied to.
	Corrupt     *Position
	CorruptErr  error
	Quarantined []string
}

// readBufSize is the read buffer of Replay; 1 MiB reads stream a segment at
// disk speed.
const readBufSize = 1 << 20

// tornScanBudget bounds the checksum work spent deciding whether valid
// records follow a bad one at the end of the newest segment. Real torn tails
// (zeros, or the start of a record's JSON, whose length field reads as more
// than MaxRecordSize) cost next to nothing; past the budget the tail is
// treated as corrupt, which keeps it on disk.
const tornScanBudget = 256 << 20

// Replay calls fn for every intact record of the segments that were in the
// directory at Open, oldest first, with the record's Position. rec is valid
// only until fn returns. An error from fn stops Replay and is returned.
//
// A torn or damaged tail of the newest segment (a record running past the
// end of the file, a bad checksum or a zero-filled tail, with no valid record
// after it) is truncated and reported in TornTail and TornBytes, not as an
// error: it is most likely a write a crash cut short, but nothing vouches for
// the newest segment's length, so it may have been acknowledged. Any other
// damage (a bad record, a bad or missing segment header, a segment missing
// from the chain or at the end, a segment shorter or longer than its
// successor recorded)
// stops Replay there: the records before it have been passed to fn,
// ReplayStats.Corrupt says where, the damaged rest is moved aside (see the
// package documentation) and the error is nil; new appends go to a fresh
// segment.
//
// Replay must be called before the first Append, and fn must not call Append.
func (l *Log) Replay(fn func(pos Position, rec []byte) error) (ReplayStats, error) {
	var st ReplayStats
	l.mu.Lock()
	switch {
	case l.closed:
		l.mu.Unlock()
		return st, ErrClosed
	case l.started, l.replaying:
		l.mu.Unlock()
		return st, ErrReplayOrder
	}
	l.replaying = true
	l.mu.Unlock()

	l.fileMu.Lock()
	err := l.replay(fn, &st)
	l.fileMu.Unlock()

	l.mu.Lock()
	l.replaying = false
	pending := l.releasePending
	l.releasePending = false
	l.mu.Unlock()
	if pending {
		err = errors.Join(err, l.deleteReleased())
	}
	return st, err
}

// damage is a place where the log stops being readable.
type damage struct {
	pos    Position // reported as ReplayStats.Corrupt
	reason string
	seg    int   // index in old of the first segment to set aside
	cut    int64 // >= 0: copy old[seg] aside and cut it to cut bytes; -1: move it aside whole
}

// replay does the work of Replay; the caller holds fileMu.
func (l *Log) replay(fn func(pos Position, rec []byte) error, st *ReplayStats) error {
	old := l.oldSegments()
	released, lost := l.lostNewest(old)

	// Every header first: a segment's length is checked against its
	// successor's header before its records are passed to fn.
	hdrs := make([]segHeader, 0, len(old))
	var hdrDamage *damage
	for i, s := range old {
		h, err := readSegHeader(l.segPath(s.seq), s.seq)
		var he *headerError
		if errors.As(err, &he) {
			hdrDamage = &damage{pos: Position{Segment: s.seq}, reason: he.Error(), seg: i, cut: -1}
			break
		}
		if err != nil {
			return fmt.Errorf("wal: replay: %w", err)
		}
		hdrs = append(hdrs, h)
	}

	var sc scanner
	for i, s := range old {
		if i == len(hdrs) {
			return l.repair(old, *hdrDamage, st)
		}
		h := hdrs[i]
		switch {
		case i == 0 && h.prevSeq > released:
			return l.repair(old, damage{pos: Position{Segment: h.prevSeq},
				reason: fmt.Sprintf("segment %d is missing: segment %d follows it, and it was never released", h.prevSeq, s.seq),
				seg:    0, cut: -1}, st)
		case i > 0 && h.prevSeq != old[i-1].seq:
			if h.prevSeq > old[i-1].seq {
				return l.repair(old, damage{pos: Position{Segment: h.prevSeq},
					reason: fmt.Sprintf("segment %d is missing: segment %d follows it, segment %d comes before it", h.prevSeq, s.seq, old[i-1].seq),
					seg:    i, cut: -1}, st)
			}
			return l.repair(old, damage{pos: Position{Segment: s.seq},
				reason: fmt.Sprintf("segment %d says it follows segment %d, but segment %d comes before it", s.seq, h.prevSeq, old[i-1].seq),
				seg:    i, cut: -1}, st)
		}
		limit := int64(-1) // the length the writer left s with, if known
		if i+1 < len(hdrs) && hdrs[i+1].prevSeq == s.seq {
			limit = hdrs[i+1].prevLen
		}
		st.Segments++
		end, size, bad, reason, err := sc.scan(l.segPath(s.seq), s.seq, limit, fn, st)
		if err != nil {
			return err
		}
		switch {
		case bad >= 0 && i == len(old)-1 && lost == nil:
			return l.repairTail(old[i].seq, bad, reason, st)
		case bad >= 0:
			return l.repair(old, damage{pos: Position{Segment: s.seq, Offset: bad}, reason: reason, seg: i, cut: bad}, st)
		case limit >= 0 && size < limit:
			return l.repair(old, damage{pos: Position{Segment: s.seq, Offset: size},
				reason: fmt.Sprintf("segment cut short: %d bytes, but segment %d records that it was left with %d", size, old[i+1].seq, limit),
				seg:    i + 1, cut: -1}, st)
		case size > end:
			return l.repair(old, damage{pos: Position{Segment: s.seq, Offset: end},
				reason: fmt.Sprintf("segment runs on past the %d bytes segment %d records that it was left with", end, old[i+1].seq),
				seg:    i, cut: end}, st)
		}
	}
	if lost != nil {
		return l.repair(old, *lost, st)
	}
	l.mu.Lock()
	l.tailChecked = true
	l.mu.Unlock()
	return nil
}

// lostNewest returns the newest segment recorded as released and, if the
// newest segment recorded as created is neither in old nor released, the
// damage of its loss (segments missing at the end of the log).
func (l *Log) lostNewest(old []segment) (released uint64, lost *damage) {
	l.mu.Lock()
	released, created := l.releasedSeq, l.createdSeq
	l.mu.Unlock()
	top := released
	if n := len(old); n > 0 {
		top = max(top, old[n-1].seq)
	}
	if created <= top {
		return released, nil
	}
	return released, &damage{pos: Position{Segment: top + 1},
		reason: fmt.Sprintf("segments %d to %d are missing: segment %d was created and never released", top+1, created, created),
		seg:    len(old), cut: -1}
}

// checkTail is Replay without a callback for the newest pre-Open segment
// only. The writer runs it before its first write when Replay was not run to
// the end, so that a torn tail never ends up in front of new records.
func (l *Log) checkTail() error {
	l.fileMu.Lock()
	defer l.fileMu.Unlock()
	l.mu.Lock()
	done := l.tailChecked
	l.mu.Unlock()
	if done {
		return nil
	}
	old := l.oldSegments()
	_, lost := l.lostNewest(old)
	var st ReplayStats // nobody reads it: repairs are logged and counted
	if n := len(old); n > 0 {
		s := old[n-1]
		_, err := readSegHeader(l.segPath(s.seq), s.seq)
		var he *headerError
		if errors.As(err, &he) {
			return l.repair(old, damage{pos: Position{Segment: s.seq}, reason: he.Error(), seg: n - 1, cut: -1}, &st)
		}
		if err != nil {
			return err
		}
		var sc scanner
		_, _, bad, reason, err := sc.scan(l.segPath(s.seq), s.seq, -1, nil, &st)
		switch {
		case err != nil:
			return err
		case bad >= 0 && lost == nil:
			if err := l.repairTail(s.seq, bad, reason, &st); err != nil {
				return err
			}
		case bad >= 0:
			return l.repair(old, damage{pos: Position{Segment: s.seq, Offset: bad}, reason: reason, seg: n - 1, cut: bad}, &st)
		}
	}
	if lost != nil {
		return l.repair(old, *lost, &st)
	}
	l.mu.Lock()
	l.tailChecked = true
	l.mu.Unlock()
	return nil
}

// oldSegments returns the undeleted segments that were there at Open.
func (l *Log) oldSegments() []segment {
	l.mu.Lock()
	defer l.mu.Unlock()
	var old []segment
	for _, s := range l.segs {
		if s.seq < l.firstNew {
			old = append(old, s)
		}
	}
	return old
}

// repairTail handles a bad record at offset bad of the newest segment seq:
// a torn or damaged tail is truncated; a bad record with a valid one after
// it is corruption.
func (l *Log) repairTail(seq uint64, bad int64, reason string, st *ReplayStats) error {
	path := l.segPath(seq)
	torn, zeros, size, err := isTornTail(path, bad)
	if err != nil {
		return err
	}
	if zeros {
		// The writer's preallocated space past the last record (a crash
		// left it, Close would have cut it): nothing was written there.
		if err := truncateFile(path, bad, !l.noSync); err != nil {
			return fmt.Errorf("wal: truncate preallocated tail of %s: %w", path, err)
		}
		l.mu.Lock()
		l.setSegSizeLocked(seq, bad)
		l.tailChecked = true
		l.mu.Unlock()
		l.log.Info("wal unused preallocated tail truncated", zap.Uint64("segment", seq), zap.Int64("offset", bad), zap.Int64("bytes", size-bad))
		return nil
	}
	if !torn {
		old := l.oldSegments()
		return l.repair(old, damage{pos: Position{Segment: seq, Offset: bad}, reason: reason, seg: len(old) - 1, cut: bad}, st)
	}
	if err := truncateFile(path, bad, !l.noSync); err != nil {
		return fmt.Errorf("wal: truncate torn tail of %s: %w", path, err)
	}
	st.TornTail, st.TornBytes = true, size-bad
	l.nTornBytes.Add(uint64(size - bad))
	l.mu.Lock()
	l.setSegSizeLocked(seq, bad)
	l.tailChecked = true
	l.mu.Unlock()
	l.log.Warn("wal torn or damaged tail truncated: a write cut short by a crash, or damage to the end of the newest segment",
		zap.Uint64("segment", seq), zap.Int64("offset", bad), zap.Int64("bytes", size-bad), zap.String("reason", reason))
	return nil
}

// repair handles damage d: it reports it in st, then sets aside what cannot
// be read, so that the log is its good prefix again.
func (l *Log) repair(old []segment, d damage, st *ReplayStats) error {
	pos := d.pos
	st.Corrupt = &pos
	st.CorruptErr = fmt.Errorf("%w: segment %d offset %d: %s", ErrCorrupt, pos.Segment, pos.Offset, d.reason)
	l.nCorrupt.Add(1)
	l.log.Error("wal corrupt: replay stops here; the rest of the log is moved aside",
		zap.Uint64("segment", pos.Segment), zap.Int64("offset", pos.Offset), zap.String("reason", d.reason))

	// Copy a damaged segment aside whole, then cut it back to its good
	// prefix; move every later segment aside. Each step is idempotent, so a
	// crash in between repeats the repair on the next start.
	rest := old[d.seg:]
	if d.cut >= 0 {
		seq := old[d.seg].seq
		path := l.segPath(seq)
		dst, err := copyAside(path, !l.noSync)
		if err != nil {
			return fmt.Errorf("wal: copy corrupt segment aside: %w", err)
		}
		st.Quarantined = append(st.Quarantined, dst)
		if err := truncateFile(path, d.cut, !l.noSync); err != nil {
			return fmt.Errorf("wal: truncate corrupt segment %s: %w", path, err)
		}
		l.mu.Lock()
		l.setSegSizeLocked(seq, d.cut)
		l.mu.Unlock()
		rest = rest[1:]
	}
	var moved []uint64
	var err error
	for _, s := range rest {
		dst, merr := moveAside(l.segPath(s.seq))
		if merr != nil {
			// Stop here, reported: the log must stay a contiguous run.
			err = fmt.Errorf("wal: move segment aside: %w", merr)
			break
		}
		st.Quarantined = append(st.Quarantined, dst)
		moved = append(moved, s.seq)
	}
	if !l.noSync {
		if serr := atomicfile.SyncDir(l.dir); serr != nil {
			err = errors.Join(err, fmt.Errorf("wal: fsync directory after moving segments aside: %w", serr))
		}
	}
	l.mu.Lock()
	for _, seq := range moved {
		l.setSegSizeLocked(seq, 0)
	}
	l.segs = deleteSegs(l.segs, moved)
	kept := l.releasedSeq
	if n := len(l.segs); n > 0 {
		kept = max(kept, l.segs[n-1].seq)
	}
	lower := l.createdSeq > kept
	l.mu.Unlock()
	// What was moved aside, or found missing, is no longer expected.
	if lower {
		if merr := writeMark(l.dir, createdFile, kept, l.noSync); merr != nil {
			err = errors.Join(err, merr)
		} else {
			l.mu.Lock()
			l.createdSeq = kept
			l.mu.Unlock()
		}
	}
	l.mu.Lock()
	if err == nil {
		l.tailChecked = true
	}
	l.mu.Unlock()
	l.log.Error("wal corrupt data moved aside", zap.Strings("files", st.Quarantined))
	return err
}

func deleteSegs(segs []segment, seqs []uint64) []segment {
	out := segs[:0]
	for _, s := range segs {
		keep := true
		for _, q := range seqs {
			if s.seq == q {
				keep = false
				break
			}
		}
		if keep {
			out = append(out, s)
		}
	}
	return out
}

// isTornTail reports whether the bytes of path from off on (where a bad
// record starts) are a write cut short by a crash: no valid record anywhere
// after off. zeros reports that they are all zero bytes: the writer's
// preallocated space (see writer.go), not a torn write. It also returns the
// file size.
func isTornTail(path string, off int64) (torn, zeros bool, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return false, false, 0, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return false, false, 0, err
	}
	size = info.Size()
	tail := make([]byte, size-off)
	if _, err := f.ReadAt(tail, off); err != nil {
		return false, false, size, fmt.Errorf("wal: read tail of %s: %w", path, err)
	}
	if !slices.ContainsFunc(tail, func(b byte) bool { return b != 0 }) {
		return false, true, size, nil
	}
	return !validRecordAfter(tail), false, size, nil
}

// validRecordAfter reports whether a record with a good checksum starts
// anywhere in tail after its first byte, or the search ran out of budget.
func validRecordAfter(tail []byte) bool {
	budget := int64(tornScanBudget)
	for i := 1; i+hdrSize <= len(tail); i++ {
		n := int64(binary.LittleEndian.Uint32(tail[i:]))
		if n > MaxRecordSize || int64(i)+hdrSize+n > int64(len(tail)) {
			continue
		}
		if budget -= hdrSize + n; budget < 0 {
			return true
		}
		end := i + hdrSize + int(n)
		if recordCRC(tail[i:i+4], tail[i+hdrSize:end]) == binary.LittleEndian.Uint32(tail[i+4:]) {
			return true
		}
	}
	return false
}

// scanner reads segments record by record, reusing its buffers.
type scanner struct {
	r   *bufio.Reader
	buf []byte
}

// scan passes the records of segment seq at path to fn (if not nil), from
// just past its header to the end of the file or to limit bytes if limit is
// not negative, until the first bad record. It returns where it stopped
// reading (end), the file size, and the offset where a bad record starts and
// why it is bad (bad is -1 if none); err is an I/O error or fn's.
func (sc *scanner) scan(path string, seq uint64, limit int64, fn func(Position, []byte) error, st *ReplayStats) (end, size, bad int64, reason string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, -1, "", fmt.Errorf("wal: replay: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return 0, 0, -1, "", fmt.Errorf("wal: replay: %w", err)
	}
	size = info.Size()
	end = size
	past := "the end of the segment"
	if limit >= 0 && limit < size {
		end = limit
		past = "the length the segment was left with"
	}
	if _, err := f.Seek(segHdrSize, io.SeekStart); err != nil {
		return 0, size, -1, "", fmt.Errorf("wal: replay %s: %w", path, err)
	}
	if sc.r == nil {
		sc.r = bufio.NewReaderSize(f, readBufSize)
	} else {
		sc.r.Reset(f)
	}
	var hdr [hdrSize]byte
	off := int64(segHdrSize)
	for off < end {
		if end-off < hdrSize {
			return end, size, off, "record header cut short by " + past, nil
		}
		if _, err := io.ReadFull(sc.r, hdr[:]); err != nil {
			return end, size, -1, "", fmt.Errorf("wal: replay %s at %d: %w", path, off, err)
		}
		n := int64(binary.LittleEndian.Uint32(hdr[0:4]))
		if n > MaxRecordSize {
			return end, size, off, fmt.Sprintf("length %d exceeds MaxRecordSize", n), nil
		}
		if n > end-off-hdrSize {
			return end, size, off, fmt.Sprintf("length %d runs past %s", n, past), nil
		}
		if int64(cap(sc.buf)) < n {
			sc.buf = make([]byte, n)
		}
		rec := sc.buf[:n]
		if _, err := io.ReadFull(sc.r, rec); err != nil {
			return end, size, -1, "", fmt.Errorf("wal: replay %s at %d: %w", path, off, err)
		}
		if recordCRC(hdr[0:4], rec) != binary.LittleEndian.Uint32(hdr[4:8]) {
			return end, size, off, "checksum mismatch", nil
		}
		off += hdrSize + n
		st.Records++
		st.Bytes += n
		if fn != nil {
			if err := fn(Position{Segment: seq, Offset: off}, rec); err != nil {
				return end, size, -1, "", err
			}
		}
	}
	return end, size, -1, "", nil
}
