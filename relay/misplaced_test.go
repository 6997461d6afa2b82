package relay_test

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/record"
	"github.com/roomlog/roomlog/relay"
)

// rawProducer is a plain Kafka producer that writes to the partition each
// record names (a producer with another partitioner than Kafka's).
func rawProducer(t *testing.T, b backend, topic string) func(recs ...*kgo.Record) []*kgo.Record {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.brokers...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchMaxBytes(2<<20))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return func(recs ...*kgo.Record) []*kgo.Record {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
		return recs
	}
}

// TestMisplacedRecords: a record written to another partition than its
// room's reaches the room's sockets once, as its re-homed copy at a
// position of the room's partition and in its order; it is in the room's
// history and recovered by a rejoin with since; a repeated copy (a re-home
// retried) changes nothing; and every relay's fold agrees.
func TestMisplacedRecords(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		topic := newTopic(t)
		ra := startRelay(t, b, topic, quietLeases) // no lease renewal between the folds compared below
		rb := startRelay(t, b, topic, quietLeases)
		const room = "lobby"
		home := record.PartitionOf(room, 4)
		wrong := (home + 1) % 4
		ca, cb := dial(t, ra), dial(t, rb)
		ca.join(room)
		cb.join(room)
		one := ca.do(map[string]any{"op": "publish", "room": room, "data": "one", "id": 1})

		produce := rawProducer(t, b, topic)
		orig := produce(&kgo.Record{Key: []byte(room), Value: []byte("misplaced"), Partition: wrong,
			Headers: []kgo.RecordHeader{{Key: "trace-id", Value: []byte("t-1")}}})[0]
		for _, c := range []*client{ca, cb} {
			if m := c.message(); string(m.Data) != `"one"` {
				t.Fatalf("first message %+v", m)
			}
			m := c.message()
			pos, err := record.ParsePos(m.Pos)
			if string(m.Data) != `"misplaced"` || m.Event != "message" || err != nil || pos.Partition != home {
				t.Fatalf("got %+v (%v): want the misplaced record from partition %d", m, err, home)
			}
		}

		// A repeated copy, as an owner that crashed after appending one
		// would append: applied once.
		produce(&kgo.Record{Key: []byte(room), Value: []byte("misplaced"), Partition: home,
			Headers: []kgo.RecordHeader{{Key: record.HeaderOrigin, Value: record.Origin{Partition: wrong, Offset: orig.Offset}.Append(nil)}}})
		cb.do(map[string]any{"op": "publish", "room": room, "data": "two", "id": 2})
		for _, c := range []*client{ca, cb} {
			if m := c.message(); string(m.Data) != `"two"` {
				t.Fatalf("after the repeated copy: got %+v, want two (the misplaced record once)", m)
			}
		}

		// History and recovery cover it.
		for _, r := range []*relay.Server{ra, rb} {
			c := dial(t, r)
			c.do(map[string]any{"op": "join", "room": room, "since": one.Pos, "id": "rejoin"})
			var got []string
			for i := 0; i < 2; i++ {
				got = append(got, string(c.message().Data))
			}
			if want := []string{`"misplaced"`, `"two"`}; !reflect.DeepEqual(got, want) {
				t.Fatalf("recovered %v, want %v", got, want)
			}
			h := c.do(map[string]any{"op": "history", "room": room, "id": "h"})
			var hist []string
			for _, m := range h.Messages {
				hist = append(hist, string(m.Data))
			}
			if want := []string{`"one"`, `"misplaced"`, `"two"`}; !reflect.DeepEqual(hist, want) {
				t.Fatalf("history %v, want %v", hist, want)
			}
		}

		sa, sb := ra.Stats(), rb.Stats()
		if sa.Misplaced != 1 || sb.Misplaced != 1 {
			t.Fatalf("misplaced counts %d, %d; want 1 on each relay", sa.Misplaced, sb.Misplaced)
		}
		waitRehomed(t, 1, ra, rb) // the owner of the partition it landed in
		// Both folds at the partition's end agree.
		end := partitionEnds(t, b, topic)[home]
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		for _, r := range []*relay.Server{ra, rb} {
			if err := r.Consumer().WaitFor(ctx, home, end); err != nil {
				t.Fatal(err)
			}
		}
		pa, pb := ra.Consumer().State().Partition(home), rb.Consumer().State().Partition(home)
		if da, db := pa.Dump(), pb.Dump(); da.Next != db.Next || !reflect.DeepEqual(da, db) || len(da.Rehomed) != 2 {
			t.Fatalf("relays disagree on the home partition, or no re-home memory:\n%+v\n%+v", da, db)
		}
	})
}

