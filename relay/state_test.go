package relay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/consumer"
	"github.com/roomlog/roomlog/record"
	"github.com/roomlog/roomlog/relay"
)

// waitCaughtUp waits until the topic stops growing (records still in
// flight, such as the leaves of closed connections, have landed) and every
// relay has folded all of it.
func waitCaughtUp(t *testing.T, b backend, topic string, relays ...*relay.Server) map[int32]int64 {
	t.Helper()
	ends := partitionEnds(t, b, topic)
	for i := 0; i < 100; i++ {
		time.Sleep(150 * time.Millisecond)
		again := partitionEnds(t, b, topic)
		if reflect.DeepEqual(again, ends) {
			break
		}
		ends = again
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, r := range relays {
		for p, end := range ends {
			if err := r.Consumer().WaitFor(ctx, p, end); err != nil {
				t.Fatal(err)
			}
		}
	}
	return ends
}

// replay folds the topic from scratch up to ends with the same fold code, as
// a fresh relay would.
func replay(t *testing.T, b backend, topic string, ends map[int32]int64) *consumer.State {
	t.Helper()
	st := consumer.NewState(consumer.DefaultHistoryWindow)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var res consumer.Result
	for p, end := range ends {
		part := st.Partition(p)
		if _, err := consumer.ReadRange(ctx, []kgo.Opt{kgo.SeedBrokers(b.brokers...)}, topic, p, 0, end, func(r *kgo.Record) bool {
			_, _ = part.Apply(r, &res)
			return true
		}); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func dumps(parts []*consumer.Partition) map[int32]consumer.Dump {
	out := map[int32]consumer.Dump{}
	for _, p := range parts {
		d := p.Dump()
		// Lease renewals differ only in timing; what they decide
		// (sessions, expiry) is compared through the members.
		for name, l := range d.Relays {
			l.LeaseOffset, l.LeaseTime = 0, 0
			d.Relays[name] = l
		}
		d.Next = 0
		out[p.ID()] = d
	}
	return out
}

func TestIncrFromManyClients(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		topic := newTopic(t)
		// Every member gets every change: 10000 state events each, in a
		// burst. The queue must hold the burst (the test is about the
		// fold, not about slow clients).
		mod := func(c *relay.Config) { c.SendQueue = 20000 }
		relays := []*relay.Server{startRelay(t, b, topic, mod), startRelay(t, b, topic, mod)}
		const clients, each = 100, 100
		var (
			mu   sync.Mutex
			seen = map[int64]bool{}
			wg   sync.WaitGroup
		)
		cs := make([]*client, clients)
		for i := range cs {
			cs[i] = dial(t, relays[i%2])
			cs[i].join("counter")
		}
		for _, c := range cs {
			wg.Add(1)
			go func(c *client) {
				defer wg.Done()
				for j := 0; j < each; j++ {
					c.send(map[string]any{"op": "incr", "room": "counter", "key": "n", "id": j})
				}
				for j := 0; j < each; j++ {
					// Each ack queues behind the burst of 10000 state events
					// every member gets: on two busy cores under -race that
					// can take minutes, a liveness bound, not a speed goal.
					f := c.replyWithin(5 * time.Minute)
					var v int64
					if f.Op != "ack" || json.Unmarshal(f.Value, &v) != nil {
						t.Errorf("incr reply %+v", f)
						return
					}
					mu.Lock()
					if seen[v] {
						t.Errorf("value %d acknowledged twice", v)
					}
					seen[v] = true
					mu.Unlock()
				}
			}(c)
		}
		wg.Wait()
		if len(seen) != clients*each {
			t.Fatalf("%d distinct acked values, want %d", len(seen), clients*each)
		}
		for i, r := range relays {
			c := dial(t, r)
			c.join("counter")
			f := c.do(map[string]any{"op": "get", "room": "counter", "key": "n", "id": "g"})
			if string(f.Value) != fmt.Sprint(clients*each) {
				t.Fatalf("relay %d holds n = %s, want %d", i, f.Value, clients*each)
			}
		}
	})
}

// TestStateFoldIsDeterministic: random interleavings of set/del/incr/cas
// from clients on two relays leave both relays, at the same offsets, with
// the same state, equal to a fresh replay of the log.
func TestStateFoldIsDeterministic(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		seeds := 12
		if b.name == "kafka" {
			seeds = 4
		}
		topic := newTopic(t)
		ra, rb := startRelay(t, b, topic, nil), startRelay(t, b, topic, nil)
		for seed := 1; seed <= seeds; seed++ {
			rng := rand.New(rand.NewSource(int64(seed)))
			rooms := []string{fmt.Sprintf("s%d-a", seed), fmt.Sprintf("s%d-b", seed)}
			var cs []*client
			for i := 0; i < 6; i++ {
				c := dial(t, []*relay.Server{ra, rb}[i%2])
				for _, r := range rooms {
					c.join(r)
				}
				cs = append(cs, c)
			}
			var wg sync.WaitGroup
			for ci, c := range cs {
				ops := make([]map[string]any, 40)
				for i := range ops {
					room, key := rooms[rng.Intn(2)], fmt.Sprintf("k%d", rng.Intn(4))
					m := map[string]any{"room": room, "key": key, "id": fmt.Sprintf("%d-%d", ci, i)}
					switch rng.Intn(4) {
					case 0:
						m["op"], m["value"] = "set", rng.Intn(100)
					case 1:
						m["op"] = "del"
					case 2:
						m["op"], m["delta"] = "incr", rng.Intn(5)-2
					case 3:
						m["op"], m["value"], m["version"] = "cas", "c", rng.Intn(3)
					}
					ops[i] = m
				}
				wg.Add(1)
				go func(c *client, ops []map[string]any) {
					defer wg.Done()
					for _, m := range ops {
						c.send(m)
					}
					for range ops {
						if f := c.reply(); f.Op != "ack" && f.Op != "error" {
							t.Errorf("reply %+v", f)
						}
					}
				}(c, ops)
			}
			wg.Wait()
			for _, c := range cs {
				c.ws.Close()
			}
		}
		// The closed connections' leaves are appended as they close.
		for _, r := range []*relay.Server{ra, rb} {
			for deadline := time.Now().Add(20 * time.Second); r.Stats().Connections > 0; {
				if time.Now().After(deadline) {
					t.Fatal("connections did not close")
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		ends := waitCaughtUp(t, b, topic, ra, rb)
		da, db := dumps(ra.Consumer().State().Partitions()), dumps(rb.Consumer().State().Partitions())
		if !reflect.DeepEqual(da, db) {
			t.Fatalf("relays disagree at the same offsets:\nA %+v\nB %+v", da, db)
		}
		// Replay only up to the same ends: the closed connections' leave
		// records are in both, so presence is empty and the state remains.
		if dr := dumps(replay(t, b, topic, ends).Partitions()); !reflect.DeepEqual(da, dr) {
			t.Fatalf("a fresh replay differs from the relays:\nrelay  %+v\nreplay %+v", da, dr)
		}
		nonEmpty := 0
		for _, d := range da {
			for _, r := range d.Rooms {
				nonEmpty += len(r.KV)
			}
		}
		if nonEmpty == 0 {
			t.Fatal("the random ops left no state at all: the test compares nothing")
		}
	})
}

func TestStateOps(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		topic := newTopic(t)
		ra, rb := startRelay(t, b, topic, nil), startRelay(t, b, topic, nil)
		a, w := dial(t, ra), dial(t, rb)
		a.join("doc")
		w.join("doc")

		set := a.do(map[string]any{"op": "set", "room": "doc", "key": "title", "value": "v1", "id": 1})
		if string(set.Value) != `"v1"` || set.Version == 0 {
			t.Fatalf("set ack %+v", set)
		}
		// Every member sees the change, on both relays.
		for _, c := range []*client{a, w} {
			if m := c.message(); m.Op != "state" || m.Key != "title" || string(m.Value) != `"v1"` || m.Version != set.Version {
				t.Fatalf("state event %+v", m)
			}
		}
		// cas with a stale version conflicts and reports the current one.
		a.send(map[string]any{"op": "cas", "room": "doc", "key": "title", "value": "v2", "version": set.Version + 1, "id": 2})
		if f := a.reply(); f.Code != "conflict" || f.Version != set.Version {
			t.Fatalf("stale cas: %+v", f)
		}
		cas := a.do(map[string]any{"op": "cas", "room": "doc", "key": "title", "value": "v2", "version": set.Version, "id": 3})
		if cas.Version <= set.Version {
			t.Fatalf("cas ack %+v", cas)
		}
		// Read-your-writes on the other relay with after.
		g := w.do(map[string]any{"op": "get", "room": "doc", "key": "title", "after": cas.Pos, "id": 4})
		if string(g.Value) != `"v2"` || g.Version != cas.Version {
			t.Fatalf("get after cas on the other relay: %+v", g)
		}
		// incr of a non-integer, a missing key, del.
		a.send(map[string]any{"op": "incr", "room": "doc", "key": "title", "id": 5})
		if f := a.reply(); f.Code != "not_integer" {
			t.Fatalf("incr of a string: %+v", f)
		}
		if f := a.do(map[string]any{"op": "get", "room": "doc", "key": "nothing", "id": 6}); string(f.Value) != "null" || f.Version != 0 {
			t.Fatalf("get of an unknown key: %+v", f)
		}
		a.do(map[string]any{"op": "del", "room": "doc", "key": "title", "id": 7})
		all := a.do(map[string]any{"op": "get", "room": "doc", "id": 8})
		if string(all.State) != "{}" {
			t.Fatalf("state after del: %s", all.State)
		}
		a.send(map[string]any{"op": "set", "room": "doc", "key": "big", "value": strings.Repeat("x", consumer.MaxValueBytes), "id": 9})
		if f := a.reply(); f.Code != "value_too_large" {
			t.Fatalf("oversized value: %+v", f)
		}
	})
}

