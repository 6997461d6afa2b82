package main

import "github.com/twmb/franz-go/pkg/kgo"

// timeOrder merges the partitions of a scan by record timestamp, for
// `roomlog replay --order time`: it holds each partition's records until
// every partition still being read has one to compare, then emits the
// earliest head (ties: lower partition). Only heads are emitted, so each
// partition's own order, and so a room's, stays the log's.
type timeOrder struct {
	to     map[int32]int64 // each partition's end (exclusive)
	queues map[int32][]*kgo.Record
	done   map[int32]bool
	emit   func(*kgo.Record) error
}

func newTimeOrder(from, to map[int32]int64, emit func(*kgo.Record) error) *timeOrder {
	t := &timeOrder{to: to, queues: map[int32][]*kgo.Record{}, done: map[int32]bool{}, emit: emit}
	for p, off := range from {
		if off >= to[p] {
			t.done[p] = true
		}
	}
	return t
}

// add queues r and emits what can be emitted.
func (t *timeOrder) add(r *kgo.Record) error {
	t.queues[r.Partition] = append(t.queues[r.Partition], r)
	if r.Offset+1 >= t.to[r.Partition] {
		t.done[r.Partition] = true
	}
	return t.drain(false)
}

// flush emits everything left, at the end of the scan.
func (t *timeOrder) flush() error { return t.drain(true) }

func (t *timeOrder) drain(all bool) error {
	for {
		best := int32(-1)
		for p := range t.to {
			q := t.queues[p]
			if len(q) == 0 {
				if !all && !t.done[p] {
					return nil // p may still have an earlier record
				}
				continue
			}
			if best < 0 || earlier(q[0], t.queues[best][0]) {
				best = p
			}
		}
		if best < 0 {
			return nil
		}
		r := t.queues[best][0]
		t.queues[best][0] = nil
		t.queues[best] = t.queues[best][1:]
		if err := t.emit(r); err != nil {
			return err
		}
	}
}

func earlier(a, b *kgo.Record) bool {
	if !a.Timestamp.Equal(b.Timestamp) {
		return a.Timestamp.Before(b.Timestamp)
	}
	return a.Partition < b.Partition
}
