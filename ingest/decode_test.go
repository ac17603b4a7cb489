package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/valyala/fastjson"

	"duckgate/batcher"
	"duckgate/schema"
)

func TestDecode(t *testing.T) {
	deep := strings.Repeat("[", 400) + strings.Repeat("]", 400)
	many := func(n int, el string) string {
		return "[" + strings.TrimSuffix(strings.Repeat(el+",", n), ",") + `,{"ok":1}]`
	}
	type tc struct {
		name     string
		body     string
		rows     int
		rejected int
		lines    []int  // lines (or positions) of the listed errors
		badBody  bool   // ErrBadBody
		errLike  string // in the first listed error, or in the error
	}
	for _, c := range []tc{
		{name: "object", body: `{"a":1,"b":"x","c":null,"d":{"e":[1]}}`, rows: 1},
		{name: "empty object", body: `{}`, rows: 1},
		{name: "array", body: `[{"a":1},{"a":2},{}]`, rows: 3},
		{name: "array with non-objects", body: `[{"a":1}, 2, "x", null, [], {"b":2}]`, rows: 2, rejected: 4, lines: []int{2, 3, 4, 5}, errLike: "element is number"},
		{name: "ndjson", body: "{\"a\":1}\n{\"a\":2}\n", rows: 2},
		{name: "ndjson blank lines and CRLF", body: "\r\n{\"a\":1}\r\n\r\n  \t\n{\"a\":2}\r\n{\"a\":3}", rows: 3},
		{name: "ndjson bad lines", body: "{\"a\":1}\n{bad\n\n[1]\n{\"a\":2}\n42", rows: 2, rejected: 3, lines: []int{2, 4, 6}, errLike: "invalid JSON"},
		{name: "bom object", body: "\xef\xbb\xbf{\"a\":1}", rows: 1},
		{name: "bom ndjson", body: "\xef\xbb\xbf{\"a\":1}\n{\"a\":2}", rows: 2},
		{name: "too deep line", body: "{\"a\":1}\n{\"d\":" + deep + "}\n{\"a\":2}", rows: 2, rejected: 1, lines: []int{2}, errLike: "invalid JSON"},
		{name: "too deep only", body: "{\"d\":" + deep + "}", badBody: true, rejected: 1, lines: []int{1}, errLike: "invalid JSON"},
		{name: "NaN and Infinity", body: "{\"a\":NaN}\n{\"a\":Infinity}\n{\"a\":-Inf}\n{\"a\":1}\n{\"a\":nan}", rows: 1, rejected: 4, lines: []int{1, 2, 3, 5}},
		{name: "NaN in array", body: `[{"a":NaN},{"a":1},{"a":1.}]`, rows: 1, rejected: 2, lines: []int{1, 3}, errLike: "not a valid JSON number"},
		{name: "NaN nested", body: `[{"a":[NaN]},{"a":{"b":-Inf}},{"a":[1.2.3]},{"a":[++]},{"a":["\x"]},{"a":[1]}]`, rows: 1, rejected: 5, lines: []int{1, 2, 3, 4, 5}, errLike: "not valid JSON"},
		{name: "control character nested", body: "[{\"a\":[\"tab\there\"]},{\"a\":\"tab\there\"}]", rows: 1, rejected: 1, lines: []int{1}},
		{name: "invalid UTF-8 value", body: "{\"a\":\"\xff\"}\n{\"a\":\"ok\"}\n{\"a\":[\"\xc3\"]}", rows: 1, rejected: 2, lines: []int{1, 3}, errLike: "UTF-8"},
		{name: "invalid UTF-8 key", body: "[{\"\xfe\":1},{\"a\":2}]", rows: 1, rejected: 1, lines: []int{1}, errLike: "key is not valid UTF-8"},
		{name: "scalar number", body: `42`, badBody: true, errLike: "number"},
		{name: "scalar string", body: ` "x" `, badBody: true},
		{name: "scalar null", body: `null`, badBody: true},
		{name: "not json", body: `hello`, badBody: true, errLike: "not valid JSON"},
		{name: "empty", body: ``, badBody: true, errLike: "empty"},
		{name: "blank", body: " \r\n\t\n", badBody: true, errLike: "empty"},
		{name: "bom only", body: "\xef\xbb\xbf\n", badBody: true, errLike: "empty"},
		{name: "every element bad", body: `[1,"x",[2]]`, badBody: true, rejected: 3, lines: []int{1, 2, 3}, errLike: "element is number"},
		{name: "every line bad", body: "{bad\n{\"a\":NaN}", badBody: true, rejected: 2, lines: []int{1, 2}},
		{name: "empty array", body: `[]`, badBody: true},
		{name: "errors capped", body: many(250, "1"), rows: 1, rejected: 250},
		{name: "errors capped, all bad", body: strings.TrimSuffix(many(250, "1"), `,{"ok":1}]`) + "]", badBody: true, rejected: 250},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, err := Decode([]byte(c.body))
			if c.badBody {
				if !errors.Is(err, ErrBadBody) {
					t.Fatalf("err = %v; want ErrBadBody", err)
				}
				if c.errLike != "" && !strings.Contains(err.Error(), c.errLike) {
					t.Fatalf("err = %v; want it to mention %q", err, c.errLike)
				}
				if d == nil {
					if c.rejected > 0 {
						t.Fatalf("no Decoded; want %d rejected listed", c.rejected)
					}
					return
				}
				if d.Rows != nil {
					t.Fatalf("Rows set with ErrBadBody")
				}
			} else if err != nil {
				t.Fatalf("Decode: %v", err)
			} else if d.Rows.Len() != c.rows {
				t.Fatalf("%d rows; want %d", d.Rows.Len(), c.rows)
			}
			if d.Rejected != c.rejected {
				t.Fatalf("Rejected = %d; want %d (errors %v)", d.Rejected, c.rejected, d.Errors)
			}
			if want := min(c.rejected, maxReportedErrors); len(d.Errors) != want {
				t.Fatalf("%d errors listed; want %d", len(d.Errors), want)
			}
			if c.lines != nil {
				var lines []int
				for _, e := range d.Errors {
					lines = append(lines, e.Line)
				}
				if !slices.Equal(lines, c.lines) {
					t.Fatalf("errors at %v; want %v: %v", lines, c.lines, d.Errors)
				}
			}
			if c.errLike != "" && !c.badBody && !strings.Contains(d.Errors[0].Error, c.errLike) {
				t.Fatalf("first error %q; want it to mention %q", d.Errors[0].Error, c.errLike)
			}
			if d.Rows != nil {
				checkDecodedRows(t, d.Rows)
			}
		})
	}
}

