package socketio

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func TestDecodeText(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Packet
	}{
		{"connect", `0`, Packet{Type: Connect, Namespace: "/"}},
		{"connect auth", `0{"token":"abc"}`, Packet{Type: Connect, Namespace: "/", Data: json.RawMessage(`{"token":"abc"}`)}},
		{"connect namespace", `0/admin,`, Packet{Type: Connect, Namespace: "/admin"}},
		{"connect namespace no comma", `0/admin`, Packet{Type: Connect, Namespace: "/admin"}},
		{"connect namespace auth", `0/admin,{"a":1}`, Packet{Type: Connect, Namespace: "/admin", Data: json.RawMessage(`{"a":1}`)}},
		{"disconnect", `1`, Packet{Type: Disconnect, Namespace: "/"}},
		{"disconnect namespace", `1/admin,`, Packet{Type: Disconnect, Namespace: "/admin"}},
		{"event", `2["hello",1]`, Packet{Type: Event, Namespace: "/", Data: json.RawMessage(`["hello",1]`)}},
		{"event with id", `212["hello"]`, Packet{Type: Event, Namespace: "/", ID: 12, HasID: true, Data: json.RawMessage(`["hello"]`)}},
		{"event numeric name", `2[42,"x"]`, Packet{Type: Event, Namespace: "/", Data: json.RawMessage(`[42,"x"]`)}},
		{"event namespace id", `2/chat,7["m",{"big":12345678901234567890}]`, Packet{Type: Event, Namespace: "/chat", ID: 7, HasID: true, Data: json.RawMessage(`["m",{"big":12345678901234567890}]`)}},
		{"event max id", `29007199254740991["x"]`, Packet{Type: Event, Namespace: "/", ID: MaxID, HasID: true, Data: json.RawMessage(`["x"]`)}},
		{"ack", `35["ok"]`, Packet{Type: Ack, Namespace: "/", ID: 5, HasID: true, Data: json.RawMessage(`["ok"]`)}},
		{"ack empty", `30[]`, Packet{Type: Ack, Namespace: "/", ID: 0, HasID: true, Data: json.RawMessage(`[]`)}},
		{"connect error object", `4{"message":"Invalid namespace"}`, Packet{Type: ConnectError, Namespace: "/", Data: json.RawMessage(`{"message":"Invalid namespace"}`)}},
		{"connect error string", `4/x,"nope"`, Packet{Type: ConnectError, Namespace: "/x", Data: json.RawMessage(`"nope"`)}},
		{"binary event without attachments", `50-["b",{"_placeholder":false}]`, Packet{Type: BinaryEvent, Namespace: "/", Data: json.RawMessage(`["b",{"_placeholder":false}]`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d Decoder
			got, err := d.Decode(false, []byte(tt.in))
			if err != nil {
				t.Fatalf("Decode(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Fatalf("Decode(%q) = %+v, want %+v", tt.in, *got, tt.want)
			}
			// Encoding gives back the same text (the input is canonical).
			if enc := Append(nil, got); string(enc) != tt.in && tt.name != "connect namespace no comma" {
				t.Fatalf("Append = %q, want %q", enc, tt.in)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		kind error
	}{
		{"empty", ``, ErrUnknownType},
		{"type 7", `7`, ErrUnknownType},
		{"letter", `x["a"]`, ErrUnknownType},
		{"connect array", `0["a"]`, ErrPayload},
		{"connect string", `0"a"`, ErrPayload},
		{"connect bad json", `0{"a":}`, ErrPayload},
		{"connect with id", `01{}`, ErrID},
		{"disconnect payload", `1{}`, ErrPayload},
		{"event no payload", `2`, ErrPayload},
		{"event object", `2{"a":1}`, ErrPayload},
		{"event empty array", `2[]`, ErrPayload},
		{"event reserved name", `2["connect"]`, ErrPayload},
		{"event reserved disconnect", `2["disconnect",1]`, ErrPayload},
		{"event name null", `2[null]`, ErrPayload},
		{"event name object", `2[{"a":1}]`, ErrPayload},
		{"event trailing garbage", `2["a"]x`, ErrPayload},
		{"event two values", `2["a"]["b"]`, ErrPayload},
		{"id overflow", `29007199254740992["x"]`, ErrID},
		{"id huge", `2123456789012345678901234567890["x"]`, ErrID},
		{"ack without id", `3["x"]`, ErrID},
		{"ack object", `31{}`, ErrPayload},
		{"ack no payload", `31`, ErrPayload},
		{"connect error empty", `4`, ErrPayload},
		{"connect error array", `4[]`, ErrPayload},
		{"binary no count", `5-["a"]`, ErrAttachments},
		{"binary no dash", `51["a"]`, ErrAttachments},
		{"binary only count", `51`, ErrAttachments},
		{"binary too many", `511-["a"]`, ErrTooManyAttach},
		{"binary placeholder out of range", `51-["a",{"_placeholder":true,"num":1}]`, ErrAttachments},
		{"binary placeholder negative", `51-["a",{"_placeholder":true,"num":-1}]`, ErrAttachments},
		{"binary placeholder fraction", `52-["a",{"_placeholder":true,"num":0.5}]`, ErrAttachments},
		{"binary placeholder no num", `51-["a",{"_placeholder":true}]`, ErrAttachments},
		{"binary placeholder string num", `51-["a",{"_placeholder":true,"num":"0"}]`, ErrAttachments},
		{"binary placeholder nested", `51-["a",{"x":[{"_placeholder":true,"num":3}]}]`, ErrAttachments},
		{"binary ack without id", `61-[{"_placeholder":true,"num":0}]`, ErrID},
		{"namespace control char", "2/a\x01b,[\"x\"]", ErrNamespace},
		{"namespace not utf8", "2/a\xffb,[\"x\"]", ErrNamespace},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d Decoder
			p, err := d.Decode(false, []byte(tt.in))
			if err == nil {
				t.Fatalf("Decode(%q) = %+v, want an error", tt.in, p)
			}
			if !errors.Is(err, tt.kind) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode(%q) = %v, want kind %v", tt.in, err, tt.kind)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %T is not a *DecodeError", err)
			}
		})
	}
}

