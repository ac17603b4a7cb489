package query

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"

	"duckgate/jsonstr"
)

// TestAppendRowAllocs: encoding a row of scalars into the row buffer does
// not allocate, in every streamed format.
func TestAppendRowAllocs(t *testing.T) {
	kinds := []kind{kindOther, kindOther, kindOther, kindOther, kindOther, kindTimestampTZ, kindDate, kindOther, kindOther, kindJSON}
	vals := []any{int64(-42), 1.5, "plain", "héllo \"wörld\"\n日本", true, time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC),
		time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), nil, int32(7), `{"z":1,"a":12345678901234567890123}`}
	r := &resultStream{cols: make([]column, len(vals))}
	for i := range r.cols {
		name := string(rune('a' + i))
		r.cols[i] = column{jsonKey: append(jsonstr.Append(nil, name), ':'), csvName: []byte(name), kind: kinds[i]}
	}
	b := make([]byte, 0, 4096)
	for _, f := range []Format{FormatJSON, FormatNDJSON, FormatCSV} {
		r.format = f
		if n := testing.AllocsPerRun(1000, func() { b = r.appendRow(b[:0], vals, 1) }); n != 0 {
			t.Errorf("%s: %.1f allocations per row", f, n)
		}
	}
	r.format = FormatNDJSON
	want := `{"a":-42,"b":1.5,"c":"plain","d":"héllo \"wörld\"\n日本","e":true,"f":"2024-01-02T03:04:05.123456Z",` +
		`"g":"2024-02-29","h":null,"i":7,"j":{"z":1,"a":12345678901234567890123}}` + "\n"
	if got := string(r.appendRow(nil, vals, 0)); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// FuzzAppendJSONString: the escaper's output is one valid JSON string that
// decodes to the input when the input is valid UTF-8, and to what
// encoding/json makes of it (each invalid byte U+FFFD) otherwise. The
// in-place escaper (appendJSONEscapedTail) writes the same bytes.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "héllo \"wörld\"\\\n\r\t\x00\x1f\x7f", "\u2028\u2029", "\xff\xfe", "a\xc3", "\xed\xa0\x80", "日本\U0001F600"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := jsonstr.Append([]byte("x"), s)[1:]
		if !json.Valid(out) {
			t.Fatalf("%q: invalid JSON %q", s, out)
		}
		var got string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		want := s
		if !utf8.ValidString(s) {
			m, _ := json.Marshal(s)
			_ = json.Unmarshal(m, &want)
		}
		if got != want {
			t.Fatalf("%q: decodes to %q; want %q", s, got, want)
		}
		if tail := appendJSONEscapedTail(append([]byte(`x"`), s...), 2); string(tail[1:]) != string(out) {
			t.Fatalf("%q: in place %q; want %q", s, tail[1:], out)
		}
	})
}

// FuzzAppendJSONText: the text of a JSON column always comes out as valid
// JSON: compacted if it is JSON (json.Compact's bytes), a JSON string of it
// if not.
func FuzzAppendJSONText(f *testing.F) {
	for _, s := range []string{`{"z":1,"a":12345678901234567890123}`, " [ 1 ,\n 2 ] ", `{"a b" : "c \" d\\"}`, "NaN", "[1,]", `"\u2028"`, "1e400", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := appendJSONText([]byte("x"), s)[1:]
		if !json.Valid(out) {
			t.Fatalf("%q: invalid JSON %q", s, out)
		}
		if json.Valid([]byte(s)) {
			var want bytes.Buffer
			if err := json.Compact(&want, []byte(s)); err != nil || string(out) != want.String() {
				t.Fatalf("%q: got %q; want %q (%v)", s, out, want.String(), err)
			}
			return
		}
		var got string
		if err := json.Unmarshal(out, &got); err != nil || (utf8.ValidString(s) && got != s) {
			t.Fatalf("%q: got %q (%v)", s, out, err)
		}
	})
}

func TestAppendCSVField(t *testing.T) {
	f := func(v any, k kind, want string) {
		t.Helper()
		if got := string(appendCSVField([]byte("x,"), v, k)); got != "x,"+want {
			t.Fatalf("appendCSVField(%#v) = %q; want %q", v, got[2:], want)
		}
	}
	f(nil, kindOther, "")
	f("", kindOther, `""`)
	f("plain", kindOther, "plain")
	f(`a"b`, kindOther, `"a""b"`)
	f(`""`, kindOther, `""""""`)
	f("a,b\r\nc", kindOther, "\"a,b\r\nc\"")
	f(" lead", kindOther, `" lead"`)
	f(`{"a":[1,"x"]}`, kindJSON, `"{""a"":[1,""x""]}"`)
	f(int64(-3), kindOther, "-3")
}
