package relay_test

// End-to-end benchmark: publisher socket → relay → log (kfake, in process) →
// consumer → hub → subscriber socket, on one machine. Everything (broker,
// relay, both clients) shares the same CPUs, so the figures are an upper
// bound on the relay's own latency and a lower bound on its throughput.
//
//	go test -run '^$' -bench PublishDeliver ./relay/

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/roomlog/roomlog/record"
	"github.com/roomlog/roomlog/relay"
	"github.com/roomlog/roomlog/relay/auth"
)

// benchPad brings a publish's data to about 100 bytes.
const benchPad = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmno"

// benchDial opens a socket to s and reads its welcome frame.
func benchDial(b *testing.B, s *relay.Server) *websocket.Conn {
	b.Helper()
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+s.Addr().String()+"/ws", nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ws.Close() })
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, msg, err := ws.ReadMessage()
	if err != nil || !bytes.Contains(msg, []byte(`"op":"welcome"`)) {
		b.Fatalf("welcome: %q, %v", msg, err)
	}
	return ws
}

// benchStartRelay starts a kfake broker and one relay on it, both stopped at
// the end of the benchmark.
func benchStartRelay(b *testing.B) *relay.Server {
	b.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	s, err := relay.New(relay.Config{
		Listen:     "127.0.0.1:0",
		Brokers:    c.ListenAddrs(),
		Topic:      "roomlog-bench",
		Partitions: 4,
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Auth:       auth.Config{Anonymous: true},
		Limits:     relay.LimitsConfig{Rate: -1},
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return s
}

// BenchmarkPublishDeliver measures publish→deliver through a real relay and
// log. Each iteration is one message published by one socket and received by
// another in the same room. The publisher keeps at most `window` messages
// published but not yet received: window=1 is the unloaded round trip,
// larger windows pipeline (and the latency then includes queueing behind
// the window). Reported: msgs/s, and p50/p99 latency in µs from the
// publisher's write (send time in the data) to the subscriber's read.
func BenchmarkPublishDeliver(b *testing.B) {
	s := benchStartRelay(b)
	sub := benchDial(b, s)
	pub := benchDial(b, s)

	_ = sub.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := sub.WriteMessage(websocket.TextMessage, []byte(`{"op":"join","room":"r","id":"1"}`)); err != nil {
		b.Fatal(err)
	}
	if _, msg, err := sub.ReadMessage(); err != nil || !bytes.Contains(msg, []byte(`"op":"ack"`)) {
		b.Fatalf("join: %q, %v", msg, err)
	}

	// The publisher's acks must be read, or its send queue overflows and
	// the relay closes it as slow. Each benchmark run tells the reader how
	// many acks to expect.
	type ackRun struct {
		n    int
		done chan error
	}
	acks := make(chan ackRun)
	go func() {
		for run := range acks {
			var err error
			for i := 0; i < run.n && err == nil; i++ {
				_ = pub.SetReadDeadline(time.Now().Add(30 * time.Second))
				var msg []byte
				_, msg, err = pub.ReadMessage()
				if err == nil && !bytes.Contains(msg, []byte(`"op":"ack"`)) {
					err = fmt.Errorf("publisher got %q, want an ack", msg)
				}
			}
			run.done <- err
		}
	}()
	b.Cleanup(func() { close(acks) })

	// Request ids stay unique across runs, in case they are ever used to
	// deduplicate.
	var nextID int64
	for _, window := range []int{1, 16, 128} {
		b.Run("window="+strconv.Itoa(window), func(b *testing.B) {
			n := b.N
			idBase := nextID
			nextID += int64(n)
			lat := make([]time.Duration, 0, n)
			credit := make(chan struct{}, window)
			for range window {
				credit <- struct{}{}
			}
			ackDone := make(chan error, 1)
			acks <- ackRun{n: n, done: ackDone}
			pubDone := make(chan error, 1)
			stop := make(chan struct{})
			defer close(stop)

			b.ResetTimer()
			go func() {
				buf := make([]byte, 0, 256)
				for i := range n {
					select {
					case <-credit:
					case <-stop:
						pubDone <- errors.New("stopped")
						return
					}
					buf = append(buf[:0], `{"op":"publish","room":"r","event":"e","data":{"t":`...)
					buf = strconv.AppendInt(buf, time.Now().UnixNano(), 10)
					buf = append(buf, `,"seq":`...)
					buf = strconv.AppendInt(buf, int64(i), 10)
					buf = append(buf, `,"pad":"`+benchPad+`"},"id":`...)
					buf = strconv.AppendInt(buf, idBase+int64(i), 10)
					buf = append(buf, '}')
					if err := pub.WriteMessage(websocket.TextMessage, buf); err != nil {
						pubDone <- err
						return
					}
				}
				pubDone <- nil
			}()
			for i := range n {
				_ = sub.SetReadDeadline(time.Now().Add(30 * time.Second))
				_, msg, err := sub.ReadMessage()
				now := time.Now().UnixNano()
				if err != nil {
					b.Fatalf("subscriber, message %d of %d: %v", i, n, err)
				}
				t, seq, ok := benchParse(msg)
				if !ok {
					b.Fatalf("subscriber got %q, want a message", msg)
				}
				if seq != int64(i) {
					b.Fatalf("message %d has seq %d", i, seq)
				}
				lat = append(lat, time.Duration(now-t))
				credit <- struct{}{}
			}
			b.StopTimer()
			if err := <-pubDone; err != nil {
				b.Fatal(err)
			}
			if err := <-ackDone; err != nil {
				b.Fatal(err)
			}
			slices.Sort(lat)
			us := func(q float64) float64 {
				return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))]) / float64(time.Microsecond)
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(us(0.50), "p50-µs")
			b.ReportMetric(us(0.99), "p99-µs")
		})
	}
}

