package main

// Crash tests with real processes: relays killed with SIGKILL, against the
// embedded broker (`roomlog broker`) and against the real Kafka broker named
// by ROOMLOG_TEST_BROKERS (required under CI=true or ROOMLOG_REQUIRE_KAFKA=1).

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/roomlog/roomlog/testenv/kafkatest"
)

type procBackend struct {
	name    string
	brokers string
}

func forEachProcBackend(t *testing.T, fn func(t *testing.T, b procBackend)) {
	t.Run("embedded", func(t *testing.T) {
		addr := freePort(t)
		startProc(t, addr, nil, "broker", "--listen", addr, "--data-dir", t.TempDir())
		fn(t, procBackend{"embedded", addr})
	})
	t.Run("kafka", func(t *testing.T) {
		fn(t, procBackend{"kafka", strings.Join(kafkatest.Brokers(t), ",")})
	})
}

func topicName(t *testing.T) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "roomlog-crash-" + strings.ToLower(strings.NewReplacer("/", "-", "=", "-").Replace(t.Name())) + "-" + hex.EncodeToString(b[:])
}

// startRelayProc starts `roomlog relay` on a free port.
func startRelayProc(t *testing.T, b procBackend, topic string, extra ...string) (*exec.Cmd, string) {
	t.Helper()
	addr := freePort(t)
	args := append([]string{"relay", "--brokers", b.brokers, "--topic", topic, "--listen", addr, "--partitions", "4"}, extra...)
	if b.name == "kafka" {
		args = append(args, "--replication-factor", "1")
	}
	cmd := startProc(t, addr, nil, args...)
	waitReady(t, addr)
	return cmd, addr
}

