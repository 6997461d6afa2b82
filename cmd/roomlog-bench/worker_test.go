package main

import (
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// TestAckLatency: an ack is timed from its publish's last write attempt,
// once per sequence, only in the measured window, and an ack for a
// sequence never written is counted but not timed.
func TestAckLatency(t *testing.T) {
	w := &worker{cfg: &config{URLs: []string{"ws://x"}, Rooms: 1, Conns: 1}, ad: roomlogAdapter{}, epoch: time.Now(),
		ackH: hdrhistogram.New(1, 600_000_000, 3)}
	c := w.newClient(0, 0, false)

	c.sent(0)
	c.ack(0) // before the window: counted, not timed
	if c.nAcked != 1 || w.ackH.TotalCount() != 0 {
		t.Fatalf("before the window: acked %d, timed %d; want 1, 0", c.nAcked, w.ackH.TotalCount())
	}

	w.measuring.Store(true)
	c.sent(1)
	time.Sleep(20 * time.Millisecond)
	c.sent(1) // the first write failed; the retry is what the ack answers
	c.ack(1)
	c.ack(1) // a repeated ack is neither counted nor timed again
	c.ack(9) // never written
	if c.nAcked != 3 {
		t.Errorf("acked %d, want 3", c.nAcked)
	}
	if n := w.ackH.TotalCount(); n != 1 {
		t.Fatalf("timed %d acks, want 1", n)
	}
	if us := w.ackH.Max(); us >= 20_000 {
		t.Errorf("ack timed at %d µs: from the first attempt, not the retry", us)
	}
}
