package jsonstr

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

func TestAppend(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := string(Append(nil, in)); got != want {
			t.Fatalf("Append(%q) = %s; want %s", in, got, want)
		}
	}
	f("", `""`)
	f("plain", `"plain"`)
	f("a\"b\\c", `"a\"b\\c"`)
	f("\n\r\t\x00\x1f", `"\n\r\t\u0000\u001f"`)
	f("é日本", `"é日本"`)
	f("\xff", `"\ufffd"`)
	f("\u2028", `"\u2028"`)
}

// FuzzAppend: the output is valid JSON and decodes to the input (invalid
// UTF-8 as encoding/json would replace it).
func FuzzAppend(f *testing.F) {
	for _, s := range []string{"", "plain", "héllo \"wörld\"\\\n\r\t\x00\x1f\x7f", "\u2028\u2029", "\xff\xfe", "a\xc3", "\xed\xa0\x80", "日本\U0001F600"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Append([]byte("x"), s)[1:]
		var got string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%q: %s is not a JSON string: %v", s, out, err)
		}
		want := s
		if !utf8.ValidString(s) {
			m, _ := json.Marshal(s)
			_ = json.Unmarshal(m, &want)
		}
		if got != want {
			t.Fatalf("%q: decodes to %q; want %q", s, got, want)
		}
	})
}
