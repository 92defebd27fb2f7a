package discovery

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestLedger: announcements are admitted first come, first kept, up to the
// caps per key, per peer and in total; an announcement again refreshes its
// record; an expired record makes room.
func TestLedger(t *testing.T) {
	var rejected []string
	l := newLedger(Config{ProviderTTL: time.Minute, MaxProvidersPerKey: 2, MaxProviderRecordsPerPeer: 2, MaxProviderRecords: 4},
		func(r string) { rejected = append(rejected, r) })
	now := time.Now()
	steps := []struct {
		key  string
		p    peer.ID
		at   time.Duration
		want string
	}{
		{"k1", "a", 0, ""},
		{"k1", "b", 0, ""},
		{"k1", "c", 0, rejectKey},
		{"k1", "a", 30 * time.Second, ""}, // again: refreshed, not a second record
		{"k2", "a", 30 * time.Second, ""},
		{"k3", "a", 30 * time.Second, rejectPeer},
		{"k3", "c", 30 * time.Second, ""},
		{"k4", "d", 30 * time.Second, rejectTotal},
		// b's record (last announced at 0) expires at 1 min; a's at 1.5 min.
		{"k1", "c", 61 * time.Second, ""},
		{"k1", "d", 61 * time.Second, rejectKey},
	}
	for k, s := range steps {
		if got := l.admit(s.key, s.p, now.Add(s.at)); got != s.want {
			t.Fatalf("step %d: admit(%s, %s) = %q, want %q", k, s.key, s.p, got, s.want)
		}
	}
	if n := l.records(); n != 4 {
		t.Fatalf("%d records, want 4", n)
	}
	l.sweep(now.Add(time.Hour))
	if n := l.records(); n != 0 || len(l.keys) != 0 || len(l.perPeer) != 0 {
		t.Fatalf("after everything expired: %d records, %d keys, %d peers", n, len(l.keys), len(l.perPeer))
	}
}
