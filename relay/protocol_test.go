package relay

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/roomlog/roomlog/consumer"
	"github.com/roomlog/roomlog/record"
)

func TestDecodeFrame(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		code  ErrorCode // empty: valid
		event string
		data  string
		id    string
	}{
		{name: "publish", in: `{"op":"publish","room":"lobby","event":"chat","data":{"a":1},"id":"3"}`, event: "chat", data: `{"a":1}`, id: `"3"`},
		{name: "publish default event", in: `{"op":"publish","room":"lobby","data":1}`, event: "message", data: `1`},
		{name: "publish no data", in: `{"op":"publish","room":"lobby","id":7}`, event: "message", data: `null`, id: `7`},
		{name: "join", in: `{"op":"join","room":"lobby","id":"1"}`, id: `"1"`},
		{name: "null id", in: `{"op":"join","room":"lobby","id":null}`, id: `null`},
		{name: "unknown fields ignored", in: `{"op":"leave","room":"x","future":true}`},
		{name: "garbage", in: `nope`, code: CodeBadRequest},
		{name: "truncated", in: `{"op":"join"`, code: CodeBadRequest},
		{name: "op not string", in: `{"op":1}`, code: CodeBadRequest},
		{name: "no op", in: `{}`, code: CodeUnknownOp},
		{name: "unknown op", in: `{"op":"nuke"}`, code: CodeUnknownOp},
		{name: "bool id", in: `{"op":"join","room":"a","id":true}`, code: CodeInvalidID},
		{name: "long id", in: `{"op":"join","room":"a","id":"` + strings.Repeat("i", 200) + `"}`, code: CodeInvalidID},
		{name: "no room", in: `{"op":"join"}`, code: CodeInvalidRoom},
		{name: "tab in room", in: `{"op":"join","room":"a\tb"}`, code: CodeInvalidRoom},
		{name: "set", in: `{"op":"set","room":"a","key":"k","value":{"x":1}}`},
		{name: "set no value", in: `{"op":"set","room":"a","key":"k"}`, code: CodeInvalidValue},
		{name: "set no key", in: `{"op":"set","room":"a","value":1}`, code: CodeInvalidKey},
		{name: "bad key", in: `{"op":"del","room":"a","key":""}`, code: CodeInvalidKey},
		{name: "incr float", in: `{"op":"incr","room":"a","key":"k","delta":1.5}`, code: CodeInvalidValue},
		{name: "incr huge", in: `{"op":"incr","room":"a","key":"k","delta":99999999999999999999}`, code: CodeInvalidValue},
		{name: "cas no version", in: `{"op":"cas","room":"a","key":"k","value":1}`, code: CodeInvalidValue},
		{name: "cas negative", in: `{"op":"cas","room":"a","key":"k","value":1,"version":-1}`, code: CodeInvalidValue},
		{name: "bad since", in: `{"op":"join","room":"a","since":"yesterday"}`, code: CodeBadPosition},
		{name: "bad after", in: `{"op":"get","room":"a","after":"1-2"}`, code: CodeBadPosition},
		{name: "history limit", in: `{"op":"history","room":"a","limit":100000}`, code: CodeBadRequest},
		{name: "ping", in: `{"op":"ping","id":"h1"}`, id: `"h1"`},
		{name: "ping no id", in: `{"op":"ping"}`},
		{name: "presence", in: `{"op":"presence","room":"a","id":1}`, id: `1`},
		{name: "presence bad after", in: `{"op":"presence","room":"a","after":"x"}`, code: CodeBadPosition},
		{name: "ping needs no room", in: `{"op":"ping","id":"h"}`, id: `"h"`},
		{name: "long event", in: `{"op":"publish","room":"a","event":"` + strings.Repeat("e", record.MaxEventBytes+1) + `"}`, code: CodeInvalidEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := decodeFrame([]byte(tt.in))
			if tt.code != "" {
				if err == nil || err.Code != tt.code {
					t.Fatalf("got %v, want %s", err, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.Event != tt.event || string(f.ID) != tt.id || (tt.data != "" && string(f.Data) != tt.data) {
				t.Fatalf("got event %q data %s id %s", f.Event, f.Data, f.ID)
			}
		})
	}
}

func TestAppendPong(t *testing.T) {
	for _, tt := range []struct{ id, want string }{
		{"", `{"op":"pong"}`},
		{`"h1"`, `{"op":"pong","id":"h1"}`},
		{`7`, `{"op":"pong","id":7}`},
	} {
		if got := string(appendPong(nil, json.RawMessage(tt.id))); got != tt.want {
			t.Errorf("appendPong(%s) = %s, want %s", tt.id, got, tt.want)
		}
	}
}

func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uote\back`, "tab\tnl\ncr\r", "\x00\x1f\x7f", "ünï€😀", "bad\xffutf8", "<html>&", "\u2028\u2029"} {
		got := appendString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("appendString(%q) = %s: not JSON: %v", s, got, err)
		}
		if want := strings.ToValidUTF8(s, "\ufffd"); back != want {
			t.Fatalf("appendString(%q) round trip = %q", s, back)
		}
	}
}

func TestServerFramesAreJSON(t *testing.T) {
	pos := record.Pos{Epoch: 0xabc, Partition: 2, Offset: 99}
	ev := record.Event{Type: record.TypePublish, Room: "r\"1", Event: "e", Data: json.RawMessage(`{"x":[1,2]}`), From: "c-1"}
	frames := [][]byte{
		appendWelcome(nil, "abcd-1", "abcd"),
		appendAckWith(nil, json.RawMessage(`"id"`), ack{pos: &pos}),
		appendAckWith(nil, nil, ack{}),
		appendAckWith(nil, json.RawMessage(`1`), ack{pos: &pos, recovered: new(bool), duplicate: true, entry: &consumer.Entry{Value: json.RawMessage(`{"a":1}`), Version: 7}}),
		appendError(nil, json.RawMessage(`5`), errorf(CodeInvalidRoom, "room %q bad", "a\x00")),
		appendError(nil, json.RawMessage(`5`), stateError(consumer.CodeConflict, consumer.Entry{})),
		appendAckWith(nil, nil, ack{pos: &pos, state: &[]keyEntry{{"a\"", consumer.Entry{Value: json.RawMessage("1"), Version: 3}}, {"b", consumer.Entry{}}}}),
		appendAckWith(nil, nil, ack{state: &[]keyEntry{}}),
		appendAckWith(nil, nil, ack{members: &[]consumer.Member{{Conn: "c", User: "u", Relay: "r"}, {Conn: "d"}}}),
		appendAckWith(nil, nil, ack{history: &historyPage{room: "r", messages: []consumer.Message{{Event: "e", Data: json.RawMessage("2")}}, more: true}}),
		appendAckWith(nil, json.RawMessage(`"a"`), ack{auth: &authAck{user: "alice\n", exp: 17}}),
		appendPong(nil, json.RawMessage(`"h"`)),
		appendAPIAnswer(nil, pos, ack{duplicate: true, entry: &consumer.Entry{}}, errorf(CodeTimeout, "t")),
		appendHTTPError(nil, "too_large", "body <b>"),
		appendMessage(nil, ev.Room, ev.Event, ev.Data, ev.From, "u", pos),
		appendStateEvent(nil, &record.Event{Type: record.TypeIncr, Room: "r", Key: "k\n"}, consumer.Entry{Value: json.RawMessage("3"), Version: 9}, pos),
		appendPresenceEvent(nil, "left", "r", &consumer.Member{Conn: "c", Relay: "x", JoinedAt: 5}, "expired", pos),
	}
	for _, f := range frames {
		var m map[string]any
		if err := json.Unmarshal(f, &m); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	var m struct{ Room, Pos string }
	_ = json.Unmarshal(appendMessage(nil, ev.Room, ev.Event, ev.Data, ev.From, "", pos), &m)
	if m.Room != ev.Room || m.Pos != pos.String() {
		t.Fatalf("message frame decoded to %+v", m)
	}
}

// FuzzDecodeFrame: no input crashes the decoder; whatever it accepts is
// valid, and the error frame built for whatever it rejects is valid JSON.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range []string{
		`{"op":"publish","room":"lobby","event":"chat","data":{"a":1},"id":"3"}`,
		`{"op":"join","room":"lobby","id":1}`,
		`{"op":"leave","room":"","id":null}`,
		`{"op":"publish","room":"a","data":"\u0000"}`,
		`[]`, `{`, `"x"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := decodeFrame(b)
		if err != nil {
			out := appendError(nil, fr.ID, err)
			if !json.Valid(out) {
				t.Fatalf("error frame %s is not JSON", out)
			}
			if !utf8.Valid(out) {
				t.Fatalf("error frame %q is not UTF-8", out)
			}
			return
		}
		if record.ValidName(fr.Room, record.MaxRoomBytes) != nil {
			t.Fatalf("accepted room %q", fr.Room)
		}
		if fr.Op == opPublish {
			if !json.Valid(fr.Data) || record.ValidName(fr.Event, record.MaxEventBytes) != nil {
				t.Fatalf("accepted publish %+v", fr)
			}
			if out := appendMessage(nil, fr.Room, fr.Event, fr.Data, "c", "", record.Pos{}); !json.Valid(out) {
				t.Fatalf("message frame %s is not JSON", out)
			}
		}
		if out := appendAckWith(nil, fr.ID, ack{pos: &record.Pos{}}); !json.Valid(out) {
			t.Fatalf("ack frame %s is not JSON", out)
		}
	})
}
