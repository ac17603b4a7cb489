package wal

import (
	"fmt"
	"io"
	"os"
	"time"

	"go.uber.org/zap"

	"duckgate/atomicfile"
)

const (
	// flushSize: the writer hands its buffer to the kernel whenever it holds
	// this much, which bounds the buffer however large a group is. 1 MiB
	// writes are as fast as larger ones on the disks we run on.
	flushSize = 1 << 20
	// directSize: a payload at least this large is written from the caller's
	// slice instead of being copied into the buffer.
	directSize = 256 << 10
	// preallocSize: the writer extends a segment by this many zero bytes at
	// a time and writes groups over them, so that a group's fsync finds no
	// file size or block allocation to journal, only data: on ext4 such an
	// fsync took 80–100 µs against 170–210 µs for an append that grows the
	// file (1,000 fsyncs of 6.6 KB each, the machine of bench/README.md).
	// A group at least this large is appended as before: its own data
	// outweighs the metadata. The zeros past the last record are cut at
	// roll and Close; after a crash Replay cuts them (an all-zero tail).
	preallocSize = 1 << 20
)

// zeros is preallocSize zero bytes, written to extend a segment.
var zeros = make([]byte, preallocSize)

// writer is the state of the writer goroutine; only it touches these fields.
type writer struct {
	f   File   // open segment, nil between segments
	seq uint64 // segment f writes
	off int64  // end of the last acknowledged record in f
	// wa is f as an io.WriterAt, nil if it is not one; only then is f
	// preallocated. Writes go at pos, and alloc is f's length.
	wa       io.WriterAt
	pos      int64
	alloc    int64
	nextSeq  uint64 // number of the next segment to create
	buf      []byte // encoding buffer, reused across groups
	spare    []*request
	broken   bool  // f may hold bytes past off that could not be cut yet
	cause    error // why the write that left f broken failed
	failing  bool  // the last group failed (logged once per outage)
	tailDone bool  // the pre-Open tail check has run
	closeErr error
}

// run is the writer goroutine: it takes the whole queue at once and commits
// it as one group, until Close.
func (l *Log) run() {
	defer close(l.stopped)
	w := &l.w
	for {
		<-l.wake
		for {
			l.mu.Lock()
			batch := l.queue
			if len(batch) > 0 {
				l.queue = w.spare // swap, so that neither slice is reallocated
			}
			closing := l.closed
			l.mu.Unlock()
			if len(batch) == 0 {
				if closing {
					w.closeErr = l.shutdown()
					return
				}
				break
			}
			l.commit(batch)
			clear(batch)
			w.spare = batch[:0]
		}
	}
}

// commit writes batch as one group and wakes its callers.
func (l *Log) commit(batch []*request) {
	var size int64
	var recs int
	for _, r := range batch {
		size += r.size
		recs += len(r.recs)
	}
	err := l.writeGroup(batch, size)
	l.mu.Lock()
	l.queued -= size
	if err == nil {
		l.setSegSizeLocked(l.w.seq, l.w.off)
	}
	l.mu.Unlock()
	if err == nil {
		l.nGroups.Add(1)
		l.nAppends.Add(uint64(recs))
		l.nBytes.Add(uint64(size))
	} else {
		l.nWriteErrors.Add(1)
	}
	for _, r := range batch {
		r.err = err
		r.done <- struct{}{}
	}
}

// writeGroup encodes, writes and fsyncs batch (size bytes on disk) and fills
// in each record's Position. On error nothing of batch is left in the log.
func (l *Log) writeGroup(batch []*request, size int64) error {
	w := &l.w
	if !w.tailDone {
		if err := l.checkTail(); err != nil {
			return err
		}
		w.tailDone = true
	}
	if w.broken {
		if err := l.cut(); err != nil {
			return fmt.Errorf("%w; %w", w.cause, err)
		}
	}
	if w.f == nil || (w.off > segHdrSize && w.off+size > l.segSize) {
		if err := l.roll(); err != nil {
			return err
		}
	}
	err := l.prealloc(size)
	if err == nil {
		err = l.encode(batch)
	}
	if err == nil && !l.noSync {
		err = l.fsync(w.f, w.seq)
	}
	if err != nil {
		l.fail(err)
		return err
	}
	w.off += size
	w.alloc = max(w.alloc, w.off)
	if w.failing {
		w.failing = false
		l.log.Info("wal writes recovered", zap.Uint64("segment", w.seq))
	}
	return nil
}

