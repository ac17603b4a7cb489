package schema

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestIsTimestamp(t *testing.T) {
	f := func(s string, want bool) {
		t.Helper()
		if got := IsTimestamp([]byte(s)); got != want {
			t.Fatalf("IsTimestamp(%q) = %v; want %v", s, got, want)
		}
		if _, err := ParseTimestamp(s); (err == nil) != want {
			t.Fatalf("ParseTimestamp(%q) error = %v; want ok=%v", s, err, want)
		}
	}
	f("2024-01-02T03:04:05Z", true)
	f("2024-01-02t03:04:05z", true)
	f("2024-01-02 03:04:05Z", true)
	f("2024-01-02T03:04:05.1Z", true)
	f("2024-01-02T03:04:05.123456+05:30", true)
	f("2024-01-02T03:04:05.123456000+05:30", true) // zeros below the microsecond change nothing
	f("2024-01-02T03:04:05.1234560Z", true)
	f("2024-01-02T03:04:05-23:59", true)
	f("2024-02-29T10:00:00Z", true)
	f("2000-02-29T10:00:00Z", true) // divisible by 400
	f("0000-01-01T00:00:00Z", true)
	f("9999-12-31T23:59:59.999999Z", true)
	f("2024-04-30T00:00:00Z", true)
	f("2024-12-31T23:59:59+00:00", true)

	f("2023-02-29T10:00:00Z", false)
	f("1900-02-29T10:00:00Z", false) // divisible by 100, not 400
	f("2024-04-31T00:00:00Z", false)
	f("2024-00-10T00:00:00Z", false)
	f("2024-13-10T00:00:00Z", false)
	f("2024-01-00T00:00:00Z", false)
	f("2024-01-32T00:00:00Z", false)
	f("2024-01-02T24:00:00Z", false)
	f("2024-01-02T23:60:00Z", false)
	f("2024-01-02T23:59:60Z", false) // no leap seconds
	f("2024-01-02T03:04:05+24:00", false)
	f("2024-01-02T03:04:05+05:60", false)
	f("2024-01-02T03:04:05+0530", false)
	f("2024-01-02T03:04:05+05", false)
	f("2024-01-02", false)
	f("2024-01-02T03:04:05", false)
	f("2024-01-02T03:04Z", false)
	f("2024-01-02T03:04:05.Z", false)
	f("2024-01-02T03:04:05.1234567890Z", false)     // 10 fraction digits
	f("2024-01-02T03:04:05.123456789+05:30", false) // nanoseconds: TIMESTAMPTZ would drop them
	f("2026-11-21T10:00:00.123456789Z", false)
	f("2026-11-21T10:00:00.0000001Z", false)
	f("9999-12-31T23:59:59.999999999Z", false)
	f("2024-01-02T03:04:05,5Z", false)
	f("2024-01-02T03:04:05ZZ", false)
	f("2024-01-02T03:04:05Z ", false)
	f(" 2024-01-02T03:04:05Z", false)
	f("2024-01-02  03:04:05Z", false)
	f("2024-01-02X03:04:05Z", false)
	f("2024/01/02T03:04:05Z", false)
	f("-024-01-02T03:04:05Z", false)
	f("+2024-01-02T03:04:05Z", false)
	f("２024-01-02T03:04:05Z", false)
	f("2024-1-02T03:04:05Z", false)
	f("2024-01-02T03:04:05UTC", false)
	f("hello", false)
	f("", false)
	f("2024-01-02T03:04:05Z"+string(make([]byte, 1<<20)), false)
}

func TestParseTimestamp(t *testing.T) {
	f := func(s string, want time.Time) {
		t.Helper()
		got, err := ParseTimestamp(s)
		if err != nil {
			t.Fatalf("ParseTimestamp(%q): %v", s, err)
		}
		if !got.Equal(want) || got.Location() != time.UTC {
			t.Fatalf("ParseTimestamp(%q) = %v; want %v in UTC", s, got, want)
		}
	}
	f("2024-01-02T03:04:05Z", time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC))
	f("2024-01-02 03:04:05.5z", time.Date(2024, 1, 2, 3, 4, 5, 500_000_000, time.UTC))
	f("2024-01-02T03:04:05.123456+05:30", time.Date(2024, 1, 1, 21, 34, 5, 123456000, time.UTC))
	f("2024-01-02T03:04:05.123456000+05:30", time.Date(2024, 1, 1, 21, 34, 5, 123456000, time.UTC))
	f("2024-12-31T23:30:00-01:00", time.Date(2025, 1, 1, 0, 30, 0, 0, time.UTC))
	f("2024-01-02T03:04:05.000001Z", time.Date(2024, 1, 2, 3, 4, 5, 1000, time.UTC))

	_, err := ParseTimestamp("2024-01-02")
	if !errors.Is(err, ErrNotTimestamp) {
		t.Fatalf("ParseTimestamp(date) error = %v; want ErrNotTimestamp", err)
	}
	_, err = ParseTimestamp(string(make([]byte, 1<<20)))
	if !errors.Is(err, ErrNotTimestamp) || len(err.Error()) > 200 {
		t.Fatalf("ParseTimestamp(1 MB) error is %d bytes; want a short ErrNotTimestamp", len(err.Error()))
	}
}

// TestIsTimestampLong checks that a long string is rejected without allocating;
// BenchmarkIsTimestampLong shows that it is not scanned.
func TestIsTimestampLong(t *testing.T) {
	s := bytes.Repeat([]byte("2024-01-02T03:04:05Z"), 1<<16) // 1.3 MB
	allocs := testing.AllocsPerRun(1000, func() {
		if IsTimestamp(s) {
			t.Fatal("IsTimestamp(1 MB) = true")
		}
	})
	if allocs != 0 {
		t.Fatalf("IsTimestamp allocates %v times per run", allocs)
	}
}

func TestIsTimestampAllocs(t *testing.T) {
	inputs := [][]byte{[]byte("2024-01-02T03:04:05.123456789+05:30"), []byte("2024-01-02T03:04:05.123456+05:30"), []byte("2024-01-02T03:04:05Z"), []byte("2023-02-29T10:00:00Z"), []byte("hello")}
	allocs := testing.AllocsPerRun(100, func() {
		for _, s := range inputs {
			IsTimestamp(s)
		}
	})
	if allocs != 0 {
		t.Fatalf("IsTimestamp allocates %v times per run", allocs)
	}
}

func BenchmarkIsTimestamp(b *testing.B) {
	inputs := [][]byte{[]byte("2024-01-02T03:04:05.123456+05:30"), []byte("2024-01-02T03:04:05Z"), []byte("user-1234@example.com"), []byte("2024-01-02")}
	n := 0
	for _, s := range inputs {
		n += len(s)
	}
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		for _, s := range inputs {
			IsTimestamp(s)
		}
	}
}

// BenchmarkIsTimestampLong measures IsTimestamp on a 1.3 MB string, which it rejects by its
// length without scanning: ns/op stays that of a short string (a scan would take over 10 µs).
func BenchmarkIsTimestampLong(b *testing.B) {
	s := bytes.Repeat([]byte("2024-01-02T03:04:05Z"), 1<<16)
	b.ReportAllocs()
	for b.Loop() {
		if IsTimestamp(s) {
			b.Fatal("IsTimestamp(1.3 MB) = true")
		}
	}
}
