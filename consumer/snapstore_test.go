package consumer

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/record"
)

// TestSnapshotStorePartitions: the snapshots topic Ensure creates has the
// events topic's partition count, and events partition p's snapshot records
// all go to its partition p mod that count; LoadPartition and Load give back
// what was written. A snapshots topic made earlier with another count (one
// partition, or fewer than the events topic) works the same way. So does a
// client that asked for the topic before Ensure created it: franz-go caches
// that "unknown topic" answer for MetadataMinAge, and Ensure must replace it
// (on a real cluster the first answer after a create can be "unknown" too;
// CI once failed there with "no snapshots topic").
func TestSnapshotStorePartitions(t *testing.T) {
	const events = 4
	for _, tc := range []struct {
		name    string
		precond int32 // partitions of a snapshots topic that exists before Ensure; 0: none
		want    int32
		asked   bool // the client looked the topic up before Ensure
	}{
		{"created by Ensure", 0, events, false},
		{"created by Ensure, looked up before", 0, events, true},
		{"one partition, from an earlier version", 1, 1, false},
		{"two partitions", 2, 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			opts := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
			prod, err := kgo.NewClient(append(opts, kgo.RecordPartitioner(record.NewPartitioner()))...)
			if err != nil {
				t.Fatal(err)
			}
			defer prod.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			adm := kadm.NewClient(prod)
			if tc.precond > 0 {
				if _, err := adm.CreateTopic(ctx, tc.precond, 1, nil, "snaps"); err != nil {
					t.Fatal(err)
				}
			}
			if tc.asked {
				if ends, _ := adm.ListEndOffsets(ctx, "snaps"); ends.Error() == nil {
					t.Fatal("the snapshots topic exists before Ensure")
				}
			}
			st := &SnapshotStore{Topic: "snaps", EventsTopic: "events", Epoch: 7, ClientOpts: opts, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
			if err := st.Ensure(ctx, prod, events, 1); err != nil {
				t.Fatal(err)
			}
			if got, _ := st.partitions(ctx, adm); got != tc.want {
				t.Fatalf("snapshots topic has %d partitions, want %d", got, tc.want)
			}

			// A snapshot of every events partition, two for partition 1 (the
			// second, newer one in the other slot).
			written := map[int32]*Partition{}
			for p := range int32(events) {
				part := newPartition(p, 16)
				fold(t, part, randomLog(rand.New(rand.NewSource(int64(p+1))), 200))
				if _, err := st.Write(ctx, prod, part, "test"); err != nil {
					t.Fatal(err)
				}
				if p == 1 {
					recs := randomLog(rand.New(rand.NewSource(99)), 300)
					fold(t, part, recs[200:])
					if _, err := st.Write(ctx, prod, part, "test"); err != nil {
						t.Fatal(err)
					}
				}
				written[p] = part
			}

			// Where the records went: partition p mod the count.
			ends, err := adm.ListEndOffsets(ctx, "snaps")
			if err != nil {
				t.Fatal(err)
			}
			ends.Each(func(o kadm.ListedOffset) {
				if _, err := ReadRange(ctx, opts, "snaps", o.Partition, 0, o.Offset, func(r *kgo.Record) bool {
					pn, _, _ := strings.Cut(strings.TrimPrefix(string(r.Key), "events/"), "/")
					if n, _ := strconv.Atoi(pn); int32(n)%tc.want != o.Partition {
						t.Errorf("snapshot record %q in snapshots partition %d, want %d", r.Key, o.Partition, int32(n)%tc.want)
					}
					return true
				}); err != nil {
					t.Fatal(err)
				}
			})

			// A fresh store (another relay) loads each one alone, and all.
			other := &SnapshotStore{Topic: "snaps", EventsTopic: "events", Epoch: 7, ClientOpts: opts, Logger: st.Logger}
			all, err := other.Load(ctx, 16)
			if err != nil {
				t.Fatal(err)
			}
			for p, want := range written {
				got, err := other.LoadPartition(ctx, 16, p)
				if err != nil {
					t.Fatal(err)
				}
				if got == nil || !reflect.DeepEqual(got.Dump(), want.Dump()) || got.Next() != want.Next() {
					t.Fatalf("LoadPartition(%d) differs from the snapshot written", p)
				}
				if a := all[p]; a == nil || !reflect.DeepEqual(a.Dump(), want.Dump()) {
					t.Fatalf("Load()[%d] differs from the snapshot written", p)
				}
			}
			if got, err := other.LoadPartition(ctx, 16, events); err != nil || got != nil {
				t.Fatalf("LoadPartition of a partition with no snapshot: %v, %v", got, err)
			}
		})
	}
}