// prealloc extends the open segment with zeros when a group of size bytes
// would not fit in what it has: see preallocSize.
func (l *Log) prealloc(size int64) error {
	w := &l.w
	w.pos = w.off
	if w.wa == nil || w.off+size <= w.alloc || size >= preallocSize {
		return nil
	}
	if _, err := w.wa.WriteAt(zeros, w.alloc); err != nil {
		return fmt.Errorf("wal: extend %s: %w", segName(w.seq), err)
	}
	w.alloc += preallocSize
	return nil
}

// encode writes the records of batch after w.off, setting their Positions.
func (l *Log) encode(batch []*request) error {
	w := &l.w
	buf := w.buf[:0]
	off := w.off
	defer func() { w.buf = buf[:0] }()
	for _, r := range batch {
		for i, rec := range r.recs {
			buf = appendHeader(buf, rec)
			if len(rec) >= directSize {
				if err := l.writeAll(buf); err != nil {
					return err
				}
				buf = buf[:0]
				if err := l.writeAll(rec); err != nil {
					return err
				}
			} else {
				buf = append(buf, rec...)
			}
			if len(buf) >= flushSize {
				if err := l.writeAll(buf); err != nil {
					return err
				}
				buf = buf[:0]
			}
			off += hdrSize + int64(len(rec))
			r.pos[i] = Position{Segment: w.seq, Offset: off}
		}
	}
	if len(buf) > 0 {
		return l.writeAll(buf)
	}
	return nil
}

// writeAll writes p at w.pos.
func (l *Log) writeAll(p []byte) error {
	w := &l.w
	var err error
	if w.wa != nil {
		var n int
		n, err = w.wa.WriteAt(p, w.pos)
		w.pos += int64(n)
	} else {
		err = writeFull(w.f, p)
	}
	if err != nil {
		return fmt.Errorf("wal: write %s: %w", segName(w.seq), err)
	}
	return nil
}

// trim cuts the open segment's preallocated zeros, so that its length is
// what it holds, and fsyncs that: the next segment's header records this
// length, and Replay checks it.
func (l *Log) trim() error {
	w := &l.w
	if w.alloc <= w.off {
		return nil
	}
	err := w.f.Truncate(w.off)
	if err == nil && !l.noSync {
		err = l.fsync(w.f, w.seq)
	}
	if err != nil {
		return fmt.Errorf("wal: cut preallocated space of %s: %w", segName(w.seq), err)
	}
	w.alloc = w.off
	return nil
}

// fsync makes f, segment seq, durable (syncData: fdatasync on Linux) and
// counts it in Stats and OnFsync.
func (l *Log) fsync(f File, seq uint64) error {
	start := time.Now()
	err := syncData(f)
	d := int64(time.Since(start))
	l.nFsyncs.Add(1)
	l.lastFsync.Store(d)
	l.fsyncTotal.Add(d)
	if l.onFsync != nil {
		l.onFsync(time.Duration(d))
	}
	if err != nil {
		return fmt.Errorf("wal: fsync %s: %w", segName(seq), err)
	}
	return nil
}

// fail handles a failed write or fsync: it cuts the segment back to the last
// acknowledged record, so that nothing of the failed group can be replayed,
// and leaves it; the next group starts a new segment.
func (l *Log) fail(cause error) {
	w := &l.w
	if !w.failing {
		w.failing = true
		l.log.Error("wal write failed; appends fail until it succeeds again",
			zap.Uint64("segment", w.seq), zap.Int64("offset", w.off), zap.Error(cause))
	}
	w.cause = cause
	if err := l.cut(); err != nil {
		l.log.Error("wal cannot cut a failed write; appends fail until it can",
			zap.Uint64("segment", w.seq), zap.Int64("offset", w.off), zap.Error(err))
	}
}

