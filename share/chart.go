package share

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The share page draws a line chart above the table when the result has a
// date or time column and numeric columns: x is the first date or time
// column, y up to maxSeries numeric columns, over the preview's rows.
// Rows with the same x are summed. It is inline SVG written by the
// server: no script, nothing loaded.
const (
	maxSeries         = 4
	chartW, chartH    = 640.0, 200.0
	chartPadX, chartT = 8.0, 10.0
	chartB            = 22.0 // room for the x labels
)

// chartData is what the page's chart shows; nil when there is no chart.
type chartData struct {
	XName  string
	From   string // the first and last x as text
	To     string
	Max    string // the largest y, as text
	Rows   int    // the preview rows charted
	Summed bool   // some x had several rows, summed
	Series []chartSeries
}

type chartSeries struct {
	Name   string
	Class  string // s0..s3: its color in the page's style
	Points string // the polyline's points in the chartW × chartH box
}

// chartBuilder collects the preview's x and y values while it is read.
type chartBuilder struct {
	x    int   // the date or time column; -1 if none
	y    []int // the numeric columns
	xs   []time.Time
	ys   [][]float64 // by row, one per y column; NaN for NULL
	dup  bool
	rows int
}

// newChartBuilder picks the columns to chart from their DuckDB types; nil
// if there is nothing to chart.
func newChartBuilder(types []string) *chartBuilder {
	c := &chartBuilder{x: -1}
	for i, t := range types {
		t = strings.ToUpper(t)
		switch {
		case c.x < 0 && (t == "DATE" || strings.HasPrefix(t, "TIMESTAMP")):
			c.x = i
		case len(c.y) < maxSeries && isNumeric(t):
			c.y = append(c.y, i)
		}
	}
	if c.x < 0 || len(c.y) == 0 {
		return nil
	}
	return c
}

func isNumeric(t string) bool {
	switch t {
	case "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT",
		"FLOAT", "DOUBLE", "REAL":
		return true
	}
	return strings.HasPrefix(t, "DECIMAL")
}

// add takes one row's values.
func (c *chartBuilder) add(vals []any) {
	x, ok := vals[c.x].(time.Time)
	if !ok {
		return
	}
	ys := make([]float64, len(c.y))
	for i, col := range c.y {
		ys[i] = toFloat(vals[col])
	}
	c.rows++
	if i := slices.IndexFunc(c.xs, x.Equal); i >= 0 {
		c.dup = true
		for j, v := range ys {
			switch {
			case math.IsNaN(c.ys[i][j]):
				c.ys[i][j] = v
			case !math.IsNaN(v):
				c.ys[i][j] += v
			}
		}
		return
	}
	c.xs = append(c.xs, x)
	c.ys = append(c.ys, ys)
}

func toFloat(v any) float64 {
	switch v := v.(type) {
	case int64:
		return float64(v)
	case int32:
		return float64(v)
	case int16:
		return float64(v)
	case int8:
		return float64(v)
	case uint64:
		return float64(v)
	case uint32:
		return float64(v)
	case uint16:
		return float64(v)
	case uint8:
		return float64(v)
	case float64:
		return v
	case float32:
		return float64(v)
	case interface{ Float64() float64 }: // duckdb.Decimal
		return v.Float64()
	case interface{ String() string }: // *big.Int (HUGEINT)
		f, err := strconv.ParseFloat(v.String(), 64)
		if err == nil {
			return f
		}
	}
	return math.NaN()
}

// build returns the chart, or nil with fewer than two distinct x.
func (c *chartBuilder) build(names []string) *chartData {
	if c == nil || len(c.xs) < 2 {
		return nil
	}
	order := make([]int, len(c.xs))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return c.xs[a].Compare(c.xs[b]) })
	t0, t1 := c.xs[order[0]], c.xs[order[len(order)-1]]
	if !t1.After(t0) {
		return nil
	}
	top := 0.0
	for _, ys := range c.ys {
		for _, v := range ys {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				top = max(top, v)
			}
		}
	}
	bottom := 0.0
	for _, ys := range c.ys {
		for _, v := range ys {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				bottom = min(bottom, v)
			}
		}
	}
	if top == bottom {
		top = bottom + 1
	}
	span := float64(t1.Sub(t0))
	d := &chartData{XName: names[c.x], From: textOf(t0), To: textOf(t1), Max: strconv.FormatFloat(top, 'g', 6, 64),
		Rows: c.rows, Summed: c.dup}
	for j, col := range c.y {
		var b strings.Builder
		for _, i := range order {
			v := c.ys[i][j]
			if math.IsNaN(v) || math.IsInf(v, 0) {
				continue
			}
			x := chartPadX + (chartW-2*chartPadX)*float64(c.xs[i].Sub(t0))/span
			y := chartT + (chartH-chartT-chartB)*(top-v)/(top-bottom)
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(strconv.FormatFloat(x, 'f', 1, 64) + "," + strconv.FormatFloat(y, 'f', 1, 64))
		}
		d.Series = append(d.Series, chartSeries{Name: names[col], Class: "s" + strconv.Itoa(j), Points: b.String()})
	}
	return d
}

// textOf writes a chart's x label: a date alone at midnight UTC.
func textOf(t time.Time) string {
	t = t.UTC()
	if t.Hour() == 0 && t.Minute() == 0 && t.Second() == 0 && t.Nanosecond() == 0 {
		return t.Format("2006-01-02")
	}
	return t.Format("2006-01-02 15:04")
}
