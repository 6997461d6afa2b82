package record

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"
)

// A room's partition is part of the format: every producer (relays, tools,
// a backend writing with a stock Kafka client) must put a room's records in
// the same partition, or its joins and state ops would fold out of order.
// It is Kafka's default partitioner for keyed records: murmur2 of the key,
// masked to 31 bits, modulo the partition count (Java's DefaultPartitioner,
// franz-go's StickyKeyPartitioner, kcat's murmur2_random).

// PartitionOf is the partition of room's records in a topic of n partitions.
func PartitionOf(room string, n int32) int32 {
	return partitionOfKey([]byte(room), n)
}

func partitionOfKey(key []byte, n int32) int32 {
	return int32(murmur2(key)&0x7fffffff) % n
}

// murmur2 is Kafka's murmur2 hash (org.apache.kafka.common.utils.Utils).
func murmur2(b []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	h := seed ^ uint32(len(b))
	for len(b) >= 4 {
		k := uint32(b[3])<<24 | uint32(b[2])<<16 | uint32(b[1])<<8 | uint32(b[0])
		b = b[4:]
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch len(b) {
	case 3:
		h ^= uint32(b[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(b[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(b[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

// manualPartition marks records that go to the partition set in
// Record.Partition (lease and expire records, one per partition).
type manualPartition struct{}

var manualCtx = context.WithValue(context.Background(), manualPartition{}, true)

// NewPartitioner returns the producer partitioner for an events topic:
// PartitionOf for keyed records, and Record.Partition for records marked
// with ManualPartition. Relays and the tools that write to an events topic
// use it.
func NewPartitioner() kgo.Partitioner { return partitioner{kgo.StickyKeyPartitioner(nil)} }

// ManualPartition marks r to be written to partition p.
func ManualPartition(r *kgo.Record, p int32) {
	r.Partition, r.Context = p, manualCtx
}

// partitioner wraps franz-go's sticky key partitioner, which still places
// records without a key.
type partitioner struct{ inner kgo.Partitioner }

func (p partitioner) ForTopic(t string) kgo.TopicPartitioner {
	return topicPartitioner{p.inner.ForTopic(t)}
}

type topicPartitioner struct{ inner kgo.TopicPartitioner }

func (t topicPartitioner) RequiresConsistency(*kgo.Record) bool { return true }

func (t topicPartitioner) Partition(r *kgo.Record, n int) int {
	if r.Context != nil && r.Context.Value(manualPartition{}) != nil && int(r.Partition) < n {
		return int(r.Partition)
	}
	if r.Key == nil {
		return t.inner.Partition(r, n)
	}
	return int(partitionOfKey(r.Key, int32(n)))
}
