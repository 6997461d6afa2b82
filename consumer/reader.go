package consumer

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/record"
)

// ReadRange reads partition's records with offsets in [from, to) from the log
// with a client of its own and calls fn for each, in order; fn returning
// false stops the read. It returns the partition's log start offset: when it
// is above from, the records before it are gone (retention) and were not
// read. Callers bound ctx. It is for recovery and history reads that go past the in-memory
// window, and for the replay tools.
func ReadRange(ctx context.Context, opts []kgo.Opt, topic string, partition int32, from, to int64, fn func(*kgo.Record) bool) (int64, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.ClientID("roomlog-reader")}, opts...)...)
	if err != nil {
		return 0, fmt.Errorf("read %s/%d: client: %w", topic, partition, err)
	}
	defer cl.Close()
	starts, err := kadm.NewClient(cl).ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return 0, fmt.Errorf("read %s/%d: list start offsets: %w", topic, partition, err)
	}
	lo, ok := starts.Lookup(topic, partition)
	if !ok {
		return 0, fmt.Errorf("read %s/%d: no such partition", topic, partition)
	}
	logStart := lo.Offset
	if from < logStart {
		from = logStart
	}
	if from >= to {
		return logStart, nil
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(from)}})
	for {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return logStart, fmt.Errorf("read %s/%d [%d,%d): %w", topic, partition, from, to, err)
		}
		var ferr error
		fetches.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return logStart, fmt.Errorf("read %s/%d [%d,%d): %w", topic, partition, from, to, ferr)
		}
		done := false
		fetches.EachRecord(func(r *kgo.Record) {
			if done {
				return
			}
			if r.Offset >= to || !fn(r) {
				done = true
			}
		})
		if done {
			return logStart, nil
		}
		// Control records (transaction markers) take offsets but are never
		// returned; a range ending in them ends with ctx (callers set a
		// deadline).
		if pos := lastOffset(fetches); pos >= to-1 {
			return logStart, nil
		}
	}
}

// ReadPublishes reads the room's messages with offsets in [from, to) of
// partition p from the log, as the fold saw them: publishes of the room that
// are not retries of a message id already delivered. fn gets each, in order;
// its Data is the fetched record's, valid only during the call (copy it to
// keep it). fn returning false stops the read. It returns the
// partition's log start offset, as ReadRange does. For recovery and history
// reads older than the in-memory window.
func ReadPublishes(ctx context.Context, opts []kgo.Opt, topic string, p *Partition, room string, from, to int64, fn func(Message) bool) (int64, error) {
	return ReadRange(ctx, opts, topic, p.ID(), from, to, func(r *kgo.Record) bool {
		if string(r.Key) != room {
			return true
		}
		ev, err := record.Decode(r)
		if err != nil || ev.Type != record.TypePublish || p.IsDuplicate(&ev, r.Offset) {
			return true
		}
		return fn(Message{Event: ev.Event, Data: ev.Data, From: ev.From, User: ev.User, Offset: r.Offset, Timestamp: r.Timestamp.UnixMilli()})
	})
}

func lastOffset(f kgo.Fetches) int64 {
	last := int64(-1)
	f.EachRecord(func(r *kgo.Record) { last = r.Offset })
	return last
}
