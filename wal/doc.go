// Package wal is duckgate's write-ahead log: an insert is acknowledged only
// once its rows are in the log and the log is fsynced.
//
// Data flow:
//
//	HTTP insert ──Append──▶ queue ──writer goroutine: one write + one fsync per group──▶ segment file
//	batcher ◀──Replay (on start)── segments;  batcher ──Release(p) after DuckDB commit──▶ whole segments deleted
//
// Append enqueues the record under a short mutex and waits. A single writer
// goroutine owns the open segment: it takes the whole queue at once, encodes
// every record into one reused buffer, writes it and fsyncs once, then wakes
// every caller of the group (group commit). Many small concurrent inserts
// therefore cost one fsync, and no lock is held while the disk works.
//
// # On-disk format
//
// The log is a directory (created mode 0700) of segment files (mode 0600)
// named by a zero-padded sequence number, 00000000000000000001.wal,
// 00000000000000000002.wal, …, so that they sort by name. Each Open writes
// into a new segment numbered past every segment there is, every one set
// aside as corrupt, and the numbers in the files "released" and "created"
// (below); a segment is never written again once the writer has left it. A
// segment is written as "<name>.tmp" until its header is fsynced, then
// renamed and the directory fsynced, so a file with a segment's name always
// had a whole header; Open deletes leftover "*.wal.tmp" files, which never
// held a record. A segment is a 36-byte header followed by records:
//
//	offset 0   4 bytes                "DGWL"
//	offset 4   uint32 little-endian   format version, 1
//	offset 8   uint64 little-endian   this segment's number
//	offset 16  uint64 little-endian   number of the segment written before it (0: none)
//	offset 24  uint64 little-endian   length in bytes the writer left that segment with
//	                                  (0 if this Log found it already released)
//	offset 32  uint32 little-endian   CRC-32C (Castagnoli) of bytes 0..31
//
// and each record:
//
//	offset 0  uint32 little-endian  payload length n (at most MaxRecordSize)
//	offset 4  uint32 little-endian  CRC-32C of bytes 0..3 followed by the payload
//	offset 8  n bytes               payload
//
// There is no padding. A Position is the segment number and the file offset
// just past a record, so records are totally ordered by Position. An all-zero
// record header never checks out (the CRC-32C of four zero bytes is not
// zero), so a zero-filled tail reads as the end, not as empty records.
//
// The writer preallocates: it extends the open segment with 1 MiB of zero
// bytes at a time and writes groups over them, so that a group's fsync has
// only data to flush, no file size or block allocation to journal (half the
// fsync time on ext4). A group of 1 MiB or more is appended instead. Before
// it moves on to the next segment, and at Close, it cuts the zeros after the
// last record and fsyncs the segment, so a segment's length is what its
// successor's header records. After a crash the newest segment may end in
// zeros: Replay (or the writer's tail check) cuts an all-zero tail silently;
// it is not counted as a torn tail.
//
// The header chains the segments: the writer moves on to a new segment only
// after the old one holds exactly what was acknowledged in it (a failed write
// is cut away first), and the new header records that length. A segment's
// length is thus vouched for by its successor, except for the newest one.
//
// Release deletes segments oldest first; before deleting, it records the
// number of the newest one it deletes in the file "released". The oldest
// segment left may follow a released segment; any other missing predecessor
// was lost. Once a new segment is in place, the writer records its number in
// the file "created": a created segment that is neither there nor released
// was lost too. Both files hold one decimal number and a newline, mode 0600,
// written with atomicfile (temporary file, fsync, rename, directory fsync;
// a plain write with Config.NoSync). A crash between a segment's creation and
// its record leaves a segment newer than the record, which is no loss.
//
// Segments of the format before version 1 (records from offset 0, no header)
// are not read: Replay reports them as corrupt and moves them aside. There
// were no deployments to migrate.
//
// # Recovery
//
// Replay reads every segment present at Open, oldest first; it checks every
// header first, then each segment's records against the length its successor
// recorded. It stops at the first damage, in log order:
//
//   - a segment header that is missing, cut short or bad (an empty file, a
//     file of the old format): damage at offset 0 of that segment;
//   - a segment missing from the chain, in the middle or before the oldest
//     one left without having been released: damage at offset 0 of the
//     missing segment (of the segment itself if its header names a
//     predecessor older than the one present);
//   - segments missing at the end: the newest one recorded as created is
//     neither there nor released; damage at offset 0 of the first segment
//     after the newest one there (checked after every segment there was
//     read);
//   - a bad record (length over MaxRecordSize or past the end, checksum
//     mismatch): damage where the record starts;
//   - a segment shorter than its successor recorded: damage at its end; the
//     records past it were acknowledged and are lost;
//   - a segment longer than its successor recorded: damage where it should
//     have ended.
//
// The records before the damage are passed to the callback, nothing after
// it. The damage is reported in ReplayStats.Corrupt and
// ReplayStats.CorruptErr (wrapping ErrCorrupt), logged, and counted in
// Stats.CorruptSegments (duckgate_wal_corrupt_segments_total with
// Config.Metrics). The data from there on is set aside, never destroyed: a
// segment with a bad record, or longer than recorded, is copied whole to
// "<name>.corrupt" and cut back to its good prefix; a segment with a bad
// header, and every later segment, is renamed to "<name>.corrupt"
// (".corrupt.1", … if taken). The "created" record is lowered to the newest
// segment kept (or released), so the damage is reported once (a missing
// segment's number may be used again). A later Replay reads the same good
// prefix followed by whatever was appended since, which goes to a fresh
// segment chained to that prefix. A crash during the repair repeats it on
// the next start.
//
// The newest segment has no successor to vouch for its length. An all-zero
// tail after its last valid record is unused preallocated space and is cut
// (damage that zeroed the last acknowledged records looks the same and goes
// uncounted).
// Otherwise, unless
// segments are missing after it, a bad record in it with no valid record
// after it is a torn or damaged tail: a write cut short by a crash (never
// acknowledged), or damage to the end of the file (which may have been
// acknowledged); the two cannot be told apart. It is truncated and reported
// as ReplayStats.TornTail with ReplayStats.TornBytes, and counted in
// Stats.TornTailBytes (duckgate_wal_torn_tail_bytes_total). A bad record in
// it followed by a valid one is corruption as above. Limit: a newest segment
// cut exactly at a record boundary (or cut to its header) is not detected;
// the records cut off are lost silently.
//
// When Append comes without Replay, the writer first checks the newest
// segment's header and tail, and the "created" record, the same way (a
// repair is then only logged and counted), so that neither a torn tail nor a
// loss ends up in front of new records; the chain is checked by the next
// Replay.
//
// A failed write or fsync acknowledges nothing: the segment is truncated back
// to the end of the last acknowledged record and fsynced, and the next group
// goes to a new segment. Until that truncation succeeds every Append fails, so
// the log never holds an unacknowledged record before an acknowledged one.
//
// # Locks
//
// Log.fileMu (file operations outside the writer: Replay, Release, the
// writer's one-time tail check) may be held while taking Log.mu; never the
// other way round. Log.mu is held only for bookkeeping, never during I/O.
package wal
