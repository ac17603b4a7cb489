package wal

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"go.uber.org/zap"

	"duckgate/atomicfile"
)

// MaxRecordSize is the largest record Append accepts; a length field above it
// found by Replay is corruption. 256 MiB: far above any insert body the
// gateway accepts, small enough that a corrupt length cannot make Replay
// allocate gigabytes.
const MaxRecordSize = 256 << 20

const (
	// DefaultSegmentSize is Config.SegmentSize when unset. 64 MiB: a segment is
	// the unit of deletion, so it should be small next to MaxBacklog, yet large
	// enough that creating files (and fsyncing the directory) is rare.
	DefaultSegmentSize = 64 << 20
	// DefaultMaxBacklog is Config.MaxBacklog when unset.
	DefaultMaxBacklog = 1 << 30
)

var (
	// ErrClosed is returned by Append, Replay, Release and a second Close
	// once the log is closed.
	ErrClosed = errors.New("wal: log closed")

	// ErrBacklogFull is returned by Append, without writing anything, when
	// the undeleted segments plus queued records would exceed
	// Config.MaxBacklog. The log is waiting on DuckDB: the caller should
	// answer 503 and retry after the batcher has committed and Released more.
	ErrBacklogFull = errors.New("wal: backlog full")

	// ErrTooLarge is returned by Append for a record larger than
	// MaxRecordSize.
	ErrTooLarge = errors.New("wal: record too large")

	// ErrCorrupt is wrapped, with the segment, offset and reason, in
	// ReplayStats.CorruptErr when Replay finds damage that is not a torn
	// tail: a bad record, a bad or missing segment header, a segment missing
	// from the chain or at its end, or a segment shorter or longer than the
	// writer left it.
	ErrCorrupt = errors.New("wal: corrupt log")

	// ErrReplayOrder is returned by Replay once Append has been called or while
	// another Replay runs, and by Append while Replay runs: Replay must run
	// alone, before the first Append.
	ErrReplayOrder = errors.New("wal: Replay must run alone, before the first Append")
)

// Config configures a Log. The zero value of every field but Dir means its
// default.
type Config struct {
	// Dir is the directory for segment files; it is created if missing. One
	// Log at a time may use it.
	Dir string
	// SegmentSize: the writer moves to a new segment before a group commit
	// that would take the current one past this many bytes (default 64 MiB). A
	// group larger than SegmentSize gets a segment of its own.
	SegmentSize int64
	// MaxBacklog: Append returns ErrBacklogFull when the bytes in undeleted
	// segments plus queued records (and the header of a segment the record
	// may need) would exceed it (default 1 GiB). It bounds the disk used
	// while DuckDB falls behind.
	MaxBacklog int64
	// NoSync skips every fsync. For tests and benchmarks only: an
	// acknowledged record may be lost in a power failure.
	NoSync bool
	// OpenFile creates segment files for writing, under their temporary
	// ".tmp" name (default os.OpenFile). Tests set it to inject write and
	// fsync failures.
	OpenFile OpenFileFunc
	// OnFsync, if set, is called by the writer with the duration of each
	// fsync of a segment file (for a latency histogram). It must not block.
	OnFsync func(time.Duration)
	// Metrics, if set, gets the log's recovery counters:
	// duckgate_wal_torn_tail_bytes_total and
	// duckgate_wal_corrupt_segments_total (see Stats).
	Metrics *metrics.Set
}

// Position identifies the end of a record in the log: the segment number and
// the byte offset just past the record. Records are totally ordered by
// Position.
type Position struct {
	Segment uint64
	Offset  int64
}

// Less reports whether p comes before q.
func (p Position) Less(q Position) bool {
	if p.Segment != q.Segment {
		return p.Segment < q.Segment
	}
	return p.Offset < q.Offset
}

// String formats p as "segment:offset".
func (p Position) String() string {
	return strconv.FormatUint(p.Segment, 10) + ":" + strconv.FormatInt(p.Offset, 10)
}

