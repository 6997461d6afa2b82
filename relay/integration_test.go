package relay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/roomlog/roomlog/record"
	"github.com/roomlog/roomlog/relay"
	"github.com/roomlog/roomlog/relay/auth"
)

func TestCrossRelayDelivery(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		topic := newTopic(t)
		ra := startRelay(t, b, topic, nil)
		rb := startRelay(t, b, topic, nil)

		sub := dial(t, ra)
		sub.join("lobby")
		bystander := dial(t, ra)
		bystander.join("other")
		pub := dial(t, rb)

		const n = 1000
		go func() {
			for i := 0; i < n; i++ {
				pub.send(map[string]any{"op": "publish", "room": "lobby", "event": "chat", "data": map[string]int{"seq": i}, "id": i})
			}
		}()
		var last record.Pos
		for i := 0; i < n; i++ {
			f := pub.reply()
			if f.Op != "ack" || string(f.ID) != fmt.Sprint(i) {
				t.Fatalf("reply %d: %+v, want ack of id %d", i, f, i)
			}
			p, err := record.ParsePos(f.Pos)
			if err != nil {
				t.Fatalf("ack %d: %v", i, err)
			}
			if i > 0 && (p.Partition != last.Partition || p.Offset <= last.Offset || p.Epoch != last.Epoch) {
				t.Fatalf("ack %d at %v, not after %v", i, p, last)
			}
			last = p
		}
		for i := 0; i < n; i++ {
			f := sub.message()
			var d struct{ Seq int }
			if err := json.Unmarshal(f.Data, &d); err != nil {
				t.Fatal(err)
			}
			if f.Room != "lobby" || f.Event != "chat" || f.From != pub.id || d.Seq != i {
				t.Fatalf("message %d: got %+v (seq %d), want lobby/chat from %s seq %d", i, f, d.Seq, pub.id, i)
			}
		}
		// The bystander's room gets a marker: anything before it was a leak.
		pub.do(map[string]any{"op": "publish", "room": "other", "data": "marker", "id": "m"})
		if f := bystander.message(); string(f.Data) != `"marker"` {
			t.Fatalf("bystander in another room got %+v", f)
		}
		select {
		case f := <-sub.msgs:
			t.Fatalf("subscriber got an extra message %+v", f)
		case <-time.After(200 * time.Millisecond):
		}
	})
}

func TestSenderReceivesOwnPublish(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		r := startRelay(t, b, newTopic(t), nil)
		c := dial(t, r)
		c.join("echo")
		ack := c.do(map[string]any{"op": "publish", "room": "echo", "event": "e", "data": []int{1, 2}, "id": "p1"})
		m := c.message()
		if m.Pos != ack.Pos || m.From != c.id || string(m.Data) != "[1,2]" {
			t.Fatalf("got %+v, want own message at %s", m, ack.Pos)
		}
		c.do(map[string]any{"op": "leave", "room": "echo", "id": "l"})
		c.do(map[string]any{"op": "publish", "room": "echo", "data": 1, "id": "p2"})
		select {
		case f := <-c.msgs:
			t.Fatalf("got %+v after leaving", f)
		case <-time.After(300 * time.Millisecond):
		}
	})
}

// TestPing: the application heartbeat is answered with and without an id,
// needs no room and appends nothing.
func TestPing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		topic := newTopic(t)
		r := startRelay(t, b, topic, quietLeases) // no lease record between the two counts
		c := dial(t, r)
		before := endOffsets(t, b, topic)
		for _, tc := range []struct{ in, id string }{
			{`{"op":"ping","id":"h1"}`, `"h1"`},
			{`{"op":"ping","id":7}`, `7`},
			{`{"op":"ping"}`, ``},
		} {
			c.sendRaw(websocket.TextMessage, []byte(tc.in))
			if f := c.reply(); f.Op != "pong" || string(f.ID) != tc.id {
				t.Fatalf("%s: got %+v, want pong with id %s", tc.in, f, tc.id)
			}
		}
		if after := endOffsets(t, b, topic); after != before {
			t.Fatalf("ping appended %d records", after-before)
		}
	})
}

