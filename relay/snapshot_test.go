package relay_test

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/relay"
)

// TestSnapshotStartup: a relay that starts after a snapshot loads it,
// replays only the tail, and holds the same state as a relay that folded
// everything. Corrupt and unknown-version snapshots are ignored, falling back
// to the older slot or the full log.
func TestSnapshotStartup(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		topic := newTopic(t)
		snapTopic := topic + ".snapshots"
		mod := func(c *relay.Config) { c.SnapshotTopic = snapTopic; c.LeaseTimeout = time.Hour }
		ra := startRelay(t, b, topic, mod)
		c := dial(t, ra)
		traffic := func(tag string, n int) {
			for i := 0; i < n; i++ {
				room := "room-" + string(rune('a'+i%5))
				c.join(room)
				c.do(map[string]any{"op": "incr", "room": room, "key": "n", "id": tag + "i" + string(rune('0'+i%10))})
				c.do(map[string]any{"op": "set", "room": room, "key": tag, "value": i, "id": tag + "s"})
				c.do(map[string]any{"op": "publish", "room": room, "data": i, "mid": tag + string(rune('a'+i)), "id": tag + "p"})
			}
		}
		traffic("x", 40)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := ra.WriteSnapshots(ctx); err != nil {
			t.Fatal(err)
		}
		traffic("y", 10) // the tail
		ends := waitCaughtUp(t, b, topic, ra)
		var total int64
		for _, e := range ends {
			total += e
		}

		rb := startRelay(t, b, topic, mod)
		waitCaughtUp(t, b, topic, ra, rb)
		if got := rb.Stats().LogRecords; got >= uint64(total)/2 {
			t.Fatalf("relay B folded %d of %d records: the snapshot was not used", got, total)
		}
		if da, db := dumps(ra.Consumer().State().Partitions()), dumps(rb.Consumer().State().Partitions()); !reflect.DeepEqual(da, db) {
			t.Fatalf("snapshot + tail differs from the full fold:\nfull %+v\nsnap %+v", da, db)
		}

		// Corrupt the newest snapshot of every partition and add one of an
		// unknown version: a new relay ignores them and still agrees.
		if err := ra.WriteSnapshots(ctx); err != nil {
			t.Fatal(err)
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(b.brokers...), kgo.DefaultProduceTopic(snapTopic))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		for p := 0; p < 4; p++ {
			for _, slot := range []string{"A", "B"} {
				key := topic + "/" + string(rune('0'+p)) + "/" + slot
				var recs []*kgo.Record
				if slot == "A" {
					recs = append(recs, &kgo.Record{Key: []byte(key + "/0"), Value: []byte("garbage, not zstd")})
				} else {
					m, _ := json.Marshal(map[string]any{"v": 99, "topic": topic, "partition": p, "next": 1 << 40, "chunks": 1})
					recs = append(recs, &kgo.Record{Key: []byte(key + "/m"), Value: m})
				}
				if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
					t.Fatal(err)
				}
			}
		}
		traffic("z", 5)
		rc := startRelay(t, b, topic, mod)
		waitCaughtUp(t, b, topic, ra, rc)
		if da, dc := dumps(ra.Consumer().State().Partitions()), dumps(rc.Consumer().State().Partitions()); !reflect.DeepEqual(da, dc) {
			t.Fatalf("after corrupt snapshots the state differs:\nfull %+v\ngot  %+v", da, dc)
		}
	})
}