func TestDecodeValues(t *testing.T) {
	d, err := Decode([]byte(`{"i":-7,"f":-0.0,"big":12345678901234567890,"s":"a\"b\u00e9\u0000","t":"2024-01-02T03:04:05Z","j":{"x":[1,"y"]},"b":true}`))
	if err != nil {
		t.Fatal(err)
	}
	r := d.Rows
	want := map[string]struct {
		kind schema.Kind
		str  string
	}{
		"i": {schema.KindInt, ""}, "f": {schema.KindFloat, ""}, "big": {schema.KindHugeInt, "12345678901234567890"},
		"s": {schema.KindString, "a\"bé\x00"}, "t": {schema.KindTimestamp, "2024-01-02T03:04:05Z"},
		"j": {schema.KindJSON, `{"x":[1,"y"]}`}, "b": {schema.KindBool, ""},
	}
	if len(r.Cells) != len(want) {
		t.Fatalf("%d cells; want %d", len(r.Cells), len(want))
	}
	for _, c := range r.Cells {
		w := want[r.Keys[c.Key]]
		if c.Kind != w.kind || c.Str != w.str {
			t.Fatalf("%q = %s %q; want %s %q", r.Keys[c.Key], c.Kind, c.Str, w.kind, w.str)
		}
	}
}