// TestForeignBadRecords: records from other producers with no key, an
// invalid room name or a value over the limit are counted by reason and
// skipped; delivery goes on.
func TestForeignBadRecords(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		topic := newTopic(t)
		r := startRelay(t, b, topic, nil)
		c := dial(t, r)
		c.join("ok")
		p := record.PartitionOf("ok", 4)
		produce := rawProducer(t, b, topic)
		produce(
			&kgo.Record{Value: []byte("no key"), Partition: p},
			&kgo.Record{Key: []byte("bad\x01room"), Value: []byte("x"), Partition: p},
			&kgo.Record{Key: []byte("ok"), Value: bytes.Repeat([]byte("a"), record.MaxDataBytes+1), Partition: p},
			&kgo.Record{Key: []byte("ok"), Value: []byte("x"), Partition: p, Headers: []kgo.RecordHeader{{Key: record.HeaderType, Value: []byte("teleport")}}},
			&kgo.Record{Key: []byte("ok"), Value: []byte("after"), Partition: p},
		)
		if m := c.message(); string(m.Data) != `"after"` {
			t.Fatalf("got %+v, want the good record after the bad ones", m)
		}
		st := r.Consumer().Stats()
		for _, reason := range []string{"no_key", "bad_room", "too_large", "unknown_type"} {
			if st.SkippedBy[reason] != 1 {
				t.Fatalf("skipped %v: want one %s", st.SkippedBy, reason)
			}
		}
		if st.Skipped != 4 {
			t.Fatalf("skipped %d, want 4", st.Skipped)
		}
		body := scrape(t, r.Addr().String())
		for _, want := range []string{`roomlog_log_skipped_total{reason="too_large"} 1`, "roomlog_misplaced_records_total 0"} {
			if !strings.Contains(body, want) {
				t.Fatalf("metrics lack %q", want)
			}
		}
	})
}

// TestMisplacedBeforeStart: records misplaced while no relay ran are
// re-homed by the first relay once it has replayed the log; a relay that
// starts again later finds them re-homed and appends nothing.
func TestMisplacedBeforeStart(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		topic := newTopic(t)
		named := func(c *relay.Config) { c.RelayName = "solo" }
		first := startRelay(t, b, topic, named) // creates the topic
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := first.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		const room = "late"
		home := record.PartitionOf(room, 4)
		produce := rawProducer(t, b, topic)
		var origs []*kgo.Record
		for i, v := range []string{"a", "b", "c"} {
			origs = append(origs, produce(&kgo.Record{Key: []byte(room), Value: []byte(v), Partition: (home + 1 + int32(i)%3) % 4})...)
		}

		r := startRelay(t, b, topic, named)
		c := dial(t, r)
		c.do(map[string]any{"op": "join", "room": room, "since": fmt.Sprintf("%d-0-%016x", home, r.Epoch()), "id": "j"})
		var got []string
		for range origs {
			got = append(got, string(c.message().Data))
		}
		slices.Sort(got) // copies of records from three partitions: their order is the re-home's
		if want := []string{`"a"`, `"b"`, `"c"`}; !reflect.DeepEqual(got, want) {
			t.Fatalf("recovered %v, want %v", got, want)
		}
		waitRehomed(t, 3, r)
		if st := r.Stats(); st.Misplaced != 3 {
			t.Fatalf("stats %+v: want 3 misplaced", st)
		}
		ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}

		again := startRelay(t, b, topic, named)
		if st := again.Stats(); st.RehomePending != 0 || st.Rehomed != 0 || st.Misplaced != 3 {
			t.Fatalf("restarted relay: %+v; want the 3 records found re-homed, nothing pending", st)
		}
		ends := partitionEnds(t, b, topic)
		copies := 0
		if err := readPartition(b, topic, home, ends[home], func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == record.HeaderOrigin {
					copies++
				}
			}
		}); err != nil {
			t.Fatal(err)
		}
		if copies != 3 {
			t.Fatalf("%d copies in the home partition, want 3", copies)
		}
	})
}

