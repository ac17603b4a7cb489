package query

import (
	"context"
	"database/sql"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// The sandbox decides what a tenant's SQL may do from DuckDB's own parse
// tree, never from the text. checkSQL, in order:
//
//  1. checkText: not empty, no NUL byte (C strings end there, so DuckDB
//     would see less than was sent), at most Config.MaxSQLBytes.
//  2. DuckDB parses the text on the tenant's sandboxed connection with
//     json_serialize_sql, which parses and binds nothing. It serializes
//     SELECT statements only: anything else, or a parse error, is refused
//     before DuckDB binds it (a non-SELECT is then prepared, as before, only
//     to name its type in the error; preparing binds, nothing runs).
//  3. The tree must hold exactly one statement. treeWalker (sandbox_tree.go)
//     visits every node:
//     each function, aggregate, window function and macro must be under
//     "allow functions" of sandbox_names.txt; each table function under
//     "allow table functions"; a table name must not look like a file (a
//     replacement scan would read it) and must not be one of DuckDB's
//     internal views unless under "allow views"; a type DuckDB does not
//     know (one an extension would add) is refused; a table may be
//     qualified only with a catalog attached to the connection (the
//     tenant's own database; the operator query's snapshots), a function
//     also with "system".
//  4. The statement is prepared: its type must be SELECT (some statements
//     DuckDB types as SELECT, such as PRAGMA table_info, are not SELECTs in
//     the tree and were refused in 2).
//
// It then runs in a read-only transaction on a database opened with
// enable_external_access=false, lock_configuration=true and
// allowed_directories set to the tenant's scratch directory (tenantdb).
//
// Tenants cannot create views or macros (the transaction is read-only), so
// the tree that is checked is what runs; DuckDB's own macros and views are
// judged by name, by what their definitions do.

//go:embed sandbox_names.txt
var sandboxNamesText string

// allowList is the parsed sandbox_names.txt. Names are lower case.
type allowList struct {
	functions, tables, views      nameSet
	deniedFunctions, deniedTables nameSet
}

// nameSet holds names and name prefixes (entries that end in "_*").
type nameSet struct {
	names    map[string]bool
	prefixes []string
}

func (s nameSet) has(name string) bool {
	if s.names[name] {
		return true
	}
	for _, p := range s.prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

var sandboxNames = sync.OnceValue(func() *allowList {
	l, err := parseAllowList(sandboxNamesText)
	if err != nil {
		panic("query: sandbox_names.txt: " + err.Error())
	}
	return l
})

func parseAllowList(text string) (*allowList, error) {
	l := &allowList{}
	sections := map[string]*nameSet{
		"allow functions":       &l.functions,
		"allow table functions": &l.tables,
		"allow views":           &l.views,
		"deny functions":        &l.deniedFunctions,
		"deny table functions":  &l.deniedTables,
	}
	for _, s := range sections {
		s.names = make(map[string]bool)
	}
	var cur *nameSet
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			if cur = sections[line[1:len(line)-1]]; cur == nil {
				return nil, fmt.Errorf("line %d: unknown section %s", n+1, line)
			}
			continue
		}
		if cur == nil {
			return nil, fmt.Errorf("line %d: names before the first section", n+1)
		}
		for _, name := range strings.Fields(line) {
			name = strings.ToLower(name)
			// A prefix ends in "_*": operators such as "*" and "~~*" are names.
			if strings.HasSuffix(name, "_*") {
				cur.prefixes = append(cur.prefixes, strings.TrimSuffix(name, "*"))
			} else {
				cur.names[name] = true
			}
		}
	}
	return l, nil
}

// checkText refuses SQL text that is empty, holds a NUL byte or is longer
// than max, before DuckDB sees it.
func checkText(q string, max int) error {
	if max > 0 && len(q) > max {
		return fmt.Errorf("%w: the query text is %d bytes, the limit is %d", ErrSQLTooLarge, len(q), max)
	}
	if i := strings.IndexByte(q, 0); i >= 0 {
		return fmt.Errorf("%w: the query text holds a NUL byte at offset %d", ErrBadRequest, i)
	}
	if strings.TrimSpace(q) == "" {
		return fmt.Errorf("%w: empty query", ErrBadRequest)
	}
	return nil
}

