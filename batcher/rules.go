package batcher

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"time"

	"go.uber.org/zap"

	"duckgate/schema"
	"duckgate/tenantdb"
)

// Errors of pinning, mapped to HTTP status by package api.
var (
	// ErrPinConflict means a column cannot take the type asked for: some
	// stored value does not convert to it exactly (409). Nothing changed.
	ErrPinConflict = errors.New("stored values do not convert to the pinned type")
	// ErrNotPinned means an unpin of a column that has no pin (404).
	ErrNotPinned = errors.New("the column is not pinned")
)

// The tables of the rules a tenant set on its tables, in its own database,
// written by its writer goroutine (so in the same order as the flushes
// they govern) and read by it when it learns a table's schema. Names are
// matched by schema.FoldName, kept in the *_key columns.
const (
	pinsTable   = "_duckgate_pins"
	frozenTable = "_duckgate_frozen"
)

const createRulesSQL = `CREATE TABLE IF NOT EXISTS ` + pinsTable + ` (table_key VARCHAR, column_key VARCHAR, table_name VARCHAR, column_name VARCHAR, type VARCHAR);
CREATE TABLE IF NOT EXISTS ` + frozenTable + ` (table_key VARCHAR, table_name VARCHAR)`

// loadRules reads the pins and the frozen flag of table. A database that
// never had a rule has neither table: no rules. It runs whenever a writer
// learns a table's schema, so it looks the tables up in
// information_schema.tables: duckdb_tables() made TestManyTenants (200
// tenants through a pool of 16) miss its 30 s shutdown, twice in two runs,
// where information_schema passed in 20-23 s like the code without the
// lookup.
func loadRules(ctx context.Context, q tenantdb.Querier, table string) (schema.Rules, error) {
	var r schema.Rules
	var n int
	if err := q.QueryRowContext(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_catalog = current_database()
		AND table_schema = 'main' AND table_name IN ('`+pinsTable+`', '`+frozenTable+`')`).Scan(&n); err != nil {
		return r, fmt.Errorf("read the rules of %s: %w", table, err)
	}
	if n < 2 {
		return r, nil
	}
	key := schema.FoldName(table)
	if err := q.QueryRowContext(ctx, `SELECT count(*) > 0 FROM `+frozenTable+` WHERE table_key = ?`, key).Scan(&r.Frozen); err != nil {
		return r, fmt.Errorf("read the rules of %s: %w", table, err)
	}
	rows, err := q.QueryContext(ctx, `SELECT column_name, type FROM `+pinsTable+` WHERE table_key = ?`, key)
	if err != nil {
		return r, fmt.Errorf("read the pins of %s: %w", table, err)
	}
	defer rows.Close()
	for rows.Next() {
		var col, typ string
		if err := rows.Scan(&col, &typ); err != nil {
			return r, fmt.Errorf("read the pins of %s: %w", table, err)
		}
		if t, ok := schema.ParseType(typ); ok {
			if r.Pins == nil {
				r.Pins = make(map[string]schema.Type)
			}
			r.Pins[col] = t
		}
	}
	return r, rows.Err()
}

// misfitKinds returns, per entry of seen, the kinds its pinned column
// accepts when the batch holds other kinds for it (0 for entries not to
// check), or nil when no pinned column gets a value it does not take: the
// common case costs nothing in appendRows.
func misfitKinds(tbl *schema.Table, seen []schema.Seen) []schema.Kind {
	if !tbl.HasPins() {
		return nil
	}
	var acc []schema.Kind
	for i, s := range seen {
		if _, pinned := tbl.Pinned(s.Key); !pinned {
			continue
		}
		ci, ok := tbl.Lookup(s.Key)
		if !ok {
			continue
		}
		a := schema.Accepts(tbl.Columns()[ci].Type)
		if s.Kinds&^a == 0 {
			continue
		}
		if acc == nil {
			acc = make([]schema.Kind, len(seen))
		}
		acc[i] = a
	}
	return acc
}

// PinResult is what a pin did.
type PinResult struct {
	Table  string `json:"table"`
	Column string `json:"column"`
	Type   string `json:"type"`
	// From is the column's type before, empty when the column does not
	// exist yet (it will be created with Type).
	From string `json:"from,omitempty"`
	// Altered is true when the column's type was changed to Type.
	Altered bool `json:"altered"`
}

// PinColumn pins table.column of tenant to typ: the column is converted
// now if it exists (ErrPinConflict when a stored value does not convert
// exactly) and keeps typ from then on; values that do not fit go to the
// quarantine. The table and column need not exist yet.
func (b *Batcher) PinColumn(ctx context.Context, tenant, table, column string, typ schema.Type) (PinResult, error) {
	var res PinResult
	err := b.do(ctx, tenant, func(ctx context.Context, w *writer) error {
		return w.inTx(ctx, table, func(conn *sql.Conn) error {
			var err error
			res, err = w.pin(ctx, conn, table, column, typ)
			return err
		})
	})
	return res, err
}

// UnpinColumn removes the pin of table.column: the column widens again as
// values require. ErrNotPinned if it had none.
func (b *Batcher) UnpinColumn(ctx context.Context, tenant, table, column string) error {
	return b.do(ctx, tenant, func(ctx context.Context, w *writer) error {
		return w.inTx(ctx, table, func(conn *sql.Conn) error {
			res, err := conn.ExecContext(ctx, `DELETE FROM `+pinsTable+` WHERE table_key = ? AND column_key = ?`, schema.FoldName(table), schema.FoldName(column))
			if err != nil {
				return fmt.Errorf("unpin %s.%s: %w", table, column, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return fmt.Errorf("%w: %s.%s", ErrNotPinned, table, column)
			}
			return nil
		})
	})
}

// SetFrozen freezes or unfreezes table: a frozen table gets no new column
// but pinned ones; other new keys go to its _overflow column.
func (b *Batcher) SetFrozen(ctx context.Context, tenant, table string, frozen bool) error {
	return b.do(ctx, tenant, func(ctx context.Context, w *writer) error {
		return w.inTx(ctx, table, func(conn *sql.Conn) error {
			key := schema.FoldName(table)
			if _, err := conn.ExecContext(ctx, `DELETE FROM `+frozenTable+` WHERE table_key = ?`, key); err != nil {
				return fmt.Errorf("freeze %s: %w", table, err)
			}
			if frozen {
				if _, err := conn.ExecContext(ctx, `INSERT INTO `+frozenTable+` VALUES (?, ?)`, key, table); err != nil {
					return fmt.Errorf("freeze %s: %w", table, err)
				}
			}
			return nil
		})
	})
}

// TableRules returns the pins and frozen flag of a tenant's table.
func (b *Batcher) TableRules(ctx context.Context, tenant, table string) (schema.Rules, error) {
	if _, err := os.Stat(b.pool.Path(tenant)); errors.Is(err, os.ErrNotExist) {
		return schema.Rules{}, nil
	}
	h, err := b.pool.Acquire(ctx, tenant)
	if err != nil {
		return schema.Rules{}, err
	}
	defer h.Release()
	return loadRules(ctx, h.DB, table)
}

// inTx runs fn in one transaction on the tenant's database, with the rules
// tables created, and forgets the cached schema of table, whose rules
// change. It runs on the writer goroutine.
func (w *writer) inTx(ctx context.Context, table string, fn func(*sql.Conn) error) error {
	return w.withConn(ctx, func(conn *sql.Conn) (err error) {
		if _, err := conn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		defer endTx(ctx, conn, &err)
		for name := range w.schemas {
			if schema.FoldName(name) == schema.FoldName(table) {
				delete(w.schemas, name)
			}
		}
		if _, err := conn.ExecContext(ctx, createRulesSQL); err != nil {
			return fmt.Errorf("create rules tables: %w", err)
		}
		return fn(conn)
	})
}

// pin converts the column if it exists and records the pin, inside the
// caller's transaction.
func (w *writer) pin(ctx context.Context, conn *sql.Conn, table, column string, typ schema.Type) (PinResult, error) {
	res := PinResult{Table: table, Column: column, Type: typ.String()}
	// The table as created, if it was spelled in another ASCII case.
	var created string
	err := conn.QueryRowContext(ctx, `SELECT coalesce(any_value(table_name), ?) FROM duckdb_tables() WHERE database_name = current_database()
		AND schema_name = 'main' AND lower(table_name) = lower(?)`, table, table).Scan(&created)
	if err != nil {
		return res, fmt.Errorf("pin %s.%s: %w", table, column, err)
	}
	table = created
	cols, err := tenantdb.Columns(ctx, conn, table)
	if err != nil {
		return res, err
	}
	for _, c := range cols {
		if schema.FoldName(c.Name) != schema.FoldName(column) {
			continue
		}
		res.Column = c.Name
		from, ok := schema.ParseType(c.Type)
		if !ok {
			from = schema.TypeVarchar
		}
		res.From = from.String()
		if from == typ {
			break
		}
		if err := checkConvert(ctx, conn, table, c.Name, from, typ); err != nil {
			return res, err
		}
		ddl := schema.Change{Op: schema.OpAlterType, Column: c.Name, From: from, To: typ}.SQL(table)
		if _, err := conn.ExecContext(ctx, ddl); err != nil {
			return res, fmt.Errorf("%w: %s: %v", ErrPinConflict, ddl, err)
		}
		res.Altered = true
		w.b.schemaLog.note(w.tenant, table, []string{ddl}, time.Now())
		w.log.Info("column pinned and converted", zap.String("table", table), zap.String("ddl", ddl))
		break
	}
	if _, err := conn.ExecContext(ctx, `DELETE FROM `+pinsTable+` WHERE table_key = ? AND column_key = ?`, schema.FoldName(table), schema.FoldName(column)); err != nil {
		return res, fmt.Errorf("pin %s.%s: %w", table, column, err)
	}
	if _, err := conn.ExecContext(ctx, `INSERT INTO `+pinsTable+` VALUES (?, ?, ?, ?, ?)`,
		schema.FoldName(table), schema.FoldName(column), table, res.Column, typ.String()); err != nil {
		return res, fmt.Errorf("pin %s.%s: %w", table, column, err)
	}
	return res, nil
}

// Patterns of text that converts exactly: the spellings ingest itself
// gives these types (a JSON integer, a JSON number, an RFC 3339 timestamp
// to the microsecond).
const (
	intPattern       = `-?(0|[1-9][0-9]*)`
	numberPattern    = `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
	timestampPattern = `[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?([Zz]|[+-][0-9]{2}:[0-9]{2})`
)

// badValueSQL is a condition true for a non-null value of column c (quoted)
// of type from that does not convert exactly to to, "" when every value
// does. From text, the value must be spelled as ingest would have typed it;
// from any other type, it must convert and convert back to itself (1.5 does
// not pin to BIGINT: DuckDB would round it to 2).
func badValueSQL(c string, from, to schema.Type) string {
	switch {
	case to == schema.TypeVarchar, to == schema.TypeJSON && from != schema.TypeVarchar:
		return ""
	case from != schema.TypeVarchar:
		return fmt.Sprintf("TRY_CAST(%s AS %s) IS NULL OR TRY_CAST(TRY_CAST(%s AS %s) AS %s) IS DISTINCT FROM %s", c, to, c, to, from, c)
	}
	switch to {
	case schema.TypeJSON:
		return fmt.Sprintf("TRY_CAST(%s AS JSON) IS NULL", c)
	case schema.TypeBoolean:
		return fmt.Sprintf("%s NOT IN ('true', 'false')", c)
	case schema.TypeBigInt, schema.TypeHugeInt:
		return fmt.Sprintf("NOT regexp_full_match(%s, '%s') OR TRY_CAST(%s AS %s) IS NULL", c, intPattern, c, to)
	case schema.TypeDouble:
		return fmt.Sprintf("NOT regexp_full_match(%s, '%s') OR TRY_CAST(%s AS DOUBLE) IS NULL OR isinf(TRY_CAST(%s AS DOUBLE))", c, numberPattern, c, c)
	case schema.TypeTimestamptz:
		return fmt.Sprintf("NOT regexp_full_match(%s, '%s') OR TRY_CAST(%s AS TIMESTAMPTZ) IS NULL", c, timestampPattern, c)
	}
	return "true"
}

// checkConvert returns ErrPinConflict, with a count and an example, when a
// stored value of table.column does not convert exactly from from to to.
func checkConvert(ctx context.Context, conn *sql.Conn, table, column string, from, to schema.Type) error {
	c := schema.QuoteIdent(column)
	bad := badValueSQL(c, from, to)
	if bad == "" {
		return nil
	}
	var n int64
	var example sql.NullString
	q := fmt.Sprintf("SELECT count(*), any_value(CAST(%s AS VARCHAR)) FROM %s WHERE %s IS NOT NULL AND (%s)", c, schema.QuoteIdent(table), c, bad)
	if err := conn.QueryRowContext(ctx, q).Scan(&n, &example); err != nil {
		if ctx.Err() != nil {
			return err
		}
		return fmt.Errorf("%w: DuckDB cannot convert %s to %s: %v", ErrPinConflict, from, to, err)
	}
	if n > 0 {
		ex := example.String
		if len(ex) > 64 {
			ex = ex[:64] + "…"
		}
		return fmt.Errorf("%w: %d stored values of %s.%s (%s) do not convert exactly to %s, for example %q; discard or fix them, or pin a wider type",
			ErrPinConflict, n, table, column, from, to, ex)
	}
	return nil
}

// hasTable reports whether the tenant's database has table name.
func hasTable(ctx context.Context, q tenantdb.Querier, name string) (bool, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_catalog = current_database()
		AND table_schema = 'main' AND table_name = ?`, name).Scan(&n)
	return n > 0, err
}

// PinnableTypes lists the type names PinColumn takes, for messages.
const PinnableTypes = "BOOLEAN, BIGINT, HUGEINT, DOUBLE, TIMESTAMPTZ, VARCHAR, JSON"
