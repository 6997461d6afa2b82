package relay_test

import (
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/roomlog/roomlog/relay"
)

// TestOverduePublishAnsweredLogUnavailable: a produce request the broker
// never answers (its leader died with the request in flight, found on the
// three-broker cluster by testenv/faulttest) keeps franz-go's idempotent
// producer from failing the record, so before the fix the client waited
// without any answer until the partition came back. The relay now answers
// log_unavailable after --produce-timeout; when the record lands after all,
// its fold sends no second answer, and the client's retry with the same mid
// is acknowledged as a duplicate of it: one message delivered.
func TestOverduePublishAnsweredLogUnavailable(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	b := backend{name: "kfake", brokers: c.ListenAddrs()}
	s := startRelay(t, b, newTopic(t), func(cfg *relay.Config) {
		cfg.ProduceTimeout = time.Second
		cfg.LeaseTimeout = time.Hour // no lease writes queue behind the held request
	})
	pub, sub := dial(t, s), dial(t, s)
	pub.join("overdue")
	sub.join("overdue")

	// Hold every produce request until release is closed; then let the
	// broker handle it as usual.
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		c.SleepControl(func() { <-release })
		return nil, nil, false
	})

	pub.send(map[string]any{"op": "publish", "room": "overdue", "data": "once", "mid": "m-1", "id": "first"})
	f := pub.replyWithin(20 * time.Second) // hang guard; the answer is due after 1 s
	if f.Op != "error" || f.Code != "log_unavailable" || string(f.ID) != `"first"` {
		t.Fatalf("overdue publish answered %+v, want error log_unavailable for id first", f)
	}

	once.Do(func() { close(release) })
	retry := pub.do(map[string]any{"op": "publish", "room": "overdue", "data": "once", "mid": "m-1", "id": "retry"})
	if !retry.Duplicate {
		t.Fatalf("retry with the same mid: %+v, want a duplicate ack (the first attempt landed)", retry)
	}
	m := sub.message()
	if string(m.Data) != `"once"` || m.Pos != retry.Pos {
		t.Fatalf("subscriber got %+v, want the message at %s", m, retry.Pos)
	}
	// Nothing else: a marker published now is the next message and the
	// next reply (no late ack for "first" in between).
	mark := pub.do(map[string]any{"op": "publish", "room": "overdue", "data": "mark", "id": "mark"})
	if m := sub.message(); string(m.Data) != `"mark"` || m.Pos != mark.Pos {
		t.Fatalf("subscriber got %+v after the retry, want only the marker", m)
	}
	select {
	case f := <-pub.acks:
		t.Fatalf("unexpected reply %+v", f)
	default:
	}
}
