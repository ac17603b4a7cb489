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
// The log is a directory of segment files named by a zero-padded sequence
// number, 00000000000000000001.wal, 00000000000000000002.wal, …, so that they
// sort by name. Each Open writes into a new segment after the newest one found;
// a segment is never written again once the writer has left it. A segment is a
// plain sequence of records:
//
//	offset 0  uint32 little-endian  payload length n (at most MaxRecordSize)
//	offset 4  uint32 little-endian  CRC-32C (Castagnoli) of bytes 0..3 followed by the payload
//	offset 8  n bytes               payload
//
// There is no file header and no padding. A Position is the segment number and
// the offset just past a record, so records are totally ordered by Position. An
// all-zero header never checks out (the CRC-32C of four zero bytes is not
// zero), so a zero-filled tail reads as torn, not as empty records.
//
// # Recovery
//
// Replay reads every segment present at Open, oldest first. A bad record in
// the newest segment with nothing valid after it is a write cut short by a
// crash; it was never acknowledged, so it is truncated away and reported as
// ReplayStats.TornTail. Any other bad record is corruption: Replay stops there
// and reports ReplayStats.Corrupt. The damaged segment is copied aside to
// "<name>.corrupt", cut back to its last good record, and the segments after
// it are renamed to "<name>.corrupt" as well, so a later Replay reads the same
// good prefix followed by whatever was appended since, and nothing that was
// on disk is destroyed.
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
