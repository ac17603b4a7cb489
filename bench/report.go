package main

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// unit says how a figure's number is printed.
type unit int

const (
	unitRate  unit = iota // per second, with thousands separators
	unitMs                // milliseconds
	unitMBps              // 10^6 bytes per second
	unitMiB               // 2^20 bytes
	unitCount             // plain count
	unitPct               // a fraction, printed as a percentage
	unitFloat             // a small number, two decimals
)

// figure is one line of the results table.
type figure struct {
	scenario string
	metric   string
	unit     unit
	suffix   string  // after the number, e.g. "rows/s"
	value    float64 // NaN: n/a, see na
	na       string  // why value is n/a
	base     float64 // NaN: no baseline number
	baseName string  // what the baseline is
	goal     string  // the goal, as printed
	// pairs > 0: value and base were measured alternately that many times
	// (A, B, A, B, ...); value and base are the medians and ratio is the
	// median of the pairs' ratios, not value/base.
	pairs int
	ratio float64
	met   int // 1 met, -1 missed, 0 not judged
}

var nan = math.NaN()

func (f *figure) format(v float64) string {
	switch f.unit {
	case unitMs:
		return strconv.FormatFloat(v, 'f', msDigits(v), 64) + " ms"
	case unitMBps:
		return strconv.FormatFloat(v, 'f', 1, 64) + " MB/s"
	case unitMiB:
		return strconv.FormatFloat(v/(1<<20), 'f', 0, 64) + " MiB"
	case unitCount:
		return thousands(int64(math.Round(v)))
	case unitFloat:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case unitPct:
		return strconv.FormatFloat(v*100, 'f', 0, 64) + "%"
	}
	s := thousands(int64(math.Round(v)))
	if f.suffix != "" {
		s += " " + f.suffix
	}
	return s
}

func msDigits(v float64) int {
	switch {
	case v < 1:
		return 3
	case v < 100:
		return 2
	}
	return 0
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// thousands prints n with commas: 1,234,567.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// writeTable prints the figures as a Markdown table.
func writeTable(w io.Writer, figs []figure) {
	fmt.Fprintln(w, "| scenario | metric | duckgate | baseline | ratio | goal |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---|")
	for i := range figs {
		f := &figs[i]
		val := "n/a"
		if !math.IsNaN(f.value) {
			val = f.format(f.value)
		} else if f.na != "" {
			val = "n/a (" + f.na + ")"
		}
		base := f.baseName
		if !math.IsNaN(f.base) {
			base = f.format(f.base)
			if f.baseName != "" {
				base += " (" + f.baseName + ")"
			}
		}
		if base == "" {
			base = "—"
		}
		ratio := "—"
		switch {
		case f.pairs > 0 && !math.IsNaN(f.ratio):
			ratio = strconv.FormatFloat(f.ratio, 'f', 2, 64) + fmt.Sprintf(" (median of %d pairs)", f.pairs)
		case f.pairs == 0 && !math.IsNaN(f.value) && !math.IsNaN(f.base) && f.base != 0:
			ratio = strconv.FormatFloat(f.value/f.base, 'f', 2, 64)
		}
		goal := f.goal
		switch f.met {
		case 1:
			goal += " ✅"
		case -1:
			goal += " ❌"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", f.scenario, f.metric, val, esc(base), ratio, goal)
	}
}

// esc keeps a cell from breaking the table.
func esc(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// judge returns 1 if ok, else -1; 0 when v is n/a.
func judge(v float64, ok bool) int {
	if math.IsNaN(v) {
		return 0
	}
	if ok {
		return 1
	}
	return -1
}
