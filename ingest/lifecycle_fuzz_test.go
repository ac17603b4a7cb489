package ingest

import (
	"errors"
	"testing"

	"duckgate/schema"
)

// FuzzParseSelector: a quarantine selector is accepted only when it names
// entries (a valid table and/or 1 to 1,000 ids, or all alone); anything
// else is a 4xx error, never a panic.
func FuzzParseSelector(f *testing.F) {
	for _, s := range []string{`{"all":true}`, `{"table":"events"}`, `{"ids":[1,2,-3]}`, `{"table":"t","ids":[9223372036854775807]}`,
		``, `{}`, `{"all":false}`, `{"all":true,"ids":[1]}`, `{"table":"_duckgate_x"}`, `{"ids":[]}`, `[1]`, `{"ids":[1.5]}`, `{"x":1}`, `{"all":true} {}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		sel, err := parseSelector(body)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) && !errors.Is(err, ErrBadTable) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("parseSelector(%q): %v is not a client error", body, err)
			}
			return
		}
		if sel.Table != "" && schema.CheckTableName(sel.Table) != nil {
			t.Fatalf("parseSelector(%q) accepted table %q", body, sel.Table)
		}
		if sel.IDs != nil && (len(sel.IDs) == 0 || len(sel.IDs) > maxSelectIDs) {
			t.Fatalf("parseSelector(%q) accepted %d ids", body, len(sel.IDs))
		}
	})
}