func TestKcatInterop(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		kc := kcat(t)
		topic := newTopic(t)
		ra := startRelay(t, b, topic, nil)
		rb := startRelay(t, b, topic, nil)
		ca, cb := dial(t, ra), dial(t, rb)
		ca.join("kroom")
		cb.join("kroom")

		// kcat's default partitioner is not Kafka's (librdkafka's CRC32):
		// the records may land on another partition, and still reach the
		// room, from its own partition (re-homed), in order.
		produce := func(args ...string) {
			t.Helper()
			cmd := exec.Command(kc, append([]string{"-P", "-b", strings.Join(b.brokers, ","), "-t", topic, "-K", "\t"}, args...)...)
			cmd.Stdin = strings.NewReader("kroom\thello from kcat\nkroom\t{\"n\":7}\n")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("kcat produce: %v\n%s", err, out)
			}
		}
		home := record.PartitionOf("kroom", 4)
		for _, args := range [][]string{nil, {"-X", "partitioner=murmur2_random"}} {
			produce(args...)
			for _, c := range []*client{ca, cb} {
				for i := 0; i < 2; i++ {
					m := c.message()
					want := []string{`"hello from kcat"`, `{"n":7}`}[i]
					pos, err := record.ParsePos(m.Pos)
					if m.Room != "kroom" || m.Event != "message" || string(m.Data) != want || m.From != "" || err != nil || pos.Partition != home {
						t.Fatalf("kcat %v, message %d: got %+v, want data %s from partition %d", args, i, m, want, home)
					}
				}
			}
		}

		// A client's publish reads back as key = room, value = data, on
		// the partition Kafka's murmur2 partitioner (kcat's murmur2_random)
		// picks for the key.
		ack := cb.do(map[string]any{"op": "publish", "room": "kroom", "event": "chat", "data": map[string]string{"text": "hi"}, "id": 1})
		pos, _ := record.ParsePos(ack.Pos)
		cmd := exec.Command(kc, "-C", "-b", strings.Join(b.brokers, ","), "-t", topic, "-p", fmt.Sprint(pos.Partition),
			"-o", fmt.Sprint(pos.Offset), "-c", "1", "-e", "-f", "%k|%s|%h")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("kcat consume: %v", err)
		}
		got := string(out)
		if !strings.HasPrefix(got, `kroom|{"text":"hi"}|`) || !strings.Contains(got, "rl-event=chat") {
			t.Fatalf("kcat read %q", got)
		}
		// The partition of the murmur2-produced records equals ours.
		cmd = exec.Command(kc, "-C", "-b", strings.Join(b.brokers, ","), "-t", topic, "-p", fmt.Sprint(pos.Partition),
			"-o", "beginning", "-e", "-f", "%s\n")
		out, err = cmd.Output()
		if err != nil {
			t.Fatalf("kcat consume: %v", err)
		}
		if n := strings.Count(string(out), "hello from kcat"); n < 1 {
			t.Fatalf("murmur2-partitioned kcat record is not on partition %d with the relay's record:\n%s", pos.Partition, out)
		}
	})
}

func TestRelayRestart(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		topic := newTopic(t)
		ra := startRelay(t, b, topic, nil)
		rb := startRelay(t, b, topic, nil)
		addr := ra.Addr().String()
		sub := dial(t, ra)
		sub.join("r")
		pub := dial(t, rb)
		pub.do(map[string]any{"op": "publish", "room": "r", "data": "before", "id": 1})
		if m := sub.message(); string(m.Data) != `"before"` {
			t.Fatalf("got %+v", m)
		}

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ra.Shutdown(ctx); err != nil {
			t.Fatalf("shutdown: %v", err)
		}
		select {
		case err := <-sub.err:
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
				t.Fatalf("client of stopped relay got %v, want close 1001", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("client of stopped relay not closed")
		}

		// Same address, new process state: the client reconnects.
		ra2 := startRelay(t, b, topic, func(c *relay.Config) { c.Listen = addr })
		if ra2.ID() == ra.ID() {
			t.Fatal("restarted relay reused its id")
		}
		var sub2 *client
		for deadline := time.Now().Add(10 * time.Second); ; {
			ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws", nil)
			if err == nil {
				ws.Close()
				sub2 = dial(t, ra2)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("reconnect: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		sub2.join("r")
		for i := 0; i < 10; i++ {
			pub.do(map[string]any{"op": "publish", "room": "r", "data": i, "id": 100 + i})
		}
		for i := 0; i < 10; i++ {
			if m := sub2.message(); string(m.Data) != fmt.Sprint(i) {
				t.Fatalf("after restart, message %d: %+v", i, m)
			}
		}
	})
}

func TestSlowClientClosed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		r := startRelay(t, b, newTopic(t), func(c *relay.Config) {
			c.SendQueue = 512 // above the publisher's burst of MaxInflight acks
			c.WriteTimeout = 2 * time.Second
		})
		slow := dialURL(t, "ws://"+r.Addr().String()+"/ws", false) // never reads
		slow.send(map[string]any{"op": "join", "room": "busy", "id": 1})
		good := dial(t, r)
		good.join("busy")
		pub := dial(t, r)

		payload := strings.Repeat("x", 32<<10)
		const n = 1000 // 32 MB: more than the socket buffers and the queue hold
		go func() {
			for i := 0; i < n; i++ {
				pub.send(map[string]any{"op": "publish", "room": "busy", "data": map[string]any{"i": i, "p": payload}, "id": i})
			}
		}()
		for i := 0; i < n; i++ {
			m := good.message()
			var d struct{ I int }
			_ = json.Unmarshal(m.Data, &d)
			if d.I != i {
				t.Fatalf("well-behaved client got message %d, want %d", d.I, i)
			}
		}
		deadline := time.Now().Add(15 * time.Second)
		for r.Stats().SlowCloses == 0 {
			if time.Now().After(deadline) {
				t.Fatal("slow client was never closed")
			}
			time.Sleep(50 * time.Millisecond)
		}
		// The slow client, reading at last, finds its connection ended.
		_ = slow.ws.SetReadDeadline(time.Now().Add(15 * time.Second))
		for {
			if _, _, err := slow.ws.ReadMessage(); err != nil {
				var ne interface{ Timeout() bool }
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatal("slow client's connection still open")
				}
				break
			}
		}
	})
}