func TestPresence(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		topic := newTopic(t)
		ra, rb := startRelay(t, b, topic, nil), startRelay(t, b, topic, nil)
		watcher := dial(t, ra)
		watcher.do(map[string]any{"op": "join", "room": "p", "presence": true, "id": "w"})
		other := dial(t, rb)
		other.join("p")
		if m := watcher.message(); m.Op != "joined" || m.Member.Conn != other.id || m.Member.Relay != rb.Name() || m.Member.JoinedAt == 0 {
			t.Fatalf("joined event %+v", m)
		}
		for _, c := range []*client{watcher, other} {
			f := c.do(map[string]any{"op": "presence", "room": "p", "id": "pr"})
			if len(f.Members) != 2 || f.Members[0].Conn != watcher.id || f.Members[1].Conn != other.id {
				t.Fatalf("presence on %s: %+v", c.id, f.Members)
			}
		}
		other.ws.Close() // disconnect: the relay appends the leave
		if m := watcher.message(); m.Op != "left" || m.Member.Conn != other.id || m.Reason != "leave" {
			t.Fatalf("left event %+v", m)
		}
		f := watcher.do(map[string]any{"op": "presence", "room": "p", "id": "pr2"})
		if len(f.Members) != 1 {
			t.Fatalf("presence after leave: %+v", f.Members)
		}
	})
}

