package logtopic_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/internal/logtopic"
	"github.com/roomlog/roomlog/testenv/kafkatest"
)

// brokers runs fn against kfake and, when ROOMLOG_TEST_BROKERS names one
// (testenv/kafka/start.sh; required under CI=true), a real Kafka.
func brokers(t *testing.T, fn func(t *testing.T, seeds []string)) {
	t.Run("kfake", func(t *testing.T) {
		c, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		fn(t, c.ListenAddrs())
	})
	t.Run("kafka", func(t *testing.T) { fn(t, kafkatest.Brokers(t)) })
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func fresh() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "roomlog-test-logtopic-" + hex.EncodeToString(b[:])
}

// TestEnsure: once Ensure returns, the same client's cached lookups
// (kadm's ListEndOffsets) see every partition, even when the client asked
// for the topic before it existed and franz-go cached "unknown topic". An
// existing topic keeps its partition count.
func TestEnsure(t *testing.T) {
	brokers(t, func(t *testing.T, seeds []string) {
		for _, tc := range []struct {
			name     string
			existing int32 // partitions of a topic made before Ensure; 0: none
			asked    bool  // the client looked the topic up before Ensure
			want     int32
		}{
			{"new", 0, false, 6},
			{"new, looked up before", 0, true, 6},
			{"existing with another count", 2, false, 2},
			{"existing, looked up before", 3, true, 3},
		} {
			t.Run(tc.name, func(t *testing.T) {
				cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
				if err != nil {
					t.Fatal(err)
				}
				defer cl.Close()
				adm := kadm.NewClient(cl)
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				topic := fresh()
				if tc.asked {
					if ends, _ := adm.ListEndOffsets(ctx, topic); ends.Error() == nil {
						t.Fatal("the topic exists before it was made")
					}
				}
				if tc.existing > 0 {
					other, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
					if err != nil {
						t.Fatal(err)
					}
					_, err = kadm.NewClient(other).CreateTopic(ctx, tc.existing, 1, nil, topic)
					other.Close()
					if err != nil {
						t.Fatal(err)
					}
				}
				info, err := logtopic.Ensure(ctx, cl, logtopic.Spec{Topic: topic, Partitions: 6, ReplicationFactor: 1}, nil)
				if err != nil {
					t.Fatal(err)
				}
				if info.Partitions != tc.want || info.ID == (kadm.TopicID{}) {
					t.Fatalf("Ensure reports %d partitions, ID %x; want %d and an ID", info.Partitions, info.ID, tc.want)
				}
				ends, err := adm.ListEndOffsets(ctx, topic)
				if err == nil {
					err = ends.Error()
				}
				if err != nil {
					t.Fatalf("listing the ensured topic: %v", err)
				}
				if n := len(ends[topic]); n != int(tc.want) {
					t.Fatalf("ListEndOffsets lists %d partitions, want %d", n, tc.want)
				}
			})
		}
	})
}

// TestEnsureErrors: an error the broker answers comes back at once; a log
// that cannot be reached is retried until ctx ends, and the error says so.
func TestEnsureErrors(t *testing.T) {
	brokers(t, func(t *testing.T, seeds []string) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err = logtopic.Ensure(ctx, cl, logtopic.Spec{Topic: fresh(), Partitions: 1, ReplicationFactor: 5}, quiet)
		if err == nil || ctx.Err() != nil || !errors.As(err, new(*kerr.Error)) {
			t.Fatalf("replication factor 5 on one broker: got %v, want the broker's error at once", err)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := logtopic.Ensure(ctx, cl, logtopic.Spec{Topic: fresh(), Partitions: 1}, quiet); err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("an unreachable log: got %v, want the context's deadline", err)
	}
}
