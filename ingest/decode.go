package ingest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/valyala/bytebufferpool"
	"github.com/valyala/fastjson"

	"duckgate/batcher"
)

// maxReportedErrors caps the per-element errors listed in a response; the
// rejected count is always complete.
const maxReportedErrors = 100

// RowError is one rejected element of a body.
type RowError struct {
	// Line is the 1-based line of an NDJSON body, or the 1-based position
	// of the element in an array body.
	Line  int    `json:"line"`
	Error string `json:"error"`
}

// Decoded is a decoded insert body.
type Decoded struct {
	Rows     *batcher.Rows
	Rejected int
	Errors   []RowError
}

func (d *Decoded) reject(line int, err string) {
	d.Rejected++
	if len(d.Errors) < maxReportedErrors {
		d.Errors = append(d.Errors, RowError{Line: line, Error: err})
	}
}

var parserPool fastjson.ParserPool

// Decode turns a body (one JSON object, an array of objects, or NDJSON)
// into rows. Elements that are not objects or not valid JSON are rejected
// one by one; a body with nothing storable is ErrBadBody. Decode keeps no
// reference to body.
func Decode(body []byte) (*Decoded, error) {
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("%w: the body is empty: send a JSON object, an array of objects or NDJSON", ErrBadBody)
	}
	d := &Decoded{}
	b := batcher.NewBuilderFor(len(trimmed))
	p := parserPool.Get()
	defer parserPool.Put(p)
	dec := decoder{b: b}

	v, err := p.ParseBytes(trimmed)
	switch {
	case err == nil && v.Type() == fastjson.TypeObject:
		if msg := dec.row(v); msg != "" {
			return nil, fmt.Errorf("%w: %s", ErrBadBody, msg)
		}
	case err == nil && v.Type() == fastjson.TypeArray:
		arr, _ := v.Array()
		for i, el := range arr {
			if el.Type() != fastjson.TypeObject {
				d.reject(i+1, "element is "+el.Type().String()+", not an object")
				continue
			}
			if msg := dec.row(el); msg != "" {
				d.reject(i+1, msg)
			}
		}
	case err == nil:
		return nil, fmt.Errorf("%w: the body is a JSON %s; send an object, an array of objects or NDJSON", ErrBadBody, v.Type())
	case trimmed[0] == '{':
		// Not one value: NDJSON, one object per line.
		line := 0
		for rest := trimmed; len(rest) > 0; {
			line++
			var ln []byte
			if i := bytes.IndexByte(rest, '\n'); i >= 0 {
				ln, rest = rest[:i], rest[i+1:]
			} else {
				ln, rest = rest, nil
			}
			ln = bytes.TrimSpace(ln)
			if len(ln) == 0 {
				continue
			}
			v, err := p.ParseBytes(ln)
			if err != nil {
				d.reject(line, "invalid JSON: "+shortErr(err))
				continue
			}
			if v.Type() != fastjson.TypeObject {
				d.reject(line, "line is "+v.Type().String()+", not an object")
				continue
			}
			if msg := dec.row(v); msg != "" {
				d.reject(line, msg)
			}
		}
	default:
		return nil, fmt.Errorf("%w: the body is not valid JSON (%s)", ErrBadBody, shortErr(err))
	}
	if b.Len() == 0 {
		msg := "no row could be stored"
		if len(d.Errors) > 0 {
			msg += fmt.Sprintf("; first error at %d: %s", d.Errors[0].Line, d.Errors[0].Error)
		}
		return d, fmt.Errorf("%w: %s", ErrBadBody, msg)
	}
	d.Rows = b.Rows()
	return d, nil
}