// sandboxRules are what a check allows besides the allow-list.
type sandboxRules struct {
	// catalogs are the databases attached to the connection, lower case:
	// for a tenant its own database (named by its id), for the operator
	// query the tenants' snapshots. Tables may be qualified with no other.
	catalogs map[string]bool
	// scratchFile, if set, is the one path read_parquet may read (a share
	// snapshot of the tenant's scratch directory, named by the server).
	scratchFile string
	// builtin are DuckDB's internal views and types (builtinNames).
	builtin *builtinNames
}

// builtinNames are names DuckDB's catalog holds before a tenant creates
// anything, lower case.
type builtinNames struct {
	// views are DuckDB's internal views: duckdb_tables,
	// pragma_database_list, pg_settings, information_schema.tables, ...
	views map[string]bool
	// types are the types DuckDB knows without loading an extension (a
	// type it does not know names an extension DuckDB would try to load).
	types map[string]bool
}

var builtinCache struct {
	mu    sync.Mutex
	names *builtinNames // guarded by mu; nil until loaded
}

// builtin returns DuckDB's internal views and types. They are the same for
// every database of one DuckDB build (tenants cannot create views or
// types), so they are read once.
func builtin(ctx context.Context, conn *sql.Conn) (*builtinNames, error) {
	c := &builtinCache
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.names != nil {
		return c.names, nil
	}
	list := func(what, q string) (map[string]bool, error) {
		rows, err := conn.QueryContext(ctx, q)
		if err != nil {
			return nil, wrapRunError(ctx, fmt.Errorf("list DuckDB's %s: %w", what, err))
		}
		defer rows.Close()
		m := make(map[string]bool)
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				return nil, fmt.Errorf("list DuckDB's %s: %w", what, err)
			}
			m[v] = true
		}
		if err := rows.Err(); err != nil {
			return nil, wrapRunError(ctx, fmt.Errorf("list DuckDB's %s: %w", what, err))
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("list DuckDB's %s: none found", what)
		}
		return m, nil
	}
	views, err := list("internal views", "SELECT DISTINCT lower(view_name) FROM duckdb_views() WHERE internal")
	if err != nil {
		return nil, err
	}
	types, err := list("types", "SELECT DISTINCT lower(type_name) FROM duckdb_types() WHERE internal")
	if err != nil {
		return nil, err
	}
	c.names = &builtinNames{views: views, types: types}
	return c.names, nil
}

// parseTree has DuckDB parse q on conn and returns json_serialize_sql's
// result and the databases q may name (lower case): the connection's own
// and attached, which the caller knows (reading them from
// duckdb_databases() cost 0.5 ms a query). It binds nothing of q.
func parseTree(ctx context.Context, conn *sql.Conn, q string, attached []string) (tree string, catalogs map[string]bool, err error) {
	var current string
	err = conn.QueryRowContext(ctx,
		"SELECT json_serialize_sql(?::VARCHAR, skip_empty := true, skip_null := true)::VARCHAR, lower(current_database())", q).
		Scan(&tree, &current)
	if err != nil {
		return "", nil, wrapRunError(ctx, fmt.Errorf("parse the query: %w", err))
	}
	catalogs = make(map[string]bool, 1+len(attached))
	catalogs[current] = true
	for _, c := range attached {
		catalogs[strings.ToLower(c)] = true
	}
	return tree, catalogs, nil
}

// errNotSerializable is json_serialize_sql's answer for a statement that
// is not a SELECT.
const errNotSerializable = "Only SELECT statements can be serialized"

// checkSQL is the sandbox check of a tenant's SQL on the tenant's
// connection (see the comment at the top of this file). If the statement
// passes, inspect (when not nil) gets the prepared statement before it is
// closed, and its error is returned. scratchFile is sandboxRules.scratchFile.
func checkSQL(ctx context.Context, conn *sql.Conn, q, scratchFile string, attached []string, inspect func(*duckdb.Stmt) error) error {
	names, err := builtin(ctx, conn)
	if err != nil {
		return err
	}
	tree, catalogs, err := parseTree(ctx, conn, q, attached)
	if err != nil {
		return err
	}
	if err := checkTree(tree, sandboxRules{catalogs: catalogs, scratchFile: scratchFile, builtin: names}); err != nil {
		if errors.Is(err, errNotSelect) {
			return nameNotSelect(conn, q)
		}
		return err
	}
	return checkOneInspect(conn, q, duckdb.STATEMENT_TYPE_SELECT, inspect)
}

