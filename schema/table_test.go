package schema

import (
	"slices"
	"testing"
)

// checkPlan runs Plan on a table with columns have and checks its changes, overflow and resulting columns.
func checkPlan(t *testing.T, have []Column, seen []Seen, maxColumns int, wantChanges []Change, wantOverflow []int, wantCols []Column) *Table {
	t.Helper()
	tbl := NewTable(have)
	changes, overflow := tbl.Plan(seen, maxColumns)
	if !slices.Equal(changes, wantChanges) {
		t.Fatalf("Plan(%v) changes = %v; want %v", seen, changes, wantChanges)
	}
	if !slices.Equal(overflow, wantOverflow) {
		t.Fatalf("Plan(%v) overflow = %v; want %v", seen, overflow, wantOverflow)
	}
	if !slices.Equal(tbl.Columns(), wantCols) {
		t.Fatalf("Plan(%v) columns = %v; want %v", seen, tbl.Columns(), wantCols)
	}
	if tbl.Len() != len(wantCols) {
		t.Fatalf("Len() = %d; want %d", tbl.Len(), len(wantCols))
	}
	for i, c := range wantCols {
		if j, ok := tbl.Lookup(c.Name); !ok || j != i {
			t.Fatalf("Lookup(%q) = %d, %v; want %d", c.Name, j, ok, i)
		}
	}
	// A second Plan of the same batch has nothing left to do.
	if changes, _ := tbl.Plan(seen, maxColumns); len(changes) != 0 {
		t.Fatalf("second Plan(%v) changes = %v; want none", seen, changes)
	}
	return tbl
}

func add(name string, to Type) Change { return Change{Op: OpAddColumn, Column: name, To: to} }
func alter(name string, from, to Type) Change {
	return Change{Op: OpAlterType, Column: name, From: from, To: to}
}

func TestPlanNewTable(t *testing.T) {
	seen := []Seen{{"ts", KindTimestamp}, {"n", KindInt}, {"gone", 0}, {"msg", KindString}, {"tags", KindJSON}, {"ok", KindBool}, {"x", KindInt | KindFloat}}
	want := []Column{{"ts", TypeTimestamptz}, {"n", TypeBigInt}, {"msg", TypeVarchar}, {"tags", TypeJSON}, {"ok", TypeBoolean}, {"x", TypeDouble}}
	tbl := checkPlan(t, nil, seen, 100,
		[]Change{add("ts", TypeTimestamptz), add("n", TypeBigInt), add("msg", TypeVarchar), add("tags", TypeJSON), add("ok", TypeBoolean), add("x", TypeDouble)},
		nil, want)
	got := CreateSQL("events", tbl.Columns())
	const wantSQL = `CREATE TABLE IF NOT EXISTS "events" ("ts" TIMESTAMPTZ, "n" BIGINT, "msg" VARCHAR, "tags" JSON, "ok" BOOLEAN, "x" DOUBLE)`
	if got != wantSQL {
		t.Fatalf("CreateSQL = %s\nwant %s", got, wantSQL)
	}
	if _, ok := tbl.Lookup("gone"); ok {
		t.Fatal("a nulls-only key made a column")
	}
}

func TestPlanZeroTable(t *testing.T) {
	var tbl Table
	changes, overflow := tbl.Plan([]Seen{{"a", KindInt}, {"", KindInt}}, 10)
	want := []Change{add("a", TypeBigInt), add(OverflowColumn, TypeJSON)}
	if !slices.Equal(changes, want) || !slices.Equal(overflow, []int{1}) {
		t.Fatalf("Plan on a zero Table = %v, %v; want %v, [1]", changes, overflow, want)
	}
}