// BenchmarkLoadPartition: loading one events partition's snapshot out of 16
// (each of 2,000 members and 1 MB of random key-value state in 500 rooms),
// from a snapshots topic of one partition (the earlier layout: the whole
// topic is read) and of 16.
//
//	go test -run '^$' -bench LoadPartition ./consumer/
func BenchmarkLoadPartition(b *testing.B) {
	const events = 16
	parts := make([]*Partition, events)
	for p := range int32(events) {
		part := newPartition(p, 16)
		var recs []*kgo.Record
		for i := range 4 {
			relay := "relay-" + strconv.Itoa(i)
			recs = append(recs, record.Encode(&record.Event{Type: record.TypeLease, Room: record.RelayKeyPrefix + relay, Relay: relay, Session: "s" + strconv.Itoa(i)}))
		}
		rng := rand.New(rand.NewSource(int64(p)))
		for i := range 2_000 {
			recs = append(recs, record.Encode(&record.Event{Type: record.TypeJoin, Room: "room-" + strconv.Itoa(i%500), From: "conn-" + strconv.Itoa(i),
				Relay: "relay-" + strconv.Itoa(i%4), Session: "s" + strconv.Itoa(i%4), User: "user-" + strconv.Itoa(i)}))
			val := make([]byte, 512)
			rng.Read(val)
			data, _ := json.Marshal(base64.StdEncoding.EncodeToString(val))
			recs = append(recs, record.Encode(&record.Event{Type: record.TypeSet, Room: "room-" + strconv.Itoa(i%500), Key: "k" + strconv.Itoa(i), Data: data}))
		}
		for i, r := range recs {
			r.Offset, r.Timestamp = int64(i), time.UnixMilli(1_700_000_000_000)
		}
		fold(b, part, recs)
		if n := len(part.Dump().Rooms); n != 500 {
			b.Fatalf("%d rooms folded, want 500", n)
		}
		parts[p] = part
	}
	for _, n := range []int32{1, events} {
		b.Run("snapshot-partitions="+strconv.Itoa(int(n)), func(b *testing.B) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			opts := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
			prod, err := kgo.NewClient(append(opts, kgo.RecordPartitioner(record.NewPartitioner()), kgo.ProducerBatchMaxBytes(1<<20))...)
			if err != nil {
				b.Fatal(err)
			}
			defer prod.Close()
			ctx := context.Background()
			adm := kadm.NewClient(prod)
			if _, err := adm.CreateTopic(ctx, n, 1, nil, "snaps"); err != nil {
				b.Fatal(err)
			}
			st := &SnapshotStore{Topic: "snaps", EventsTopic: "events", Epoch: 7, ClientOpts: opts, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
			if err := st.Ensure(ctx, prod, events, 1); err != nil {
				b.Fatal(err)
			}
			var bytes int
			for _, part := range parts {
				m, err := st.Write(ctx, prod, part, "bench")
				if err != nil {
					b.Fatal(err)
				}
				bytes += m.Bytes
			}
			for b.Loop() {
				p, err := st.LoadPartition(ctx, 16, 5)
				if err != nil || p == nil {
					b.Fatal(p, err)
				}
			}
			b.ReportMetric(float64(bytes)/events, "snapshot-bytes")
		})
	}
}
