// Command consume reads clients' events from the roomlog topic in a consumer
// group with franz-go and prints the first publish to ROOM: the Go snippet
// of docs/backends.md.
//
//	BROKERS=127.0.0.1:9092 TOPIC=roomlog.events GROUP=my-backend ROOM=lobby go run ./examples/backends/go/consume
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func main() {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(strings.Split(os.Getenv("BROKERS"), ",")...),
		kgo.ConsumeTopics(os.Getenv("TOPIC")),
		kgo.ConsumerGroup(os.Getenv("GROUP")), // backends share the work; each record goes to one member
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			log.Fatal(err)
		}
		fetches.EachError(func(t string, p int32, err error) { log.Printf("fetch %s/%d: %v", t, p, err) })
		for _, r := range fetches.Records() {
			// Client events carry rl-type; leases, joins and state ops too:
			// a backend picks the types it handles.
			if header(r, "rl-type") != "publish" || string(r.Key) != os.Getenv("ROOM") {
				continue
			}
			fmt.Printf("%s %s %s %s\n", r.Key, header(r, "rl-event"), header(r, "rl-user"), r.Value)
			if err := cl.CommitRecords(ctx, r); err != nil {
				log.Fatal(err)
			}
			return
		}
	}
}