// Stats are counters for metrics. Counters only grow over the life of a Log.
type Stats struct {
	Appends         uint64        // records acknowledged as durable
	Groups          uint64        // group commits that succeeded: one write (and fsync) each
	Fsyncs          uint64        // fsyncs of segment files, including failed ones
	BytesWritten    uint64        // bytes acknowledged, headers included
	WriteErrors     uint64        // group commits that failed to write or fsync
	BacklogFull     uint64        // Append calls refused with ErrBacklogFull
	LastFsync       time.Duration // duration of the latest fsync
	FsyncTotal      time.Duration // time spent in fsync
	SegmentsCreated uint64
	SegmentsDeleted uint64
	// TornTailBytes and CorruptSegments count what Replay, or the writer's
	// check when Append comes without Replay, repaired: the bytes of torn or
	// damaged tails truncated, and each damaged or missing segment where the
	// log was cut and the rest set aside.
	TornTailBytes   uint64
	CorruptSegments uint64
	Segments        int   // undeleted segments, now
	Size            int64 // bytes in undeleted segments, now
	Queued          int64 // bytes waiting for or in a group commit, now
}

// Log is a write-ahead log. Its methods are safe for concurrent use, except
// that Replay must run before the first Append.
type Log struct {
	dir        string
	segSize    int64
	maxBacklog int64
	noSync     bool
	openFile   OpenFileFunc
	onFsync    func(time.Duration)
	log        *zap.Logger

	wake    chan struct{} // 1 slot: work is queued for the writer
	stopped chan struct{} // closed when the writer goroutine returns

	// fileMu serializes file operations outside the writer: Replay, the
	// deletions of Release and the writer's one-time tail check.
	fileMu sync.Mutex

	mu             sync.Mutex // guards the fields below; never held during I/O
	queue          []*request // appends waiting for the writer
	queued         int64      // bytes in queue and in the group being written
	segs           []segment  // undeleted segments, ascending
	size           int64      // sum of segs[i].size
	active         uint64     // segment the writer has open; 0 if none
	firstNew       uint64     // segments below it were there at Open
	releasedSeq    uint64     // newest segment recorded as released
	createdSeq     uint64     // newest segment recorded as created
	released       Position   // highest Position passed to Release
	releasePending bool       // a Release arrived during Replay
	closed         bool
	started        bool // Append has been called
	replaying      bool
	tailChecked    bool // the newest segment from before Open has been checked for a torn tail

	w writer // owned by the writer goroutine

	// Counters for Stats: atomics, written by the writer goroutine (and by
	// submit and Release for theirs), read by Stats.
	nAppends, nGroups, nFsyncs, nBytes atomic.Uint64
	nWriteErrors, nBacklogFull         atomic.Uint64
	nSegsCreated, nSegsDeleted         atomic.Uint64
	nTornBytes, nCorrupt               atomic.Uint64
	lastFsync, fsyncTotal              atomic.Int64
}

type segment struct {
	seq  uint64
	size int64
}

// request is one Append waiting for its group commit. Requests are pooled:
// done is reused, so Append allocates nothing. A request can carry several
// records (recs), written one after the other in the same group.
type request struct {
	recs   [][]byte
	pos    []Position // filled by the writer: pos[i] ends recs[i]
	size   int64      // bytes on disk, headers included
	err    error
	done   chan struct{} // 1 slot; the writer sends once per enqueue
	one    [1][]byte
	onePos [1]Position
}

var requestPool = sync.Pool{New: func() any { return &request{done: make(chan struct{}, 1)} }}

