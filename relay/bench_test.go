package relay

// Micro-benchmarks of the relay's per-record hot path: the fan-out of one
// folded log record (Server.Deliver, the consumer's Sink) to a room's local
// sockets, the encoding of the outgoing message frame, and the decoding of a
// client frame.
//
//	go test -run '^$' -bench . -benchmem ./relay/

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/roomlog/roomlog/consumer"
	"github.com/roomlog/roomlog/internal/engineio"
	"github.com/roomlog/roomlog/record"
	"github.com/roomlog/roomlog/relay/auth"
)

// benchData is a typical ~100-byte publish payload.
const benchData = `{"user":"alice","text":"hello everyone, this is a typical chat line","ts":1767225600123,"seq":42}`

// benchEvent is a publish record as the consumer hands it to the Sink, sent
// by a connection of another relay (so no ack is due here).
func benchEvent() record.Event {
	return record.Event{
		Type:  record.TypePublish,
		Room:  "lobby",
		Event: "chat",
		Data:  []byte(benchData),
		From:  "3f9a1c2e-1k",
		MID:   "42",
		Req:   "42",
	}
}

// benchServer is a relay that is never started: enough for the hub and for
// conns without a socket. Its send queue is far longer than the benchmark
// ever lets a queue grow, so no subscriber is closed as slow.
func benchServer(b *testing.B) *Server {
	b.Helper()
	s, err := New(Config{Brokers: []string{"x"}, SendQueue: 1 << 16, Auth: auth.Config{Anonymous: true}})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// benchDrainEvery is how many records the fan-out benchmark delivers between
// drains of the subscribers' queues: each queue holds at most this many
// frames, well under the configured SendQueue.
const benchDrainEvery = 64

// drainQueues empties every conn's send queue the way the writer does (take
// the queue under c.mu, signal space), dropping the frames instead of writing
// them.
func drainQueues(conns []*conn) {
	for _, c := range conns {
		w := c.t.(*wsWriter)
		w.mu.Lock()
		clear(w.queue)
		w.queue = w.queue[:0]
		w.mu.Unlock()
		select {
		case w.space <- struct{}{}:
		default:
		}
	}
}

// BenchmarkHubFanout measures Server.Deliver (the consumer's Sink) of one
// folded publish record to a room with 1, 100 and 1000 local subscribers: the
// message frame is encoded and prepared once, then enqueued on every
// subscriber's send queue. Queues are drained inside the timed region (every
// benchDrainEvery records and at the end), so the cost of emptying them is
// counted; socket writes are not.
func BenchmarkHubFanout(b *testing.B) {
	for _, subs := range []int{1, 100, 1000} {
		b.Run("subs="+strconv.Itoa(subs), func(b *testing.B) {
			s := benchServer(b)
			conns := make([]*conn, subs)
			for i := range conns {
				conns[i] = newConn(s, s.ID()+"-"+strconv.Itoa(i), s.ID(), jsonCodec{})
				w := newWSWriter(conns[i], nil)
				w.writing = true // the benchmark drains the queues itself: no writer goroutine
				conns[i].t = w
				if !s.hub.add("lobby", &sub{c: conns[i]}) {
					b.Fatal("add: already in room")
				}
				// Let each queue reach its steady-state capacity before
				// timing, as a long-lived socket's would.
				w.queue = make([]outFrame, 0, benchDrainEvery)
			}
			d := consumer.Delivery{
				Event:  benchEvent(),
				Pos:    record.Pos{Epoch: 0x1234567890abcdef, Partition: 3},
				Result: &consumer.Result{},
				Live:   true,
			}
			start := s.hub.delivered.Load()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				d.Pos.Offset = int64(i)
				s.Deliver(&d)
				if (i+1)%benchDrainEvery == 0 {
					drainQueues(conns)
				}
			}
			drainQueues(conns)
			b.StopTimer()
			for _, c := range conns {
				if c.t.(*wsWriter).closed {
					b.Fatalf("conn %s was closed: a queue overflowed", c.id)
				}
			}
			if got, want := s.hub.delivered.Load()-start, uint64(b.N*subs); got != want {
				b.Fatalf("delivered %d frames, want %d", got, want)
			}
			b.ReportMetric(float64(b.N)*float64(subs)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// BenchmarkSIOFanout is BenchmarkHubFanout for Socket.IO sockets with
// connection state recovery on: Server.Deliver of one folded publish record
// to a room with 1, 100 and 1000 local Socket.IO subscribers, each a real
// Engine.IO session (polling, made by a handshake served in-process). The
// event is encoded once; each socket gets it stamped with its own recovery
// offset (sioStamp) and queued on its session. Draining the sessions' queues
// is a polling GET each (the payload's encoding is the transport's write), so
// it runs with the timer stopped, every benchDrainEvery records.
func BenchmarkSIOFanout(b *testing.B) {
	for _, subs := range []int{1, 100, 1000} {
		b.Run("subs="+strconv.Itoa(subs), func(b *testing.B) {
			s := benchServer(b)
			eio, sessions := benchEngineIO(b, subs)
			conns := make([]*conn, subs)
			for i, sess := range sessions {
				conns[i] = newConn(s, s.ID()+"-"+strconv.Itoa(i), s.ID(), sioCodec{})
				conns[i].t = &sioTransport{c: conns[i], sess: sess, rec: newSIOStamp(s.epoch)}
				if !s.hub.add("lobby", &sub{c: conns[i]}) {
					b.Fatal("add: already in room")
				}
			}
			d := consumer.Delivery{
				Event:  benchEvent(),
				Pos:    record.Pos{Epoch: s.epoch, Partition: 3},
				Result: &consumer.Result{},
				Live:   true,
			}
			// Let each queue and stamp reach its steady-state capacity
			// before timing, as a long-lived socket's would.
			for i := range benchDrainEvery {
				d.Pos.Offset = int64(i)
				s.Deliver(&d)
			}
			drainSessions(b, eio, sessions)
			start := s.hub.delivered.Load()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				d.Pos.Offset = int64(benchDrainEvery + i)
				s.Deliver(&d)
				if (i+1)%benchDrainEvery == 0 {
					b.StopTimer()
					drainSessions(b, eio, sessions)
					b.StartTimer()
				}
			}
			b.StopTimer()
			if b.N%benchDrainEvery != 0 { // a poll of an empty queue would wait
				drainSessions(b, eio, sessions)
			}
			for _, sess := range sessions {
				if r := sess.Reason(); r != (engineio.CloseReason{}) {
					b.Fatalf("session %s closed: %s", sess.ID(), r)
				}
			}
			if got, want := s.hub.delivered.Load()-start, uint64(b.N*subs); got != want {
				b.Fatalf("delivered %d frames, want %d", got, want)
			}
			b.ReportMetric(float64(b.N)*float64(subs)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// benchEngineIO starts an Engine.IO server (served in-process, no socket)
// with n polling sessions whose handlers take every message and do nothing.
// Its queue is far longer than the benchmark lets one grow, and it never
// pings within a benchmark.
// ignore is an Engine.IO handler that takes every message and does nothing.
type ignore struct{}

func (ignore) Message(engineio.Message) bool { return true }
func (ignore) Closed()                       {}

func benchEngineIO(b *testing.B, n int) (*engineio.Server, []*engineio.Session) {
	b.Helper()
	opened := make(chan *engineio.Session, n)
	eio, err := engineio.NewServer(engineio.Config{
		OnOpen: func(sess *engineio.Session, _ *http.Request) engineio.Handler {
			opened <- sess
			return ignore{}
		},
		PingInterval: time.Hour,
		PingTimeout:  time.Hour,
		SendQueue:    1 << 16,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = eio.Shutdown(ctx)
	})
	sessions := make([]*engineio.Session, n)
	for i := range sessions {
		w := httptest.NewRecorder()
		eio.ServeHTTP(w, httptest.NewRequest("GET", "/socket.io/?EIO=4&transport=polling", nil))
		if w.Code != 200 {
			b.Fatalf("handshake: HTTP %d %s", w.Code, w.Body)
		}
		sessions[i] = <-opened
	}
	return eio, sessions
}

// drainSessions empties each session's queue as its transport does: a
// polling GET answered with the queued packets. Every queue must hold some:
// a poll waits for packets.
func drainSessions(b *testing.B, eio *engineio.Server, sessions []*engineio.Session) {
	b.Helper()
	for _, sess := range sessions {
		w := httptest.NewRecorder()
		eio.ServeHTTP(w, httptest.NewRequest("GET", "/socket.io/?EIO=4&transport=polling&sid="+sess.ID(), nil))
		if w.Code != 200 {
			b.Fatalf("poll: HTTP %d %s", w.Code, w.Body)
		}
	}
}

// BenchmarkEncodeMessage measures appendMessage, the one JSON encoding each
// record gets before fan-out: into a growing buffer, into one sized once as
// the codec does for Server.Deliver, and into a reused one.
func BenchmarkEncodeMessage(b *testing.B) {
	ev := benchEvent()
	pos := record.Pos{Epoch: 0x1234567890abcdef, Partition: 3, Offset: 123456789}
	size := len(appendMessage(nil, ev.Room, ev.Event, ev.Data, ev.From, ev.User, pos))
	b.Run("fresh", func(b *testing.B) {
		b.SetBytes(int64(size))
		b.ReportAllocs()
		for b.Loop() {
			_ = appendMessage(nil, ev.Room, ev.Event, ev.Data, ev.From, ev.User, pos)
		}
	})
	b.Run("codec", func(b *testing.B) { // what Server.Deliver calls: sized once
		b.SetBytes(int64(size))
		b.ReportAllocs()
		for b.Loop() {
			_ = jsonCodec{}.message(ev.Room, ev.Event, ev.Data, ev.From, ev.User, pos)
		}
	})
	b.Run("reuse", func(b *testing.B) {
		buf := make([]byte, 0, 512)
		b.SetBytes(int64(size))
		b.ReportAllocs()
		for b.Loop() {
			buf = appendMessage(buf[:0], ev.Room, ev.Event, ev.Data, ev.From, ev.User, pos)
		}
	})
}

// BenchmarkDecodeFrame measures decodeFrame (encoding/json plus validation)
// on a typical publish frame.
func BenchmarkDecodeFrame(b *testing.B) {
	frame := []byte(`{"op":"publish","room":"lobby","event":"chat","data":` + benchData + `,"id":42}`)
	if _, ferr := decodeFrame(frame); ferr != nil {
		b.Fatal(ferr)
	}
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		f, ferr := decodeFrame(frame)
		if ferr != nil || f.Op != opPublish {
			b.Fatal(ferr)
		}
	}
}
