package schema

import (
	"errors"
	"fmt"
	"time"
)

// ErrNotTimestamp is wrapped by ParseTimestamp's error when its input is not a timestamp IsTimestamp accepts.
var ErrNotTimestamp = errors.New("not an RFC 3339 timestamp")

// Lengths of what IsTimestamp accepts: "2006-01-02T15:04:05Z" to "2006-01-02T15:04:05.123456789-07:00".
const (
	minTimestampLen = 20
	maxTimestampLen = 35
)

// IsTimestamp reports whether s is an RFC 3339 timestamp that a TIMESTAMPTZ column holds
// exactly: a date, 'T', 't' or a single space, a time with optional fractional seconds of 1 to 9
// digits, and a zone 'Z', 'z' or ±hh:mm. Years run 0000 to 9999; it checks that months are 1-12,
// days exist in their month (leap years included), hours < 24, minutes < 60, seconds < 60 (no
// leap seconds), zone hours < 24 and zone minutes < 60. A plain date is not a timestamp.
//
// TIMESTAMPTZ counts microseconds, so a fraction with a nonzero digit after the sixth
// (".123456789") is not a timestamp here: DuckDB's only nanosecond type, TIMESTAMP_NS, has no
// time zone, and an instant stored there would shift with the session's TimeZone when compared
// with or cast to TIMESTAMPTZ. Such a string stays a string and keeps all its digits.
// Trailing zeros (".123456000") are fine.
//
// It does not allocate and looks at no more than 35 bytes.
func IsTimestamp(s []byte) bool {
	_, ok := parseTimestamp(s)
	return ok
}

// ParseTimestamp parses what IsTimestamp accepts into a time.Time in UTC.
// Used at flush time; the error wraps ErrNotTimestamp.
func ParseTimestamp(s string) (time.Time, error) {
	ts, ok := parseTimestamp(s)
	if !ok {
		if len(s) > maxTimestampLen {
			s = s[:maxTimestampLen] + "..." // keep the error short: the input may be any string
		}
		return time.Time{}, fmt.Errorf("parse timestamp %q: %w", s, ErrNotTimestamp)
	}
	t := time.Date(ts.year, time.Month(ts.month), ts.day, ts.hour, ts.min, ts.sec, ts.nsec, time.UTC)
	return t.Add(-time.Duration(ts.offset) * time.Second), nil
}

// timestampFields are the fields of a parsed timestamp; offset is the zone's offset east of UTC in seconds.
type timestampFields struct {
	year, month, day, hour, min, sec, nsec, offset int
}

// parseTimestamp is the one parser behind IsTimestamp and ParseTimestamp.
func parseTimestamp[S ~string | ~[]byte](s S) (ts timestampFields, ok bool) {
	if len(s) < minTimestampLen || len(s) > maxTimestampLen {
		return ts, false
	}
	// 2006-01-02T15:04:05
	if s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':' {
		return ts, false
	}
	if c := s[10]; c != 'T' && c != 't' && c != ' ' {
		return ts, false
	}
	var y1, y2, ok1, ok2 bool
	var hi, lo int
	hi, y1 = digits2(s[0], s[1])
	lo, y2 = digits2(s[2], s[3])
	ts.year = hi*100 + lo
	ts.month, ok1 = digits2(s[5], s[6])
	ts.day, ok2 = digits2(s[8], s[9])
	if !y1 || !y2 || !ok1 || !ok2 || ts.month < 1 || ts.month > 12 || ts.day < 1 || ts.day > daysIn(ts.month, ts.year) {
		return ts, false
	}
	var ok3 bool
	ts.hour, ok1 = digits2(s[11], s[12])
	ts.min, ok2 = digits2(s[14], s[15])
	ts.sec, ok3 = digits2(s[17], s[18])
	if !ok1 || !ok2 || !ok3 || ts.hour > 23 || ts.min > 59 || ts.sec > 59 {
		return ts, false
	}
	i := 19
	if s[i] == '.' {
		i++
		start := i
		for i < len(s) && i-start < 9 && isDigit(s[i]) {
			ts.nsec = ts.nsec*10 + int(s[i]-'0')
			i++
		}
		n := i - start
		if n == 0 {
			return ts, false
		}
		for ; n < 9; n++ {
			ts.nsec *= 10
		}
		if ts.nsec%1000 != 0 {
			return ts, false // below the microsecond: TIMESTAMPTZ would truncate it
		}
	}
	// Zone: Z, z or ±hh:mm, and then the end.
	switch rest := len(s) - i; {
	case rest == 1 && (s[i] == 'Z' || s[i] == 'z'):
		return ts, true
	case rest == 6 && (s[i] == '+' || s[i] == '-') && s[i+3] == ':':
		zh, ok1 := digits2(s[i+1], s[i+2])
		zm, ok2 := digits2(s[i+4], s[i+5])
		if !ok1 || !ok2 || zh > 23 || zm > 59 {
			return ts, false
		}
		ts.offset = zh*3600 + zm*60
		if s[i] == '-' {
			ts.offset = -ts.offset
		}
		return ts, true
	}
	return ts, false
}

// digits2 returns the value of two decimal digits.
func digits2(a, b byte) (int, bool) {
	if !isDigit(a) || !isDigit(b) {
		return 0, false
	}
	return int(a-'0')*10 + int(b-'0'), true
}

// daysIn returns the number of days in month m (1-12) of year y in the proleptic Gregorian calendar.
func daysIn(m, y int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
