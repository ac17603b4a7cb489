package query

import (
	"errors"
	"fmt"
	"reflect"
	"unsafe"

	bindings "github.com/duckdb/duckdb-go-bindings"
	duckdb "github.com/duckdb/duckdb-go/v2"
)

// duckdb-go v2.10505.0 runs every query with duckdb_pending_prepared, which
// materialises the whole result inside DuckDB before the first row, and it
// exports neither its C connection nor its C prepared statement. Streaming
// results (stream_exec.go) need both: the connection to interrupt a query
// (duckdb_interrupt), the prepared statement to execute it with
// duckdb_pending_prepared_streaming. They are read from the driver's
// unexported fields, whose names, types and offsets are checked once here;
// go.mod pins duckdb-go, and TestRawAccess fails if an upgrade moves them
// (rawErr then refuses every query instead of reading the wrong memory).

var (
	connField = rawField[duckdb.Conn, bindings.Connection]("conn")
	stmtField = rawField[duckdb.Stmt, *bindings.PreparedStatement]("preparedStmt")
	rawErr    = errors.Join(connField.err, stmtField.err)
)

// fieldAt is where a checked unexported field of S lives.
type fieldAt struct {
	off uintptr
	err error
}

// rawField finds S's field name and checks that its type is F.
func rawField[S, F any](name string) fieldAt {
	st := reflect.TypeFor[S]()
	f, ok := st.FieldByName(name)
	if !ok || len(f.Index) != 1 || f.Type != reflect.TypeFor[F]() {
		return fieldAt{err: fmt.Errorf("duckdb-go changed: %s has no field %s of type %s", st, name, reflect.TypeFor[F]())}
	}
	return fieldAt{off: f.Offset}
}

// rawConn is the C connection of a duckdb-go connection.
func rawConn(c *duckdb.Conn) (bindings.Connection, error) {
	if rawErr != nil {
		return bindings.Connection{}, rawErr
	}
	conn := *(*bindings.Connection)(unsafe.Add(unsafe.Pointer(c), connField.off))
	if conn.Ptr == nil {
		return conn, errors.New("the DuckDB connection is closed")
	}
	return conn, nil
}

// rawStmt is the C prepared statement of a duckdb-go statement.
func rawStmt(s *duckdb.Stmt) (bindings.PreparedStatement, error) {
	if rawErr != nil {
		return bindings.PreparedStatement{}, rawErr
	}
	p := *(**bindings.PreparedStatement)(unsafe.Add(unsafe.Pointer(s), stmtField.off))
	if p == nil || p.Ptr == nil {
		return bindings.PreparedStatement{}, errors.New("the DuckDB statement is closed")
	}
	return *p, nil
}
