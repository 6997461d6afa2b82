// Package logtopic creates a Kafka topic when it is missing and waits until
// the brokers report it: the one way every roomlog topic (events, snapshots)
// comes into being.
//
// Creation is asynchronous on a real cluster: CreateTopics returns before
// every broker knows the topic, and a metadata request in between answers
// "unknown topic". franz-go caches that answer (MetadataMinAge, 5 s by
// default) for every cached metadata lookup on the same client, including
// kadm's ListEndOffsets. So the wait here asks the brokers directly, and its
// answer, once the topic is there, replaces the cached one.
//
// Ensure is safe for concurrent use; it holds no state.
package logtopic

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Spec is the topic to ensure.
type Spec struct {
	Topic             string
	Partitions        int32              // for a new topic; an existing one keeps its own
	ReplicationFactor int16              // -1: the brokers' default
	Configs           map[string]*string // for a new topic, e.g. cleanup.policy
}

// Info is the topic as the brokers report it.
type Info struct {
	ID         kadm.TopicID
	Partitions int32
}

// errNotYet: the topic is not ready yet (unknown to the broker asked, a
// partition without a leader, or the log unreachable); waiting may help.
var errNotYet = errors.New("not ready yet")

// Ensure creates s.Topic when it does not exist and waits until the brokers
// report it with a topic ID and every partition with a leader. An existing
// topic is used as it is.
//
// A log that cannot be reached yet (a broker still starting, a network blip)
// is retried until ctx ends, with a warning to log now and then; an error the
// broker answers (not authorised, a bad replication factor) is returned at
// once.
func Ensure(ctx context.Context, cl *kgo.Client, s Spec, log *slog.Logger) (Info, error) {
	if log == nil {
		log = slog.Default()
	}
	adm := kadm.NewClient(cl)
	backoff, began, warned := 250*time.Millisecond, time.Now(), time.Time{}
	for {
		_, err := adm.CreateTopic(ctx, max(s.Partitions, 1), s.ReplicationFactor, s.Configs, s.Topic)
		if err == nil || errors.Is(err, kerr.TopicAlreadyExists) {
			break
		}
		var kErr *kerr.Error
		if errors.As(err, &kErr) || ctx.Err() != nil {
			return Info{}, fmt.Errorf("create topic %q: %w", s.Topic, err)
		}
		if time.Since(warned) > 10*time.Second {
			log.Warn("cannot reach the log yet; retrying", "topic", s.Topic, "waited", time.Since(began).Round(time.Second), "err", err)
			warned = time.Now()
		}
		select {
		case <-ctx.Done():
			return Info{}, fmt.Errorf("create topic %q: %w (last error: %v)", s.Topic, ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
	for {
		info, err := describe(ctx, cl, s.Topic)
		switch {
		case err == nil:
			return info, nil
		case !errors.Is(err, errNotYet):
			return Info{}, err
		}
		select {
		case <-ctx.Done():
			return Info{}, fmt.Errorf("waiting for topic %q: %w (%v)", s.Topic, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// describe asks the brokers for topic's metadata, uncached: the topic once
// it has an ID and partitions that all have leaders, an error wrapping
// errNotYet while waiting may help, or another error, which waiting will not
// change.
func describe(ctx context.Context, cl *kgo.Client, topic string) (Info, error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return Info{}, fmt.Errorf("%w: %w", errNotYet, err) // the caller's ctx bounds the wait
	}
	for _, t := range resp.Topics {
		if t.Topic == nil || *t.Topic != topic {
			continue
		}
		switch terr := kerr.ErrorForCode(t.ErrorCode); {
		case terr == nil:
		case errors.Is(terr, kerr.UnknownTopicOrPartition), errors.Is(terr, kerr.LeaderNotAvailable):
			return Info{}, fmt.Errorf("%w: %w", errNotYet, terr)
		default:
			return Info{}, fmt.Errorf("metadata of topic %q: %w", topic, terr)
		}
		if len(t.Partitions) == 0 || t.TopicID == ([16]byte{}) {
			return Info{}, fmt.Errorf("%w: no partitions or no topic ID reported", errNotYet)
		}
		for _, p := range t.Partitions {
			if p.Leader < 0 {
				return Info{}, fmt.Errorf("%w: partition %d has no leader", errNotYet, p.Partition)
			}
		}
		return Info{ID: t.TopicID, Partitions: int32(len(t.Partitions))}, nil
	}
	return Info{}, fmt.Errorf("%w: not in the metadata answer", errNotYet)
}
