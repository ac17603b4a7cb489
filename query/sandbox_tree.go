package query

import (
	"encoding/json"
	"fmt"
	"strings"
)

// treeWalker applies the sandbox's rules to json_serialize_sql's output in
// one pass over the text, keeping only the fields the rules read. The text
// is DuckDB's, so it is valid JSON; the walker still fails closed on
// anything it does not expect. A megabyte of SQL (an IN list of 500,000
// items) gives about 64 MB of tree (measured): decoding it into Go values
// would cost several times that; the walk allocates only per object it
// keeps.
type treeWalker struct {
	b          string
	pos        int
	rules      sandboxRules
	names      *allowList
	statements int
}

// maxTreeDepth bounds the nesting the walker follows. DuckDB refuses
// expressions nested deeper than max_expression_depth (1000) first.
const maxTreeDepth = 10_000

// node is what the rules need of one JSON object of the tree.
type node struct {
	class, typ              string
	functionName            string
	schema, catalog         string // of a function
	tableName               string // of a BASE_TABLE
	schemaName, catalogName string // of a BASE_TABLE
	value                   string // a string "value" field (a constant's value)
	num                     string // a number "value" field, as written
	name                    string // an UNBOUND_TYPE_INFO's type name
	hasFunctionName         bool
	fn                      *node          // the object under "function" (a TABLE_FUNCTION's call)
	val                     *node          // the object under "value" (a CONSTANT's value)
	first                   *node          // the first of "children" (a function's arguments)
	args                    [maxArgs]*node // the first maxArgs of "children" that are objects, in place
	children                int
}

func (w *treeWalker) walk() error {
	w.ws()
	if w.pos >= len(w.b) || w.b[w.pos] != '{' {
		return w.fail("the tree is not an object")
	}
	if _, err := w.object("", 1); err != nil {
		return err
	}
	if w.ws(); w.pos != len(w.b) {
		return w.fail("text after the tree")
	}
	switch {
	case w.statements == 0:
		return fmt.Errorf("%w: the query holds no statement", ErrMultipleStatements)
	case w.statements > 1:
		return ErrMultipleStatements
	}
	return nil
}

func (w *treeWalker) fail(what string) error {
	return fmt.Errorf("%w: cannot read DuckDB's parse tree at byte %d: %s", ErrBadQuery, w.pos, what)
}

func (w *treeWalker) ws() {
	for w.pos < len(w.b) {
		switch w.b[w.pos] {
		case ' ', '\t', '\n', '\r':
			w.pos++
		default:
			return
		}
	}
}

// str reads a JSON string at pos and returns its value.
func (w *treeWalker) str() (string, error) {
	if w.pos >= len(w.b) || w.b[w.pos] != '"' {
		return "", w.fail("expected a string")
	}
	start := w.pos
	escaped := false
	for i := start + 1; i < len(w.b); i++ {
		switch c := w.b[i]; {
		case c < 0x20:
			w.pos = i
			return "", w.fail("a control character in a string")
		case c == '\\':
			escaped = true
			i++
		case c == '"':
			w.pos = i + 1
			if !escaped {
				return w.b[start+1 : i], nil
			}
			var s string
			if err := json.Unmarshal([]byte(w.b[start:i+1]), &s); err != nil {
				return "", w.fail("bad string")
			}
			return s, nil
		}
	}
	return "", w.fail("unterminated string")
}

// skipString passes a string, checking it as str does; unescaped, it is
// not copied.
func (w *treeWalker) skipString() error {
	_, err := w.str()
	return err
}

// literal passes a number, true, false or null, and refuses anything else.
func (w *treeWalker) literal() error {
	start := w.pos
	for w.pos < len(w.b) {
		switch w.b[w.pos] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			if !validLiteral(w.b[start:w.pos]) {
				w.pos = start
				return w.fail("expected a value")
			}
			return nil
		}
		w.pos++
	}
	return w.fail("unexpected end")
}

