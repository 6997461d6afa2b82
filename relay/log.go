package relay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/internal/logtopic"
	"github.com/roomlog/roomlog/record"
)

// TopicInfo describes the events topic as the relay found it.
type TopicInfo struct {
	Epoch      uint64 // record.EpochOf(topic ID)
	Partitions int32
}

// EnsureTopic creates topic when it does not exist and waits until the
// brokers report it with a topic ID. An existing topic is used as it is.
//
// A log that cannot be reached yet (a broker still starting, a network
// blip) is retried until ctx ends, with a warning now and then; an error the
// broker answers (not authorised, a bad replication factor) is returned at
// once.
func EnsureTopic(ctx context.Context, cl *kgo.Client, topic string, partitions int32, rf int16) (TopicInfo, error) {
	return ensureTopic(ctx, cl, topic, partitions, rf, slog.Default())
}

func ensureTopic(ctx context.Context, cl *kgo.Client, topic string, partitions int32, rf int16, log *slog.Logger) (TopicInfo, error) {
	info, err := logtopic.Ensure(ctx, cl, logtopic.Spec{Topic: topic, Partitions: partitions, ReplicationFactor: rf}, log)
	if err != nil {
		return TopicInfo{}, err
	}
	return TopicInfo{Epoch: record.EpochOf(info.ID), Partitions: info.Partitions}, nil
}

// newRelayID names this relay process: 8 random hex digits, so connection
// ids are unique across relays and restarts.
func newRelayID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