func TestBadInput(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		topic := newTopic(t)
		r := startRelay(t, b, topic, func(c *relay.Config) { c.MaxMessageBytes = 1024; c.MaxRoomsPerConn = 2 })
		bystander := dial(t, r)
		bystander.join("calm")
		before := endOffsets(t, b, topic)

		errFrames := []struct {
			name  string
			frame string
			code  string
		}{
			{"not json", `{"op":`, "bad_request"},
			{"json array", `[1,2]`, "bad_request"},
			{"json string", `"publish"`, "bad_request"},
			{"room not a string", `{"op":"join","room":5,"id":"x"}`, "bad_request"},
			{"no op", `{"room":"a"}`, "unknown_op"},
			{"unknown op", `{"op":"explode","room":"a","id":"1"}`, "unknown_op"},
			{"missing room", `{"op":"publish","data":1,"id":"1"}`, "invalid_room"},
			{"empty room", `{"op":"join","room":"","id":"1"}`, "invalid_room"},
			{"long room", `{"op":"publish","room":"` + strings.Repeat("r", record.MaxRoomBytes+1) + `","data":1}`, "invalid_room"},
			{"control char room", `{"op":"publish","room":"a\u0007b","data":1}`, "invalid_room"},
			{"newline room", `{"op":"join","room":"a\nb"}`, "invalid_room"},
			{"bad event", `{"op":"publish","room":"a","event":"e\u0000","data":1}`, "invalid_event"},
			{"object id", `{"op":"publish","room":"a","data":1,"id":{"x":1}}`, "invalid_id"},
			{"leave unjoined", `{"op":"leave","room":"nowhere","id":"1"}`, "not_joined"},
		}
		c := dial(t, r)
		for _, tt := range errFrames {
			c.sendRaw(websocket.TextMessage, []byte(tt.frame))
			f := c.reply()
			if f.Op != "error" || f.Code != tt.code || f.Message == "" {
				t.Errorf("%s: got %+v, want error %s", tt.name, f, tt.code)
			}
		}
		c.join("one")
		c.join("two")
		c.send(map[string]any{"op": "join", "room": "three", "id": "3"})
		if f := c.reply(); f.Code != "too_many_rooms" {
			t.Errorf("third room: got %+v, want too_many_rooms", f)
		}
		if got := endOffsets(t, b, topic) - before; got != 2 { // the two joins
			t.Fatalf("bad frames appended %d records, want only the 2 joins", got-2)
		}
		before += 2

		closes := []struct {
			name string
			mt   int
			body []byte
			code int
		}{
			{"binary frame", websocket.BinaryMessage, []byte(`{"op":"publish","room":"a","data":1}`), websocket.CloseUnsupportedData},
			{"oversized frame", websocket.TextMessage, []byte(`{"op":"publish","room":"a","data":"` + strings.Repeat("x", 2000) + `"}`), websocket.CloseMessageTooBig},
		}
		for _, tt := range closes {
			c := dial(t, r)
			c.sendRaw(tt.mt, tt.body)
			select {
			case err := <-c.err:
				var ce *websocket.CloseError
				if !errors.As(err, &ce) || ce.Code != tt.code {
					t.Errorf("%s: got %v, want close %d", tt.name, err, tt.code)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("%s: not closed", tt.name)
			}
		}
		if got := endOffsets(t, b, topic); got != before {
			t.Fatalf("bad input appended %d records", got-before)
		}
		// Everyone else is still served.
		bystander.do(map[string]any{"op": "publish", "room": "calm", "data": "still here", "id": "ok"})
		if m := bystander.message(); !bytes.Equal(m.Data, []byte(`"still here"`)) {
			t.Fatalf("bystander got %+v", m)
		}
	})
}

// TestRelayWaitsForTheLog: a relay started before its broker waits for it
// (a fleet restarting together) instead of exiting.
func TestRelayWaitsForTheLog(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	srv, err := relay.New(relay.Config{Listen: "127.0.0.1:0", Brokers: []string{fmt.Sprintf("127.0.0.1:%d", port)}, Topic: newTopic(t),
		Partitions: 4, Logger: testLogger(t), Auth: auth.Config{Anonymous: true}})
	if err != nil {
		t.Fatal(err)
	}
	startErr := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		startErr <- srv.Start(ctx)
	}()
	time.Sleep(1500 * time.Millisecond)
	select {
	case err := <-startErr:
		t.Fatalf("the relay did not wait for its broker: %v", err)
	default:
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	// Registered after the broker's: cleanups run last-first, so the relay
	// drains while its broker is still up.
	t.Cleanup(func() {
		if !srv.Ready() {
			return // never started
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	select {
	case err := <-startErr:
		if err != nil {
			t.Fatal(err)
		}
		cl := dial(t, srv)
		cl.join("late")
	case <-time.After(30 * time.Second):
		t.Fatal("the relay did not start once the broker came up")
	}
}