func waitReady(t *testing.T, addr string) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; {
		ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws", nil)
		if err == nil {
			ws.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay %s never ready: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type wsFrame struct {
	Op        string          `json:"op"`
	ID        json.RawMessage `json:"id"`
	Pos       string          `json:"pos"`
	Code      string          `json:"code"`
	Data      json.RawMessage `json:"data"`
	Recovered *bool           `json:"recovered"`
	State     json.RawMessage `json:"state"`
	Value     json.RawMessage `json:"value"`
	Members   []struct {
		Conn  string `json:"conn"`
		Relay string `json:"relay"`
	} `json:"members"`
}

// request sends m and reads frames until the reply to its id.
func request(t *testing.T, ws *websocket.Conn, m map[string]any) wsFrame {
	t.Helper()
	if err := ws.WriteJSON(m); err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(m["id"])
	_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		var f wsFrame
		if err := ws.ReadJSON(&f); err != nil {
			t.Fatalf("%v: %v", m, err)
		}
		if (f.Op == "ack" || f.Op == "error") && string(f.ID) == string(want) {
			if f.Op == "error" {
				t.Fatalf("%v: error %+v", m, f)
			}
			return f
		}
	}
}

// TestKillRelayPresence: a relay holding 50 members of a room is killed
// with SIGKILL; within the lease timeout the other relay shows them gone,
// and a relay started afterwards, replaying the log, shows the same.
func TestKillRelayPresence(t *testing.T) {
	forEachProcBackend(t, func(t *testing.T, b procBackend) {
		topic := topicName(t)
		const lease = 3 * time.Second
		a, addrA := startRelayProc(t, b, topic, "--lease-timeout", lease.String())
		_, addrB := startRelayProc(t, b, topic, "--lease-timeout", lease.String())

		for i := 0; i < 50; i++ {
			ws := wsDial(t, addrA)
			request(t, ws, map[string]any{"op": "join", "room": "crowd", "id": i})
		}
		watcher := wsDial(t, addrB)
		request(t, watcher, map[string]any{"op": "join", "room": "crowd", "id": "w"})
		if f := request(t, watcher, map[string]any{"op": "presence", "room": "crowd", "id": "p0"}); len(f.Members) != 51 {
			t.Fatalf("presence before the kill: %d members, want 51", len(f.Members))
		}

		if err := a.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = a.Wait()
		killed := time.Now()
		var members int
		for i := 0; ; i++ {
			f := request(t, watcher, map[string]any{"op": "presence", "room": "crowd", "id": fmt.Sprint("p", i+1)})
			members = len(f.Members)
			if members == 1 {
				break
			}
			// The outcome is decided by the log; the time bound is the
			// lease timeout plus one renewal period and generous slack
			// for a loaded machine.
			if time.Since(killed) > lease+lease/3+10*time.Second {
				t.Fatalf("%v after the kill, %d members remain", time.Since(killed), members)
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Logf("%s: the killed relay's 50 members were gone %v after SIGKILL (lease timeout %v)", b.name, time.Since(killed).Round(time.Millisecond), lease)

		// A fresh relay replays the whole log and agrees.
		_, addrC := startRelayProc(t, b, topic, "--lease-timeout", lease.String())
		c := wsDial(t, addrC)
		request(t, c, map[string]any{"op": "join", "room": "crowd", "id": "c"})
		f := request(t, c, map[string]any{"op": "presence", "room": "crowd", "id": "pc"})
		if len(f.Members) != 2 { // the watcher, and c itself
			t.Fatalf("replayed presence: %+v", f.Members)
		}
		_, portA, _ := net.SplitHostPort(addrA)
		for _, m := range f.Members {
			if m.Relay == "" || strings.HasSuffix(m.Relay, ":"+portA) {
				t.Fatalf("replayed presence still holds a member of the killed relay: %+v", f.Members)
			}
		}
	})
}

// TestKillRelayRecovery: a publisher sends 5000 messages at a steady rate
// through relay B while a subscriber sits on relay A; A is killed with
// SIGKILL midway; the subscriber reconnects to B with its last position and
// ends with exactly the 5000 messages, in order, recovered:true.
func TestKillRelayRecovery(t *testing.T) {
	forEachProcBackend(t, func(t *testing.T, b procBackend) {
		topic := topicName(t)
		a, addrA := startRelayProc(t, b, topic)
		_, addrB := startRelayProc(t, b, topic)
		const n = 5000

		sub := wsDial(t, addrA)
		request(t, sub, map[string]any{"op": "join", "room": "stream", "id": "j"})
		pub := wsDial(t, addrB)

		var killOnce sync.Once
		pubErr := make(chan error, 1)
		go func() {
			tick := time.NewTicker(time.Millisecond) // ~1000 messages/s
			defer tick.Stop()
			for i := 0; i < n; i++ {
				<-tick.C
				if err := pub.WriteJSON(map[string]any{"op": "publish", "room": "stream", "data": i}); err != nil {
					pubErr <- err
					return
				}
				if i == n/2 {
					killOnce.Do(func() { _ = a.Process.Signal(syscall.SIGKILL) })
				}
			}
			pubErr <- nil
		}()

		got := make([]int, 0, n)
		last := ""
		recovered := false
		for len(got) < n {
			_ = sub.SetReadDeadline(time.Now().Add(30 * time.Second))
			var f wsFrame
			err := sub.ReadJSON(&f)
			if err != nil {
				var ne interface{ Timeout() bool }
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("stalled after %d messages", len(got))
				}
				if recovered {
					t.Fatalf("second disconnect after %d messages: %v", len(got), err)
				}
				// Relay A is gone: resume on B from the last position.
				sub = wsDial(t, addrB)
				if err := sub.WriteJSON(map[string]any{"op": "join", "room": "stream", "since": last, "id": "rejoin"}); err != nil {
					t.Fatal(err)
				}
				recovered = true
				continue
			}
			switch f.Op {
			case "message":
				var v int
				if err := json.Unmarshal(f.Data, &v); err != nil {
					t.Fatal(err)
				}
				got = append(got, v)
				last = f.Pos
			case "ack":
				if string(f.ID) == `"rejoin"` && (f.Recovered == nil || !*f.Recovered) {
					t.Fatalf("rejoin ack %+v: want recovered:true", f)
				}
			case "error":
				t.Fatalf("error %+v", f)
			}
		}
		if err := <-pubErr; err != nil {
			t.Fatal(err)
		}
		if !recovered {
			t.Fatal("the subscriber was never disconnected: the kill did not happen")
		}
		for i, v := range got {
			if v != i {
				t.Fatalf("message %d is %d: lost, duplicated or out of order", i, v)
			}
		}
		// Nothing more arrives.
		_ = sub.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		for {
			var f wsFrame
			if err := sub.ReadJSON(&f); err != nil {
				break
			}
			if f.Op == "message" {
				t.Fatalf("extra message %s", f.Data)
			}
		}
	})
}
