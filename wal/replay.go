package wal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"go.uber.org/zap"
)

// ReplayStats reports what Replay read and repaired.
type ReplayStats struct {
	Records  int   // records passed to fn
	Bytes    int64 // payload bytes passed to fn
	Segments int   // segments read
	// TornTail is set when the newest segment ended in a record cut short by
	// a crash; those TornBytes were never acknowledged and were truncated.
	TornTail  bool
	TornBytes int64
	// Corrupt is the start of the first damaged record that is not a torn
	// tail, nil if none. Replay stopped there; CorruptErr (wrapping
	// ErrCorrupt) says why, and Quarantined lists the files the unreadable
	// rest was moved or copied to.
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
// A torn tail of the newest segment (a record running past the end of the
// file, a bad checksum or a zero-filled tail, with no valid record after it)
// was never acknowledged: it is truncated and reported in TornTail, not as an
// error. Any other bad record stops Replay there: the records before it have
// been passed to fn, ReplayStats.Corrupt says where, the damaged rest is
// moved aside (see the package documentation) and the error is nil; new
// appends go to a fresh segment.
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

// replay does the work of Replay; the caller holds fileMu.
func (l *Log) replay(fn func(pos Position, rec []byte) error, st *ReplayStats) error {
	old := l.oldSegments()
	var sc scanner
	for i, s := range old {
		st.Segments++
		bad, reason, err := sc.scan(l.segPath(s.seq), s.seq, fn, st)
		if err != nil {
			return err
		}
		if bad >= 0 {
			return l.repair(old, i, bad, reason, st)
		}
	}
	l.mu.Lock()
	l.tailChecked = true
	l.mu.Unlock()
	return nil
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
	if n := len(old); n > 0 {
		var sc scanner
		var st ReplayStats
		bad, reason, err := sc.scan(l.segPath(old[n-1].seq), old[n-1].seq, nil, &st)
		if err != nil {
			return err
		}
		if bad >= 0 {
			if err := l.repair(old, n-1, bad, reason, &st); err != nil {
				return err
			}
		}
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

// repair handles a bad record at offset bad of old[i]: it truncates a torn
// tail, or moves a corrupt rest aside.
func (l *Log) repair(old []segment, i int, bad int64, reason string, st *ReplayStats) error {
	seq := old[i].seq
	path := l.segPath(seq)
	if i == len(old)-1 {
		torn, size, err := isTornTail(path, bad)
		if err != nil {
			return err
		}
		if torn {
			if err := truncateFile(path, bad, !l.noSync); err != nil {
				return fmt.Errorf("wal: truncate torn tail of %s: %w", path, err)
			}
			st.TornTail, st.TornBytes = true, size-bad
			l.mu.Lock()
			l.setSegSizeLocked(seq, bad)
			l.tailChecked = true
			l.mu.Unlock()
			l.log.Warn("wal torn tail truncated: a write cut short by a crash, never acknowledged",
				zap.Uint64("segment", seq), zap.Int64("offset", bad), zap.Int64("bytes", size-bad), zap.String("reason", reason))
			return nil
		}
	}

	pos := Position{Segment: seq, Offset: bad}
	st.Corrupt = &pos
	st.CorruptErr = fmt.Errorf("%w: segment %d offset %d: %s", ErrCorrupt, seq, bad, reason)
	l.log.Error("wal corrupt record: replay stops here; the rest of the log is moved aside",
		zap.Uint64("segment", seq), zap.Int64("offset", bad), zap.String("reason", reason))

	// Copy the damaged segment aside whole, then cut it back to its good
	// prefix; move every later segment aside. Each step is idempotent, so a
	// crash in between repeats the repair on the next start.
	dst, err := copyAside(path, !l.noSync)
	if err != nil {
		return fmt.Errorf("wal: copy corrupt segment aside: %w", err)
	}
	st.Quarantined = append(st.Quarantined, dst)
	if err := truncateFile(path, bad, !l.noSync); err != nil {
		return fmt.Errorf("wal: truncate corrupt segment %s: %w", path, err)
	}
	l.mu.Lock()
	l.setSegSizeLocked(seq, bad)
	l.mu.Unlock()
	var moved []uint64
	for _, s := range old[i+1:] {
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
		err = errors.Join(err, syncDir(l.dir))
	}
	l.mu.Lock()
	for _, seq := range moved {
		l.setSegSizeLocked(seq, 0)
	}
	l.segs = deleteSegs(l.segs, moved)
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
// record starts) are a write cut short by a crash: all zeros, or no valid
// record anywhere after off. It also returns the file size.
func isTornTail(path string, off int64) (bool, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, 0, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return false, 0, err
	}
	size := info.Size()
	tail := make([]byte, size-off)
	if _, err := f.ReadAt(tail, off); err != nil {
		return false, size, fmt.Errorf("wal: read tail of %s: %w", path, err)
	}
	return !validRecordAfter(tail), size, nil
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

// scan passes the records of segment seq at path to fn (if not nil) until the
// end of the file or the first bad record. It returns the offset where that
// bad record starts and why it is bad, or -1 if the segment is clean; err is
// an I/O error or fn's.
func (sc *scanner) scan(path string, seq uint64, fn func(Position, []byte) error, st *ReplayStats) (bad int64, reason string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return -1, "", fmt.Errorf("wal: replay: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return -1, "", fmt.Errorf("wal: replay: %w", err)
	}
	size := info.Size()
	if sc.r == nil {
		sc.r = bufio.NewReaderSize(f, readBufSize)
	} else {
		sc.r.Reset(f)
	}
	var hdr [hdrSize]byte
	var off int64
	for off < size {
		if size-off < hdrSize {
			return off, "header cut short by the end of the segment", nil
		}
		if _, err := io.ReadFull(sc.r, hdr[:]); err != nil {
			return -1, "", fmt.Errorf("wal: replay %s at %d: %w", path, off, err)
		}
		n := int64(binary.LittleEndian.Uint32(hdr[0:4]))
		if n > MaxRecordSize {
			return off, fmt.Sprintf("length %d exceeds MaxRecordSize", n), nil
		}
		if n > size-off-hdrSize {
			return off, fmt.Sprintf("length %d runs past the end of the segment", n), nil
		}
		if int64(cap(sc.buf)) < n {
			sc.buf = make([]byte, n)
		}
		rec := sc.buf[:n]
		if _, err := io.ReadFull(sc.r, rec); err != nil {
			return -1, "", fmt.Errorf("wal: replay %s at %d: %w", path, off, err)
		}
		if recordCRC(hdr[0:4], rec) != binary.LittleEndian.Uint32(hdr[4:8]) {
			return off, "checksum mismatch", nil
		}
		off += hdrSize + n
		st.Records++
		st.Bytes += n
		if fn != nil {
			if err := fn(Position{Segment: seq, Offset: off}, rec); err != nil {
				return -1, "", err
			}
		}
	}
	return -1, "", nil
}
