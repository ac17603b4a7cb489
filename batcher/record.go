package batcher

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"duckgate/schema"
)

// A write-ahead log record holds one Insert:
//
//	uvarint version (1)
//	string  tenant, table
//	uvarint seq             (the insert's sequence number, see Batcher.nextSeq)
//	varint  unix time       (seconds, when accepted)
//	string  idempotency key ("" for none), response (the answer to replay)
//	uvarint number of keys, then each key as a string
//	uvarint number of rows, then each row: uvarint cell count, then per cell
//	        uvarint key index, byte kind index, then the kind's payload:
//	        bool/int/bigint/float/timestamp: 8 bytes little-endian Num;
//	        timestamp, hugeint, numtext, string, json: a string
//
// A string is a uvarint length and the bytes. Kinds are recomputed on decode.
const recordVersion = 1

// record is a decoded log record.
type record struct {
	tenant, table string
	seq           uint64
	at            int64
	idemKey       string
	response      []byte
	rows          *Rows
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// kindIndex is the bit number of a single-kind Kind.
func kindIndex(k schema.Kind) byte {
	for i := byte(0); i < 16; i++ {
		if k == 1<<i {
			return i
		}
	}
	return 255
}

func hasNum(k schema.Kind) bool {
	return k&(schema.KindBool|schema.KindInt|schema.KindBigInt|schema.KindFloat|schema.KindTimestamp) != 0
}

func hasStr(k schema.Kind) bool {
	return k&(schema.KindTimestamp|schema.KindHugeInt|schema.KindNumText|schema.KindString|schema.KindJSON) != 0
}

// encodeRecord appends the record of one insert to dst.
func encodeRecord(dst []byte, r *record) []byte {
	dst = binary.AppendUvarint(dst, recordVersion)
	dst = appendString(dst, r.tenant)
	dst = appendString(dst, r.table)
	dst = binary.AppendUvarint(dst, r.seq)
	dst = binary.AppendVarint(dst, r.at)
	dst = appendString(dst, r.idemKey)
	dst = appendString(dst, string(r.response))
	rows := r.rows
	dst = binary.AppendUvarint(dst, uint64(len(rows.Keys)))
	for _, k := range rows.Keys {
		dst = appendString(dst, k)
	}
	dst = binary.AppendUvarint(dst, uint64(len(rows.Ends)))
	start := uint32(0)
	for _, end := range rows.Ends {
		dst = binary.AppendUvarint(dst, uint64(end-start))
		for i := start; i < end; i++ {
			c := &rows.Cells[i]
			dst = binary.AppendUvarint(dst, uint64(c.Key))
			dst = append(dst, kindIndex(c.Kind))
			if hasNum(c.Kind) {
				dst = binary.LittleEndian.AppendUint64(dst, c.Num)
			}
			if hasStr(c.Kind) {
				dst = appendString(dst, c.Str)
			}
		}
		start = end
	}
	return dst
}

var errBadRecord = errors.New("malformed log record")

// recordReader decodes from one string, so every decoded string shares the
// record's single allocation.
type recordReader struct {
	s   string
	err error
}

func (r *recordReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint([]byte(r.s[:min(len(r.s), binary.MaxVarintLen64)]))
	if n <= 0 {
		r.err = errBadRecord
		return 0
	}
	r.s = r.s[n:]
	return v
}

// varint reads what binary.AppendVarint wrote: a zig-zag uvarint.
func (r *recordReader) varint() int64 {
	u := r.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

func (r *recordReader) str() string {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.s)) {
		r.err = errBadRecord
		return ""
	}
	s := r.s[:n]
	r.s = r.s[n:]
	return s
}

func (r *recordReader) byte() byte {
	if r.err != nil || len(r.s) < 1 {
		r.err = errBadRecord
		return 0
	}
	b := r.s[0]
	r.s = r.s[1:]
	return b
}

func (r *recordReader) u64() uint64 {
	if r.err != nil || len(r.s) < 8 {
		r.err = errBadRecord
		return 0
	}
	v := binary.LittleEndian.Uint64([]byte(r.s[:8]))
	r.s = r.s[8:]
	return v
}

// decodeRecord decodes a log record. It copies b once.
func decodeRecord(b []byte) (*record, error) {
	r := &recordReader{s: string(b)}
	if v := r.uvarint(); r.err == nil && v != recordVersion {
		return nil, fmt.Errorf("%w: version %d", errBadRecord, v)
	}
	rec := &record{tenant: r.str(), table: r.str(), seq: r.uvarint(), at: r.varint(), idemKey: r.str()}
	if resp := r.str(); resp != "" {
		rec.response = []byte(resp)
	}
	nkeys := r.uvarint()
	if r.err != nil || nkeys > uint64(len(r.s)) {
		return nil, errBadRecord
	}
	rows := &Rows{Keys: make([]string, nkeys), Kinds: make([]schema.Kind, nkeys)}
	for i := range rows.Keys {
		rows.Keys[i] = r.str()
		rows.Size += int64(len(rows.Keys[i])) + 24
	}
	nrows := r.uvarint()
	if r.err != nil || nrows > uint64(len(r.s)) {
		return nil, errBadRecord
	}
	rows.Ends = make([]uint32, 0, nrows)
	for range nrows {
		ncells := r.uvarint()
		if r.err != nil || ncells > uint64(len(r.s)) {
			return nil, errBadRecord
		}
		for range ncells {
			c := Cell{}
			key := r.uvarint()
			ki := r.byte()
			if r.err != nil || key >= nkeys || ki > kindIndex(schema.KindJSON) {
				return nil, errBadRecord
			}
			c.Key, c.Kind = uint32(key), schema.Kind(1)<<ki
			if hasNum(c.Kind) {
				c.Num = r.u64()
			}
			if hasStr(c.Kind) {
				c.Str = r.str()
			}
			if r.err != nil {
				return nil, r.err
			}
			rows.Kinds[c.Key] |= c.Kind
			rows.Cells = append(rows.Cells, c)
		}
		if len(rows.Cells) > math.MaxUint32 {
			return nil, errBadRecord
		}
		rows.Ends = append(rows.Ends, uint32(len(rows.Cells)))
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.s) > 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last row", errBadRecord, len(r.s))
	}
	// Every decoded string shares the record's one copy of b.
	rows.Size += int64(cap(rows.Cells))*cellSize + int64(cap(rows.Ends))*4 + int64(len(b))
	rows.Dups = hasDups(rows)
	rec.rows = rows
	return rec, nil
}

// hasDups reports whether some row names one column twice.
func hasDups(rows *Rows) bool {
	group := make([]int, len(rows.Keys))
	byFold := make(map[string]int, len(rows.Keys))
	for i, k := range rows.Keys {
		f := schema.FoldName(k)
		g, ok := byFold[f]
		if !ok {
			g = len(byFold)
			byFold[f] = g
		}
		group[i] = g
	}
	stamp := make([]int, len(byFold))
	start := uint32(0)
	for row, end := range rows.Ends {
		for i := start; i < end; i++ {
			g := group[rows.Cells[i].Key]
			if stamp[g] == row+1 {
				return true
			}
			stamp[g] = row + 1
		}
		start = end
	}
	return false
}
