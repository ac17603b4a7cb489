package tenant

import (
	"errors"
	"testing"
	"time"

	json "github.com/goccy/go-json"
)

func TestParseRetention(t *testing.T) {
	day := 24 * time.Hour
	ok := func(s string, want time.Duration) {
		t.Helper()
		got, err := ParseRetention(s)
		if err != nil || got != want {
			t.Fatalf("ParseRetention(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	bad := func(s string) {
		t.Helper()
		if d, err := ParseRetention(s); !errors.Is(err, ErrBadRetention) {
			t.Fatalf("ParseRetention(%q) = %v, %v; want ErrBadRetention", s, d, err)
		}
	}
	ok("7d", 7*day)
	ok("72h", 72*time.Hour)
	ok("90m", 90*time.Minute)
	ok("1m", time.Minute)
	ok("36500d", 36500*day)
	bad("")
	bad("0")
	bad("0d")
	bad("-1d")
	bad("-72h")
	bad("59s")
	bad("1.5d")
	bad("d")
	bad("7 d")
	bad("36501d")
	bad("99999999999999999999d")
	bad("1000000h")
	bad("forever")
}

func TestPlanRetentionJSON(t *testing.T) {
	var p Plan
	if err := json.Unmarshal([]byte(`{"retention":"7d"}`), &p); err != nil || time.Duration(p.Retention) != 7*24*time.Hour {
		t.Fatalf("unmarshal: %v, %v", p.Retention, err)
	}
	if err := json.Unmarshal([]byte(`{"retention":7}`), &p); !errors.Is(err, ErrBadRetention) {
		t.Fatalf("a number: %v", err)
	}
	b, err := json.Marshal(Plan{Retention: Retention(36 * time.Hour)})
	if err != nil || string(b) != `{"memory_limit":"","threads":0,"rows_per_second":0,"storage_bytes":0,"retention":"36h0m0s"}` {
		t.Fatalf("marshal: %s, %v", b, err)
	}
	if got := time.Duration(DefaultPlans()["free"].Retention); got != 7*24*time.Hour {
		t.Fatalf("free plan keeps %v", got)
	}
	if got := DefaultPlans()[DefaultPlan].Retention; got != 0 {
		t.Fatalf("default plan keeps %v", got)
	}
}

// FuzzParseRetention: whatever parses is within the bounds and reads
// back the same from its formatted form.
func FuzzParseRetention(f *testing.F) {
	for _, s := range []string{"7d", "72h", "1m30s", "-1d", "0", "1e9d", "36500d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseRetention(s)
		if err != nil {
			return
		}
		if d < MinRetention || d > MaxRetention {
			t.Fatalf("%q parsed to %v, out of bounds", s, d)
		}
		again, err := ParseRetention(FormatRetention(d))
		if err != nil || again != d {
			t.Fatalf("%q: %v formats as %q, which reads back %v, %v", s, d, FormatRetention(d), again, err)
		}
	})
}
