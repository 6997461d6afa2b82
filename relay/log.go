package relay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
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
//
// A log that cannot be reached yet (a broker still starting, a network
// blip) is retried until ctx ends, with a warning now and then; an error the
// broker answers (not authorised, a bad replication factor) is returned at
// once.
func EnsureTopic(ctx context.Context, adm *kadm.Client, topic string, partitions int32, rf int16) (TopicInfo, error) {
	return ensureTopic(ctx, adm, topic, partitions, rf, slog.Default())
}

func ensureTopic(ctx context.Context, adm *kadm.Client, topic string, partitions int32, rf int16, log *slog.Logger) (TopicInfo, error) {
	backoff, began, warned := 250*time.Millisecond, time.Now(), time.Time{}
	for {
		_, err := adm.CreateTopic(ctx, partitions, rf, nil, topic)
		if err == nil || errors.Is(err, kerr.TopicAlreadyExists) {
			break
		}
		var kErr *kerr.Error
		if errors.As(err, &kErr) || ctx.Err() != nil {
			return TopicInfo{}, fmt.Errorf("create topic %q: %w", topic, err)
		}
		if time.Since(warned) > 10*time.Second {
			log.Warn("cannot reach the log yet; retrying", "topic", topic, "waited", time.Since(began).Round(time.Second), "err", err)
			warned = time.Now()
		}
		select {
		case <-ctx.Done():
			return TopicInfo{}, fmt.Errorf("create topic %q: %w (last error: %v)", topic, ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
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
