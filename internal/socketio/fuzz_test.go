package socketio

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

var fuzzSeeds = []string{
	`0`, `0{"token":"abc"}`, `0/admin,{"a":1}`, `1`, `1/admin,`,
	`2["hello",1]`, `212["hello"]`, `2/chat,7["m",{"big":12345678901234567890}]`, `2[42]`,
	`35["ok"]`, `30[]`, `4{"message":"x"}`, `4"x"`,
	`51-["a",{"_placeholder":true,"num":0}]`, `62-/n,5[{"_placeholder":true,"num":1},{"_placeholder":true,"num":0}]`,
	`2["connect"]`, `29007199254740992["x"]`, `5-[]`, `2/a`, `2["a"]x`, "2/\xff,[\"x\"]",
}

// FuzzDecode: whatever the text message and attachments, the decoder
// returns a packet or a *DecodeError, never panics; a packet it returns is
// well formed, encodes, and decodes again to the same packet.
func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s), []byte{1, 2, 3}, uint8(1))
	}
	f.Fuzz(func(t *testing.T, text, attachment []byte, copies uint8) {
		var d Decoder
		p, err := d.Decode(false, text)
		for i := 0; err == nil && p == nil && d.Pending() && i < int(copies%12); i++ {
			p, err = d.Decode(true, attachment)
		}
		if err != nil {
			if _, ok := err.(*DecodeError); !ok {
				t.Fatalf("error %T is not a *DecodeError: %v", err, err)
			}
			return
		}
		if p == nil {
			return // attachments still due
		}
		if p.Data != nil && !json.Valid(p.Data) {
			t.Fatalf("invalid JSON payload %q", p.Data)
		}
		if p.HasID && p.ID > MaxID {
			t.Fatalf("id %d over MaxID", p.ID)
		}
		switch p.Type {
		case Event, BinaryEvent:
			if _, _, _, err := p.Event(); err != nil {
				t.Fatalf("Event() of a decoded event: %v", err)
			}
		case Ack, BinaryAck:
			if _, err := p.Args(); err != nil {
				t.Fatalf("Args() of a decoded ack: %v", err)
			}
		}
		// Round trip.
		enc, atts := Encode(p)
		var d2 Decoder
		q, err := d2.Decode(false, enc)
		for _, a := range atts {
			if err != nil {
				break
			}
			q, err = d2.Decode(true, a)
		}
		if err != nil || q == nil {
			t.Fatalf("re-decoding %q: %v, %v", enc, q, err)
		}
		if len(q.Attachments) == 0 && len(p.Attachments) == 0 {
			q.Attachments, p.Attachments = nil, nil
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip of %q: got %+v, want %+v", enc, q, p)
		}
	})
}

// FuzzSplitArray: the elements of any valid JSON array, re-joined, are the
// array again (modulo spaces), and each is valid JSON.
func FuzzSplitArray(f *testing.F) {
	for _, s := range []string{`[]`, `[1]`, ` [ "a,b" , {"x":[1,{"y":"]"}]} , "\"" ] `, `[[],[[]],{}]`, `["\\",1]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) || firstByte(b) != '[' {
			return
		}
		elems, err := splitArray(b)
		if err != nil {
			t.Fatalf("splitArray(%q): %v", b, err)
		}
		for _, e := range elems {
			if !json.Valid(e) {
				t.Fatalf("element %q of %q is not valid JSON", e, b)
			}
		}
		var want, got []json.RawMessage
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(ArrayData(elems...), &got); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%q: %d elements, want %d", b, len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(bytes.TrimSpace(got[i]), bytes.TrimSpace(want[i])) {
				t.Fatalf("%q: element %d = %q, want %q", b, i, got[i], want[i])
			}
		}
	})
}