// validLiteral reports whether s is true, false, null or a JSON number.
func validLiteral(s string) bool {
	switch s {
	case "true", "false", "null":
		return true
	case "":
		return false
	}
	i := 0
	if s[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(s) && s[i] == '0' {
		i++
	} else if digits() == 0 {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

// value reads the value at pos; key is the key it is under. An object's
// node is returned, nil for anything else.
func (w *treeWalker) value(key string, depth int) (*node, error) {
	w.ws()
	if w.pos >= len(w.b) {
		return nil, w.fail("unexpected end")
	}
	switch w.b[w.pos] {
	case '{':
		return w.object(key, depth+1)
	case '[':
		_, _, err := w.array(key, depth+1)
		return nil, err
	case '"':
		return nil, w.skipString()
	}
	return nil, w.literal()
}

// maxArgs is how many of a function's arguments the walker keeps: enough
// for the size rules (sandbox_size.go).
const maxArgs = 4

// array reads an array; it returns the nodes of its first maxArgs elements
// (nil where not an object) and its length.
func (w *treeWalker) array(key string, depth int) ([maxArgs]*node, int, error) {
	var els [maxArgs]*node
	if depth > maxTreeDepth {
		return els, 0, fmt.Errorf("%w: the query is nested too deeply", ErrBadQuery)
	}
	w.pos++ // [
	n := 0
	for {
		w.ws()
		if w.pos >= len(w.b) {
			return els, 0, w.fail("unterminated array")
		}
		if w.b[w.pos] == ']' {
			w.pos++
			break
		}
		if n > 0 {
			if w.b[w.pos] != ',' {
				return els, 0, w.fail("expected , in an array")
			}
			w.pos++
		}
		el, err := w.value(key, depth)
		if err != nil {
			return els, 0, err
		}
		if n < maxArgs {
			els[n] = el
		}
		n++
	}
	if key == "statements" && depth == 2 {
		w.statements = n
	}
	return els, n, nil
}

// object reads an object, applies the rules to it and returns its node.
func (w *treeWalker) object(parentKey string, depth int) (*node, error) {
	if depth > maxTreeDepth {
		return nil, fmt.Errorf("%w: the query is nested too deeply", ErrBadQuery)
	}
	w.pos++ // {
	o := &node{}
	for n := 0; ; n++ {
		w.ws()
		if w.pos >= len(w.b) {
			return nil, w.fail("unterminated object")
		}
		if w.b[w.pos] == '}' {
			w.pos++
			break
		}
		if n > 0 {
			if w.b[w.pos] != ',' {
				return nil, w.fail("expected , in an object")
			}
			w.pos++
			w.ws()
		}
		key, err := w.str()
		if err != nil {
			return nil, err
		}
		w.ws()
		if w.pos >= len(w.b) || w.b[w.pos] != ':' {
			return nil, w.fail("expected :")
		}
		w.pos++
		w.ws()
		if w.pos >= len(w.b) {
			return nil, w.fail("unexpected end")
		}
		switch c := w.b[w.pos]; {
		case c == '"':
			p := o.field(key)
			if p == nil {
				if err := w.skipString(); err != nil {
					return nil, err
				}
				continue
			}
			if *p, err = w.str(); err != nil {
				return nil, err
			}
			if key == "function_name" {
				o.hasFunctionName = true
			}
		case c == '{':
			child, err := w.object(key, depth+1)
			if err != nil {
				return nil, err
			}
			switch key {
			case "function":
				o.fn = child
			case "value":
				o.val = child
			}
		case c == '[':
			els, cnt, err := w.array(key, depth+1)
			if err != nil {
				return nil, err
			}
			if key == "children" {
				o.first, o.args, o.children = els[0], els, cnt
			}
		default:
			start := w.pos
			if err := w.literal(); err != nil {
				return nil, err
			}
			if key == "value" {
				o.num = w.b[start:w.pos]
			}
		}
	}
	return o, w.check(o, parentKey)
}

// field is where the string field key of o is kept; nil if no rule reads it.
func (o *node) field(key string) *string {
	switch key {
	case "class":
		return &o.class
	case "type":
		return &o.typ
	case "function_name":
		return &o.functionName
	case "schema":
		return &o.schema
	case "catalog":
		return &o.catalog
	case "table_name":
		return &o.tableName
	case "schema_name":
		return &o.schemaName
	case "catalog_name":
		return &o.catalogName
	case "value":
		return &o.value
	case "name":
		return &o.name
	}
	return nil
}

// check applies the rules to one object of the tree.
func (w *treeWalker) check(o *node, parentKey string) error {
	if o.hasFunctionName && parentKey != "function" {
		if err := w.checkFunction(o, false); err != nil {
			return err
		}
	}
	if o.fn != nil {
		// A TABLE_FUNCTION's call is a table function; a call under
		// "function" anywhere else is checked as a function.
		if err := w.checkFunction(o.fn, o.typ == "TABLE_FUNCTION"); err != nil {
			return err
		}
	} else if o.typ == "TABLE_FUNCTION" {
		return fmt.Errorf("a table function the sandbox cannot name is not allowed in a query: %w", ErrNotAllowed)
	}
	switch o.typ {
	case "BASE_TABLE":
		return w.checkTable(o)
	case "UNBOUND_TYPE_INFO":
		// A type the parser did not resolve: DuckDB's own (json,
		// geometry) or one an extension adds, which binding would try to
		// load.
		if !w.rules.builtin.types[strings.ToLower(o.name)] {
			return fmt.Errorf("type %s is not allowed in a query: only DuckDB's built-in types may be used: %w", o.name, ErrNotAllowed)
		}
	}
	return nil
}

// checkFunction allows a call by its name: a function (scalar, aggregate,
// window or macro) or, if table, a table function.
func (w *treeWalker) checkFunction(f *node, table bool) error {
	name := strings.ToLower(f.functionName)
	kind := "function"
	if table {
		kind = "table function"
	}
	if !f.hasFunctionName {
		return fmt.Errorf("a %s the sandbox cannot name is not allowed in a query: %w", kind, ErrNotAllowed)
	}
	switch strings.ToLower(f.schema) {
	case "", "main", "pg_catalog":
	default:
		return fmt.Errorf("%s %s.%s is not allowed in a query: only DuckDB's own functions may be called: %w", kind, f.schema, f.functionName, ErrNotAllowed)
	}
	switch c := strings.ToLower(f.catalog); {
	case c == "", c == "system", w.rules.catalogs[c]:
	default:
		return fmt.Errorf("%s %s.%s.%s is not allowed in a query: only DuckDB's own functions may be called: %w", kind, f.catalog, f.schema, f.functionName, ErrNotAllowed)
	}
	if !table {
		if w.names.functions.has(name) {
			return checkSize(name, f)
		}
		return fmt.Errorf("function %s is not allowed in a query: %w", f.functionName, ErrNotAllowed)
	}
	if w.names.tables.has(name) {
		return nil
	}
	if name == "read_parquet" && w.rules.scratchFile != "" && f.children == 1 && f.first != nil &&
		f.first.class == "CONSTANT" && f.first.val != nil && f.first.val.value == w.rules.scratchFile {
		return nil // the server's own snapshot file
	}
	return fmt.Errorf("table function %s is not allowed in a query: %w", f.functionName, ErrNotAllowed)
}

// checkTable allows a table reference that may be the tenant's own table
// (or a CTE): in an attached catalog, not named like a file (DuckDB reads
// a missing table whose name looks like a file through a replacement scan),
// not one of DuckDB's internal views outside "allow views".
func (w *treeWalker) checkTable(t *node) error {
	if t.catalogName != "" && !w.rules.catalogs[strings.ToLower(t.catalogName)] {
		return fmt.Errorf("table %s.%s is not allowed in a query: only the tenant's own tables may be read: %w", t.catalogName, t.tableName, ErrNotAllowed)
	}
	name := strings.ToLower(t.tableName)
	if strings.ContainsAny(name, `/\:.`) {
		return fmt.Errorf("table %q is not allowed in a query: it names a file or URL, and files cannot be read: %w", t.tableName, ErrNotAllowed)
	}
	if w.rules.builtin.views[name] && !w.names.views.has(name) {
		return fmt.Errorf("table %s is not allowed in a query: it is an internal view of DuckDB that shows server details: %w", t.tableName, ErrNotAllowed)
	}
	return nil
}
