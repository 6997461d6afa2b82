package consumer

// Benchmark of the consumer's per-record path, without the network: decode,
// fold into the partition's state, and the hand-off to the Sink.
//
//	go test -run '^$' -bench . -benchmem ./consumer/

import (
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/record"
)

// nopSink drops every delivery; it only counts them so the work cannot be
// optimised away.
type nopSink struct{ n int }

func (s *nopSink) Deliver(*Delivery) { s.n++ }

const (
	benchData       = `{"user":"alice","text":"hello everyone, this is a typical chat line","ts":1767225600123,"seq":42}`
	benchPartitions = 4
	benchRooms      = 16
)

// benchRecord is one record of a stream with, for relay-written publishes,
// the index of its rl-mid header: the benchmark rewrites that header's value
// with a fresh id on every use, so no publish is a duplicate.
type benchRecord struct {
	r      *kgo.Record
	mid    int // index in r.Headers, or -1
	midBuf []byte
}

func relayRecord(i int) benchRecord {
	r := record.Encode(&record.Event{
		Type:  record.TypePublish,
		Room:  "room-" + strconv.Itoa(i%benchRooms),
		Event: "chat",
		Data:  []byte(benchData),
		From:  "3f9a1c2e-" + strconv.Itoa(i),
		MID:   "0",
		Req:   strconv.Itoa(i),
	})
	br := benchRecord{r: r, mid: -1, midBuf: make([]byte, 0, 24)}
	for j, h := range r.Headers {
		if h.Key == record.HeaderMID {
			br.mid = j
		}
	}
	if br.mid < 0 {
		panic("record.Encode wrote no " + record.HeaderMID + " header")
	}
	return br
}

func foreignJSON(i int) benchRecord {
	return benchRecord{r: &kgo.Record{Key: []byte("room-" + strconv.Itoa(i%benchRooms)), Value: []byte(benchData)}, mid: -1}
}

func foreignText(i int) benchRecord {
	v := "deploy finished on host web-" + strconv.Itoa(i) + ": all checks green"
	return benchRecord{r: &kgo.Record{Key: []byte("room-" + strconv.Itoa(i%benchRooms)), Value: []byte(v)}, mid: -1}
}

// benchStream cycles through a fixed set of records, giving each use its
// partition (round robin), the next offset of that partition, a record
// timestamp from that partition's clock, and a fresh message id.
type benchStream struct {
	recs   []benchRecord
	parts  [benchPartitions]*Partition
	next   [benchPartitions]int64
	base   time.Time
	step   time.Duration // record time between two records of one partition
	seq    int64
	i      int
	withID float64 // fraction of records that carry a message id
}

// newBenchStream sets the record clock so that, in steady state, each
// partition's dedupe window (DedupeWindowMillis of record time) holds about
// ids message ids.
func newBenchStream(c *Consumer, recs []benchRecord, ids int) *benchStream {
	s := &benchStream{recs: recs, base: time.Unix(1767225600, 0)}
	for p := range s.parts {
		s.parts[p] = c.state.Partition(int32(p))
	}
	n := 0
	for _, r := range recs {
		if r.mid >= 0 {
			n++
		}
	}
	s.withID = float64(n) / float64(len(recs))
	s.step = time.Second
	if n > 0 && ids > 0 {
		s.step = time.Duration(float64(DedupeWindowMillis) * float64(time.Millisecond) * s.withID / float64(ids))
	}
	return s
}

func (s *benchStream) handle(c *Consumer, d *Delivery, res *Result) {
	br := &s.recs[s.i%len(s.recs)]
	p := s.i % benchPartitions
	s.i++
	r := br.r
	r.Topic, r.Partition, r.Offset = "roomlog.events", int32(p), s.next[p]
	r.Timestamp = s.base.Add(time.Duration(s.next[p]) * s.step)
	s.next[p]++
	if br.mid >= 0 {
		s.seq++
		br.midBuf = strconv.AppendInt(br.midBuf[:0], s.seq, 10)
		r.Headers[br.mid].Value = br.midBuf
	}
	c.handle(s.parts[p], r, d, res, true)
}

// warm folds enough records to fill each partition's dedupe window to its
// steady state (or a few thousand records when no record has an id).
func (s *benchStream) warm(c *Consumer, d *Delivery, res *Result) {
	window := int64(DedupeWindowMillis) * int64(time.Millisecond) / int64(s.step)
	n := int(window+16)*benchPartitions + 4096
	for range n {
		s.handle(c, d, res)
	}
}

func benchRecords(kind string) []benchRecord {
	const n = 64
	var recs []benchRecord
	for i := 0; i < n; i++ {
		switch kind {
		case "relay":
			recs = append(recs, relayRecord(i))
		case "headerless":
			recs = append(recs, foreignJSON(i))
		case "mix":
			// 3 in 4 written by a relay, the rest by plain Kafka
			// producers (half JSON, half text that becomes a JSON
			// string).
			switch i % 8 {
			case 3:
				recs = append(recs, foreignJSON(i))
			case 7:
				recs = append(recs, foreignText(i))
			default:
				recs = append(recs, relayRecord(i))
			}
		}
	}
	return recs
}

func benchConsumer(b *testing.B) (*Consumer, *nopSink) {
	b.Helper()
	sink := &nopSink{}
	c, err := New(Config{Topic: "roomlog.events", Epoch: 0x1234567890abcdef, Sink: sink,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	return c, sink
}

func runRoute(b *testing.B, kind string, ids int) {
	c, sink := benchConsumer(b)
	s := newBenchStream(c, benchRecords(kind), ids)
	var (
		d   Delivery
		res Result
	)
	s.warm(c, &d, &res)
	sink.n = 0
	skipped := c.Stats().Skipped
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.handle(c, &d, &res)
	}
	b.StopTimer()
	if st := c.Stats(); st.Skipped != skipped || sink.n != b.N {
		b.Fatalf("skipped %d, delivered %d of %d", st.Skipped-skipped, sink.n, b.N)
	}
	if res.Duplicate {
		b.Fatal("a publish was folded as a duplicate")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkRoute measures records/s through Consumer.handle: decode, fold
// (dedupe of message ids, history window) and delivery into a no-op Sink,
// round robin over 4 partitions and 16 rooms. Relay-written publishes carry
// a fresh message id each; the record clock keeps about 1000 ids per
// partition in the dedupe window, and the state is warmed to that steady
// state before timing.
//
// The dedupe=N sub-benchmarks fold relay-written publishes only, with N ids
// per partition in the dedupe window, to show how the per-record cost
// depends on the window's population.
func BenchmarkRoute(b *testing.B) {
	for _, kind := range []string{"relay", "headerless", "mix"} {
		b.Run(kind, func(b *testing.B) { runRoute(b, kind, 1000) })
	}
	for _, ids := range []int{100, 10000, 100000} {
		b.Run("dedupe="+strconv.Itoa(ids), func(b *testing.B) { runRoute(b, "relay", ids) })
	}
}