func TestPlanWidens(t *testing.T) {
	have := []Column{{"a", TypeBigInt}, {"b", TypeBoolean}, {"t", TypeTimestamptz}, {"j", TypeJSON}, {"v", TypeVarchar}, {"d", TypeDouble}}
	seen := []Seen{{"b", KindInt}, {"a", KindFloat}, {"j", KindInt}, {"t", KindTimestamp}, {"v", KindJSON}, {"d", KindJSON}, {"new", KindHugeInt}}
	checkPlan(t, have, seen, 100,
		[]Change{alter("b", TypeBoolean, TypeVarchar), alter("a", TypeBigInt, TypeDouble), alter("d", TypeDouble, TypeVarchar), add("new", TypeHugeInt)},
		nil,
		[]Column{{"a", TypeDouble}, {"b", TypeVarchar}, {"t", TypeTimestamptz}, {"j", TypeJSON}, {"v", TypeVarchar}, {"d", TypeVarchar}, {"new", TypeHugeInt}})
}

func TestPlanCaseCollisionInBatch(t *testing.T) {
	// Kinds are merged before the type is chosen: int and string make one VARCHAR column,
	// not a BIGINT column and then an ALTER.
	seen := []Seen{{"Key", KindInt}, {"other", KindBool}, {"KEY", KindString}, {"key", 0}}
	checkPlan(t, nil, seen, 100,
		[]Change{add("Key", TypeVarchar), add("other", TypeBoolean)},
		nil,
		[]Column{{"Key", TypeVarchar}, {"other", TypeBoolean}})

	// A nulls-only spelling does not name the column.
	checkPlan(t, nil, []Seen{{"KEY", 0}, {"Key", KindInt}},
		100, []Change{add("Key", TypeBigInt)}, nil, []Column{{"Key", TypeBigInt}})

	// DuckDB folds ASCII only: these are two columns.
	checkPlan(t, nil, []Seen{{"é", KindInt}, {"É", KindInt}},
		100, []Change{add("é", TypeBigInt), add("É", TypeBigInt)}, nil, []Column{{"é", TypeBigInt}, {"É", TypeBigInt}})
}

func TestPlanCaseCollisionWithTable(t *testing.T) {
	have := []Column{{"UserID", TypeBigInt}}
	tbl := checkPlan(t, have, []Seen{{"userid", KindString}, {"USERID", KindInt}},
		100, []Change{alter("UserID", TypeBigInt, TypeVarchar)}, nil, []Column{{"UserID", TypeVarchar}})
	if i, ok := tbl.Lookup("uSeRiD"); !ok || i != 0 {
		t.Fatalf("Lookup(uSeRiD) = %d, %v", i, ok)
	}
	if got := (Change{Op: OpAlterType, Column: "UserID", From: TypeBigInt, To: TypeVarchar}).SQL("events"); got != `ALTER TABLE "events" ALTER COLUMN "UserID" TYPE VARCHAR` {
		t.Fatalf("SQL = %s", got)
	}
}

func TestPlanInvalidKeys(t *testing.T) {
	seen := []Seen{
		{"", KindInt},
		{"ok", KindInt},
		{"a\x00b", KindString},
		{"_OVERFLOW", KindInt},
		{"bad\xff", 0}, // nulls only: not overflow
		{"bad\xff2", KindBool},
		{"_overflow", KindJSON},
	}
	checkPlan(t, nil, seen, 100,
		[]Change{add("ok", TypeBigInt), add(OverflowColumn, TypeJSON)},
		[]int{0, 2, 3, 5, 6},
		[]Column{{"ok", TypeBigInt}, {OverflowColumn, TypeJSON}})
}