// TestDecodeEscapes checks that strings and keys, top-level or nested, follow one rule:
// every unpaired surrogate escape becomes U+FFFD, and an escape JSON lacks rejects the row.
func TestDecodeEscapes(t *testing.T) {
	// f decodes body, which must give one row, and checks the cell of key.
	f := func(body, key string, kind schema.Kind, want string) {
		t.Helper()
		d, err := Decode([]byte(body))
		if err != nil {
			t.Fatalf("Decode(%s): %v", body, err)
		}
		checkDecodedRows(t, d.Rows)
		r := d.Rows
		if r.Len() != 1 || d.Rejected != 0 {
			t.Fatalf("Decode(%s): %d rows, %d rejected; want 1 row", body, r.Len(), d.Rejected)
		}
		for _, c := range r.Cells {
			if r.Keys[c.Key] == key {
				if c.Kind != kind || c.Str != want {
					t.Fatalf("Decode(%s): %q = %s %q; want %s %q", body, key, c.Kind, c.Str, kind, want)
				}
				return
			}
		}
		t.Fatalf("Decode(%s): no key %q in %q", body, key, r.Keys)
	}
	str := schema.KindString
	f(`{"a":"\ud800"}`, "a", str, "\uFFFD")
	f(`{"a":"x\udc00y"}`, "a", str, "x\uFFFDy")
	f(`{"a":"\udc00\ud800"}`, "a", str, "\uFFFD\uFFFD") // reversed: two halves, two U+FFFD
	f(`{"a":"\ud800\u0041"}`, "a", str, "\uFFFDA")      // what follows a lone half is kept
	f(`{"a":"\ud800\ud83d\ude00"}`, "a", str, "\uFFFD😀")
	f(`{"a":"\ud83d\ude00"}`, "a", str, "😀")
	f(`{"a":"\uD83D\uDE00"}`, "a", str, "😀")
	f(`{"a":"\ud800\n"}`, "a", str, "\uFFFD\n")
	f(`{"a":"\\ud800"}`, "a", str, `\ud800`) // an escaped backslash, then text
	f(`{"a":"\"\\\/\b\f\n\r\t\u00e9\u0000"}`, "a", str, "\"\\/\b\f\n\r\té\x00")
	f(`{"a":"2024-01-02T03:04:05\u005a"}`, "a", schema.KindTimestamp, "2024-01-02T03:04:05Z")
	// Keys, with values that hide quotes, braces and commas from a naive reader.
	f(`{"\ud800":1}`, "\uFFFD", schema.KindInt, "")
	f(`{"\udc00\ud800":"v"}`, "\uFFFD\uFFFD", str, "v")
	f(`{"\ud83d\ude00":"v"}`, "😀", str, "v")
	f(`{"a\n":{"x\"}":"},"},"b":[1,"]",{"c":"\""}],"\u0063":"\ud800"}`, "c", str, "\uFFFD")
	f(`{"a\n":{"x\"}":"},"},"b":[1,"]",{"c":"\""}],"\u0063":"\ud800"}`, "a\n", schema.KindJSON, `{"x\"}":"},"}`)
	f(` { "\u0061" : 1 , "b" : "\ud800" } `, "b", str, "\uFFFD")
	f(`[ {"x":true, "\u0061" : -1.5e-400 , "b" : "\ud800" } ]`, "a", schema.KindNumText, "-1.5e-400")
	f(`[ {"x":true, "\u0061" : -1.5e-400 , "b" : "\ud800" } ]`, "b", str, "\uFFFD")
	f("{\"\\u0061\":null,\n\t\"b\":\"\\ud800\"}\n", "b", str, "\uFFFD")
	// Nested: the JSON text keeps its escapes, but no unpaired surrogate (DuckDB's JSON refuses it).
	f(`{"j":{"\ud800":["\udc00\ud800","\ud83d\ude00","\\ud800"]}}`, "j", schema.KindJSON,
		`{"\ufffd":["\ufffd\ufffd","\ud83d\ude00","\\ud800"]}`)
	f(`{"j":["\ud800\u0041","\udbff\udfff"]}`, "j", schema.KindJSON, `["\ufffd\u0041","\udbff\udfff"]`)

	// Escapes JSON does not have reject the row, in keys as in values.
	for _, body := range []string{`{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"\uzzzz"}`, `{"\x":1}`, `{"ok":1,"\u00":1}`, `{"a":"\ud800\u12"}`} {
		if _, err := Decode([]byte(body)); !errors.Is(err, ErrBadBody) || !strings.Contains(err.Error(), "bad escape") {
			t.Fatalf("Decode(%s): %v; want the row rejected for a bad escape", body, err)
		}
		d, err := Decode([]byte("[" + body + `,{"ok":1}]`))
		if err != nil || d.Rejected != 1 || d.Errors[0].Line != 1 || !strings.Contains(d.Errors[0].Error, "bad escape") {
			t.Fatalf("Decode([%s,...]) = %+v, %v; want the first element rejected for a bad escape", body, d, err)
		}
	}
}