// errNotSelect is checkTree's error for text holding a statement that is
// not a SELECT; checkSQL prepares it to name its type.
var errNotSelect = fmt.Errorf("the statement is not a SELECT: %w", ErrNotReadOnly)

// nameNotSelect returns the error for text json_serialize_sql refused as
// not a SELECT: more than one statement, or one statement of another type
// (prepared, not run, to name the type). A statement DuckDB prepares as a
// SELECT that is not a plain SELECT in the tree (PRAGMA table_info, PIVOT
// without an IN list) is refused too: the allow-list cannot see into it.
//
// DuckDB's error of binding such a statement is not shown: the text parsed,
// so it is a binder's error of a statement that will not run anyway, and
// some name server paths (CREATE SECRET names the secret directory).
func nameNotSelect(conn *sql.Conn, q string) error {
	err := checkOne(conn, q, duckdb.STATEMENT_TYPE_SELECT)
	if errors.Is(err, ErrBadQuery) {
		return errNotSelect
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("this statement is not a plain SELECT the sandbox can check (a PRAGMA, or a PIVOT without an IN list): "+
		"write it as a SELECT (select * from pragma_table_info('t'); PIVOT ... ON c IN ('a', 'b')): %w", ErrNotAllowed)
}

// checkTree applies the sandbox's rules to the output of
// json_serialize_sql. It returns errNotSelect if DuckDB would not
// serialize the text because a statement is not a SELECT.
func checkTree(tree string, rules sandboxRules) error {
	var head struct {
		Error        bool   `json:"error"`
		ErrorType    string `json:"error_type"`
		ErrorMessage string `json:"error_message"`
	}
	// The head is small; decode only it when DuckDB reports an error.
	if strings.HasPrefix(tree, `{"error":true`) {
		if err := json.Unmarshal([]byte(tree), &head); err != nil {
			return fmt.Errorf("read DuckDB's parse tree: %w", err)
		}
		if strings.Contains(head.ErrorMessage, errNotSerializable) {
			return errNotSelect
		}
		return fmt.Errorf("%w: %s", ErrBadQuery, head.ErrorMessage)
	}
	w := treeWalker{b: tree, rules: rules, names: sandboxNames()}
	return w.walk()
}

// parserDB is an in-memory DuckDB, sandboxed as tenants' databases are,
// that checks SQL without a tenant's database: the stored SQL of share
// links at start. It lives as long as the process.
var parserDB = sync.OnceValues(func() (*sql.DB, error) {
	db, err := sql.Open("duckdb", "?enable_external_access=false&autoinstall_known_extensions=false&autoload_known_extensions=false&lock_configuration=true")
	if err != nil {
		return nil, fmt.Errorf("open the parser database: %w", err)
	}
	db.SetMaxOpenConns(2)
	return db, nil
})

// CheckStored applies the parts of the sandbox check that need no tenant
// data to req.SQL, on a private in-memory database: the text limits and
// the allow-list on DuckDB's parse tree, as tenantID's query. It cannot
// tell an unknown table or a wrong number of params (Check does). It
// returns the errors of Check: ErrNotAllowed, ErrNotReadOnly (a statement
// that is not a SELECT), ErrMultipleStatements, ErrSQLTooLarge,
// ErrBadRequest, ErrBadQuery (a syntax error) or ErrTimeout. Share links
// use it at start to mark stored links the sandbox refuses now.
func (e *Engine) CheckStored(ctx context.Context, tenantID string, req Request) error {
	if err := checkText(req.SQL, e.cfg.MaxSQLBytes); err != nil {
		return err
	}
	db, err := parserDB()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, e.timeoutOf(req))
	defer cancel()
	conn, err := db.Conn(ctx)
	if err != nil {
		return wrapRunError(ctx, fmt.Errorf("connect to the parser database: %w", err))
	}
	defer conn.Close()
	names, err := builtin(ctx, conn)
	if err != nil {
		return err
	}
	tree, _, err := parseTree(ctx, conn, req.SQL, nil)
	if err != nil {
		return err
	}
	err = checkTree(tree, sandboxRules{catalogs: map[string]bool{strings.ToLower(tenantID): true}, scratchFile: req.ScratchFile, builtin: names})
	if !errors.Is(err, errNotSelect) {
		return err
	}
	// Preparing on an empty database names the statement's type when it
	// binds, and tells several statements from one (nothing runs).
	return nameNotSelect(conn, req.SQL)
}
