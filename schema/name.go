package schema

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// OverflowColumn is the JSON column holding keys beyond the column cap and keys that cannot be column names.
const OverflowColumn = "_overflow"

// MaxColumnNameLen is the longest key, in bytes, that becomes a column name. DuckDB itself has no
// short limit; this one keeps DDL and catalog rows small.
const MaxColumnNameLen = 255

// maxTableNameLen is the longest table name, in bytes (PostgreSQL's NAMEDATALEN-1, a familiar bound).
const maxTableNameLen = 63

// FoldName is the case-folded form of a column name used to match keys to columns: DuckDB compares
// identifiers case-insensitively in ASCII only (verified: "é" and "É" are distinct columns, "a" and
// "A" collide). It lower-cases ASCII letters only and does not allocate when name has no upper-case
// ASCII letter.
func FoldName(name string) string {
	i := 0
	for i < len(name) && !isUpper(name[i]) {
		i++
	}
	if i == len(name) {
		return name
	}
	b := make([]byte, len(name))
	copy(b, name[:i])
	for ; i < len(name); i++ {
		c := name[i]
		if isUpper(c) {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	return string(b)
}

func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }

// equalFold reports whether a and b are equal under FoldName, without allocating.
func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if isUpper(x) {
			x += 'a' - 'A'
		}
		if isUpper(y) {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// ValidColumnName reports whether a JSON key can be a column name: non-empty, at most
// MaxColumnNameLen bytes, valid UTF-8, no NUL byte, and not OverflowColumn in any ASCII case.
// Keys that fail go to the overflow column. The answer is the same for every ASCII-case spelling of a key.
func ValidColumnName(key string) bool {
	return key != "" &&
		len(key) <= MaxColumnNameLen &&
		strings.IndexByte(key, 0) < 0 &&
		utf8.ValidString(key) &&
		!equalFold(key, OverflowColumn)
}

// ValidTableName reports whether name can be a table name: 1 to 63 bytes of ASCII letters, digits
// and underscores, starting with a letter or an underscore.
func ValidTableName(name string) bool {
	if name == "" || len(name) > maxTableNameLen || isDigit(name[0]) {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || isUpper(c) || isDigit(c) || c == '_') {
			return false
		}
	}
	return true
}

// ReservedPrefix begins the names of the tables duckgate keeps in a tenant's
// database for itself (_duckgate_applied, _duckgate_quarantine). No insert,
// webhook or query result may create or fill a table so named; the prefix is
// matched without regard to ASCII case, as DuckDB matches names.
const ReservedPrefix = "_duckgate"

// CheckTableName returns nil if name can be a tenant's table, or an error
// saying what to send instead: the name is not ValidTableName, or it starts
// with ReservedPrefix.
func CheckTableName(name string) error {
	if !ValidTableName(name) {
		shown := name
		if len(shown) > 64 {
			shown = shown[:64] + "…"
		}
		return fmt.Errorf("table name %q: use letters, digits and underscore, starting with a letter or underscore, at most %d characters", shown, maxTableNameLen)
	}
	if IsReserved(name) {
		return fmt.Errorf("table name %q: names starting with %s are reserved for duckgate's own tables; choose another name", name, ReservedPrefix)
	}
	return nil
}

// IsReserved reports whether name starts with ReservedPrefix, in any
// ASCII case: a table duckgate keeps for itself.
func IsReserved(name string) bool {
	return len(name) >= len(ReservedPrefix) && strings.EqualFold(name[:len(ReservedPrefix)], ReservedPrefix)
}

// QuoteIdent returns name as a DuckDB quoted identifier, doubling embedded quotes ("a""b" for a"b).
// Never put a name into SQL any other way.
func QuoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// QuoteString returns s as a SQL string literal, doubling embedded single
// quotes ('it”s' for it's). Never put a value into SQL any other way where a
// parameter cannot be used (a path in COPY or ATTACH, a setting).
func QuoteString(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
