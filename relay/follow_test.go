package relay_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/roomlog/roomlog/consumer"
	"github.com/roomlog/roomlog/record"
	"github.com/roomlog/roomlog/relay"
)

// TestFollowInterest: relays with --follow interest fold only the control
// partition, the partitions they keep and the ones their rooms need, and
// still behave as one: every partition has a keeper, messages and presence
// cross relays, a partition left idle is dropped and later loaded again
// (from its snapshot and the log) with the same state as a relay that
// never dropped it, a relay dropping a partition is not ended by the
// expiry of its old lease there, and a killed relay's members are expired
// by the partition's keeper.
func TestFollowInterest(t *testing.T) {
	bin := buildRoomlog(t)
	forEachBackend(t, func(t *testing.T, b backend) {
		const parts = 16
		topic := newTopic(t)
		snapTopic := topic + ".snapshots"
		mod := func(name string) func(*relay.Config) {
			return func(c *relay.Config) {
				c.RelayName, c.Partitions, c.Follow = name, parts, relay.FollowInterest
				c.FollowIdle, c.LeaseTimeout = 300*time.Millisecond, 1500*time.Millisecond
				c.SnapshotTopic, c.SnapshotInterval, c.SnapshotMinRecords = snapTopic, 300*time.Millisecond, 1
			}
		}
		a := startRelay(t, b, topic, mod("follow-a"))
		bb := startRelay(t, b, topic, mod("follow-b"))
		names := []string{"follow-a", "follow-b"}
		control := record.PartitionOf(record.ControlKey, parts)
		want := func(name string) []int32 {
			ps := []int32{control}
			for p := range int32(parts) {
				if p != control && relay.KeeperOf(p, names) == name {
					ps = append(ps, p)
				}
			}
			slices.Sort(ps)
			return ps
		}
		// Each relay ends up following exactly the control partition and
		// the ones it keeps (A kept all of them until B came).
		waitFollowing(t, a, want("follow-a"))
		waitFollowing(t, bb, want("follow-b"))

		// A room kept by B only: A follows it once a client joins there.
		var room string
		for i := 0; room == ""; i++ {
			r := fmt.Sprintf("room-%d", i)
			if p := record.PartitionOf(r, parts); p != control && relay.KeeperOf(p, names) == "follow-b" {
				room = r
			}
		}
		p := record.PartitionOf(room, parts)
		ca, cb := dial(t, a), dial(t, bb)
		cb.join(room)
		cb.do(map[string]any{"op": "set", "room": room, "key": "k", "value": 1, "id": "s1"})
		ca.join(room)
		if !a.Consumer().Following(p) {
			t.Fatalf("A does not follow partition %d after a join there", p)
		}
		if got := ca.do(map[string]any{"op": "get", "room": room, "key": "k", "id": "g1"}); string(got.Value) != "1" {
			t.Fatalf("A reads k = %s, want 1 (set through B before A followed the partition)", got.Value)
		}
		ca.do(map[string]any{"op": "publish", "room": room, "event": "chat", "data": "hi", "id": "m1"})
		m := cb.message()
		for m.Op == "state" { // cb's own set
			m = cb.message()
		}
		if m.Event != "chat" || string(m.Data) != `"hi"` {
			t.Fatalf("B's client got %+v, want A's publish", m)
		}
		if pres := ca.do(map[string]any{"op": "presence", "room": room, "id": "pr"}); len(pres.Members) != 2 {
			t.Fatalf("presence on A: %+v, want both clients", pres.Members)
		}

		// A's client leaves: A drops the partition; B expires A's lease
		// there; A's connections live on.
		ca.do(map[string]any{"op": "leave", "room": room, "id": "l1"})
		waitFollowing(t, a, want("follow-a"))
		time.Sleep(3 * 1500 * time.Millisecond) // past B's expiry of A's lease in p
		ca.send(map[string]any{"op": "ping", "id": "still-here"})
		if f := ca.reply(); f.Op != "pong" {
			t.Fatalf("A's client after A dropped the partition: %+v, want a pong", f)
		}
		cb.do(map[string]any{"op": "incr", "room": room, "key": "k", "delta": 2, "id": "i1"})

		// Back again: A loads the partition anew (a snapshot by B, then the
		// log), joins (its new lease is live), and reads what B wrote.
		ca.do(map[string]any{"op": "join", "room": room, "presence": true, "id": "j2"})
		if got := ca.do(map[string]any{"op": "get", "room": room, "key": "k", "id": "g2"}); string(got.Value) != "3" {
			t.Fatalf("A reads k = %s after following again, want 3", got.Value)
		}

		// A killed relay's member leaves, expired by the partition's keeper.
		pc := newRelayProc(t, bin, b, topic, "follow-c", "--follow", "interest", "--lease-timeout", "1500ms",
			"--snapshot-topic", snapTopic)
		cc := dialURL(t, "ws://"+pc.addr+"/ws", true)
		j := cc.join(room)
		if pres := ca.do(map[string]any{"op": "presence", "room": room, "after": j.Pos, "id": "pr2"}); len(pres.Members) != 3 {
			t.Fatalf("presence on A with C's client: %+v, want 3", pres.Members)
		}
		pc.kill()
		for deadline := time.Now().Add(waitLimit); ; {
			m := ca.message()
			if m.Op == "left" && m.Member.Conn == cc.id {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("C's member never left after C was killed")
			}
		}

		// A and B agree on the partition they both follow, and so does a
		// replay of the log from scratch.
		ends := waitCaughtUp(t, b, topic) // the log stops growing
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		for _, r := range []*relay.Server{a, bb} {
			if err := r.Consumer().WaitFor(ctx, p, ends[p]); err != nil {
				t.Fatalf("%s: %v", r.Name(), err)
			}
		}
		da := dumps([]*consumer.Partition{a.Consumer().State().Partition(p)})
		db := dumps([]*consumer.Partition{bb.Consumer().State().Partition(p)})
		dr := dumps([]*consumer.Partition{replay(t, b, topic, map[int32]int64{p: ends[p]}).Partition(p)})
		if !reflect.DeepEqual(da, db) || !reflect.DeepEqual(da, dr) {
			t.Fatalf("partition %d differs:\nA      %+v\nB      %+v\nreplay %+v", p, da[p], db[p], dr[p])
		}
	})
}

// waitFollowing waits until s follows exactly want.
func waitFollowing(t *testing.T, s *relay.Server, want []int32) {
	t.Helper()
	var got []int32
	for deadline := time.Now().Add(waitLimit); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got = s.Consumer().FollowedPartitions(); slices.Equal(got, want) {
			return
		}
	}
	t.Fatalf("%s follows %v, want %v", s.Name(), got, want)
}

// TestKeeperSpread: rendezvous hashing gives each relay a fair share of the
// partitions, and a relay leaving moves only its own.
func TestKeeperSpread(t *testing.T) {
	for _, n := range []int{2, 4, 8, 16} {
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("relay-%d", i+1)
		}
		const parts = 1024
		count := map[string]int{}
		for p := range int32(parts) {
			count[relay.KeeperOf(p, names)]++
		}
		fair := parts / n
		for _, name := range names {
			if c := count[name]; c < fair/2 || c > fair*3/2 {
				t.Errorf("%d relays: %s keeps %d of %d partitions, want about %d", n, name, c, parts, fair)
			}
		}
		for p := range int32(parts) {
			before, after := relay.KeeperOf(p, names), relay.KeeperOf(p, names[:n-1])
			if before != names[n-1] && before != after {
				t.Fatalf("%d relays: partition %d moved from %s to %s when %s left", n, p, before, after, names[n-1])
			}
		}
	}
}
