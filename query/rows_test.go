package query

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"testing"
	"time"
)

// readAll reads every row of r as a copy of its values.
func readAll(t *testing.T, r *Rows) [][]any {
	t.Helper()
	defer r.Close()
	var out [][]any
	for r.Next() {
		out = append(out, append([]any(nil), r.Values()...))
	}
	if err := r.Err(); err != nil {
		t.Fatalf("Err: %v", err)
	}
	return out
}

func TestRowsTypedValues(t *testing.T) {
	env := newEnv(t, Config{}, nil)
	seed(t, env, "t1")
	r, err := env.engine.Rows(context.Background(), "t1", Request{
		SQL:    "select i, h, d, b, s, ts, j, DATE '2024-02-29' as dt, [1, 2] as l, 1 as dup, 2 as dup from events where i > ? order by i",
		Params: []any{int64(0)},
	})
	if err != nil {
		t.Fatal(err)
	}
	cols := fmt.Sprint(r.Columns())
	want := "[{i BIGINT} {h HUGEINT} {d DOUBLE} {b BOOLEAN} {s VARCHAR} {ts TIMESTAMPTZ} {j JSON} {dt DATE} {l INTEGER[]} {dup INTEGER} {dup INTEGER}]"
	if cols != want {
		t.Fatalf("columns\ngot  %s\nwant %s", cols, want)
	}
	rows := readAll(t, r)
	if len(rows) != 1 {
		t.Fatalf("%d rows", len(rows))
	}
	v := rows[0]
	h, _ := new(big.Int).SetString("170141183460469231731687303715884105727", 10)
	if v[0] != int64(9223372036854775807) || v[1].(*big.Int).Cmp(h) != 0 || v[2] != 1.5 || v[3] != true {
		t.Fatalf("numbers %#v", v[:4])
	}
	if s, ok := v[4].(string); !ok || s != "héllo \"wörld\", 日本\n\tend" {
		t.Fatalf("string %#v", v[4])
	}
	if ts, ok := v[5].(time.Time); !ok || !ts.Equal(time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC)) {
		t.Fatalf("timestamptz %#v", v[5])
	}
	if v[6] != `{"a":[1,2,{"b":null}],"c":"x"}` {
		t.Fatalf("json text %#v", v[6])
	}
	if dt, ok := v[7].(time.Time); !ok || dt.Format(time.DateOnly) != "2024-02-29" {
		t.Fatalf("date %#v", v[7])
	}
	if fmt.Sprint(v[8]) != "[1 2]" || v[9] != int32(1) || v[10] != int32(2) {
		t.Fatalf("list and dup %#v", v[8:])
	}

	// NULLs are nil; an empty result has its columns and no row.
	rows = readAll(t, mustRows(t, env, "select i, s from events where i is null"))
	if fmt.Sprint(rows) != "[[<nil> <nil>]]" {
		t.Fatalf("nulls %v", rows)
	}
	r = mustRows(t, env, "select i from events where false")
	if fmt.Sprint(r.Columns()) != "[{i BIGINT}]" || len(readAll(t, r)) != 0 {
		t.Fatal("empty result")
	}
}

func mustRows(t *testing.T, env *testEnv, sql string) *Rows {
	t.Helper()
	r, err := env.engine.Rows(context.Background(), "t1", Request{SQL: sql})
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return r
}

func TestRowsRefused(t *testing.T) {
	env := newEnv(t, Config{}, nil)
	seed(t, env, "t1")
	f := func(sql string, params []any, want error) {
		t.Helper()
		r, err := env.engine.Rows(context.Background(), "t1", Request{SQL: sql, Params: params})
		if r != nil || !errors.Is(err, want) {
			t.Fatalf("Rows(%q) = %v, %v; want %v", sql, r, err, want)
		}
	}
	f("delete from events", nil, ErrNotReadOnly)
	f("select 1; drop table events", nil, ErrMultipleStatements)
	f("select * from nope", nil, ErrBadQuery)
	f("select ? + 1", nil, ErrBadQuery) // too few params
	f("", nil, ErrBadRequest)
	f("select ?", []any{map[string]any{"a": 1}}, ErrBadRequest)
	f("select error('boom')", nil, ErrBadQuery)
	// Nothing was changed, nothing is held.
	if n := len(readAll(t, mustRows(t, env, "select * from events"))); n != 3 {
		t.Fatalf("%d rows left", n)
	}
	if n := slotsInUse(env.engine); n != 0 {
		t.Fatalf("%d slots held", n)
	}
}

// MaxRows ends the result with ErrTooLarge; exactly MaxRows rows is a
// complete result.
func TestRowsMaxRows(t *testing.T) {
	env := newEnv(t, Config{MaxRows: 10}, nil)
	if n := len(readAll(t, mustRows(t, env, "select * from range(10)"))); n != 10 {
		t.Fatalf("%d rows", n)
	}
	r := mustRows(t, env, "select * from range(11)")
	n := 0
	for r.Next() {
		n++
	}
	if n != 10 || !errors.Is(r.Err(), ErrTooLarge) {
		t.Fatalf("%d rows, Err %v", n, r.Err())
	}
	if slotsInUse(env.engine) != 0 {
		t.Fatal("the query is still held after the end")
	}
}

// The context's deadline and cancel stop a query of hours and free its
// slots.
func TestRowsContext(t *testing.T) {
	env := newEnv(t, Config{}, nil)
	const long = "select count(*) from range(1e12::BIGINT)"

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	r, err := env.engine.Rows(ctx, "t1", Request{SQL: long})
	if r != nil || !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("deadline: %v, %v", r, err)
	}

	ctx, cancel = context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		r, err := env.engine.Rows(ctx, "t1", Request{SQL: long})
		if r != nil {
			r.Close()
		}
		done <- err
	}()
	waitExecuting(t, env.engine, 1)
	cancel()
	if err := <-done; !errors.Is(err, ErrCanceled) || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancel: %v", err)
	}
	// A cancel during the sandbox check answers at once (boundedGrace);
	// the slots are freed when DuckDB returns from the check.
	waitSlotsFree(t, env.engine, "the slots freed after the cancel")

	// A cancel while reading ends the result with ErrCanceled.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	r, err = env.engine.Rows(ctx, "t1", Request{SQL: "select * from range(100000000)"})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for r.Next() {
		if n++; n == 10 {
			cancel()
		}
	}
	if !errors.Is(r.Err(), ErrCanceled) || n >= 100000000 {
		t.Fatalf("after %d rows: Err %v", n, r.Err())
	}
	r.Close()

	// So does Close while reading: a cut result never passes for a whole one.
	r = mustRows(t, env, "select * from range(100000000)")
	r.Next()
	r.Close()
	for r.Next() {
	}
	if !errors.Is(r.Err(), ErrCanceled) {
		t.Fatalf("read after Close: Err %v", r.Err())
	}
	if slotsInUse(env.engine) != 0 {
		t.Fatal("slots held after Close")
	}
}

// Rows shares the tenant's concurrency slots with the HTTP path.
func TestRowsBusy(t *testing.T) {
	env := newEnv(t, Config{MaxConcurrent: 1}, nil)
	r := mustRows(t, env, "select * from range(10)")
	_, err := env.engine.Rows(context.Background(), "t1", Request{SQL: "select 1", Timeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("second query while the first holds the slot: %v", err)
	}
	if q := env.query(t, "t1", "select 1", "timeout", "0.05"); q.status != 503 {
		t.Fatalf("HTTP query while Rows holds the slot: %d %s", q.status, q.body)
	}
	r.Close()
	readAll(t, mustRows(t, env, "select 1"))
}
