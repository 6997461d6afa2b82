package relay_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// batchHook records the compression of every record batch a client
// fetches.
type batchHook struct {
	mu      sync.Mutex
	codecs  map[uint8]int
	biggest int
}

func (h *batchHook) OnFetchBatchRead(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.FetchBatchMetrics) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.codecs[m.CompressionType]++
	h.biggest = max(h.biggest, m.NumRecords)
}

// TestRelayBatchesUncompressed: the relay appends uncompressed record
// batches by default, which every backend's Kafka client reads. franz-go's
// own default is Snappy, and kafkajs crashed on the first batch of the
// Socket.IO example's log that compressed well ("Snappy compression not
// implemented"). A burst of publishes to one room makes batches of many
// records, the ones Snappy would take.
func TestRelayBatchesUncompressed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		topic := newTopic(t)
		s := startRelay(t, b, topic, nil)
		c := dial(t, s)
		c.join("burst")
		const n = 300
		for i := range n {
			c.send(map[string]any{"op": "publish", "room": "burst", "event": "chat", "data": "the same words again and again", "id": i})
		}
		for range n {
			if f := c.reply(); f.Op != "ack" {
				t.Fatalf("publish: %+v", f)
			}
		}
		hook := &batchHook{codecs: map[uint8]int{}}
		cl, err := kgo.NewClient(kgo.SeedBrokers(b.brokers...), kgo.ConsumeTopics(topic), kgo.WithHooks(hook))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		for got := 0; got < n; {
			fs := cl.PollFetches(ctx)
			if err := ctx.Err(); err != nil {
				t.Fatalf("read %d of %d publishes: %v", got, n, err)
			}
			fs.EachRecord(func(r *kgo.Record) {
				if string(r.Key) == "burst" {
					got++
				}
			})
		}
		time.Sleep(100 * time.Millisecond) // hooks run as batches are read
		hook.mu.Lock()
		defer hook.mu.Unlock()
		if hook.biggest < 2 {
			t.Fatalf("no batch held more than one record (biggest %d): the test proves nothing", hook.biggest)
		}
		for codec, count := range hook.codecs {
			if codec != 0 {
				t.Fatalf("%d batches with compression codec %d, want none (codecs %v)", count, codec, hook.codecs)
			}
		}
	})
}