func TestDecodeBinary(t *testing.T) {
	var d Decoder
	p, err := d.Decode(false, []byte(`52-/ns,9["up",{"_placeholder":true,"num":1},{"f":{"_placeholder":true,"num":0}}]`))
	if p != nil || err != nil || !d.Pending() {
		t.Fatalf("header: got %v, %v, pending %v; want nil, nil, true", p, err, d.Pending())
	}
	if p, err = d.Decode(true, []byte{1, 2}); p != nil || err != nil {
		t.Fatalf("first attachment: got %v, %v", p, err)
	}
	p, err = d.Decode(true, []byte{3})
	if err != nil || p == nil {
		t.Fatalf("second attachment: got %v, %v", p, err)
	}
	want := &Packet{Type: BinaryEvent, Namespace: "/ns", ID: 9, HasID: true,
		Data:        json.RawMessage(`["up",{"_placeholder":true,"num":1},{"f":{"_placeholder":true,"num":0}}]`),
		Attachments: [][]byte{{1, 2}, {3}}}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("got %+v, want %+v", p, want)
	}
	if d.Pending() {
		t.Fatal("still pending after the last attachment")
	}
	text, atts := Encode(p)
	if string(text) != `52-/ns,9["up",{"_placeholder":true,"num":1},{"f":{"_placeholder":true,"num":0}}]` || len(atts) != 2 {
		t.Fatalf("Encode = %q, %d attachments", text, len(atts))
	}

	// Out of order: binary first, text while attachments are due.
	var d2 Decoder
	if _, err := d2.Decode(true, []byte{1}); !errors.Is(err, ErrUnexpectedBinary) {
		t.Fatalf("binary without header: %v, want ErrUnexpectedBinary", err)
	}
	if _, err := d2.Decode(false, []byte(`51-["a",{"_placeholder":true,"num":0}]`)); err != nil {
		t.Fatal(err)
	}
	if _, err := d2.Decode(false, []byte(`2["a"]`)); !errors.Is(err, ErrUnexpectedText) {
		t.Fatalf("text while pending: %v, want ErrUnexpectedText", err)
	}
	if d2.Pending() {
		t.Fatal("pending after an error")
	}
}

func TestEventAndArgs(t *testing.T) {
	p := &Packet{Type: Event, Data: json.RawMessage(` [ "chat" , {"a":[1,2,"],"]} , "x\"y", 12345678901234567890 ] `)}
	name, numeric, args, err := p.Event()
	if err != nil || name != "chat" || numeric {
		t.Fatalf("Event() = %q, %v, %v", name, numeric, err)
	}
	want := []string{`{"a":[1,2,"],"]}`, `"x\"y"`, `12345678901234567890`}
	if len(args) != len(want) {
		t.Fatalf("args = %q, want %q", args, want)
	}
	for i := range want {
		if string(args[i]) != want[i] {
			t.Fatalf("arg %d = %s, want %s", i, args[i], want[i])
		}
	}
	p = &Packet{Type: Event, Data: json.RawMessage(`[7,"a"]`)}
	if name, numeric, _, err = p.Event(); err != nil || name != "7" || !numeric {
		t.Fatalf("numeric Event() = %q, %v, %v", name, numeric, err)
	}
	p = &Packet{Type: Ack, Data: json.RawMessage(`[]`)}
	if args, err := p.Args(); err != nil || len(args) != 0 {
		t.Fatalf("Args() of [] = %q, %v", args, err)
	}
}

func TestBuilders(t *testing.T) {
	got := Append(nil, &Packet{Type: Event, Data: EventData("m<&>", json.RawMessage(`{"x":1}`), json.RawMessage(`99999999999999999999`))})
	if want := `2["m\u003c\u0026\u003e",{"x":1},99999999999999999999]`; string(got) != want {
		t.Fatalf("event = %s, want %s", got, want)
	}
	got = Append(nil, &Packet{Type: Ack, ID: 3, HasID: true, Data: ArrayData()})
	if want := `33[]`; string(got) != want {
		t.Fatalf("ack = %s, want %s", got, want)
	}
	data, err := ConnectErrorData("Invalid namespace", nil)
	if err != nil {
		t.Fatal(err)
	}
	got = Append(nil, &Packet{Type: ConnectError, Namespace: "/admin", Data: data})
	if want := `4/admin,{"message":"Invalid namespace"}`; string(got) != want {
		t.Fatalf("connect error = %s, want %s", got, want)
	}
	if _, err := ConnectErrorData("x", json.RawMessage(`{`)); err == nil {
		t.Fatal("ConnectErrorData with invalid data: no error")
	}
	got = Append(nil, &Packet{Type: BinaryAck, ID: 1, HasID: true, Data: ArrayData(json.RawMessage(`{"_placeholder":true,"num":0}`)), Attachments: [][]byte{{0}}})
	if want := `61-1[{"_placeholder":true,"num":0}]`; string(got) != want {
		t.Fatalf("binary ack = %s, want %s", got, want)
	}
	if !bytes.Equal(Append([]byte("x"), &Packet{Type: Disconnect, Namespace: "/"}), []byte("x1")) {
		t.Fatal("disconnect of the main namespace is not 1")
	}
}