// shortErr keeps a parser error readable: fastjson quotes the rest of the
// input, which may be megabytes.
func shortErr(err error) string {
	s := err.Error()
	if strings.Contains(s, "too big depth") {
		return fmt.Sprintf("nested deeper than %d levels", fastjson.MaxDepth)
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// decoder adds rows to a Builder.
type decoder struct {
	b       *batcher.Builder
	scratch []byte
}

// row adds one object as a row, or returns why it cannot be stored.
func (d *decoder) row(v *fastjson.Value) string {
	o, _ := v.Object()
	var msg string
	o.Visit(func(key []byte, v *fastjson.Value) {
		if msg != "" {
			return
		}
		if !utf8.Valid(key) {
			msg = "a key is not valid UTF-8"
			return
		}
		switch v.Type() {
		case fastjson.TypeNull:
			// Null adds no type information and stores nothing.
		case fastjson.TypeTrue:
			d.b.AddBool(key, true)
		case fastjson.TypeFalse:
			d.b.AddBool(key, false)
		case fastjson.TypeNumber:
			d.scratch = v.MarshalTo(d.scratch[:0])
			if !validNumber(d.scratch) {
				msg = fmt.Sprintf("value of %q is not a valid JSON number", truncate(key))
				return
			}
			d.b.AddNumber(key, d.scratch)
		case fastjson.TypeString:
			s, _ := v.StringBytes()
			if !utf8.Valid(s) {
				msg = fmt.Sprintf("value of %q is not valid UTF-8", truncate(key))
				return
			}
			d.b.AddString(key, s)
		default: // object or array
			d.scratch = v.MarshalTo(d.scratch[:0])
			if !utf8.Valid(d.scratch) {
				msg = fmt.Sprintf("value of %q is not valid UTF-8", truncate(key))
				return
			}
			// fastjson lets through, inside objects and arrays, numbers
			// such as NaN or 1.2.3, bad escapes and raw control characters:
			// text DuckDB's JSON column (and the quarantine) would refuse,
			// blocking the table's flushes for good.
			if !json.Valid(d.scratch) {
				msg = fmt.Sprintf("value of %q is not valid JSON", truncate(key))
				return
			}
			d.b.AddJSON(key, d.scratch)
		}
	})
	if msg != "" {
		d.b.DropRow()
		return msg
	}
	d.b.EndRow()
	return ""
}

func truncate(key []byte) string {
	if len(key) > 64 {
		return string(key[:64]) + "…"
	}
	return string(key)
}

// validNumber checks the JSON number grammar; fastjson also lets NaN and
// Inf through, which JSON does not have.
func validNumber(s []byte) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	if i >= len(s) {
		return false
	}
	if s[i] == '0' {
		i++
	} else if s[i] >= '1' && s[i] <= '9' {
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	} else {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return false
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return false
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	return i == len(s)
}

var gzipPool sync.Pool

// gunzip decompresses body into a pooled buffer, failing with ErrTooLarge
// past limit bytes (a zip bomb stops there). Put the buffer back with
// bytebufferpool.Put when done.
func gunzip(body []byte, limit int64) (*bytebufferpool.ByteBuffer, error) {
	var zr *gzip.Reader
	if v := gzipPool.Get(); v != nil {
		zr = v.(*gzip.Reader)
		if err := zr.Reset(bytes.NewReader(body)); err != nil {
			return nil, fmt.Errorf("%w: invalid gzip body: %v", ErrBadBody, err)
		}
	} else {
		var err error
		if zr, err = gzip.NewReader(bytes.NewReader(body)); err != nil {
			return nil, fmt.Errorf("%w: invalid gzip body: %v", ErrBadBody, err)
		}
	}
	defer gzipPool.Put(zr)
	buf := bytebufferpool.Get()
	n, err := io.Copy(buf, io.LimitReader(zr, limit+1))
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		bytebufferpool.Put(buf)
		return nil, fmt.Errorf("%w: invalid gzip body: %v", ErrBadBody, err)
	}
	if err != nil {
		bytebufferpool.Put(buf)
		return nil, fmt.Errorf("%w: gzip body is truncated", ErrBadBody)
	}
	if n > limit {
		bytebufferpool.Put(buf)
		return nil, fmt.Errorf("%w: more than %d bytes after decompression; split the batch", ErrTooLarge, limit)
	}
	return buf, nil
}

// DecodeOne adds body, one JSON value, to b as one row after the columns
// the caller added: an object's fields as an insert's would be, any other
// value whole as JSON in the column named whole. Webhook deliveries use it.
// It returns ErrBadBody when body cannot be stored, and keeps no reference
// to body.
func DecodeOne(b *batcher.Builder, body []byte, whole []byte) error {
	trimmed := bytes.TrimSpace(bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")))
	if len(trimmed) == 0 {
		return fmt.Errorf("%w: the body is empty", ErrBadBody)
	}
	p := parserPool.Get()
	defer parserPool.Put(p)
	v, err := p.ParseBytes(trimmed)
	if err != nil {
		return fmt.Errorf("%w: the body is not JSON (%s)", ErrBadBody, shortErr(err))
	}
	if v.Type() == fastjson.TypeObject {
		dec := decoder{b: b}
		if msg := dec.row(v); msg != "" {
			return fmt.Errorf("%w: %s", ErrBadBody, msg)
		}
		return nil
	}
	text := v.MarshalTo(nil)
	if !utf8.Valid(text) {
		return fmt.Errorf("%w: the body is not valid UTF-8", ErrBadBody)
	}
	b.AddJSON(whole, text)
	b.EndRow()
	return nil
}