// FuzzUnescape checks unescape against encoding/json, which has the same surrogate rule.
func FuzzUnescape(f *testing.F) {
	for _, s := range []string{`a`, `\ud800`, `\udc00\ud800`, `\ud83d\ude00`, `\ud800\u0041`, `\\u`, `\x`, `\u12`, "\xff"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, s []byte) {
		got, ok := unescape(nil, s)
		quoted := slices.Concat([]byte(`"`), s, []byte(`"`))
		var want string
		if err := json.Unmarshal(quoted, &want); err != nil {
			if ok && bytes.IndexByte(s, '\\') >= 0 && !bytes.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == '"' }) && utf8.Valid(s) {
				t.Fatalf("unescape(%q) = %q, ok; encoding/json: %v", s, got, err)
			}
			return
		}
		if !ok {
			t.Fatalf("unescape(%q) fails; encoding/json gives %q", s, want)
		}
		if utf8.Valid(s) && string(got) != want {
			t.Fatalf("unescape(%q) = %q; encoding/json gives %q", s, got, want)
		}
		// The same rule for JSON text: replaceLoneSurrogates, then encoding/json, gives the same string.
		fixed := bytes.Clone(quoted)
		replaceLoneSurrogates(fixed)
		var again string
		if err := json.Unmarshal(fixed, &again); err != nil || again != want {
			t.Fatalf("replaceLoneSurrogates(%q) = %q, read as %q, %v; want %q", quoted, fixed, again, err, want)
		}
		if loneSurrogateEscape(fixed) {
			t.Fatalf("replaceLoneSurrogates(%q) = %q keeps an unpaired surrogate", quoted, fixed)
		}
	})
}

// loneSurrogateEscape reports whether the JSON text b has a \u escape of a surrogate that is not
// part of a high-then-low pair. It is the tests' oracle, written apart from replaceLoneSurrogates.
func loneSurrogateEscape(b []byte) bool {
	pendingHigh := false
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			if pendingHigh {
				return true
			}
			continue
		}
		if i+1 < len(b) && b[i+1] != 'u' {
			if pendingHigh {
				return true
			}
			i++
			continue
		}
		if i+6 > len(b) {
			return pendingHigh
		}
		n, err := strconv.ParseUint(string(b[i+2:i+6]), 16, 16)
		i += 5
		switch {
		case err != nil:
			return pendingHigh
		case n >= 0xd800 && n < 0xdc00:
			if pendingHigh {
				return true
			}
			pendingHigh = true
		case n >= 0xdc00 && n < 0xe000:
			if !pendingHigh {
				return true
			}
			pendingHigh = false
		default:
			if pendingHigh {
				return true
			}
		}
	}
	return pendingHigh
}

