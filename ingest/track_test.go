package ingest

import "testing"

func TestEventTable(t *testing.T) {
	f := func(name, want string) {
		t.Helper()
		got, msg := EventTable([]byte(name))
		if got != want {
			t.Fatalf("EventTable(%q) = %q (%s); want %q", name, got, msg, want)
		}
		if want == "" && msg == "" {
			t.Fatalf("EventTable(%q) gave no reason", name)
		}
	}
	f("Order Completed", "order_completed")
	f("order_completed", "order_completed")
	f("  Signed-Up!! ", "signed_up")
	f("$autocapture", "autocapture")
	f("CamelCaseEvent", "camelcaseevent")
	f("3 Items Added", "_3_items_added")
	f("Commande passée", "commande_pass_e")
	f("tracks", "event_tracks")
	f("Pages", "event_pages")
	f("users", "event_users")
	f("_duckgate_applied", "duckgate_applied")
	f("!!!", "")
	f("", "")
	f("été", "t")
	long := ""
	for range 70 {
		long += "ab "
	}
	got, _ := EventTable([]byte(long))
	if len(got) > 63 || got[len(got)-1] == '_' {
		t.Fatalf("EventTable(long) = %q: over 63 bytes or ends in _", got)
	}
}
