package consumer_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/consumer"
	"github.com/roomlog/roomlog/record"
)

// liveSink records, per partition, how many records were delivered live
// and during a replay.
type liveSink struct {
	mu           sync.Mutex
	live, replay map[int32]int
}

func (s *liveSink) Deliver(d *consumer.Delivery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d.Live {
		s.live[d.Pos.Partition]++
	} else {
		s.replay[d.Pos.Partition]++
	}
}

func (s *liveSink) counts(p int32) (live, replay int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live[p], s.replay[p]
}

// TestFollowOnDemand: a consumer started with one partition follows
// another when asked, from its log's start or from a snapshot, with the
// state a full replay gives; its replayed records are not live, the ones
// after are; concurrent Follows share one load; Unfollow forgets the state,
// and a later Follow rebuilds it.
func TestFollowOnDemand(t *testing.T) {
	const parts = 4
	opts, prod := eventsLog(t, parts)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	rooms := roomPerPartition(parts)
	room0, room1 := rooms[0], rooms[1]
	n := 0
	write := func(room string, count int) {
		t.Helper()
		for range count {
			n++
			ev := &record.Event{Type: record.TypeIncr, Room: room, Key: "k" + strconv.Itoa(n%3), Delta: 1}
			if err := prod.ProduceSync(ctx, record.Encode(ev)).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(room0, 5)
	write(room1, 20)

	var loads atomic.Int32
	var snapshot []byte // set below
	sink := &liveSink{live: map[int32]int{}, replay: map[int32]int{}}
	cons, err := consumer.New(consumer.Config{ClientOpts: opts, Topic: "events", Sink: sink, Partitions: []int32{0},
		LoadSnapshot: func(_ context.Context, p int32) (*consumer.Partition, error) {
			loads.Add(1)
			if snapshot == nil {
				return nil, nil
			}
			return consumer.DecodeSnapshot(snapshot, consumer.DefaultHistoryWindow)
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := cons.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer cons.Stop()
	<-cons.Ready()
	if !cons.Following(0) || cons.Following(1) {
		t.Fatalf("after Start: following 0 %v, 1 %v; want only 0", cons.Following(0), cons.Following(1))
	}
	if got := cons.FollowedPartitions(); !reflect.DeepEqual(got, []int32{0}) {
		t.Fatalf("FollowedPartitions = %v, want [0]", got)
	}

	// Ten concurrent Follows, one load, the log's state.
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for range 10 {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- cons.Follow(ctx, 1) }()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if l := loads.Load(); l != 1 {
		t.Fatalf("%d loads for 10 concurrent Follows, want 1", l)
	}
	same(t, cons, opts, 1)
	if live, replay := sink.counts(1); live != 0 || replay != 20 {
		t.Fatalf("partition 1 delivered %d live and %d replayed, want 0 and 20", live, replay)
	}
	write(room1, 3)
	waitFolded(t, ctx, cons, opts, 1)
	if live, _ := sink.counts(1); live != 3 {
		t.Fatalf("partition 1 delivered %d live records after the follow, want 3", live)
	}

	// A snapshot now, then Unfollow: the state goes.
	part := cons.State().Partition(1)
	snapshot, _, err = part.EncodeSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	cons.Unfollow(1)
	for deadline := time.Now().Add(30 * time.Second); len(part.Dump().Rooms) > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("partition 1 still holds rooms after Unfollow")
		}
	}
	if cons.Following(1) {
		t.Fatal("still following partition 1 after Unfollow")
	}

	// Records while unfollowed; then a follow from the snapshot and the
	// log after it gives the full replay's state again.
	write(room1, 7)
	write(room0, 2)
	if err := cons.Follow(ctx, 1); err != nil {
		t.Fatal(err)
	}
	same(t, cons, opts, 1)
	same(t, cons, opts, 0)
	if live, replay := sink.counts(1); live != 3 || replay != 20+7 {
		t.Fatalf("partition 1 delivered %d live and %d replayed, want 3 and 27 (the snapshot's records are not delivered again)", live, replay)
	}
	if err := cons.Follow(ctx, 7); err == nil {
		t.Fatal("Follow of a partition the topic does not have succeeded")
	}
}

// eventsLog starts an embedded broker with an "events" topic of parts
// partitions, and returns its client options and a producer that places
// records as relays do; both end with the test.
func eventsLog(tb testing.TB, parts int32) ([]kgo.Opt, *kgo.Client) {
	tb.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(parts, "events"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	opts := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
	prod, err := kgo.NewClient(append(opts, kgo.DefaultProduceTopic("events"), kgo.RecordPartitioner(record.NewPartitioner()))...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(prod.Close)
	return opts, prod
}

// roomPerPartition names a room of each of parts partitions.
func roomPerPartition(parts int32) []string {
	rooms := make([]string, parts)
	for i, found := 0, int32(0); found < parts; i++ {
		r := "room-" + strconv.Itoa(i)
		if p := record.PartitionOf(r, parts); rooms[p] == "" {
			rooms[p] = r
			found++
		}
	}
	return rooms
}

// endOf is partition p's end offset.
func endOf(t *testing.T, ctx context.Context, opts []kgo.Opt, p int32) int64 {
	t.Helper()
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, "events")
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	o, _ := ends.Lookup("events", p)
	return o.Offset
}

// waitFolded waits until cons has folded partition p to the log's end.
func waitFolded(t *testing.T, ctx context.Context, cons *consumer.Consumer, opts []kgo.Opt, p int32) {
	t.Helper()
	if err := cons.WaitFor(ctx, p, endOf(t, ctx, opts, p)); err != nil {
		t.Fatal(err)
	}
}

// same checks that cons's partition p holds what a replay of the log from
// scratch gives.
func same(t *testing.T, cons *consumer.Consumer, opts []kgo.Opt, p int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	end := endOf(t, ctx, opts, p)
	st := consumer.NewState(consumer.DefaultHistoryWindow)
	part := st.Partition(p)
	var res consumer.Result
	if _, err := consumer.ReadRange(ctx, opts, "events", p, 0, end, func(r *kgo.Record) bool {
		_, _ = part.Apply(r, &res)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if err := cons.WaitFor(ctx, p, end); err != nil {
		t.Fatal(err)
	}
	got, want := cons.State().Partition(p).Dump(), part.Dump()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("partition %d:\ngot  %+v\nwant %+v", p, got, want)
	}
}

// TestFollowChurn: partitions followed, dropped and followed again many
// times, concurrently, while records keep coming to every partition, keep
// folding after every follow, and so do the partitions followed throughout;
// each ends with the state a replay gives.
func TestFollowChurn(t *testing.T) {
	const parts = 8
	opts, prod := eventsLog(t, parts)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rooms := roomPerPartition(parts)
	cons, err := consumer.New(consumer.Config{ClientOpts: opts, Topic: "events", Sink: &liveSink{live: map[int32]int{}, replay: map[int32]int{}}, Partitions: []int32{0}})
	if err != nil {
		t.Fatal(err)
	}
	if err := cons.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer cons.Stop()
	<-cons.Ready()
	if err := cons.Follow(ctx, 1); err != nil {
		t.Fatal(err)
	}

	// A steady stream to every partition, so fetches are in flight at
	// every add and drop.
	wctx, stop := context.WithCancel(ctx)
	var writers sync.WaitGroup
	for _, room := range rooms {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for n := 0; wctx.Err() == nil; n++ {
				ev := &record.Event{Type: record.TypeIncr, Room: room, Key: "k" + strconv.Itoa(n%3), Delta: 1}
				if err := prod.ProduceSync(wctx, record.Encode(ev)).FirstErr(); err != nil && wctx.Err() == nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	caughtUp := func(p int32, what string) error {
		wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
		defer wcancel()
		if err := cons.WaitFor(wctx, p, endOf(t, ctx, opts, p)); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	// Partitions 2-7 churn, each on its own goroutine; 0 and 1 are
	// followed throughout.
	var churn sync.WaitGroup
	errs := make(chan error, parts)
	for p := int32(2); p < parts; p++ {
		churn.Add(1)
		go func() {
			defer churn.Done()
			for i := range 25 {
				if err := cons.Follow(ctx, p); err != nil {
					errs <- fmt.Errorf("partition %d, follow %d: %w", p, i, err)
					return
				}
				if err := caughtUp(p, fmt.Sprintf("partition %d after follow %d", p, i)); err != nil {
					errs <- err
					return
				}
				cons.Unfollow(p)
				time.Sleep(time.Duration(int(p)*i%7) * time.Millisecond)
			}
			errs <- cons.Follow(ctx, p)
		}()
	}
	churn.Add(1)
	go func() {
		defer churn.Done()
		for i := 0; wctx.Err() == nil && i < 200; i++ {
			for _, p := range []int32{0, 1} {
				if err := caughtUp(p, fmt.Sprintf("partition %d (followed throughout), check %d", p, i)); err != nil {
					errs <- err
					return
				}
			}
		}
	}()
	churn.Wait()
	stop()
	writers.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for p := range int32(parts) {
		same(t, cons, opts, p)
	}
}

// BenchmarkFollow: following a partition that holds 200 records, from its
// log's start, while the consumer's fetch of another partition waits for
// records (an idle relay's first op on a room of a cold partition), for two
// FetchMaxWaits: the add waits for the fetch in flight.
//
//	go test -run '^$' -bench Follow ./consumer/
func BenchmarkFollow(b *testing.B) {
	for _, wait := range []time.Duration{250 * time.Millisecond, 100 * time.Millisecond, 50 * time.Millisecond} {
		b.Run("FetchMaxWait="+wait.String(), func(b *testing.B) {
			opts, prod := eventsLog(b, 2)
			ctx := context.Background()
			room := roomPerPartition(2)[1]
			for i := range 200 {
				ev := &record.Event{Type: record.TypeIncr, Room: room, Key: "k" + strconv.Itoa(i%5), Delta: 1}
				if err := prod.ProduceSync(ctx, record.Encode(ev)).FirstErr(); err != nil {
					b.Fatal(err)
				}
			}
			cons, err := consumer.New(consumer.Config{ClientOpts: opts, Topic: "events", Partitions: []int32{0}, FetchMaxWait: wait,
				Sink: &liveSink{live: map[int32]int{}, replay: map[int32]int{}}})
			if err != nil {
				b.Fatal(err)
			}
			if err := cons.Start(ctx); err != nil {
				b.Fatal(err)
			}
			defer cons.Stop()
			<-cons.Ready()
			time.Sleep(100 * time.Millisecond) // the fetch of partition 0 is waiting
			for b.Loop() {
				if err := cons.Follow(ctx, 1); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				cons.Unfollow(1)
				// A fetch of partition 0 alone in flight again, at a random
				// point of its wait.
				time.Sleep(time.Duration(rand.Int64N(int64(wait))))
				b.StartTimer()
			}
		})
	}
}
