package record

import (
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Misplaced records. A room's records belong in its partition (PartitionOf);
// a producer with another partitioner (librdkafka's default, CRC32: kcat,
// confluent-kafka, node-rdkafka) puts some of them elsewhere. Whether a
// record is misplaced is a pure function of its key, its partition and the
// topic's partition count, so every relay and every replay agrees. The owner
// of the partition where it landed re-homes it: it appends a copy to the
// room's partition with an rl-origin header naming the original's place
// (Rehome), and the fold takes the copy, once, in the room's order.

// HeaderOrigin names the misplaced original of a re-homed copy:
// "<partition>-<offset>" in decimal. Part of the public record format.
const HeaderOrigin = "rl-origin"

// maxOriginBytes bounds the header: an int32, a dash, an int64.
const maxOriginBytes = 10 + 1 + 19

// ErrBadOrigin is wrapped by ParseOrigin for a malformed rl-origin header.
var ErrBadOrigin = errors.New("malformed rl-origin header")

// Origin is where a re-homed record was first written.
type Origin struct {
	Partition int32
	Offset    int64
}

// String formats o as the rl-origin header's value.
func (o Origin) String() string { return string(o.Append(nil)) }

// Append appends o's header value to b.
func (o Origin) Append(b []byte) []byte {
	b = strconv.AppendInt(b, int64(o.Partition), 10)
	b = append(b, '-')
	return strconv.AppendInt(b, o.Offset, 10)
}

// ParseOrigin parses an rl-origin header value: two non-negative decimal
// integers (no sign, no leading zero) joined by a dash.
func ParseOrigin(b []byte) (Origin, error) {
	if len(b) > maxOriginBytes {
		return Origin{}, fmt.Errorf("%w: %d bytes", ErrBadOrigin, len(b))
	}
	dash := -1
	for i, c := range b {
		if c == '-' {
			dash = i
			break
		}
	}
	if dash < 0 {
		return Origin{}, fmt.Errorf("%w %q: no dash", ErrBadOrigin, b)
	}
	p, ok1 := parseUint(b[:dash], math.MaxInt32)
	o, ok2 := parseUint(b[dash+1:], math.MaxInt64)
	if !ok1 || !ok2 {
		return Origin{}, fmt.Errorf("%w %q", ErrBadOrigin, b)
	}
	return Origin{Partition: int32(p), Offset: int64(o)}, nil
}

// parseUint parses a canonical decimal integer no larger than max.
func parseUint(b []byte, max uint64) (uint64, bool) {
	if len(b) == 0 || (len(b) > 1 && b[0] == '0') {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (max-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// Home is the partition e belongs in, in a topic of n partitions, and
// whether it belongs to a single one: lease and expire records are written
// to every partition and have no home. n <= 0 (unknown) gives no home.
func Home(e *Event, n int32) (int32, bool) {
	if n <= 0 || e.Type == TypeLease || e.Type == TypeExpire {
		return 0, false
	}
	return PartitionOf(e.Room, n), true
}

// Rehome returns the copy of r, a misplaced record, to append to its room's
// partition: the same key, value and headers, plus rl-origin naming r's
// partition and offset (an rl-origin r carried is replaced). The copy
// shares no memory with r. Its timestamp is left for the producer to set.
func Rehome(r *kgo.Record) *kgo.Record {
	c := &kgo.Record{Key: append([]byte(nil), r.Key...)}
	if r.Value != nil {
		c.Value = append([]byte(nil), r.Value...)
	}
	c.Headers = make([]kgo.RecordHeader, 0, len(r.Headers)+1)
	for _, h := range r.Headers {
		if h.Key == HeaderOrigin {
			continue
		}
		c.Headers = append(c.Headers, kgo.RecordHeader{Key: h.Key, Value: append([]byte(nil), h.Value...)})
	}
	o := Origin{Partition: r.Partition, Offset: r.Offset}
	c.Headers = append(c.Headers, kgo.RecordHeader{Key: HeaderOrigin, Value: o.Append(nil)})
	return c
}
