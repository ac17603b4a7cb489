package query

import (
	"encoding/json"
	"testing"
)

// FuzzTreeWalker feeds the parse-tree walker arbitrary text, as a network
// would in two halves joined: it never panics or loops, refuses what is not
// JSON, and refuses any tree that names a function, table function or view
// the allow-list does not allow (the fuzzer plants such names).
func FuzzTreeWalker(f *testing.F) {
	for _, seed := range []string{
		`{"error":false,"statements":[{"node":{"type":"SELECT_NODE","select_list":[{"class":"CONSTANT","type":"VALUE_CONSTANT","value":{"type":{"id":"INTEGER"},"is_null":false,"value":1}}],"from_table":{"type":"EMPTY"}}}]}`,
		`{"error":false,"statements":[{"node":{"type":"SELECT_NODE","select_list":[{"class":"FUNCTION","type":"FUNCTION","function_name":"upper","children":[]}],"from_table":{"type":"TABLE_FUNCTION","function":{"class":"FUNCTION","type":"FUNCTION","function_name":"range","children":[]}}}}]}`,
		`{"error":false,"statements":[{"node":{"type":"SELECT_NODE","from_table":{"type":"TABLE_FUNCTION","function":{"class":"FUNCTION","type":"FUNCTION","function_name":"enable_logging","children":[]}}}}]}`,
		`{"error":false,"statements":[{"node":{"type":"SELECT_NODE","from_table":{"type":"BASE_TABLE","table_name":"events","schema_name":"","catalog_name":""}}}]}`,
		`{"error":true,"error_type":"parser","error_message":"syntax error"}`,
		`{"a":[1,2,{"b":"\u0000\ud800"}],"c":null}`,
		``, `{`, `[[[[[[`, `"x`, `{"function_name":`,
	} {
		f.Add(seed, "")
	}
	rules := sandboxRules{catalogs: map[string]bool{"t_0123456789abcdef": true}, builtin: &builtinNames{views: map[string]bool{}, types: map[string]bool{}}}
	f.Fuzz(func(t *testing.T, a, b string) {
		tree := a + b
		err := checkTree(tree, rules)
		if err == nil && !json.Valid([]byte(tree)) {
			t.Fatalf("not JSON, allowed: %q", tree)
		}
		// A function no allow-list can hold, planted where the walker looks.
		planted := `{"error":false,"statements":[{"node":{"type":"SELECT_NODE","select_list":[{"class":"FUNCTION","type":"FUNCTION","function_name":"definitely_not_allowed_fn","children":[` +
			tree + `]}],"from_table":{"type":"EMPTY"}}}]}`
		if checkTree(planted, rules) == nil {
			t.Fatalf("a function off the list was allowed around %q", tree)
		}
	})
}
