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