// Open opens the log in cfg.Dir, creating the directory (mode 0700) if
// needed. Call Replay before the first Append to read back what the log
// holds. log may be nil.
func Open(cfg Config, log *zap.Logger) (*Log, error) {
	if cfg.Dir == "" {
		return nil, errors.New("wal: Config.Dir is empty")
	}
	if cfg.SegmentSize < 0 || cfg.MaxBacklog < 0 {
		return nil, fmt.Errorf("wal: negative SegmentSize %d or MaxBacklog %d", cfg.SegmentSize, cfg.MaxBacklog)
	}
	if log == nil {
		log = zap.NewNop()
	}
	l := &Log{
		dir:        cfg.Dir,
		segSize:    cfg.SegmentSize,
		maxBacklog: cfg.MaxBacklog,
		noSync:     cfg.NoSync,
		openFile:   cfg.OpenFile,
		onFsync:    cfg.OnFsync,
		log:        log.With(zap.String("wal_dir", cfg.Dir)),
		wake:       make(chan struct{}, 1),
		stopped:    make(chan struct{}),
	}
	if l.segSize == 0 {
		l.segSize = DefaultSegmentSize
	}
	if l.maxBacklog == 0 {
		l.maxBacklog = DefaultMaxBacklog
	}
	if l.openFile == nil {
		l.openFile = openOSFile
	}
	if err := os.MkdirAll(l.dir, dirPerm); err != nil {
		return nil, fmt.Errorf("wal: create %s: %w", l.dir, err)
	}
	var err error
	if l.releasedSeq, err = readMark(l.dir, releasedFile); err != nil {
		return nil, err
	}
	if l.createdSeq, err = readMark(l.dir, createdFile); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, fmt.Errorf("wal: read %s: %w", l.dir, err)
	}
	var aside uint64 // newest segment number set aside as corrupt
	for _, e := range entries {
		if base, _, ok := strings.Cut(e.Name(), segSuffix+corruptSuffix); ok {
			if seq, ok := parseSegName(base + segSuffix); ok {
				aside = max(aside, seq)
			}
			continue
		}
		if base, ok := strings.CutSuffix(e.Name(), tmpSuffix); ok {
			if _, ok := parseSegName(base); ok {
				// A segment whose creation a crash cut short: it never held a record.
				if err := os.Remove(filepath.Join(l.dir, e.Name())); err != nil {
					return nil, fmt.Errorf("wal: remove unfinished segment: %w", err)
				}
			}
			continue
		}
		seq, ok := parseSegName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("wal: stat %s: %w", e.Name(), err)
		}
		l.segs = append(l.segs, segment{seq: seq, size: info.Size()})
		l.size += info.Size()
	}
	slices.SortFunc(l.segs, func(a, b segment) int { return cmpUint(a.seq, b.seq) })
	// New segments are numbered past every segment there is or was.
	l.firstNew = max(l.releasedSeq, l.createdSeq, aside) + 1
	if n := len(l.segs); n > 0 {
		l.firstNew = max(l.firstNew, l.segs[n-1].seq+1)
	}
	l.w.nextSeq = l.firstNew
	if set := cfg.Metrics; set != nil {
		set.RegisterMetricsWriter(func(w io.Writer) {
			metrics.WriteCounterUint64(w, "duckgate_wal_torn_tail_bytes_total", uint64(l.nTornBytes.Load()))
			metrics.WriteCounterUint64(w, "duckgate_wal_corrupt_segments_total", uint64(l.nCorrupt.Load()))
		})
	}
	l.log.Info("wal opened", zap.Int("segments", len(l.segs)), zap.Int64("bytes", l.size))
	go l.run()
	return l, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Append writes rec as one record and returns its Position once the record is
// durable (fsynced, unless Config.NoSync). Concurrent calls share one write
// and one fsync. rec is not retained: the caller may reuse it when Append
// returns. Append returns ErrBacklogFull (nothing written) when the log is
// over Config.MaxBacklog, ErrTooLarge for a record over MaxRecordSize, and a
// wrapped I/O error when the write or fsync fails; after an error nothing of
// rec will be replayed.
func (l *Log) Append(rec []byte) (Position, error) {
	if len(rec) > MaxRecordSize {
		return Position{}, fmt.Errorf("%w: %d bytes, max %d", ErrTooLarge, len(rec), MaxRecordSize)
	}
	r := requestPool.Get().(*request)
	r.one[0] = rec
	r.recs, r.pos = r.one[:], r.onePos[:]
	r.size = hdrSize + int64(len(rec))
	err := l.submit(r)
	pos := r.onePos[0]
	r.one[0], r.recs, r.pos, r.err = nil, nil, nil, nil
	requestPool.Put(r)
	return pos, err
}

// submit queues r for the writer and waits for its group commit.
func (l *Log) submit(r *request) error {
	l.mu.Lock()
	switch {
	case l.closed:
		l.mu.Unlock()
		return ErrClosed
	case l.replaying:
		l.mu.Unlock()
		return ErrReplayOrder
	case l.size+l.queued+r.size+segHdrSize > l.maxBacklog: // room for a new segment's header too
		l.mu.Unlock()
		l.nBacklogFull.Add(1)
		return ErrBacklogFull
	}
	l.started = true
	l.queue = append(l.queue, r)
	l.queued += r.size
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default: // the writer is already awake
	}
	<-r.done
	return r.err
}

