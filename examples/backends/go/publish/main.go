// Command publish appends one event to a roomlog room with franz-go: the
// Go snippet of docs/backends.md.
//
//	BROKERS=127.0.0.1:9092 TOPIC=roomlog.events ROOM=lobby TEXT=hi go run ./examples/backends/go/publish
package main

import (
	"context"
	"encoding/json"
	"log"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(strings.Split(os.Getenv("BROKERS"), ",")...),
		kgo.DefaultProduceTopic(os.Getenv("TOPIC")),
		// franz-go's default partitioner already hashes keys with Kafka's
		// murmur2: the record goes straight to the room's partition.
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()

	data, _ := json.Marshal(map[string]string{"text": os.Getenv("TEXT")})
	rec := &kgo.Record{
		Key:   []byte(os.Getenv("ROOM")), // key = room
		Value: data,                      // value = the event's data (JSON)
		Headers: []kgo.RecordHeader{
			{Key: "rl-type", Value: []byte("publish")},
			{Key: "rl-event", Value: []byte("chat")}, // the event name clients see
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		log.Fatal(err)
	}
	log.Printf("appended to partition %d at offset %d", rec.Partition, rec.Offset)
}
