package relay

import (
	"testing"
	"time"
)

// TestLeaseSilenceAfterLogOutage: silence counts only while this relay's own
// view of the partition is current. Before, a relay measured another's
// silence from that relay's last folded lease alone, so after a log outage
// longer than the lease timeout (both relays' renewals held up alike, seen on
// the three-broker cluster below min.insync.replicas) it expired the other
// at once, racing that relay's renewal: its clients were closed with 4002
// though it never stopped.
func TestLeaseSilenceAfterLogOutage(t *testing.T) {
	const timeout = 9 * time.Second
	t0 := time.Unix(1_800_000_000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	type fold struct {
		at     time.Duration
		relay  string
		offset int64
	}
	tests := []struct {
		name   string
		folds  []fold
		now    time.Duration
		offset int64 // the other relay's lease offset the fold holds
		want   time.Duration
		wantOK bool
	}{
		{
			name:   "healthy log, other renews",
			folds:  []fold{{0, "me", 1}, {0, "other", 2}, {3 * time.Second, "me", 3}, {3 * time.Second, "other", 4}},
			now:    4 * time.Second,
			offset: 4, want: time.Second, wantOK: true,
		},
		{
			name: "healthy log, other went silent",
			folds: []fold{{0, "me", 1}, {0, "other", 2}, {3 * time.Second, "me", 3}, {6 * time.Second, "me", 5},
				{9 * time.Second, "me", 6}, {12 * time.Second, "me", 7}},
			now:    12 * time.Second,
			offset: 2, want: 12 * time.Second, wantOK: true,
		},
		{
			name: "log back after an outage: silence counts from the return",
			folds: []fold{{0, "me", 1}, {0, "other", 2}, {3 * time.Second, "me", 3}, {3 * time.Second, "other", 4},
				{40 * time.Second, "me", 5}},
			now:    40*time.Second + 100*time.Millisecond,
			offset: 4, want: 100 * time.Millisecond, wantOK: true,
		},
		{
			name:   "during the outage: no verdict",
			folds:  []fold{{0, "me", 1}, {0, "other", 2}, {3 * time.Second, "me", 3}, {3 * time.Second, "other", 4}},
			now:    20 * time.Second,
			offset: 4, wantOK: false,
		},
		{
			name:   "lease offset not the one seen",
			folds:  []fold{{0, "me", 1}, {0, "other", 2}},
			now:    time.Second,
			offset: 7, wantOK: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLeases(timeout)
			l.setSelf("me")
			for _, f := range tt.folds {
				l.seenAtTime(0, f.relay, f.offset, at(f.at))
			}
			got, ok := l.silent(0, "other", tt.offset, at(tt.now))
			if ok != tt.wantOK || (ok && got != tt.want) {
				t.Fatalf("silent = %v, %v; want %v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