// Release tells the log that every record at or before p is no longer needed
// (committed in DuckDB). Segments whose every record is at or before p are
// deleted, oldest first; the segment being written is never deleted. The
// newest deleted segment is recorded first (in the file "released"), so that
// Replay can tell a released segment from a lost one. A p
// lower than an earlier one is a no-op. A Release during Replay takes effect
// when Replay returns.
func (l *Log) Release(p Position) error {
	l.mu.Lock()
	switch {
	case l.closed:
		l.mu.Unlock()
		return ErrClosed
	case p.Less(l.released):
		l.mu.Unlock()
		return nil
	}
	l.released = p
	if l.replaying {
		l.releasePending = true
		l.mu.Unlock()
		return nil
	}
	l.mu.Unlock()
	return l.deleteReleased()
}

// deleteReleased deletes the segments wholly at or before l.released.
func (l *Log) deleteReleased() error {
	l.fileMu.Lock()
	defer l.fileMu.Unlock()

	l.mu.Lock()
	p, recorded := l.released, l.releasedSeq
	var victims []segment
	for _, s := range l.segs {
		if s.seq == l.active || s.seq > p.Segment || (s.seq == p.Segment && s.size > max(p.Offset, segHdrSize)) {
			break // segments are ascending: no later one qualifies either
		}
		victims = append(victims, s)
	}
	l.mu.Unlock()
	if len(victims) == 0 {
		return nil
	}
	// Record the release before deleting: a segment missing without it is
	// a lost one.
	if newest := victims[len(victims)-1].seq; newest > recorded {
		if err := writeMark(l.dir, releasedFile, newest, l.noSync); err != nil {
			return err
		}
		l.mu.Lock()
		l.releasedSeq = newest
		l.mu.Unlock()
	}

	var err error
	gone := make(map[uint64]bool, len(victims))
	for _, s := range victims {
		if rerr := os.Remove(l.segPath(s.seq)); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = fmt.Errorf("wal: delete released segment: %w", rerr)
			break // keep the log a contiguous run of segments
		}
		gone[s.seq] = true
	}
	if len(gone) > 0 && !l.noSync {
		if serr := atomicfile.SyncDir(l.dir); serr != nil {
			err = errors.Join(err, fmt.Errorf("wal: fsync directory after deleting segments: %w", serr))
		}
	}
	l.mu.Lock()
	l.segs = slices.DeleteFunc(l.segs, func(s segment) bool {
		if gone[s.seq] {
			l.size -= s.size
			return true
		}
		return false
	})
	l.mu.Unlock()
	l.nSegsDeleted.Add(uint64(len(gone)))
	l.log.Debug("wal segments released", zap.Int("deleted", len(gone)), zap.Stringer("released", p))
	return err
}

// Size returns the bytes in undeleted segments.
func (l *Log) Size() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.size
}

// Stats returns counters for metrics.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	segs, size, queued := len(l.segs), l.size, l.queued
	l.mu.Unlock()
	return Stats{
		Appends:         l.nAppends.Load(),
		Groups:          l.nGroups.Load(),
		Fsyncs:          l.nFsyncs.Load(),
		BytesWritten:    l.nBytes.Load(),
		WriteErrors:     l.nWriteErrors.Load(),
		BacklogFull:     l.nBacklogFull.Load(),
		LastFsync:       time.Duration(l.lastFsync.Load()),
		FsyncTotal:      time.Duration(l.fsyncTotal.Load()),
		SegmentsCreated: l.nSegsCreated.Load(),
		SegmentsDeleted: l.nSegsDeleted.Load(),
		TornTailBytes:   l.nTornBytes.Load(),
		CorruptSegments: l.nCorrupt.Load(),
		Segments:        segs,
		Size:            size,
		Queued:          queued,
	}
}

// Close writes and fsyncs the appends already queued, then closes the
// segment. Append after Close returns ErrClosed; so does a second Close.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.closed = true
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	<-l.stopped
	return l.w.closeErr
}

// setSegSizeLocked records that segment seq now holds size bytes.
func (l *Log) setSegSizeLocked(seq uint64, size int64) {
	for i := len(l.segs) - 1; i >= 0; i-- {
		if l.segs[i].seq == seq {
			l.size += size - l.segs[i].size
			l.segs[i].size = size
			return
		}
	}
}

// Floor returns a segment number at or below the segment of every record
// appended from now on: the newest segment that exists now (0 if none). A
// caller that must keep a record's segment until the record is no longer
// needed can note Floor before Append and later Release(Position{Segment:
// floor}) without racing the writer.
func (l *Log) Floor() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.segs); n > 0 {
		return l.segs[n-1].seq
	}
	return 0
}
