package relay

import (
	"bytes"
	"strconv"
	"testing"

	"github.com/roomlog/roomlog/consumer"
	"github.com/roomlog/roomlog/record"
	"github.com/roomlog/roomlog/relay/auth"
)

// TestBroadcastRooms: small and big rooms give every member every frame,
// once and in the log's order, one shared frame per record, spread to
// writer goroutines in a big room only; presence-only frames go only to
// members that asked, except the one named. Frames stay in the queues (no
// writer runs), as in BenchmarkHubFanout.
func TestBroadcastRooms(t *testing.T) {
	for _, members := range []int{1, 7, spreadFanout, spreadFanout + 1, 1000} {
		t.Run(strconv.Itoa(members), func(t *testing.T) {
			s, err := New(Config{Brokers: []string{"x"}, SendQueue: 1 << 16, Auth: auth.Config{Anonymous: true}})
			if err != nil {
				t.Fatal(err)
			}
			conns := make([]*conn, members)
			for i := range conns {
				conns[i] = newConn(s, "c"+strconv.Itoa(i), s.ID(), jsonCodec{})
				w := newWSWriter(conns[i], nil)
				w.writing = true // no writer: the frames stay queued
				conns[i].t = w
				if !s.hub.add("big", &sub{c: conns[i], presence: i%3 == 0}) {
					t.Fatal("add: already in room")
				}
			}
			const records = 20
			for off := range records {
				d := consumer.Delivery{
					Event:  record.Event{Type: record.TypePublish, Room: "big", Event: "chat", Data: []byte(strconv.Itoa(off)), From: "c0"},
					Pos:    record.Pos{Partition: 1, Offset: int64(off)},
					Result: &consumer.Result{},
					Live:   true,
				}
				s.Deliver(&d)
			}
			want := records * members // the sender gets its message too
			if got := int(s.hub.delivered.Load()); got != want {
				t.Fatalf("delivered %d frames, want %d", got, want)
			}
			// One frame per record, shared by every member (a prepared
			// message in a room of more than preparedMinMembers, else the
			// same bytes), in the same order for all.
			prepared := members > preparedMinMembers
			frameOf := func(f outFrame) any {
				if f.pm != nil {
					return f.pm
				}
				if len(f.data) == 0 {
					return nil
				}
				return &f.data[0]
			}
			var order []outFrame
			seen := map[any]bool{}
			for i, c := range conns {
				q := c.t.(*wsWriter).queue
				if len(q) != records {
					t.Fatalf("member %d got %d frames, want %d", i, len(q), records)
				}
				if members == 1 {
					continue // a lone subscriber gets plain bytes
				}
				if order == nil {
					order = q
					for _, f := range q {
						if (f.pm != nil) != prepared || frameOf(f) == nil || seen[frameOf(f)] {
							t.Fatalf("member %d: frames not one shared frame per record (prepared: %v, want %v)", i, f.pm != nil, prepared)
						}
						seen[frameOf(f)] = true
					}
					continue
				}
				for off, f := range q {
					if f.spread != (members > spreadFanout) {
						t.Fatalf("member %d, frame %d: spread %v in a room of %d", i, off, f.spread, members)
					}
					if frameOf(f) != frameOf(order[off]) {
						t.Fatalf("member %d, frame %d is not record %d's frame", i, off, off)
					}
				}
			}
			presence := 0
			for _, c := range conns {
				w := c.t.(*wsWriter)
				w.queue = w.queue[:0]
			}
			// Presence frames go to members that asked, except the one
			// that joined (c3, when there is one).
			n := s.hub.broadcast("big", true, "c3", record.Pos{}, func(codec) []byte { return []byte(`{"type":"joined"}`) })
			for i, c := range conns {
				wants := i%3 == 0 && i != 3
				if got := len(c.t.(*wsWriter).queue); got != map[bool]int{true: 1, false: 0}[wants] {
					t.Fatalf("presence frame to member %d (wants %v): %d", i, wants, got)
				}
				if wants {
					presence++
				}
			}
			if n != presence {
				t.Fatalf("presence broadcast reported %d, want %d", n, presence)
			}
		})
	}
}

// TestFramePrepared: a native frame is prepared (framed once for every
// socket) for a room of more than preparedMinMembers local members, or a
// payload of preparedMinBytes or more with several members; otherwise, and
// for Socket.IO, the sockets get plain bytes.
func TestFramePrepared(t *testing.T) {
	small, big := bytes.Repeat([]byte("a"), 200), bytes.Repeat([]byte("b"), preparedMinBytes)
	for _, tc := range []struct {
		enc      codec
		data     []byte
		members  int
		prepared bool
	}{
		{jsonCodec{}, small, 1, false},
		{jsonCodec{}, small, 5, false},
		{jsonCodec{}, small, preparedMinMembers, false},
		{jsonCodec{}, small, preparedMinMembers + 1, true},
		{jsonCodec{}, big, 1, false},
		{jsonCodec{}, big, 2, true},
		{sioCodec{}, small, 1000, false},
	} {
		fc := &frameCache{room: "r"}
		f := fc.frame(tc.enc, func(codec) []byte { return tc.data }, tc.members)
		if got := f.pm != nil; got != tc.prepared {
			t.Errorf("%T, %d bytes, %d members: prepared %v, want %v", tc.enc, len(tc.data), tc.members, got, tc.prepared)
		}
		if !tc.prepared && !bytes.Equal(f.data, tc.data) {
			t.Errorf("%T, %d bytes, %d members: plain frame holds %d bytes", tc.enc, len(tc.data), tc.members, len(f.data))
		}
	}
}