// cut truncates the open segment to w.off, fsyncs and closes it. If that
// fails the writer stays broken and retries before the next group.
func (l *Log) cut() error {
	w := &l.w
	err := w.f.Truncate(w.off)
	if err == nil && !l.noSync {
		err = w.f.Sync()
	}
	if err != nil {
		w.broken = true
		return fmt.Errorf("wal: cannot cut %s back to %d, appends fail until it can: %w", segName(w.seq), w.off, err)
	}
	if err := w.f.Close(); err != nil {
		l.log.Warn("wal close after truncate", zap.Uint64("segment", w.seq), zap.Error(err))
	}
	w.f, w.wa, w.broken = nil, nil, false
	l.mu.Lock()
	l.active = 0
	l.mu.Unlock()
	return nil
}

// roll closes the current segment, if any, and creates the next one. The new
// segment is written under a temporary name until its header is durable,
// so that every segment file has a whole header.
func (l *Log) roll() error {
	w := &l.w
	if w.f != nil {
		if err := l.trim(); err != nil {
			return err
		}
		// Every group was fsynced, so a close error loses nothing.
		if err := w.f.Close(); err != nil {
			l.log.Warn("wal close segment", zap.Uint64("segment", w.seq), zap.Error(err))
		}
		w.f, w.wa = nil, nil
		l.mu.Lock()
		l.active = 0
		l.mu.Unlock()
	}
	seq := w.nextSeq
	h := segHeader{seq: seq, prevSeq: w.seq, prevLen: w.off}
	if w.seq == 0 { // the first segment of this Log: it follows what Replay left
		l.mu.Lock()
		if n := len(l.segs); n > 0 {
			h.prevSeq, h.prevLen = l.segs[n-1].seq, l.segs[n-1].size
		} else {
			h.prevSeq = l.releasedSeq
		}
		l.mu.Unlock()
	}
	path := l.segPath(seq)
	tmp := path + tmpSuffix
	f, err := l.openFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, filePerm)
	if err != nil {
		return fmt.Errorf("wal: create segment: %w", err)
	}
	if err = writeFull(f, appendSegHeader(nil, h)); err != nil {
		err = fmt.Errorf("wal: write header of %s: %w", segName(seq), err)
	}
	if err == nil && !l.noSync {
		err = l.fsync(f, seq)
	}
	if err == nil {
		if err = os.Rename(tmp, path); err != nil {
			err = fmt.Errorf("wal: create segment: %w", err)
		}
	}
	if err == nil && !l.noSync {
		if err = atomicfile.SyncDir(l.dir); err != nil {
			err = fmt.Errorf("wal: fsync directory after creating %s: %w", segName(seq), err)
		}
	}
	if err != nil {
		_ = f.Close()
		_ = os.Remove(tmp)
		_ = os.Remove(path)
		return err
	}
	// Recorded once the segment is in place, so that a crash in between
	// leaves a segment newer than the record, never a record of a segment
	// that never was. On failure the segment, holding no record, stays
	// until the next roll creates it again.
	if err := writeMark(l.dir, createdFile, seq, l.noSync); err != nil {
		_ = f.Close()
		return err
	}
	w.f, w.seq, w.off, w.nextSeq = f, seq, segHdrSize, seq+1
	w.wa, _ = f.(io.WriterAt)
	w.alloc = segHdrSize
	l.mu.Lock()
	l.segs = append(l.segs, segment{seq: seq, size: segHdrSize})
	l.size += segHdrSize
	l.active = seq
	l.createdSeq = seq
	l.mu.Unlock()
	l.nSegsCreated.Add(1)
	return nil
}

// shutdown closes the open segment when the writer stops.
func (l *Log) shutdown() error {
	w := &l.w
	if w.broken {
		if err := l.cut(); err != nil {
			return err
		}
	}
	if w.f == nil {
		return nil
	}
	var err error
	if w.alloc > w.off {
		err = l.trim()
	} else if !l.noSync {
		err = w.f.Sync() // every group was fsynced already; this is belt and braces
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f, w.wa = nil, nil
	l.mu.Lock()
	l.active = 0
	l.mu.Unlock()
	if err != nil {
		return fmt.Errorf("wal: close %s: %w", segName(w.seq), err)
	}
	return nil
}
