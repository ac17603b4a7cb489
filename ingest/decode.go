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
	"unicode/utf16"
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
	dec := decoderPool.Get().(*decoder)
	defer dec.release()
	dec.b, dec.noEscapes = b, bytes.IndexByte(trimmed, '\\') < 0

	v, err := p.ParseBytes(trimmed)
	switch {
	case err == nil && v.Type() == fastjson.TypeObject:
		if msg := dec.rowText(v, trimmed); msg != "" {
			return nil, fmt.Errorf("%w: %s", ErrBadBody, msg)
		}
	case err == nil && v.Type() == fastjson.TypeArray:
		arr, _ := v.Array()
		for i, el := range arr {
			if el.Type() != fastjson.TypeObject {
				d.reject(i+1, "element is "+el.Type().String()+", not an object")
				continue
			}
			if msg := dec.rowText(el, nil); msg != "" {
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
			if msg := dec.rowText(v, ln); msg != "" {
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
//
// Strings and keys are unescaped by unescape, not by fastjson, which keeps a
// lone surrogate escape as its six characters but turns a reversed pair into
// one U+FFFD, and keeps unknown escapes as they are. fastjson unescapes keys
// when an object is visited, so the keys of a row with a backslash are read
// from the row's text first.
type decoder struct {
	b         *batcher.Builder
	noEscapes bool   // the caller knows that no row has a backslash
	scratch   []byte // the JSON text of the current value
	str       []byte // the current string value, unescaped
	text      []byte // the JSON text of the current row, when the caller has none
	keyBuf    []byte // the current row's keys, unescaped, back to back
	keyEnds   []int  // the end of each key in keyBuf, in the row's order
}

// decoderPool keeps decoders for Decode, so that their buffers are not
// grown again for every insert.
var decoderPool = sync.Pool{New: func() any { return new(decoder) }}

// maxPooledBuf is the largest buffer a pooled decoder keeps.
const maxPooledBuf = 64 << 10

// release returns d to decoderPool, dropping its Builder and any buffer a
// large value grew past maxPooledBuf.
func (d *decoder) release() {
	d.b, d.noEscapes = nil, false
	for _, buf := range []*[]byte{&d.scratch, &d.str, &d.text, &d.keyBuf} {
		if cap(*buf) > maxPooledBuf {
			*buf = nil
		}
	}
	if cap(d.keyEnds) > maxPooledBuf/8 {
		d.keyEnds = nil
	}
	decoderPool.Put(d)
}

// row adds one object as a row, or returns why it cannot be stored.
func (d *decoder) row(v *fastjson.Value) string { return d.rowText(v, nil) }

// rowText is row for an object whose JSON text the caller has (nil if not).
func (d *decoder) rowText(v *fastjson.Value, text []byte) string {
	o, _ := v.Object()
	ownKeys := false // the keys come from keyBuf, not from fastjson
	if !d.noEscapes {
		if text == nil {
			d.text = v.MarshalTo(d.text[:0]) // before Visit: the keys are still as sent
			text = d.text
		}
		if bytes.IndexByte(text, '\\') >= 0 {
			if !d.objectKeys(text) {
				return "a key is not a valid JSON string (bad escape)"
			}
			if len(d.keyEnds) != o.Len() {
				return "invalid JSON: the keys cannot be read"
			}
			ownKeys = true
		}
	}
	var msg string
	i := 0
	o.Visit(func(key []byte, v *fastjson.Value) {
		if ownKeys {
			start := 0
			if i > 0 {
				start = d.keyEnds[i-1]
			}
			key = d.keyBuf[start:d.keyEnds[i]]
			i++
		}
		if msg != "" {
			return
		}
		if !utf8.Valid(key) {
			msg = "a key is not valid UTF-8"
			return
		}
		// The value's text first: a string's Type unescapes it, and its
		// text as sent is lost.
		d.scratch = v.MarshalTo(d.scratch[:0])
		switch v.Type() {
		case fastjson.TypeNull:
			// Null adds no type information and stores nothing.
		case fastjson.TypeTrue:
			d.b.AddBool(key, true)
		case fastjson.TypeFalse:
			d.b.AddBool(key, false)
		case fastjson.TypeNumber:
			if !validNumber(d.scratch) {
				msg = fmt.Sprintf("value of %q is not a valid JSON number", truncate(key))
				return
			}
			d.b.AddNumber(key, d.scratch)
		case fastjson.TypeString:
			s := d.scratch[1 : len(d.scratch)-1]
			if bytes.IndexByte(s, '\\') >= 0 {
				var ok bool
				if d.str, ok = unescape(d.str[:0], s); !ok {
					msg = fmt.Sprintf("value of %q is not a valid JSON string (bad escape)", truncate(key))
					return
				}
				s = d.str
			}
			if !utf8.Valid(s) {
				msg = fmt.Sprintf("value of %q is not valid UTF-8", truncate(key))
				return
			}
			d.b.AddString(key, s)
		default: // object or array
			if why := storableJSON(d.scratch, !d.noEscapes); why != "" {
				msg = fmt.Sprintf("value of %q %s", truncate(key), why)
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

// objectKeys reads the keys of the JSON object text obj, which fastjson has
// parsed, into keyBuf and keyEnds, unescaped. It returns false when a key
// has an escape JSON does not have.
func (d *decoder) objectKeys(obj []byte) bool {
	d.keyBuf, d.keyEnds = d.keyBuf[:0], d.keyEnds[:0]
	i := skipSpace(obj, bytes.IndexByte(obj, '{')+1)
	for i < len(obj) && obj[i] == '"' {
		end := stringEnd(obj, i+1)
		var ok bool
		if d.keyBuf, ok = unescape(d.keyBuf, obj[i+1:end]); !ok {
			return false
		}
		d.keyEnds = append(d.keyEnds, len(d.keyBuf))
		i = skipSpace(obj, end+1) // at ':'
		i = skipSpace(obj, valueEnd(obj, skipSpace(obj, i+1)))
		if i < len(obj) && obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
	}
	return true
}

// skipSpace returns the index of the first byte at or after i in b that is
// not JSON whitespace.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index of the quote that closes the string whose
// body starts at i, or len(b).
func stringEnd(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case '"':
			return i
		case '\\':
			i += 2
		default:
			i++
		}
	}
	return len(b)
}

// valueEnd returns the index just after the JSON value that starts at i.
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i+1) + 1
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = stringEnd(b, i+1)
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
		i++
	}
	return i
}

// unescape appends the JSON string body s to dst with its escapes decoded.
// ok is false for an escape JSON does not have (\x, \u12).
//
// A \u escape of a surrogate that is not a high surrogate directly followed
// by a \u escape of a low one (a lone half, or a pair in the wrong order)
// becomes U+FFFD, one per escape, and what follows it is read on its own:
// the rule of Go's encoding/json. DuckDB's text and JSON types hold only
// valid UTF-8, and keeping the six characters would make "\ud800" and
// "\\ud800" one value.
func unescape(dst, s []byte) (_ []byte, ok bool) {
	for i := 0; i < len(s); {
		if s[i] != '\\' {
			j := bytes.IndexByte(s[i:], '\\')
			if j < 0 {
				return append(dst, s[i:]...), true
			}
			dst = append(dst, s[i:i+j]...)
			i += j
			continue
		}
		if i+1 >= len(s) {
			return dst, false
		}
		c := s[i+1]
		i += 2
		switch c {
		case '"', '\\', '/':
			dst = append(dst, c)
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := hex4(s[i:])
			if !ok {
				return dst, false
			}
			i += 4
			if utf16.IsSurrogate(r) {
				r2 := utf8.RuneError
				if i+1 < len(s) && s[i] == '\\' && s[i+1] == 'u' {
					r2, _ = hex4(s[i+2:])
				}
				if pair := utf16.DecodeRune(r, r2); pair != utf8.RuneError {
					r = pair
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
		default:
			return dst, false
		}
	}
	return dst, true
}

// hex4 reads the four hex digits of a \u escape.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// replaceLoneSurrogates applies unescape's surrogate rule to the valid JSON
// text b in place: each \u escape of an unpaired surrogate becomes \ufffd.
func replaceLoneSurrogates(b []byte) {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\\')
		if j < 0 {
			return
		}
		i += j
		if b[i+1] != 'u' { // valid JSON: a backslash starts an escape inside a string
			i += 2
			continue
		}
		r, _ := hex4(b[i+2:])
		if !utf16.IsSurrogate(r) {
			i += 6
			continue
		}
		if r < 0xdc00 && i+12 <= len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
			if r2, _ := hex4(b[i+8:]); r2 >= 0xdc00 && r2 <= 0xdfff {
				i += 12 // a pair
				continue
			}
		}
		copy(b[i+2:i+6], "fffd")
		i += 6
	}
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
	if why := storableJSON(text, true); why != "" {
		return fmt.Errorf("%w: the body %s", ErrBadBody, why)
	}
	b.AddJSON(whole, text)
	b.EndRow()
	return nil
}

// storableJSON makes the JSON text of an object or array fit for a JSON
// column: it says why not (as "is not valid ..."), or replaces unpaired
// surrogate escapes in place when escapes may hold them and returns "".
// fastjson lets through, inside objects and arrays, numbers such as NaN or
// 1.2.3, bad escapes and raw control characters, and DuckDB refuses
// unpaired surrogates: text DuckDB's JSON column (and the quarantine)
// would refuse, blocking the table's flushes for good.
func storableJSON(text []byte, escapes bool) string {
	if !utf8.Valid(text) {
		return "is not valid UTF-8"
	}
	if !json.Valid(text) {
		return "is not valid JSON"
	}
	if escapes {
		replaceLoneSurrogates(text)
	}
	return ""
}