func TestPlanColumnCap(t *testing.T) {
	have := []Column{{"a", TypeBigInt}, {"b", TypeBigInt}}
	seen := []Seen{{"a", KindFloat}, {"x", KindInt}, {"y", KindInt}, {"z", 0}, {"w", KindBool}, {"Y", KindString}, {"b", KindInt}}
	tbl := checkPlan(t, have, seen, 3,
		[]Change{alter("a", TypeBigInt, TypeDouble), add("x", TypeBigInt), add(OverflowColumn, TypeJSON)},
		[]int{2, 4, 5},
		[]Column{{"a", TypeDouble}, {"b", TypeBigInt}, {"x", TypeBigInt}, {OverflowColumn, TypeJSON}})

	// The overflow column is added once and does not count against the cap.
	changes, overflow := tbl.Plan([]Seen{{"q", KindInt}, {"x", KindFloat}}, 3)
	if want := []Change{alter("x", TypeBigInt, TypeDouble)}; !slices.Equal(changes, want) || !slices.Equal(overflow, []int{0}) {
		t.Fatalf("Plan past the cap = %v, %v; want %v, [0]", changes, overflow, want)
	}
	changes, overflow = tbl.Plan([]Seen{{"q", KindInt}}, 4)
	if want := []Change{add("q", TypeBigInt)}; !slices.Equal(changes, want) || overflow != nil {
		t.Fatalf("Plan under a raised cap = %v, %v; want %v, []", changes, overflow, want)
	}

	// maxColumns <= 0: no cap.
	checkPlan(t, have, []Seen{{"c", KindInt}}, 0, []Change{add("c", TypeBigInt)}, nil,
		[]Column{{"a", TypeBigInt}, {"b", TypeBigInt}, {"c", TypeBigInt}})
}

func TestChangeSQL(t *testing.T) {
	f := func(c Change, table, want string) {
		t.Helper()
		if got := c.SQL(table); got != want {
			t.Fatalf("%+v.SQL(%q) = %s\nwant %s", c, table, got, want)
		}
	}
	f(add("c", TypeBigInt), "t", `ALTER TABLE "t" ADD COLUMN "c" BIGINT`)
	f(add(OverflowColumn, TypeJSON), "t", `ALTER TABLE "t" ADD COLUMN "_overflow" JSON`)
	f(add("ts", TypeTimestamptz), "t", `ALTER TABLE "t" ADD COLUMN "ts" TIMESTAMPTZ`)
	f(alter("c", TypeBigInt, TypeVarchar), "t", `ALTER TABLE "t" ALTER COLUMN "c" TYPE VARCHAR`)
	f(Change{Op: 9, Column: "c", To: TypeBigInt}, "t", "")

	// Hostile names stay inside their quotes.
	tbl := NewTable([]Column{{"id", TypeBigInt}})
	changes, _ := tbl.Plan([]Seen{{`a"; DROP TABLE events; --`, KindString}}, 10)
	if len(changes) != 1 {
		t.Fatalf("changes = %v", changes)
	}
	f(changes[0], "events", `ALTER TABLE "events" ADD COLUMN "a""; DROP TABLE events; --" VARCHAR`)
	f(alter(`x"y`, TypeBigInt, TypeDouble), `e"v`, `ALTER TABLE "e""v" ALTER COLUMN "x""y" TYPE DOUBLE`)
	if got, want := CreateSQL(`e"v`, []Column{{`a"b`, TypeJSON}}), `CREATE TABLE IF NOT EXISTS "e""v" ("a""b" JSON)`; got != want {
		t.Fatalf("CreateSQL = %s; want %s", got, want)
	}
}

func TestNewTableCopies(t *testing.T) {
	cols := []Column{{"a", TypeBigInt}, {"A", TypeVarchar}}
	tbl := NewTable(cols)
	cols[0].Type = TypeJSON
	if tbl.Columns()[0].Type != TypeBigInt {
		t.Fatal("NewTable shares its argument")
	}
	if i, ok := tbl.Lookup("A"); !ok || i != 0 {
		t.Fatalf("Lookup(A) = %d, %v; want the first of the colliding columns", i, ok)
	}
	if _, ok := tbl.Lookup("b"); ok {
		t.Fatal("Lookup(b) found a column")
	}
}

func TestOpString(t *testing.T) {
	if OpAddColumn.String() != "add column" || OpAlterType.String() != "alter type" || Op(7).String() != "Op(7)" {
		t.Fatalf("Op.String: %q %q %q", OpAddColumn, OpAlterType, Op(7))
	}
}
