package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   Event
	}{
		{"publish", Event{Type: TypePublish, Room: "lobby", Event: "chat", Data: json.RawMessage(`{"text":"hi"}`), From: "r1-7", MID: "m1"}},
		{"publish no mid", Event{Type: TypePublish, Room: "lobby", Event: "chat", Data: json.RawMessage(` [1, 2] `), From: "r1-7"}},
		{"join", Event{Type: TypeJoin, Room: "lobby", From: "r1-7"}},
		{"leave", Event{Type: TypeLeave, Room: "room/ünïcode", From: "r1-7"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(Encode(&tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if got.Type != tt.in.Type || got.Room != tt.in.Room || got.Event != tt.in.Event ||
				got.From != tt.in.From || got.MID != tt.in.MID || !bytes.Equal(got.Data, tt.in.Data) {
				t.Fatalf("got %+v, want %+v", got, tt.in)
			}
		})
	}
}

func TestDecodeForeign(t *testing.T) {
	tests := []struct {
		name  string
		value string
		want  string
	}{
		{"json object", `{"a":1}`, `{"a":1}`},
		{"json number", `42`, `42`},
		{"plain text", `hello world`, `"hello world"`},
		{"empty", ``, `null`},
		{"quote inside", `say "hi"`, `"say \"hi\""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(&kgo.Record{Key: []byte("lobby"), Value: []byte(tt.value)})
			if err != nil {
				t.Fatal(err)
			}
			if got.Type != TypePublish || got.Event != DefaultEvent || string(got.Data) != tt.want {
				t.Fatalf("got %+v data %s, want publish/message data %s", got, got.Data, tt.want)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	hdr := func(kv ...string) []kgo.RecordHeader {
		var hs []kgo.RecordHeader
		for i := 0; i < len(kv); i += 2 {
			hs = append(hs, kgo.RecordHeader{Key: kv[i], Value: []byte(kv[i+1])})
		}
		return hs
	}
	tests := []struct {
		name string
		rec  kgo.Record
		want error
	}{
		{"no key", kgo.Record{Value: []byte("x")}, ErrNoKey},
		{"bad room", kgo.Record{Key: []byte("a\nb")}, nil},
		{"long room", kgo.Record{Key: []byte(strings.Repeat("r", MaxRoomBytes+1))}, nil},
		{"unknown type", kgo.Record{Key: []byte("r"), Headers: hdr(HeaderType, "teleport")}, ErrUnknownType},
		{"bad json", kgo.Record{Key: []byte("r"), Value: []byte("{"), Headers: hdr(HeaderType, "publish", HeaderEvent, "e")}, ErrInvalidValue},
		{"bad event", kgo.Record{Key: []byte("r"), Value: []byte("1"), Headers: hdr(HeaderType, "publish", HeaderEvent, "\x00")}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(&tt.rec)
			if err == nil {
				t.Fatal("decoded, want an error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"plain", "lobby", true},
		{"unicode", "salon-été", true},
		{"empty", "", false},
		{"newline", "a\nb", false},
		{"nul", "a\x00", false},
		{"del", "a\x7f", false},
		{"bad utf8", "a\xff", false},
		{"too long", strings.Repeat("x", MaxRoomBytes+1), false},
		{"at limit", strings.Repeat("x", MaxRoomBytes), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidName(tt.in, MaxRoomBytes) == nil; got != tt.ok {
				t.Fatalf("ValidName(%q) ok = %v, want %v", tt.in, got, tt.ok)
			}
		})
	}
}

func TestPos(t *testing.T) {
	for _, p := range []Pos{{}, {Epoch: 0xdeadbeef01020304, Partition: 15, Offset: 1 << 40}} {
		got, err := ParsePos(p.String())
		if err != nil || got != p {
			t.Fatalf("ParsePos(%q) = %+v, %v; want %+v", p.String(), got, err, p)
		}
	}
	for _, bad := range []string{"", "1-2", "a-2-0000000000000000", "1-b-0000000000000000", "1-2-xyz", "-1-2-0000000000000000", "1-2-00000000000000000", "99999999999-2-0000000000000000"} {
		if _, err := ParsePos(bad); !errors.Is(err, ErrBadPos) {
			t.Errorf("ParsePos(%q) err = %v, want ErrBadPos", bad, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte("lobby"), []byte(`{"a":1}`), "publish", "chat", "r1-1", "")
	f.Add([]byte("r"), []byte("plain"), "", "", "", "7-42")
	f.Add([]byte(""), []byte("{"), "join", "\x00", "x", "-")
	f.Fuzz(func(t *testing.T, key, value []byte, typ, event, from, origin string) {
		rec := &kgo.Record{Key: key, Value: value}
		if typ != "" {
			rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: HeaderType, Value: []byte(typ)})
		}
		rec.Headers = append(rec.Headers,
			kgo.RecordHeader{Key: HeaderEvent, Value: []byte(event)},
			kgo.RecordHeader{Key: HeaderFrom, Value: []byte(from)})
		if origin != "" {
			rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: HeaderOrigin, Value: []byte(origin)})
		}
		e, err := Decode(rec)
		if err != nil {
			return
		}
		if ValidName(e.Room, MaxRoomBytes) != nil {
			t.Fatalf("decoded invalid room %q", e.Room)
		}
		if e.Type == TypePublish && !json.Valid(e.Data) {
			t.Fatalf("decoded publish with invalid data %q", e.Data)
		}
		again, err := Decode(Encode(&e))
		if err != nil {
			t.Fatalf("re-decode of %+v: %v", e, err)
		}
		if again.Room != e.Room || again.Type != e.Type || (e.Type == TypePublish && !bytes.Equal(again.Data, e.Data)) ||
			(e.Origin == nil) != (again.Origin == nil) || e.Origin != nil && *e.Origin != *again.Origin {
			t.Fatalf("round trip changed %+v into %+v", e, again)
		}
	})
}

func FuzzParsePos(f *testing.F) {
	f.Add("3-1042-9f8e7d6c5b4a3f2e")
	f.Add("0-0-0000000000000000")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePos(s)
		if err != nil {
			return
		}
		if q, err := ParsePos(p.String()); err != nil || q != p {
			t.Fatalf("re-parse of %q: %+v, %v", s, q, err)
		}
	})
}

func TestLeaseAddr(t *testing.T) {
	tests := []struct{ addr, want string }{
		{"10.0.0.7:8080", "10.0.0.7:8080"},
		{"relay-2.internal:8080", "relay-2.internal:8080"},
		{"[::1]:8080", "[::1]:8080"},
		{"", ""},
		{"no-port", ""},
		{":8080", ""},
		{"a\x00b:1", ""},
	}
	for _, tt := range tests {
		in := Event{Type: TypeLease, Room: RelayKeyPrefix + "r1", Relay: "r1", Session: "s1", Addr: tt.addr}
		got, err := Decode(Encode(&in))
		if err != nil {
			t.Fatalf("addr %q: %v (a bad address must not drop the lease)", tt.addr, err)
		}
		if got.Addr != tt.want || got.Session != "s1" {
			t.Errorf("addr %q: decoded %q, want %q", tt.addr, got.Addr, tt.want)
		}
	}
}

// FuzzDecodeLease: any rl-addr decodes to a host:port or to "", never
// fails the lease, and survives a round trip.
func FuzzDecodeLease(f *testing.F) {
	f.Add("r1", "a1b2c3d4", "10.0.0.7:8080")
	f.Add("r1", "s", "[::1]:1")
	f.Add("r1", "s", "host")
	f.Add("r1", "s", "\xff:1")
	f.Fuzz(func(t *testing.T, relay, session, addr string) {
		rec := &kgo.Record{Key: []byte(RelayKeyPrefix + relay), Headers: []kgo.RecordHeader{
			{Key: HeaderType, Value: []byte(TypeLease)}, {Key: HeaderRelay, Value: []byte(relay)},
			{Key: HeaderSession, Value: []byte(session)}, {Key: HeaderAddr, Value: []byte(addr)},
		}}
		e, err := Decode(rec)
		if err != nil {
			return // a bad key, relay or session
		}
		if e.Addr != "" && e.Addr != addr {
			t.Fatalf("addr %q decoded as %q", addr, e.Addr)
		}
		again, err := Decode(Encode(&e))
		if err != nil || again.Addr != e.Addr {
			t.Fatalf("round trip of %+v: %+v, %v", e, again, err)
		}
	})
}