// TestRecovery: a subscriber drops, messages keep flowing, and it rejoins
// on the other relay with its last position: it gets exactly the missed
// messages, then live ones. Run with the in-memory window and with a window
// too small, so the gap is read from the log.
func TestRecovery(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		for _, window := range []int{1000, 4} {
			t.Run(fmt.Sprintf("window=%d", window), func(t *testing.T) {
				topic := newTopic(t)
				mod := func(c *relay.Config) { c.HistoryWindow = window }
				ra, rb := startRelay(t, b, topic, mod), startRelay(t, b, topic, mod)
				pub := dial(t, rb)
				sub := dial(t, ra)
				sub.join("r")
				for i := 0; i < 20; i++ {
					pub.do(map[string]any{"op": "publish", "room": "r", "data": i, "id": i})
				}
				var last string
				for i := 0; i < 20; i++ {
					last = sub.message().Pos
				}
				sub.ws.Close()
				for i := 20; i < 60; i++ {
					pub.do(map[string]any{"op": "publish", "room": "r", "data": i, "id": i})
					pub.do(map[string]any{"op": "publish", "room": "noise", "data": i, "id": -i - 1})
				}
				sub2 := dial(t, rb)
				sub2.send(map[string]any{"op": "join", "room": "r", "since": last, "id": "rejoin"})
				go func() {
					for i := 60; i < 70; i++ {
						pub.send(map[string]any{"op": "publish", "room": "r", "data": i, "id": i})
					}
				}()
				for i := 20; i < 70; i++ {
					m := sub2.message()
					if string(m.Data) != fmt.Sprint(i) {
						t.Fatalf("after recovery, message %d is %s", i, m.Data)
					}
				}
				f := sub2.reply()
				if f.Op != "ack" || f.Recovered == nil || !*f.Recovered {
					t.Fatalf("rejoin ack %+v", f)
				}
				select {
				case m := <-sub2.msgs:
					t.Fatalf("extra message %+v", m)
				case <-time.After(200 * time.Millisecond):
				}
				if window == 4 && rb.Stats().LogRecoveries == 0 {
					t.Fatal("the small window did not force a read from the log")
				}
			})
		}
	})
}

