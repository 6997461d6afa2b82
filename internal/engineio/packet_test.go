package engineio

import (
	"errors"
	"reflect"
	"slices"
	"testing"
)

func TestDecodePacket(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		binary bool
		want   Packet
	}{
		{"open", `0{"sid":"x"}`, false, Packet{Type: PacketOpen, Data: []byte(`{"sid":"x"}`)}},
		{"close", `1`, false, Packet{Type: PacketClose, Data: []byte{}}},
		{"ping probe", `2probe`, false, Packet{Type: PacketPing, Data: []byte("probe")}},
		{"pong", `3`, false, Packet{Type: PacketPong, Data: []byte{}}},
		{"message", `4hello €`, false, Packet{Type: PacketMessage, Data: []byte("hello €")}},
		{"empty message", `4`, false, Packet{Type: PacketMessage, Data: []byte{}}},
		{"upgrade", `5`, false, Packet{Type: PacketUpgrade, Data: []byte{}}},
		{"noop", `6`, false, Packet{Type: PacketNoop, Data: []byte{}}},
		{"base64", `bAQID`, false, Packet{Type: PacketMessage, Data: []byte{1, 2, 3}, Binary: true}},
		{"base64 empty", `b`, false, Packet{Type: PacketMessage, Data: []byte{}, Binary: true}},
		{"binary frame", "\x00\xff4", true, Packet{Type: PacketMessage, Data: []byte("\x00\xff4"), Binary: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodePacket([]byte(tt.in), tt.binary)
			if err != nil {
				t.Fatalf("DecodePacket(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("DecodePacket(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if !tt.binary {
				if enc := AppendPacket(nil, got); string(enc) != tt.in {
					t.Fatalf("AppendPacket = %q, want %q", enc, tt.in)
				}
			}
		})
	}
}

func TestDecodePacketErrors(t *testing.T) {
	for _, in := range []string{"", "7", "x", "b!!!", "bAQI", "bAQ=", "bAR==", "/"} {
		_, err := DecodePacket([]byte(in), false)
		var de *DecodeError
		if !errors.Is(err, ErrMalformed) || !errors.As(err, &de) {
			t.Errorf("DecodePacket(%q) = %v, want a *DecodeError", in, err)
		}
	}
}

func TestDecodePayload(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Packet
		wantErr bool
	}{
		{"one", "4a", []Packet{{Type: PacketMessage, Data: []byte("a")}}, false},
		{"three", "4a\x1ebAQ==\x1e3", []Packet{
			{Type: PacketMessage, Data: []byte("a")},
			{Type: PacketMessage, Data: []byte{1}, Binary: true},
			{Type: PacketPong, Data: []byte{}},
		}, false},
		{"empty", "", nil, true},
		{"empty packet", "4a\x1e\x1e4b", []Packet{{Type: PacketMessage, Data: []byte("a")}}, true},
		{"trailing separator", "4a\x1e", []Packet{{Type: PacketMessage, Data: []byte("a")}}, true},
		{"bad second", "4a\x1e9", []Packet{{Type: PacketMessage, Data: []byte("a")}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []Packet
			err := DecodePayload([]byte(tt.in), func(p Packet) error {
				got = append(got, p)
				return nil
			})
			if (err != nil) != tt.wantErr {
				t.Fatalf("DecodePayload(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("DecodePayload(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if !tt.wantErr {
				if enc := AppendPayload(nil, got); string(enc) != tt.in {
					t.Fatalf("AppendPayload = %q, want %q", enc, tt.in)
				}
			}
		})
	}
}

func FuzzDecodePacket(f *testing.F) {
	for _, s := range []string{"0{}", "1", "2probe", "3", "4hello", "5", "6", "bAQID", "b", "", "7", "b!"} {
		f.Add([]byte(s), false)
	}
	f.Add([]byte{0, 1, 2}, true)
	f.Fuzz(func(t *testing.T, b []byte, binary bool) {
		p, err := DecodePacket(b, binary)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if binary {
			return
		}
		// Text packets re-encode to their input.
		if enc := AppendPacket(nil, p); string(enc) != string(b) {
			t.Fatalf("AppendPacket(DecodePacket(%q)) = %q", b, enc)
		}
	})
}

func FuzzDecodePayload(f *testing.F) {
	for _, s := range []string{"4a", "4a\x1ebAQ==\x1e3", "", "4a\x1e", "4\x1e4\x1e4", "2probe\x1e5\x1e6", "b=\x1e4"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var got []Packet
		err := DecodePayload(b, func(p Packet) error {
			got = append(got, p)
			return nil
		})
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if len(got) == 0 {
			t.Fatalf("DecodePayload(%q) decoded nothing without an error", b)
		}
		if enc := AppendPayload(nil, got); string(enc) != string(b) {
			t.Fatalf("AppendPayload(DecodePayload(%q)) = %q", b, enc)
		}
	})
}

// TestAppendPacketTail: a packet's data is Data then Tail, in text and in
// base64, and appending never writes into Data's spare capacity (Data may
// be shared by many packets).
func TestAppendPacketTail(t *testing.T) {
	shared := make([]byte, 3, 16)
	copy(shared, "abc")
	tests := []struct {
		name string
		p    Packet
		want string
	}{
		{"text", Packet{Type: PacketMessage, Data: shared, Tail: []byte(`,"x"]`)}, `4abc,"x"]`},
		{"text, no tail", Packet{Type: PacketMessage, Data: shared}, `4abc`},
		{"text, tail only", Packet{Type: PacketMessage, Tail: []byte("z")}, `4z`},
		{"binary", Packet{Type: PacketMessage, Data: shared, Tail: []byte{1, 2}, Binary: true}, "b" + "YWJjAQI="},
		{"binary, no tail", Packet{Type: PacketMessage, Data: shared, Binary: true}, "bYWJj"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := AppendPacket([]byte("x"), tt.p); string(got) != "x"+tt.want {
				t.Fatalf("AppendPacket = %q, want %q", got, "x"+tt.want)
			}
			if spare := shared[3:16]; string(spare) != string(make([]byte, 13)) {
				t.Fatalf("Data's spare capacity was written: %q", spare)
			}
			p, err := DecodePacket([]byte(tt.want), false)
			if err != nil || string(p.Data) != string(append(slices.Clip(tt.p.Data), tt.p.Tail...)) {
				t.Fatalf("DecodePacket(%q) = %q, %v", tt.want, p.Data, err)
			}
		})
	}
	got := AppendPayload(nil, []Packet{tests[0].p, {Type: PacketNoop}, tests[0].p})
	if want := "4abc,\"x\"]\x1e6\x1e4abc,\"x\"]"; string(got) != want {
		t.Fatalf("AppendPayload = %q, want %q", got, want)
	}
}
