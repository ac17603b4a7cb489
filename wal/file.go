package wal

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// File is the part of *os.File the writer uses for a segment. Config.OpenFile
// may return another implementation, for example one that fails Write or Sync
// with syscall.ENOSPC to test the failure path.
type File interface {
	io.Writer
	// Sync makes everything written so far durable (fsync).
	Sync() error
	// Truncate cuts the file to size bytes; the writer uses it to drop a
	// write that failed part-way.
	Truncate(size int64) error
	Close() error
}

// OpenFileFunc opens a segment file for writing, like os.OpenFile.
type OpenFileFunc func(name string, flag int, perm os.FileMode) (File, error)

// openOSFile is the default OpenFileFunc.
func openOSFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err // not f: a nil *os.File in a File interface is not nil
	}
	return f, nil
}

const (
	hdrSize   = 8
	segSuffix = ".wal"
	// segDigits is wide enough for any uint64, so names sort as numbers do.
	segDigits = 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// recordCRC is the checksum stored in a record's header: CRC-32C of the
// length field followed by the payload.
func recordCRC(lenField []byte, payload []byte) uint32 {
	return crc32.Update(crc32.Update(0, castagnoli, lenField), castagnoli, payload)
}

// appendHeader appends the 8-byte header of a record holding rec.
func appendHeader(buf []byte, rec []byte) []byte {
	// Encode in place: a local array would escape through crc32.Update.
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(rec)))
	h := buf[len(buf)-4:]
	return binary.LittleEndian.AppendUint32(buf, recordCRC(h, rec))
}

// segName is the file name of segment seq.
func segName(seq uint64) string {
	return fmt.Sprintf("%0*d%s", segDigits, seq, segSuffix)
}

// parseSegName returns the sequence number of a segment file name.
func parseSegName(name string) (uint64, bool) {
	num, ok := strings.CutSuffix(name, segSuffix)
	if !ok || len(num) != segDigits {
		return 0, false
	}
	seq, err := strconv.ParseUint(num, 10, 64)
	if err != nil || seq == 0 {
		return 0, false
	}
	return seq, true
}

// syncDir fsyncs a directory so that file creations, renames and removals in
// it survive a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("wal: fsync directory %s: %w", dir, err)
	}
	return nil
}

// truncateFile cuts the file at path to size and, if sync, fsyncs it.
func truncateFile(path string, size int64, sync bool) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// freeName returns base, or base.1, base.2, … whichever does not exist yet.
func freeName(base string) string {
	name := base
	for i := 1; ; i++ {
		if _, err := os.Lstat(name); os.IsNotExist(err) {
			return name
		}
		name = base + "." + strconv.Itoa(i)
	}
}

// copyAside copies src to a fresh "<src>.corrupt" name, durably, and returns
// the name used.
func copyAside(src string, sync bool) (string, error) {
	dst := freeName(src + ".corrupt")
	tmp := dst + ".tmp"
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return "", err
	}
	_, err = io.Copy(out, in)
	if err == nil && sync {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return "", err
	}
	return dst, nil
}

// moveAside renames src to a fresh "<src>.corrupt" name and returns it.
func moveAside(src string) (string, error) {
	dst := freeName(src + ".corrupt")
	return dst, renameAside(src, dst)
}

// renameAside renames a segment aside; tests replace it to fail the move.
var renameAside = os.Rename

func (l *Log) segPath(seq uint64) string {
	return filepath.Join(l.dir, segName(seq))
}
