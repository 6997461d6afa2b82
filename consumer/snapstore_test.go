package consumer

import (
	"context"
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
// partition, or fewer than the events topic) works the same way.
func TestSnapshotStorePartitions(t *testing.T) {
	const events = 4
	for _, tc := range []struct {
		name    string
		precond int32 // partitions of a snapshots topic that exists before Ensure; 0: none
		want    int32
	}{
		{"created by Ensure", 0, events},
		{"one partition, from an earlier version", 1, 1},
		{"two partitions", 2, 2},
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
			st := &SnapshotStore{Topic: "snaps", EventsTopic: "events", Epoch: 7, ClientOpts: opts, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
			if err := st.Ensure(ctx, adm, events, 1); err != nil {
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
