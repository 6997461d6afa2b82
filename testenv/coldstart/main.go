// Command coldstart measures how long a relay takes from start to ready
// against a long log: without snapshots (a full replay: the fold rate) and
// with them (a snapshot load plus the tail).
//
//	go run ./testenv/coldstart --records 1000000 --rooms 10000
//	go run ./testenv/coldstart --records 1000000 --brokers 127.0.0.1:19092   # real Kafka
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"time"

	kadmpkg "github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/record"
	"github.com/roomlog/roomlog/relay"
	"github.com/roomlog/roomlog/relay/auth"
)

func main() {
	var (
		records    = flag.Int("records", 1_000_000, "records in the log")
		rooms      = flag.Int("rooms", 10_000, "rooms")
		tail       = flag.Int("tail", 10_000, "records written after the snapshot")
		partitions = flag.Int("partitions", 16, "partitions")
		brokers    = flag.String("brokers", "", "Kafka brokers (default: kfake in process)")
		verbose    = flag.Bool("v", false, "relay logs")
		cpuprof    = flag.String("cpuprofile", "", "write a CPU profile of the replay without snapshots to this file")
	)
	flag.Parse()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if *verbose {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	seeds := []string{*brokers}
	backend := "kafka " + *brokers
	if *brokers == "" {
		c, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			fail(err)
		}
		defer c.Close()
		seeds = c.ListenAddrs()
		backend = "kfake (in process)"
	}
	ctx := context.Background()
	topic := "coldstart-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(record.NewPartitioner()),
		kgo.ProducerLinger(10*time.Millisecond), kgo.MaxBufferedRecords(1<<20))
	if err != nil {
		fail(err)
	}
	rf := int16(-1)
	if *brokers != "" {
		rf = 1
	}
	if _, err := relay.EnsureTopic(ctx, cl, topic, int32(*partitions), rf); err != nil {
		fail(err)
	}
	began := time.Now()
	produce(ctx, cl, *records, *rooms, *partitions, 0)
	fmt.Printf("machine: %d CPUs, %s; log: %s, %d records, %d rooms, %d partitions (written in %v)\n",
		runtime.NumCPU(), runtime.Version(), backend, *records, *rooms, *partitions, time.Since(began).Round(time.Millisecond))

	cfg := func(snap time.Duration) relay.Config {
		return relay.Config{Listen: "127.0.0.1:0", Brokers: seeds, Topic: topic, Partitions: int32(*partitions), ReplicationFactor: rf,
			SnapshotTopic: topic + ".snapshots", SnapshotInterval: snap, LeaseTimeout: time.Hour, Logger: log,
			Auth: auth.Config{Anonymous: true}}
	}
	start := func(c relay.Config) (*relay.Server, time.Duration) {
		s, err := relay.New(c)
		if err != nil {
			fail(err)
		}
		t0 := time.Now()
		if err := s.Start(ctx); err != nil {
			fail(err)
		}
		return s, time.Since(t0)
	}
	stop := func(s *relay.Server) {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_ = s.Shutdown(sctx)
	}

	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		if err != nil {
			fail(err)
		}
		_ = pprof.StartCPUProfile(f)
	}
	s, d := start(cfg(-1))
	if *cpuprof != "" {
		pprof.StopCPUProfile()
	}
	folded := s.Stats().LogRecords
	fmt.Printf("without snapshots: ready in %v, folded %d records: %.0f records/s\n", d.Round(time.Millisecond), folded, float64(folded)/d.Seconds())
	stop(s)

	s, _ = start(cfg(time.Hour))
	t0 := time.Now()
	if err := s.WriteSnapshots(ctx); err != nil {
		fail(err)
	}
	fmt.Printf("snapshot of %d partitions written in %v\n", *partitions, time.Since(t0).Round(time.Millisecond))
	stop(s)
	produce(ctx, cl, *tail, *rooms, *partitions, *records)
	cl.Close()

	s, d = start(cfg(time.Hour))
	fmt.Printf("with snapshots: ready in %v, folded %d tail records\n", d.Round(time.Millisecond), s.Stats().LogRecords)
	stop(s)
}

// produce writes n records of every kind: publishes (some with mids),
// joins and leaves of a generator relay's session, state ops, leases.
func produce(ctx context.Context, cl *kgo.Client, n, rooms, partitions, base int) {
	lease := func() {
		for p := 0; p < partitions; p++ {
			r := record.Encode(&record.Event{Type: record.TypeLease, Room: record.RelayKeyPrefix + "gen", Relay: "gen", Session: "g1"})
			record.ManualPartition(r, int32(p))
			cl.Produce(ctx, r, nil)
		}
	}
	lease()
	data := json.RawMessage(`{"text":"a typical chat message of some length","n":42}`)
	for i := base; i < base+n; i++ {
		room := "room-" + strconv.Itoa(i%rooms)
		conn := "g1-" + strconv.Itoa(i%(rooms*3))
		var ev record.Event
		switch i % 20 {
		case 0, 1, 2, 3, 4, 5, 6, 7, 8, 9:
			ev = record.Event{Type: record.TypePublish, Room: room, Event: "chat", Data: data, From: conn}
			if i%2 == 0 {
				ev.MID = "m" + strconv.Itoa(i)
			}
		case 10, 11:
			ev = record.Event{Type: record.TypeJoin, Room: room, From: conn, Relay: "gen", Session: "g1"}
		case 12:
			ev = record.Event{Type: record.TypeLeave, Room: room, From: conn}
		case 13, 14:
			ev = record.Event{Type: record.TypeIncr, Room: room, Key: "n", Delta: 1}
		case 15, 16:
			ev = record.Event{Type: record.TypeSet, Room: room, Key: "k" + strconv.Itoa(i%5), Data: json.RawMessage(`"v` + strconv.Itoa(i) + `"`)}
		case 17:
			ev = record.Event{Type: record.TypeCAS, Room: room, Key: "c", Data: json.RawMessage(`1`), Version: int64(i % 3)}
		case 18:
			ev = record.Event{Type: record.TypeDel, Room: room, Key: "k" + strconv.Itoa(i%5)}
		case 19:
			ev = record.Event{Type: record.TypePublish, Room: room, Event: "typing", Data: json.RawMessage(`true`), From: conn}
		}
		cl.Produce(ctx, record.Encode(&ev), nil)
		if i%100_000 == 0 {
			lease()
		}
	}
	if err := cl.Flush(ctx); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "coldstart:", err)
	os.Exit(1)
}

func kadm(cl *kgo.Client) *kadmpkg.Client { return kadmpkg.NewClient(cl) }