func TestPublishDedupe(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		topic := newTopic(t)
		ra, rb := startRelay(t, b, topic, nil), startRelay(t, b, topic, nil)
		sub := dial(t, ra)
		sub.join("d")
		p1 := dial(t, ra)
		first := p1.do(map[string]any{"op": "publish", "room": "d", "data": "once", "mid": "m-1", "id": 1})
		p1.ws.Close()
		// The client retries on another relay after a reconnect.
		p2 := dial(t, rb)
		again := p2.do(map[string]any{"op": "publish", "room": "d", "data": "once", "mid": "m-1", "id": 1})
		if again.Pos != first.Pos || !again.Duplicate {
			t.Fatalf("retry ack %+v, want the original position %s and duplicate", again, first.Pos)
		}
		p2.do(map[string]any{"op": "publish", "room": "d", "data": "next", "mid": "m-2", "id": 2})
		if m := sub.message(); string(m.Data) != `"once"` {
			t.Fatalf("got %+v", m)
		}
		if m := sub.message(); string(m.Data) != `"next"` {
			t.Fatalf("got %+v: the retry was delivered twice", m)
		}
	})
}

func TestHistory(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		topic := newTopic(t)
		r := startRelay(t, b, topic, func(c *relay.Config) { c.HistoryWindow = 10 })
		c := dial(t, r)
		c.join("h")
		for i := 0; i < 130; i++ {
			c.send(map[string]any{"op": "publish", "room": "h", "data": i, "id": i})
			c.send(map[string]any{"op": "publish", "room": "other", "data": i, "id": -i - 1})
		}
		for i := 0; i < 260; i++ {
			c.reply()
		}
		var got []int
		before := ""
		for page := 0; ; page++ {
			req := map[string]any{"op": "history", "room": "h", "limit": 50, "id": page}
			if before != "" {
				req["before"] = before
			}
			f := c.do(req)
			for i := len(f.Messages) - 1; i >= 0; i-- {
				var v int
				_ = json.Unmarshal(f.Messages[i].Data, &v)
				got = append(got, v)
			}
			if !f.More {
				break
			}
			before = f.Messages[0].Pos
			if page > 5 {
				t.Fatal("history does not end")
			}
		}
		if len(got) != 130 {
			t.Fatalf("history returned %d messages, want 130", len(got))
		}
		for i, v := range got {
			if v != 129-i {
				t.Fatalf("history[%d] = %d, want %d", i, v, 129-i)
			}
		}
	})
}

func TestStateBadInput(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		topic := newTopic(t)
		r := startRelay(t, b, topic, nil)
		other := newTopic(t)
		ro := startRelay(t, b, other, nil)
		foreign := dial(t, ro).join("x").Pos

		c := dial(t, r)
		c.join("mine")
		before := endOffsets(t, b, topic)
		tests := []struct {
			name string
			m    map[string]any
			code string
		}{
			{"set unjoined", map[string]any{"op": "set", "room": "theirs", "key": "k", "value": 1}, "not_joined"},
			{"incr unjoined", map[string]any{"op": "incr", "room": "theirs", "key": "k"}, "not_joined"},
			{"get unjoined", map[string]any{"op": "get", "room": "theirs"}, "not_joined"},
			{"presence unjoined", map[string]any{"op": "presence", "room": "theirs"}, "not_joined"},
			{"history unjoined", map[string]any{"op": "history", "room": "theirs"}, "not_joined"},
			{"malformed since", map[string]any{"op": "join", "room": "z", "since": "12"}, "bad_position"},
			{"malformed after", map[string]any{"op": "get", "room": "mine", "after": "x-y-z"}, "bad_position"},
			{"since from another topic", map[string]any{"op": "join", "room": "z", "since": foreign}, "stale_position"},
			{"after from another topic", map[string]any{"op": "get", "room": "mine", "after": foreign}, "stale_position"},
			{"cas without version", map[string]any{"op": "cas", "room": "mine", "key": "k", "value": 1}, "invalid_value"},
			{"key with newline", map[string]any{"op": "set", "room": "mine", "key": "a\nb", "value": 1}, "invalid_key"},
		}
		for i, tt := range tests {
			tt.m["id"] = i
			c.send(tt.m)
			if f := c.reply(); f.Code != tt.code {
				t.Errorf("%s: got %+v, want %s", tt.name, f, tt.code)
			}
		}
		if got := endOffsets(t, b, topic); got != before {
			t.Fatalf("bad input appended %d records", got-before)
		}
		_ = record.Pos{}
	})
}
