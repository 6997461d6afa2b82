package record

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestParseOrigin(t *testing.T) {
	tests := []struct {
		in   string
		want Origin
		ok   bool
	}{
		{"7-123", Origin{7, 123}, true},
		{"0-0", Origin{0, 0}, true},
		{"2147483647-9223372036854775807", Origin{2147483647, 9223372036854775807}, true},
		{"2147483648-1", Origin{}, false},
		{"1-9223372036854775808", Origin{}, false},
		{"", Origin{}, false},
		{"7", Origin{}, false},
		{"7-", Origin{}, false},
		{"-7", Origin{}, false},
		{"07-1", Origin{}, false},
		{"7-01", Origin{}, false},
		{"+7-1", Origin{}, false},
		{"7--1", Origin{}, false},
		{"7-1-2", Origin{}, false},
		{"7 -1", Origin{}, false},
		{strings.Repeat("1", 40), Origin{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseOrigin([]byte(tt.in))
			if tt.ok != (err == nil) || got != tt.want {
				t.Fatalf("ParseOrigin(%q) = %+v, %v; want %+v ok=%v", tt.in, got, err, tt.want, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadOrigin) {
				t.Fatalf("error %v does not wrap ErrBadOrigin", err)
			}
			if err == nil && got.String() != tt.in {
				t.Fatalf("String() = %q, want %q", got.String(), tt.in)
			}
		})
	}
}

func FuzzParseOrigin(f *testing.F) {
	f.Add([]byte("7-123"))
	f.Add([]byte("0-0"))
	f.Add([]byte("2147483648-1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := ParseOrigin(b)
		if err != nil {
			return
		}
		if o.Partition < 0 || o.Offset < 0 {
			t.Fatalf("negative origin %+v from %q", o, b)
		}
		if o.String() != string(b) {
			t.Fatalf("%q parsed as %+v, formats as %q", b, o, o.String())
		}
	})
}

func TestHome(t *testing.T) {
	tests := []struct {
		name string
		ev   Event
		n    int32
		want int32
		ok   bool
	}{
		{"publish", Event{Type: TypePublish, Room: "lobby"}, 16, PartitionOf("lobby", 16), true},
		{"join", Event{Type: TypeJoin, Room: "lobby"}, 16, PartitionOf("lobby", 16), true},
		{"lease", Event{Type: TypeLease, Room: RelayKeyPrefix + "a"}, 16, 0, false},
		{"expire", Event{Type: TypeExpire, Room: RelayKeyPrefix + "a"}, 16, 0, false},
		{"unknown count", Event{Type: TypePublish, Room: "lobby"}, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Home(&tt.ev, tt.n)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("Home = %d, %v; want %d, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
	// The issue's own example: librdkafka's CRC32 puts "lobby" in 7 of 16.
	if got := PartitionOf("lobby", 16); got != 14 {
		t.Fatalf("PartitionOf(lobby, 16) = %d, want 14 (Kafka's murmur2)", got)
	}
}

func TestRehome(t *testing.T) {
	orig := &kgo.Record{
		Key: []byte("lobby"), Value: []byte(`{"a":1}`), Partition: 7, Offset: 42,
		Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("t1")}, {Key: HeaderOrigin, Value: []byte("1-1")}},
	}
	c := Rehome(orig)
	if !bytes.Equal(c.Key, orig.Key) || !bytes.Equal(c.Value, orig.Value) {
		t.Fatalf("copy key/value %q/%q", c.Key, c.Value)
	}
	orig.Value[0], orig.Key[0] = 'X', 'X'
	if c.Value[0] != '{' || c.Key[0] != 'l' {
		t.Fatal("copy shares memory with the original")
	}
	var origins []string
	for _, h := range c.Headers {
		if h.Key == HeaderOrigin {
			origins = append(origins, string(h.Value))
		}
	}
	if len(c.Headers) != 2 || len(origins) != 1 || origins[0] != "7-42" {
		t.Fatalf("headers %+v: want trace and one rl-origin 7-42", c.Headers)
	}
	ev, err := Decode(c)
	if err != nil || ev.Origin == nil || *ev.Origin != (Origin{7, 42}) || ev.Type != TypePublish {
		t.Fatalf("decoded copy %+v, %v", ev, err)
	}
}

func TestSkipReason(t *testing.T) {
	hdr := func(k, v string) []kgo.RecordHeader { return []kgo.RecordHeader{{Key: k, Value: []byte(v)}} }
	tests := []struct {
		name string
		rec  kgo.Record
		want string
	}{
		{"no key", kgo.Record{Value: []byte("x")}, "no_key"},
		{"bad room", kgo.Record{Key: []byte("a\x01b")}, "bad_room"},
		{"foreign too large", kgo.Record{Key: []byte("r"), Value: bytes.Repeat([]byte("a"), MaxDataBytes+1)}, "too_large"},
		{"publish too large", kgo.Record{Key: []byte("r"), Value: bytes.Repeat([]byte("1"), MaxDataBytes+1), Headers: hdr(HeaderType, "publish")}, "too_large"},
		{"bad json", kgo.Record{Key: []byte("r"), Value: []byte("{"), Headers: hdr(HeaderType, "publish")}, "bad_value"},
		{"unknown type", kgo.Record{Key: []byte("r"), Headers: hdr(HeaderType, "teleport")}, "unknown_type"},
		{"bad origin", kgo.Record{Key: []byte("r"), Headers: hdr(HeaderOrigin, "x")}, "bad_header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(&tt.rec)
			if err == nil {
				t.Fatal("decoded")
			}
			if got := SkipReason(err); got != tt.want {
				t.Fatalf("SkipReason(%v) = %q, want %q", err, got, tt.want)
			}
		})
	}
	ok := kgo.Record{Key: []byte("r"), Value: bytes.Repeat([]byte("a"), MaxDataBytes)}
	if _, err := Decode(&ok); err != nil {
		t.Fatalf("a value of exactly MaxDataBytes: %v", err)
	}
}
