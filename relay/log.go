package relay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/roomlog/roomlog/record"
)

// TopicInfo describes the events topic as the relay found it.
type TopicInfo struct {
	Epoch      uint64 // record.EpochOf(topic ID)
	Partitions int32
}

// EnsureTopic creates topic when it does not exist and waits until the
// brokers report it with a topic ID. An existing topic is used as it is.
func EnsureTopic(ctx context.Context, adm *kadm.Client, topic string, partitions int32, rf int16) (TopicInfo, error) {
	_, err := adm.CreateTopic(ctx, partitions, rf, nil, topic)
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return TopicInfo{}, fmt.Errorf("create topic %q: %w", topic, err)
	}
	// Creation is asynchronous on a real cluster: wait for metadata.
	for {
		md, err := adm.Metadata(ctx, topic)
		if err == nil {
			td, ok := md.Topics[topic]
			switch {
			case ok && td.Err == nil && len(td.Partitions) > 0 && td.ID != (kadm.TopicID{}):
				return TopicInfo{Epoch: record.EpochOf(td.ID), Partitions: int32(len(td.Partitions))}, nil
			case ok && td.Err != nil && !errors.Is(td.Err, kerr.UnknownTopicOrPartition) && !errors.Is(td.Err, kerr.LeaderNotAvailable):
				return TopicInfo{}, fmt.Errorf("metadata of topic %q: %w", topic, td.Err)
			}
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = ctx.Err()
			}
			return TopicInfo{}, fmt.Errorf("waiting for topic %q: %w", topic, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// newRelayID names this relay process: 8 random hex digits, so connection
// ids are unique across relays and restarts.
func newRelayID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
