package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"duckgate/atomicfile"
)

// File is the part of *os.File the writer uses for a segment. Config.OpenFile
// may return another implementation, for example one that fails Write or Sync
// with syscall.ENOSPC to test the failure path. A File that is also an
// io.WriterAt (as *os.File is) is preallocated and written with WriteAt
// only, never Write: a wrapper that embeds *os.File to fail writes must
// override WriteAt too.
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
	// tmpSuffix marks a segment being created: it gets its final name only
	// once its header is durable, so a named segment always has a header.
	tmpSuffix = ".tmp"
	// segDigits is wide enough for any uint64, so names sort as numbers do.
	segDigits = 20
	// releasedFile holds the number of the newest segment Release deleted.
	releasedFile = "released"
	// createdFile holds the number of the newest segment created.
	createdFile = "created"
	// corruptSuffix marks a file set aside by Replay.
	corruptSuffix = ".corrupt"
	// dirPerm and filePerm keep tenants' rows private to the gateway's user.
	dirPerm  = 0o700
	filePerm = 0o600
)

// The segment header; see the package documentation.
const (
	segHdrSize    = 36
	segMagic      = "DGWL"
	formatVersion = 1
)

// segHeader is what a segment's header says about the log's chain of
// segments.
type segHeader struct {
	seq     uint64 // this segment's number
	prevSeq uint64 // the segment written before it; 0 if none ever was
	prevLen int64  // the length the writer left prevSeq with
}

// appendSegHeader appends the encoded header h.
func appendSegHeader(buf []byte, h segHeader) []byte {
	start := len(buf)
	buf = append(buf, segMagic...)
	buf = binary.LittleEndian.AppendUint32(buf, formatVersion)
	buf = binary.LittleEndian.AppendUint64(buf, h.seq)
	buf = binary.LittleEndian.AppendUint64(buf, h.prevSeq)
	buf = binary.LittleEndian.AppendUint64(buf, uint64(h.prevLen))
	return binary.LittleEndian.AppendUint32(buf, crc32.Checksum(buf[start:], castagnoli))
}

// parseSegHeader decodes the header of segment seq from b, which holds the
// first bytes of the file; the error says why it is not a valid header.
func parseSegHeader(b []byte, seq uint64) (segHeader, error) {
	if len(b) < segHdrSize {
		return segHeader{}, fmt.Errorf("segment header cut short: %d of %d bytes", len(b), segHdrSize)
	}
	b = b[:segHdrSize]
	if !bytes.Equal(b[:4], []byte(segMagic)) {
		return segHeader{}, fmt.Errorf("not a segment: magic %q", b[:4])
	}
	if crc32.Checksum(b[:32], castagnoli) != binary.LittleEndian.Uint32(b[32:]) {
		return segHeader{}, errors.New("segment header checksum mismatch")
	}
	if v := binary.LittleEndian.Uint32(b[4:]); v != formatVersion {
		return segHeader{}, fmt.Errorf("segment format version %d, want %d", v, formatVersion)
	}
	h := segHeader{
		seq:     binary.LittleEndian.Uint64(b[8:]),
		prevSeq: binary.LittleEndian.Uint64(b[16:]),
		prevLen: int64(binary.LittleEndian.Uint64(b[24:])),
	}
	switch {
	case h.seq != seq:
		return segHeader{}, fmt.Errorf("header names segment %d", h.seq)
	case h.prevSeq >= seq || h.prevLen < 0 || (h.prevSeq == 0 && h.prevLen != 0) || (h.prevLen > 0 && h.prevLen < segHdrSize):
		return segHeader{}, fmt.Errorf("header names an impossible predecessor %d of %d bytes", h.prevSeq, h.prevLen)
	}
	return h, nil
}

// readSegHeader reads and decodes the header of segment seq at path.
func readSegHeader(path string, seq uint64) (segHeader, error) {
	f, err := os.Open(path)
	if err != nil {
		return segHeader{}, err
	}
	defer f.Close()
	var b [segHdrSize]byte
	n, err := io.ReadFull(f, b[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return segHeader{}, fmt.Errorf("wal: read header of %s: %w", path, err)
	}
	h, perr := parseSegHeader(b[:n], seq)
	if perr != nil {
		return segHeader{}, &headerError{perr}
	}
	return h, nil
}

// headerError is a segment header that does not check out: corruption, not
// an I/O error.
type headerError struct{ err error }

func (e *headerError) Error() string { return e.err.Error() }

// writeFull writes p to f, turning a short write into an error.
func writeFull(f File, p []byte) error {
	n, err := f.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	return err
}

// readMark returns the segment number in the file name of dir
// (releasedFile or createdFile), 0 if there is none.
func readMark(dir, name string) (uint64, error) {
	path := filepath.Join(dir, name)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("wal: read %s: %w", name, err)
	}
	seq, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("wal: parse %s: %w", path, err)
	}
	return seq, nil
}

// writeMark records seq in the file name of dir, durably with atomicfile
// unless noSync.
func writeMark(dir, name string, seq uint64, noSync bool) error {
	path := filepath.Join(dir, name)
	b := []byte(strconv.FormatUint(seq, 10) + "\n")
	var err error
	if noSync {
		err = os.WriteFile(path, b, filePerm)
	} else {
		err = atomicfile.Write(path, b)
	}
	if err != nil {
		return fmt.Errorf("wal: record segment %d in %s: %w", seq, name, err)
	}
	return nil
}

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
	dst := freeName(src + corruptSuffix)
	tmp := dst + tmpSuffix
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, filePerm)
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
	dst := freeName(src + corruptSuffix)
	return dst, renameAside(src, dst)
}

// renameAside renames a segment aside; tests replace it to fail the move.
var renameAside = os.Rename

func (l *Log) segPath(seq uint64) string {
	return filepath.Join(l.dir, segName(seq))
}
