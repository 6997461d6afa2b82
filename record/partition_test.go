package record

import (
	"context"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestMurmur2: Kafka's own test vectors (UtilsTest.testMurmur2).
func TestMurmur2(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int32
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
	} {
		if got := int32(murmur2([]byte(tt.in))); got != tt.want {
			t.Errorf("murmur2(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

// TestPartitionOfMatchesKafka: a room's partition is the one franz-go's
// default partitioner (Kafka's) picks for its key, for any partition count.
func TestPartitionOfMatchesKafka(t *testing.T) {
	kafka := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	for _, n := range []int32{1, 2, 3, 12, 64, 1000} {
		for i := range 500 {
			room := fmt.Sprintf("room:%d/é", i)
			want := int32(kafka.Partition(&kgo.Record{Key: []byte(room)}, int(n)))
			if got := PartitionOf(room, n); got != want {
				t.Fatalf("PartitionOf(%q, %d) = %d, want %d", room, n, got, want)
			}
		}
	}
}

// TestPartitioner: keyed records go to PartitionOf; ManualPartition records
// to their own partition, unless it does not exist.
func TestPartitioner(t *testing.T) {
	tp := NewPartitioner().ForTopic("t")
	for _, tt := range []struct {
		name string
		rec  *kgo.Record
		want int
	}{
		{"keyed", &kgo.Record{Key: []byte("news")}, int(PartitionOf("news", 8))},
		{"manual", func() *kgo.Record { r := &kgo.Record{Key: []byte("~relay/a")}; ManualPartition(r, 5); return r }(), 5},
		{"manual out of range", func() *kgo.Record { r := &kgo.Record{Key: []byte("news")}; ManualPartition(r, 9); return r }(), int(PartitionOf("news", 8))},
		{"other context", &kgo.Record{Key: []byte("news"), Partition: 5, Context: context.Background()}, int(PartitionOf("news", 8))},
	} {
		if got := tp.Partition(tt.rec, 8); got != tt.want {
			t.Errorf("%s: partition %d, want %d", tt.name, got, tt.want)
		}
	}
}
