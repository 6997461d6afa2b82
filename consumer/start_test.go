package consumer_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/roomlog/roomlog/consumer"
)

type nopSink struct{}

func (nopSink) Deliver(*consumer.Delivery) {}

// TestStartFailsWithoutTheLogStart: when the log's start offsets cannot be
// listed (for the whole topic or one partition), Start fails; it used to go
// on with a history floor of 0, so a recovery could claim messages that
// retention had deleted, and a partition whose records were all deleted
// never became ready.
func TestStartFailsWithoutTheLogStart(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail func(p int32) bool
	}{
		{"every partition", func(int32) bool { return true }},
		{"one partition", func(p int32) bool { return p == 2 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "events"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.ControlKey(int16(kmsg.ListOffsets), func(kr kmsg.Request) (kmsg.Response, error, bool) {
				c.KeepControl()
				req := kr.(*kmsg.ListOffsetsRequest)
				resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
				earliest := false
				for _, rt := range req.Topics {
					st := kmsg.NewListOffsetsResponseTopic()
					st.Topic = rt.Topic
					for _, rp := range rt.Partitions {
						earliest = earliest || rp.Timestamp == -2
						sp := kmsg.NewListOffsetsResponseTopicPartition()
						sp.Partition = rp.Partition
						sp.Offset = 0
						if tc.fail(rp.Partition) {
							sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
						}
						st.Partitions = append(st.Partitions, sp)
					}
					resp.Topics = append(resp.Topics, st)
				}
				if !earliest {
					return nil, nil, false // end offsets: answered by the broker
				}
				return resp, nil, true
			})
			cons, err := consumer.New(consumer.Config{ClientOpts: []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, Topic: "events", Sink: nopSink{}})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err = cons.Start(ctx)
			t.Logf("Start: %v", err)
			if err == nil {
				cons.Stop()
				t.Fatal("Start succeeded without the log's start offsets")
			}
		})
	}
}