// waitRehomed waits until the relays together count n copies appended:
// franz-go may run a produce's promise after the copy has been folded.
func waitRehomed(t *testing.T, n uint64, rs ...*relay.Server) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		var got uint64
		for _, r := range rs {
			got += r.Stats().Rehomed
		}
		if got == n {
			return
		}
		if got > n || time.Now().After(deadline) {
			t.Fatalf("re-homed %d records, want %d", got, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readPartition reads partition p of topic from its start up to end.
func readPartition(b backend, topic string, p int32, end int64, fn func(*kgo.Record)) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: kgo.NewOffset().AtStart()}}))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for next := int64(0); next < end; {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fs.Err(); err != nil {
			return err
		}
		fs.EachRecord(func(r *kgo.Record) {
			fn(r)
			next = r.Offset + 1
		})
	}
	return nil
}

// TestMisplacedOwnerGone: a record misplaced in a partition whose owner has
// stopped is re-homed by the relay that owns it next, once the log has
// expired the old owner's lease.
func TestMisplacedOwnerGone(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		topic := newTopic(t)
		named := func(name string) func(*relay.Config) {
			return func(c *relay.Config) { c.RelayName, c.LeaseTimeout = name, 2*time.Second }
		}
		ra := startRelay(t, b, topic, named("a"))
		rb := startRelay(t, b, topic, named("b"))
		// A room whose partition is odd, misplaced in an even one: with
		// both relays alive, consumer.Owner gives even partitions to "a".
		var room string
		for i := 0; room == ""; i++ {
			if r := fmt.Sprintf("orphan-%d", i); record.PartitionOf(r, 4)%2 == 1 {
				room = r
			}
		}
		home := record.PartitionOf(room, 4)
		cb := dial(t, rb)
		cb.join(room)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ra.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		rawProducer(t, b, topic)(&kgo.Record{Key: []byte(room), Value: []byte("orphan"), Partition: 0})
		m := cb.message()
		if pos, err := record.ParsePos(m.Pos); string(m.Data) != `"orphan"` || err != nil || pos.Partition != home {
			t.Fatalf("got %+v, want the misplaced record from partition %d", m, home)
		}
		waitRehomed(t, 1, rb)
	})
}

// TestMisplacedPendingBound: a relay that does not own the partition a
// record landed in keeps it until its copy folds (and never re-homes it
// itself), up to its bound; beyond, it counts the record dropped.
func TestMisplacedPendingBound(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		topic := newTopic(t)
		named := func(name string) func(*relay.Config) {
			return func(c *relay.Config) { c.RelayName, c.LeaseTimeout = name, 10*time.Minute }
		}
		ra := startRelay(t, b, topic, named("a"))
		rb := startRelay(t, b, topic, named("b"))
		rb.SetRehomeLimits(2, 1<<20)
		// Partition 0's owner is "a" while its lease lives (10 minutes):
		// stopped, it re-homes nothing, and b is not the owner.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ra.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		room := "bound"
		for i := 0; record.PartitionOf(room, 4) == 0; i++ {
			room = fmt.Sprintf("bound-%d", i)
		}
		c := dial(t, rb)
		c.join(room)
		var recs []*kgo.Record
		for _, v := range []string{"1", "2", "3"} {
			recs = append(recs, &kgo.Record{Key: []byte(room), Value: []byte(v), Partition: 0})
		}
		recs = append(recs, &kgo.Record{Key: []byte(room), Value: []byte(`"placed"`), Partition: record.PartitionOf(room, 4)})
		rawProducer(t, b, topic)(recs...)
		if m := c.message(); string(m.Data) != `"placed"` {
			t.Fatalf("got %+v, want only the record in the room's partition", m)
		}
		if err := rb.Consumer().WaitFor(ctx, 0, recs[2].Offset+1); err != nil {
			t.Fatal(err)
		}
		st := rb.Stats()
		body := scrape(t, rb.Addr().String())
		if st.Misplaced != 3 || st.RehomePending != 2 || st.Rehomed != 0 || !strings.Contains(body, "roomlog_rehome_dropped_total 1") {
			t.Fatalf("stats %+v, want 3 misplaced, 2 pending, none re-homed, 1 dropped (metrics: dropped line %v)", st, strings.Contains(body, "roomlog_rehome_dropped_total 1"))
		}
	})
}
