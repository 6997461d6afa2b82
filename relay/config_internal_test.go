package relay

import (
	"testing"
	"time"

	"github.com/roomlog/roomlog/relay/auth"
)

// TestFetchMaxWaitDefaults: the consumer's fetch waits 250 ms by default and
// 100 ms under --follow interest (a partition's load waits for the fetch in
// flight); a value given is kept; a bad follow mode is refused.
func TestFetchMaxWaitDefaults(t *testing.T) {
	for _, tc := range []struct {
		follow string
		given  time.Duration
		want   time.Duration
	}{
		{"", 0, DefaultFetchMaxWait},
		{FollowAll, 0, DefaultFetchMaxWait},
		{FollowInterest, 0, DefaultFetchMaxWaitInterest},
		{FollowInterest, 400 * time.Millisecond, 400 * time.Millisecond},
		{FollowAll, 20 * time.Millisecond, 20 * time.Millisecond},
	} {
		c := Config{Topic: "t", Brokers: []string{"127.0.0.1:9092"}, Auth: auth.Config{Anonymous: true}, Follow: tc.follow, FetchMaxWait: tc.given}
		if err := c.setDefaults(); err != nil {
			t.Fatalf("follow %q: %v", tc.follow, err)
		}
		if c.FetchMaxWait != tc.want {
			t.Errorf("follow %q, given %v: FetchMaxWait %v, want %v", tc.follow, tc.given, c.FetchMaxWait, tc.want)
		}
	}
	c := Config{Topic: "t", Brokers: []string{"127.0.0.1:9092"}, Auth: auth.Config{Anonymous: true}, Follow: "some"}
	if err := c.setDefaults(); err == nil {
		t.Error("follow \"some\" accepted")
	}
}