// checkDecodedRows checks what the batcher relies on: well-formed rows,
// valid UTF-8 everywhere, JSON cells that are valid JSON, Kinds and Dups
// as the cells say.
func checkDecodedRows(t *testing.T, r *batcher.Rows) {
	t.Helper()
	if len(r.Kinds) != len(r.Keys) {
		t.Fatalf("%d kinds for %d keys", len(r.Kinds), len(r.Keys))
	}
	for _, k := range r.Keys {
		if !utf8.ValidString(k) {
			t.Fatalf("key %q is not valid UTF-8", k)
		}
	}
	kinds := make([]schema.Kind, len(r.Keys))
	dups := false
	start := uint32(0)
	for _, end := range r.Ends {
		if end < start || int(end) > len(r.Cells) {
			t.Fatalf("ends %v for %d cells", r.Ends, len(r.Cells))
		}
		seen := make(map[string]bool)
		for _, c := range r.Cells[start:end] {
			if !utf8.ValidString(c.Str) {
				t.Fatalf("value %q of %q is not valid UTF-8", c.Str, r.Keys[c.Key])
			}
			if c.Kind == schema.KindJSON && !json.Valid([]byte(c.Str)) {
				t.Fatalf("JSON value %q of %q is not valid JSON", c.Str, r.Keys[c.Key])
			}
			if c.Kind == schema.KindJSON && loneSurrogateEscape([]byte(c.Str)) {
				t.Fatalf("JSON value %q of %q has an unpaired surrogate escape, which DuckDB refuses", c.Str, r.Keys[c.Key])
			}
			if (c.Kind == schema.KindHugeInt || c.Kind == schema.KindNumText) && !json.Valid([]byte(c.Str)) {
				t.Fatalf("number %q of %q is not a JSON number", c.Str, r.Keys[c.Key])
			}
			kinds[c.Key] |= c.Kind
			f := schema.FoldName(r.Keys[c.Key])
			dups = dups || seen[f]
			seen[f] = true
		}
		start = end
	}
	if int(start) != len(r.Cells) {
		t.Fatalf("rows end at cell %d of %d", start, len(r.Cells))
	}
	if !slices.Equal(kinds, r.Kinds) {
		t.Fatalf("Kinds = %v; the cells say %v", r.Kinds, kinds)
	}
	if dups != r.Dups {
		t.Fatalf("Dups = %v; the rows say %v", r.Dups, dups)
	}
}

// elements is how many rows plus rejections Decode must report for body:
// 1 for an object, the elements of an array, the non-blank lines of NDJSON;
// -1 when the body is none of these.
func elements(body []byte) int {
	body = bytes.TrimSpace(bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")))
	var p fastjson.Parser
	v, err := p.ParseBytes(body)
	switch {
	case err == nil && v.Type() == fastjson.TypeObject:
		return 1
	case err == nil && v.Type() == fastjson.TypeArray:
		a, _ := v.Array()
		return len(a)
	case err == nil || len(body) == 0 || body[0] != '{':
		return -1
	}
	n := 0
	for _, ln := range bytes.Split(body, []byte("\n")) {
		if len(bytes.TrimSpace(ln)) > 0 {
			n++
		}
	}
	return n
}

// checkDecode decodes body and checks the counts and the rows.
func checkDecode(t *testing.T, body []byte) {
	t.Helper()
	orig := bytes.Clone(body)
	d, err := Decode(body)
	if !bytes.Equal(body, orig) {
		t.Fatalf("Decode changed its input")
	}
	if d != nil {
		if len(d.Errors) != min(d.Rejected, maxReportedErrors) {
			t.Fatalf("%d errors listed for %d rejected", len(d.Errors), d.Rejected)
		}
		for i, e := range d.Errors {
			if e.Line < 1 || i > 0 && e.Line <= d.Errors[i-1].Line {
				t.Fatalf("error lines out of order: %v", d.Errors)
			}
		}
	}
	if err != nil {
		if !errors.Is(err, ErrBadBody) {
			t.Fatalf("Decode: %v; want ErrBadBody", err)
		}
		return
	}
	if d.Rows == nil || d.Rows.Len() == 0 {
		t.Fatalf("success without rows")
	}
	checkDecodedRows(t, d.Rows)
	if n := elements(body); n < 0 {
		t.Fatalf("success for a body that is no object, array or NDJSON")
	} else if got := d.Rows.Len() + d.Rejected; got != n {
		t.Fatalf("%d rows + %d rejected for %d elements", d.Rows.Len(), d.Rejected, n)
	}
	// A body that is one object, valid for encoding/json too: the same keys, unescaped the same way.
	trimmed := bytes.TrimSpace(bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")))
	if len(trimmed) > 0 && trimmed[0] == '{' && json.Valid(trimmed) {
		want, ok := topKeys(trimmed)
		if !ok {
			return
		}
		var got []string
		for _, c := range d.Rows.Cells {
			got = append(got, d.Rows.Keys[c.Key])
		}
		if !slices.Equal(got, want) {
			t.Fatalf("Decode(%q) keys %q; encoding/json reads %q", body, got, want)
		}
	}
}

// topKeys returns, in order, the keys of the JSON object text obj whose values are not null, as
// encoding/json unescapes them.
func topKeys(obj []byte) ([]string, bool) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		if string(v) != "null" {
			keys = append(keys, tok.(string))
		}
	}
	return keys, true
}

