package main

import (
	"strings"
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

// TestTallyLosses: a member that missed acknowledged publishes counts one
// loss per publish, and a sample names the room, the connection, the
// publisher and the first sequence missed; a member that got them all
// counts none.
func TestTallyLosses(t *testing.T) {
	w := &worker{cfg: &config{URLs: []string{"ws://a", "ws://b"}, Rooms: 1, Conns: 4}, ad: roomlogAdapter{}, epoch: time.Now(),
		ackH: hdrhistogram.New(1, 600_000_000, 3), roomPubs: map[int][]*client{}}
	for i := range w.hist {
		w.hist[i] = hdrhistogram.New(1, 600_000_000, 3)
	}
	for i := range 4 {
		c := w.newClient(i, 0, true)
		c.joined.Store(i < 3) // connection 3's connect failed: it never joined
		w.clients = append(w.clients, c)
	}
	pub := w.clients[0]
	pub.pub = 0
	w.pubs = []*client{pub}
	w.roomPubs[0] = []*client{pub}
	for seq := range uint64(4) {
		pub.ack(seq)
	}
	got := func(c *client, seqs ...uint64) {
		st := &stream{max: -1}
		for _, s := range seqs {
			st.got.set(s)
		}
		c.streams[0] = st
	}
	got(pub, 0, 1, 2, 3)
	got(w.clients[1], 0, 1, 2, 3)
	got(w.clients[2], 0, 3) // missed 1 and 2
	// connection 3 received nothing, but no server acknowledged its join

	p := w.tally()
	if p.Expected != 12 || p.Lost != 2 || p.RoomsLost != 1 {
		t.Fatalf("expected %d lost %d rooms lost %d; want 12, 2, 1 (a member that never joined is not counted)", p.Expected, p.Lost, p.RoomsLost)
	}
	if len(p.LossSamples) != 1 {
		t.Fatalf("loss samples %q, want one", p.LossSamples)
	}
	want := "connection 2 (last on ws://a; this worker saw 0 reconnects) missed 2 of 4 acknowledged publishes of publisher 0, the first at sequence 1"
	if !strings.Contains(p.LossSamples[0], want) {
		t.Errorf("loss sample %q, want it to say %q", p.LossSamples[0], want)
	}
}
