package share

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestChartPicksColumns(t *testing.T) {
	f := func(types []string, wantX int, wantY []int) {
		t.Helper()
		c := newChartBuilder(types)
		if wantX < 0 {
			if c != nil {
				t.Fatalf("%v: a chart of x=%d y=%v, want none", types, c.x, c.y)
			}
			return
		}
		if c == nil || c.x != wantX || len(c.y) != len(wantY) {
			t.Fatalf("%v: %+v, want x=%d y=%v", types, c, wantX, wantY)
		}
		for i := range wantY {
			if c.y[i] != wantY[i] {
				t.Fatalf("%v: y=%v, want %v", types, c.y, wantY)
			}
		}
	}
	f([]string{"DATE", "VARCHAR", "BIGINT", "DOUBLE"}, 0, []int{2, 3})
	f([]string{"VARCHAR", "BIGINT", "TIMESTAMP WITH TIME ZONE"}, 2, []int{1})
	f([]string{"DECIMAL(18,3)", "TIMESTAMP", "DATE", "INTEGER", "HUGEINT", "FLOAT", "UBIGINT"}, 1, []int{0, 3, 4, 5})
	f([]string{"VARCHAR", "BIGINT"}, -1, nil)       // no time
	f([]string{"DATE", "VARCHAR", "JSON"}, -1, nil) // no number
}

type decimal float64

func (d decimal) Float64() float64 { return float64(d) }

func TestChartSumsSameXAndSkipsNulls(t *testing.T) {
	c := newChartBuilder([]string{"DATE", "BIGINT", "DECIMAL(9,2)"})
	day := func(d int) time.Time { return time.Date(2026, 11, d, 0, 0, 0, 0, time.UTC) }
	c.add([]any{day(2), int64(5), decimal(1.5)})
	c.add([]any{day(1), int64(1), nil})
	c.add([]any{day(2), int64(7), decimal(2)})
	c.add([]any{nil, int64(100), decimal(100)}) // no x: left out
	d := c.build([]string{"day", "n", "amount"})
	if d == nil || !d.Summed || d.Rows != 3 || d.From != "2026-11-01" || d.To != "2026-11-02" || d.Max != "12" || len(d.Series) != 2 {
		t.Fatalf("chart %+v", d)
	}
	// n: 1 on the 1st (near the bottom, y from 0), 12 on the 2nd (top right); amount has
	// no value on the 1st, so one point.
	if d.Series[0].Points != "8.0,164.0 632.0,10.0" || strings.Count(d.Series[1].Points, ",") != 1 {
		t.Fatalf("points %q and %q", d.Series[0].Points, d.Series[1].Points)
	}
	if got := toFloat("text"); !math.IsNaN(got) {
		t.Fatalf("toFloat(string) = %v", got)
	}
	one := newChartBuilder([]string{"DATE", "BIGINT"})
	one.add([]any{day(1), int64(1)})
	if one.build([]string{"d", "n"}) != nil {
		t.Fatal("a chart of one point")
	}
}
