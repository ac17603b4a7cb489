package schema

import (
	"strings"
	"testing"
)

func TestFoldName(t *testing.T) {
	f := func(name, want string) {
		t.Helper()
		if got := FoldName(name); got != want {
			t.Fatalf("FoldName(%q) = %q; want %q", name, got, want)
		}
	}
	f("", "")
	f("abc", "abc")
	f("ABC", "abc")
	f("UserID", "userid")
	f("aB_9Z", "ab_9z")
	f("É", "É") // DuckDB folds ASCII only
	f("Éa", "Éa")
	f("ÉA", "Éa")
	f("\u212a", "\u212a") // the Kelvin sign is not ASCII: it stays

	lower := "already_lower_ça"
	if allocs := testing.AllocsPerRun(100, func() { FoldName(lower) }); allocs != 0 {
		t.Fatalf("FoldName of a lower-case name allocates %v times", allocs)
	}
}

func TestValidColumnName(t *testing.T) {
	f := func(key string, want bool) {
		t.Helper()
		if got := ValidColumnName(key); got != want {
			t.Fatalf("ValidColumnName(%q) = %v; want %v", key, got, want)
		}
	}
	f("a", true)
	f("user id", true)
	f(`a"; DROP TABLE events; --`, true) // quoted, it is harmless
	f("é", true)
	f(strings.Repeat("x", MaxColumnNameLen), true)
	f("_overflow_2", true)
	f("overflow", true)

	f("", false)
	f(strings.Repeat("x", MaxColumnNameLen+1), false)
	f("a\x00b", false)
	f("\xff", false)
	f("a\xc3", false) // truncated UTF-8
	f("_overflow", false)
	f("_OVERFLOW", false)
	f("_Overflow", false)
}

func TestValidTableName(t *testing.T) {
	f := func(name string, want bool) {
		t.Helper()
		if got := ValidTableName(name); got != want {
			t.Fatalf("ValidTableName(%q) = %v; want %v", name, got, want)
		}
	}
	f("events", true)
	f("_t", true)
	f("T1_x", true)
	f("a", true)
	f(strings.Repeat("a", 63), true)

	f("", false)
	f(strings.Repeat("a", 64), false)
	f("1abc", false)
	f("a-b", false)
	f("a b", false)
	f("a.b", false)
	f(`a"b`, false)
	f("é", false)
	f("events;", false)
}

func TestQuoteIdent(t *testing.T) {
	f := func(name, want string) {
		t.Helper()
		if got := QuoteIdent(name); got != want {
			t.Fatalf("QuoteIdent(%q) = %s; want %s", name, got, want)
		}
	}
	f("a", `"a"`)
	f(`a"b`, `"a""b"`)
	f(`"`, `""""`)
	f("", `""`)
	f(`a"; DROP TABLE events; --`, `"a""; DROP TABLE events; --"`)
}
