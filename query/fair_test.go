package query

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// granted reports whether tk's slot is granted, without waiting.
func granted(tk *fairTicket) bool {
	if tk.w == nil {
		return true
	}
	select {
	case <-tk.w.ready:
		return true
	default:
		return false
	}
}

// mustRelease waits (it must not block) for tk's slot and returns its release.
func mustRelease(t *testing.T, tk *fairTicket) func() {
	t.Helper()
	if !granted(tk) {
		t.Fatalf("%s: slot not granted", tk.tenantID)
	}
	rel, err := tk.wait(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rel
}

// A tenant never holds more than its share, even on an idle server, so
// another tenant's query starts at once.
func TestFairSlotsPerTenantCap(t *testing.T) {
	f := newFairSlots(4, 2, nil)
	a1, a2, a3, a4 := f.join("a"), f.join("a"), f.join("a"), f.join("a")
	if !granted(a1) || !granted(a2) || granted(a3) || granted(a4) {
		t.Fatalf("a: %v %v %v %v; want the first two granted", granted(a1), granted(a2), granted(a3), granted(a4))
	}
	b1 := f.join("b")
	if !granted(b1) {
		t.Fatal("b waits while a holds only its share")
	}
	st := f.stats()
	if st.inUse != 3 || st.held["a"] != 2 || st.held["b"] != 1 || st.waiting["a"] != 2 || st.waiting["b"] != 0 {
		t.Fatalf("stats %+v", st)
	}
	// b's slot ending does not hand a third slot to a.
	mustRelease(t, b1)()
	if granted(a3) {
		t.Fatal("a got a slot beyond its share")
	}
	// a's own slot ending does.
	mustRelease(t, a1)()
	if !granted(a3) || granted(a4) {
		t.Fatal("a's freed slot went nowhere")
	}
	mustRelease(t, a2)()
	mustRelease(t, a3)()
	mustRelease(t, a4)()
	if st := f.stats(); st.inUse != 0 || len(f.tenants) != 0 {
		t.Fatalf("left behind: %+v, %d tenants", st, len(f.tenants))
	}
}

// A freed slot goes to the waiting tenant that holds the fewest, then to
// the one served longest ago, whatever the arrival order of the queries.
func TestFairSlotsRoundRobin(t *testing.T) {
	f := newFairSlots(1, 1, nil)
	hold := mustRelease(t, f.join("a"))
	var tickets []*fairTicket
	for _, id := range []string{"a", "a", "a", "b", "b", "c"} {
		tickets = append(tickets, f.join(id))
	}
	done := make(map[*fairTicket]bool)
	var order []string
	for range tickets {
		hold()
		var next []string
		for i, tk := range tickets {
			if granted(tk) && !done[tk] {
				next = append(next, fmt.Sprintf("%s%d", tk.tenantID, i))
				done[tk] = true
				hold = mustRelease(t, tk)
			}
		}
		if len(next) != 1 {
			t.Fatalf("freed slot granted to %v", next)
		}
		order = append(order, next[0])
	}
	hold()
	// a held the slot first, so b and c go before a's queued queries, and
	// then the tenants alternate.
	if got, want := fmt.Sprint(order), "[b3 c5 a0 b4 a1 a2]"; got != want {
		t.Fatalf("grant order %s; want %s", got, want)
	}
	if len(f.tenants) != 0 {
		t.Fatalf("%d tenants left", len(f.tenants))
	}
}

// A waiter whose context ends leaves the queue; one granted as its context
// ended hands the slot on.
func TestFairSlotsCancel(t *testing.T) {
	f := newFairSlots(1, 1, nil)
	hold := mustRelease(t, f.join("a"))
	b, c := f.join("b"), f.join("c")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled wait: %v", err)
	}
	if st := f.stats(); st.waiting["b"] != 0 || st.waiting["c"] != 1 {
		t.Fatalf("stats %+v", st)
	}
	hold()
	if !granted(c) {
		t.Fatal("c not granted after b left")
	}
	// c's context ends after its grant: whichever case wait's select
	// picks, no slot stays held once c is done with it.
	if rel, err := c.wait(ctx); err == nil {
		rel()
	}
	if st := f.stats(); st.inUse != 0 || len(f.tenants) != 0 {
		t.Fatalf("left behind: %+v, %d tenants", st, len(f.tenants))
	}
}
