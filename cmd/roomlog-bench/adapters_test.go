package main

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/roomlog/roomlog/relay"
	"github.com/roomlog/roomlog/relay/auth"
)

func TestSocketIOURL(t *testing.T) {
	for _, tc := range []struct{ base, want string }{
		{"ws://127.0.0.1:18201", "ws://127.0.0.1:18201/socket.io/?EIO=4&transport=websocket"},
		{"ws://127.0.0.1:18201/", "ws://127.0.0.1:18201/socket.io/?EIO=4&transport=websocket"},
		{"ws://127.0.0.1:18081/ws", "ws://127.0.0.1:18081/socket.io/?EIO=4&transport=websocket"},
		{"wss://relay.example.com/socket.io/?EIO=4&transport=websocket", "wss://relay.example.com/socket.io/?EIO=4&transport=websocket"},
	} {
		if got := (socketioAdapter{}).url(tc.base); got != tc.want {
			t.Errorf("url(%q) = %q, want %q", tc.base, got, tc.want)
		}
	}
}

// TestSocketIOFrames feeds the adapter the packets both Socket.IO servers send (the peer's and roomlog's) and
// checks what it makes of them: a refused ack is an error, never an ack; roomlog's meta.pos is kept for a rejoin.
func TestSocketIOFrames(t *testing.T) {
	for _, tc := range []struct {
		name      string
		frame     string
		event     event
		acked     uint64
		errors    uint64
		lastPos   string
		delivered uint64
	}{
		{name: "connect", frame: `40{"sid":"a-1"}`, event: evConnected},
		{name: "connect error", frame: `44{"message":"unauthorized"}`, event: evJoinFailed, errors: 1},
		{name: "peer join ack", frame: `431[{"ok":true}]`, event: evJoined},
		{name: "roomlog join ack", frame: `431[{"ok":true,"pos":"3-7-00000000000000aa"}]`, event: evJoined, lastPos: "3-7-00000000000000aa"},
		{name: "join refused", frame: `431[{"ok":false,"code":"forbidden","message":"no"}]`, event: evJoinFailed, errors: 1},
		{name: "resume not recovered", frame: `431[{"ok":true,"pos":"3-9-00000000000000aa","recovered":false}]`, event: evJoined, errors: 1, lastPos: "3-9-00000000000000aa"},
		{name: "publish ack", frame: `43105[{"ok":true,"pos":"3-8-00000000000000aa"}]`, acked: 1},
		{name: "publish refused", frame: `43105[{"ok":false,"code":"rate_limited","message":"slow down"}]`, errors: 1},
		{name: "peer delivery", frame: `42["message","r",{"b":"0.5.100","x":"xx"}]`, delivered: 1},
		{name: "roomlog delivery", frame: `42["publish",{"b":"0.5.100","x":"xx"},{"room":"r","pos":"3-8-00000000000000aa","from":"s-1"}]`, delivered: 1, lastPos: "3-8-00000000000000aa"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &worker{cfg: &config{URLs: []string{"ws://x"}, Rooms: 1, Conns: 1}, ad: socketioAdapter{}, epoch: time.Now()}
			c := w.newClient(0, 0, false)
			w.ad.frame(c, []byte(tc.frame))
			var got event
			select {
			case got = <-c.state:
			default:
			}
			if got != tc.event {
				t.Errorf("event %v, want %v", got, tc.event)
			}
			if c.nAcked != tc.acked || w.errorFrames.Load() != tc.errors || w.deliveries.Load() != tc.delivered || c.lastPos != tc.lastPos {
				t.Errorf("acked %d errors %d delivered %d lastPos %q; want %d %d %d %q", c.nAcked, w.errorFrames.Load(),
					w.deliveries.Load(), c.lastPos, tc.acked, tc.errors, tc.delivered, tc.lastPos)
			}
		})
	}
}

// TestSocketIOOnRelay drives a real relay's /socket.io/ (kfake, in-process) with the bench's Socket.IO client:
// connect, join, publishes acked and delivered once and in order, and a dropped socket that reconnects and rejoins
// with `since` misses nothing.
func TestSocketIOOnRelay(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	s, err := relay.New(relay.Config{
		Listen: "127.0.0.1:0", Brokers: cluster.ListenAddrs(), Topic: "bench-sio", Partitions: 2,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Auth: auth.Config{Anonymous: true},
		Limits: relay.LimitsConfig{Rate: -1},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	shutdown := func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		_ = s.Shutdown(sctx)
	}

	cfg := &config{URLs: []string{"ws://" + s.Addr().String() + "/ws"}, Conns: 2, Rooms: 1, RunID: "t", Size: 60}
	w := &worker{cfg: cfg, ad: socketioAdapter{}, epoch: time.Now()}
	w.makeDialers()
	pub, sub := w.newClient(0, 0, true), w.newClient(1, 0, true)
	for _, c := range []*client{pub, sub} {
		if err := c.connect(ctx, false); err != nil {
			t.Fatalf("connect: %v", err)
		}
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		// The relay's shutdown closes a socket a reconnection may have opened after closeAll.
		w.stopping.Store(true)
		w.closeAll()
		shutdown()
		wg.Wait()
	})
	for _, c := range []*client{pub, sub} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.readLoop(ctx)
		}()
	}

	publish := func(from, to uint64) {
		t.Helper()
		for seq := from; seq < to; seq++ {
			if err := w.ad.publish(pub, seq, w.payload(0, seq)); err != nil {
				t.Fatal(err)
			}
		}
		waitUntil(t, func() bool {
			pub.smu.Lock()
			defer pub.smu.Unlock()
			return pub.nAcked == to
		}, "acks")
		waitUntil(t, func() bool {
			sub.smu.Lock()
			defer sub.smu.Unlock()
			st := sub.streams[0]
			return st != nil && st.max == int64(to-1)
		}, "deliveries")
	}
	publish(0, 50)
	t.Log("50 published and delivered")
	sub.smu.Lock()
	pos := sub.lastPos
	sub.smu.Unlock()
	if !strings.Contains(pos, "-") {
		t.Fatalf("lastPos %q: no position from meta", pos)
	}

	// Drop the subscriber's socket while messages flow: it reconnects and rejoins with since.
	sub.wmu.Lock()
	_ = sub.ws.UnderlyingConn().Close()
	sub.wmu.Unlock()
	publish(50, 100)
	waitUntil(t, func() bool { return w.reconnects.Load() == 1 }, "the reconnection")

	sub.smu.Lock()
	defer sub.smu.Unlock()
	for seq := uint64(0); seq < 100; seq++ {
		if !sub.streams[0].got.has(seq) {
			t.Errorf("message %d lost", seq)
		}
	}
	if sub.dup != 0 || sub.ooo != 0 || w.errorFrames.Load() != 0 {
		w.errMu.Lock()
		defer w.errMu.Unlock()
		t.Errorf("dup %d, out of order %d, error frames %d (%v)", sub.dup, sub.ooo, w.errorFrames.Load(), w.errSamples)
	}
}

func waitUntil(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second) // a hang guard, not a performance bound
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