// benchParse reads the send time and sequence number out of a message frame
// without a full JSON decode, which would otherwise dominate the client's
// share of the CPU.
func benchParse(msg []byte) (t, seq int64, ok bool) {
	if !bytes.HasPrefix(msg, []byte(`{"op":"message"`)) {
		return 0, 0, false
	}
	num := func(key string) (int64, bool) {
		i := bytes.Index(msg, []byte(key))
		if i < 0 {
			return 0, false
		}
		rest := msg[i+len(key):]
		j := 0
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		v, err := strconv.ParseInt(string(rest[:j]), 10, 64)
		return v, err == nil
	}
	t, ok1 := num(`{"t":`)
	seq, ok2 := num(`"seq":`)
	return t, seq, ok1 && ok2
}

// BenchmarkRecovery10k measures a resume from the log: 10,000 messages of a
// room are older than the in-memory window, and a client rejoins with the
// position before the first. One op is one complete recovery: join with
// since → 10,000 message frames → ack with recovered:true.
func BenchmarkRecovery10k(b *testing.B) {
	const n = 10000
	s := benchStartRelay(b)
	pub := benchDial(b, s)
	first := ""
	go func() {
		for i := 0; i < n; i++ {
			_ = pub.WriteMessage(websocket.TextMessage, []byte(`{"op":"publish","room":"rec","data":{"i":`+strconv.Itoa(i)+`,"pad":"`+benchPad+`"},"id":`+strconv.Itoa(i)+`}`))
		}
	}()
	for i := 0; i < n; i++ {
		_ = pub.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, msg, err := pub.ReadMessage()
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			first = string(msg)
		}
	}
	// The first ack's position, minus one offset: resume from before it.
	var ack struct{ Pos string }
	if err := json.Unmarshal([]byte(first), &ack); err != nil {
		b.Fatal(err)
	}
	p, err := record.ParsePos(ack.Pos)
	if err != nil {
		b.Fatal(err)
	}
	p.Offset--
	since := p.String()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ws := benchDial(b, s)
		if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"op":"join","room":"rec","since":"`+since+`","id":"r"}`)); err != nil {
			b.Fatal(err)
		}
		got := 0
		for {
			_ = ws.SetReadDeadline(time.Now().Add(60 * time.Second))
			_, msg, err := ws.ReadMessage()
			if err != nil {
				b.Fatal(err)
			}
			if bytes.Contains(msg, []byte(`"op":"message"`)) {
				got++
				continue
			}
			if bytes.Contains(msg, []byte(`"op":"ack"`)) {
				if !bytes.Contains(msg, []byte(`"recovered":true`)) || got != n {
					b.Fatalf("recovered %d of %d: %s", got, n, msg)
				}
				break
			}
		}
		ws.Close()
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "records/s")
	if s.Stats().LogRecoveries == 0 {
		b.Fatal("the recovery did not read the log")
	}
}