// FuzzDecode checks that no body makes Decode panic and that what it
// reports adds up. Every input is also tried split in two by a newline, as
// a body cut by the network and rejoined as NDJSON might be.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"a":1,"b":"x","c":null,"d":{"e":[1,2.5,"z"]},"t":"2024-01-02T03:04:05Z"}`,
		`[{"a":1},{"A":2,"a":3},7,"x",null]`,
		"{\"a\":1}\r\n\r\n{\"a\":NaN}\n{\"b\":[1.2.3]}\n{bad\n{\"k\":\"\xff\"}",
		"\xef\xbb\xbf{\"a\":1e400,\"b\":-0.0,\"c\":170141183460469231731687303715884105728}",
		"{\"a\":\"x\",\"b\":Infinity}\n{\"a\":1}",
		`{"a":[` + strings.Repeat("[", 299) + strings.Repeat("]", 299) + `]}`,
		`{"\ud800":"\udc00x","s":"\u0000\\\"","j":["\x"]}`,
		`[{"\udc00\ud800":1,"j":{"\ud800":["\udc00"]}},{"a":"\x"},{"\u0061":"\ud83d\ude00"}]`,
		"{\"\\\"k\": \"}\" ,\"b\":[\"\\ud800\"]}\n{\"a\":\"\\ud800\\u0041\"}",
		`42`, ``, `[]`, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkDecode(t, body)
		half := len(body) / 2
		checkDecode(t, slices.Concat(body[:half], []byte("\n"), body[half:]))
	})
}

func BenchmarkDecodeNDJSON(b *testing.B) {
	var body []byte
	for i := range 1000 {
		body = append(body, `{"id":`+strconv.Itoa(i)+`,"user":"alice","path":"/api/v1/items","ok":true,"tags":["a","b"],"ts":"2024-05-01T12:00:00Z"}`+"\n"...)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := Decode(body); err != nil {
			b.Fatal(err)
		}
	}
}

// Decoding a one-event body allocates a bounded number of times: the
// decoder's buffers are pooled, the keys interned (see batcher's
// TestBuilderFirstRowAllocs). It was 30 before.
func TestDecodeOneEventAllocs(t *testing.T) {
	body := []byte(`{"id":1,"user":"user-1","event":"click","ts":"2026-11-01T00:00:00.001Z","url":"https://example.com/p/1","referrer":"https://search.example/?q=1","session_id":"s-00000000","country":"DE","duration_ms":1,"props":{"button":"buy","ab":"b","n":0}}`)
	if _, err := Decode(body); err != nil {
		t.Fatal(err)
	}
	// The Builder's 7 (batcher.NewBuilderFor), the Rows and the Decoded.
	const want = 9
	if n := testing.AllocsPerRun(200, func() {
		if _, err := Decode(body); err != nil {
			t.Fatal(err)
		}
	}); n > want {
		t.Fatalf("Decode of one event allocates %v times; want at most %d", n, want)
	}
}

// A pooled decoder's buffers from one body do not leak into the next: a
// body whose keys have escapes, then one without, then a large value.
func TestDecodePooledBuffers(t *testing.T) {
	big := strings.Repeat("x", 100<<10)
	for _, c := range []struct{ body, key, val string }{
		{`{"k\u0061y":"v\u0061l"}`, "kay", "val"},
		{`{"b":"w"}`, "b", "w"},
		{`{"\"q":"` + big + `"}`, `"q`, big},
		{`{"c":"\u0041"}`, "c", "A"},
	} {
		d, err := Decode([]byte(c.body))
		if err != nil {
			t.Fatalf("%.40s: %v", c.body, err)
		}
		if len(d.Rows.Keys) != 1 || d.Rows.Keys[0] != c.key || len(d.Rows.Cells) != 1 || d.Rows.Cells[0].Str != c.val {
			t.Fatalf("%.40s: keys %q cells %d", c.body, d.Rows.Keys, len(d.Rows.Cells))
		}
	}
}
