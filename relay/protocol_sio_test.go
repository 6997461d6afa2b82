package relay

import (
	"encoding/json"
	"testing"

	"github.com/roomlog/roomlog/consumer"
	"github.com/roomlog/roomlog/internal/socketio"
	"github.com/roomlog/roomlog/record"
)

func sioArgs(t *testing.T, payload string) (string, bool, []json.RawMessage) {
	t.Helper()
	p := &socketio.Packet{Type: socketio.Event, Data: json.RawMessage(payload)}
	name, numeric, args, err := p.Event()
	if err != nil {
		t.Fatalf("%s: %v", payload, err)
	}
	return name, numeric, args
}

func TestDecodeSIOEvent(t *testing.T) {
	tests := []struct {
		payload string
		op      string
		code    ErrorCode
		check   func(f *clientFrame) bool
	}{
		{`["join","lobby"]`, opJoin, "", nil},
		{`["join","lobby",{"since":"1-5-0000000000000001","presence":true}]`, opJoin, "", func(f *clientFrame) bool { return f.hasSince && f.Presence }},
		{`["join","lobby",{"since":"nope"}]`, opJoin, CodeBadPosition, nil},
		{`["leave","lobby"]`, opLeave, "", nil},
		{`["chat","lobby",{"n":12345678901234567890}]`, opPublish, "", func(f *clientFrame) bool {
			return f.Event == "chat" && string(f.Data) == `{"n":12345678901234567890}`
		}},
		{`["chat","lobby"]`, opPublish, "", func(f *clientFrame) bool { return string(f.Data) == "null" }},
		{`["chat","lobby",1,{"mid":"m1"}]`, opPublish, "", func(f *clientFrame) bool { return f.MID == "m1" }},
		{`["chat","lobby",1,2]`, opPublish, CodeBadRequest, nil},
		{`["chat","lobby",1,{},3]`, opPublish, CodeBadRequest, nil},
		{`["chat",7]`, opPublish, CodeInvalidRoom, nil},
		{`["chat"]`, opPublish, CodeInvalidRoom, nil},
		{`[7,"lobby"]`, "", CodeInvalidEvent, nil},
		{`["rl:what","lobby"]`, "", CodeUnknownOp, nil},
		{`["rl:get","lobby"]`, opGet, "", func(f *clientFrame) bool { return f.Key == nil }},
		{`["rl:get","lobby","k",{"after":"1-5-0000000000000001"}]`, opGet, "", func(f *clientFrame) bool { return *f.Key == "k" && f.hasAfter }},
		{`["rl:get","lobby",{"after":"1-5-0000000000000001"}]`, opGet, "", func(f *clientFrame) bool { return f.Key == nil && f.hasAfter }},
		{`["rl:get","lobby",null,{}]`, opGet, "", func(f *clientFrame) bool { return f.Key == nil }},
		{`["rl:set","lobby","k",{"v":1}]`, opSet, "", func(f *clientFrame) bool { return string(f.Value) == `{"v":1}` }},
		{`["rl:set","lobby","k"]`, opSet, CodeInvalidValue, nil},
		{`["rl:set","lobby",5,1]`, opSet, CodeInvalidKey, nil},
		{`["rl:del","lobby","k"]`, opDel, "", nil},
		{`["rl:incr","lobby","k"]`, opIncr, "", func(f *clientFrame) bool { return f.delta == 1 }},
		{`["rl:incr","lobby","k",-3]`, opIncr, "", func(f *clientFrame) bool { return f.delta == -3 }},
		{`["rl:cas","lobby","k","v",2]`, opCAS, "", func(f *clientFrame) bool { return f.version == 2 }},
		{`["rl:cas","lobby","k","v"]`, opCAS, CodeInvalidValue, nil},
		{`["rl:presence","lobby"]`, opPresence, "", nil},
		{`["rl:history","lobby",{"limit":10,"before":"1-5-0000000000000001"}]`, opHistory, "", func(f *clientFrame) bool { return f.Limit == 10 && f.hasBefore }},
		{`["rl:history","lobby",[1]]`, opHistory, CodeBadRequest, nil},
	}
	for _, tt := range tests {
		name, numeric, args := sioArgs(t, tt.payload)
		f, ferr := decodeSIOEvent(name, numeric, args, json.RawMessage("4"))
		switch {
		case tt.code != "" && (ferr == nil || ferr.Code != tt.code):
			t.Errorf("%s: error %v, want %s", tt.payload, ferr, tt.code)
		case tt.code == "" && ferr != nil:
			t.Errorf("%s: %v", tt.payload, ferr)
		case tt.code == "" && (f.Op != tt.op || f.Room != "lobby" || (tt.check != nil && !tt.check(&f))):
			t.Errorf("%s: decoded %+v", tt.payload, f)
		case string(f.ID) != "4":
			t.Errorf("%s: id %s", tt.payload, f.ID)
		}
	}
}

func TestSIOCodec(t *testing.T) {
	pos := record.Pos{Epoch: 1, Partition: 2, Offset: 3}
	var enc sioCodec
	for _, tt := range []struct{ got, want string }{
		{string(enc.ack(json.RawMessage("7"), ack{pos: &pos, duplicate: true})), `37[{"ok":true,"pos":"2-3-0000000000000001","duplicate":true}]`},
		{string(enc.ack(nil, ack{pos: &pos})), ``},
		{string(enc.error(json.RawMessage("7"), &frameError{Code: CodeConflict, Message: "m", Entry: &consumer.Entry{Value: json.RawMessage("1"), Version: 4}})),
			`37[{"ok":false,"code":"conflict","message":"m","value":1,"version":4}]`},
		{string(enc.error(nil, errorf(CodeRateLimited, "slow"))), `2["rl:error",{"code":"rate_limited","message":"slow"}]`},
		{string(enc.message("lobby", "chat", json.RawMessage(`{"n":12345678901234567890}`), "c-1", "alice", pos)),
			`2["chat",{"n":12345678901234567890},{"room":"lobby","pos":"2-3-0000000000000001","from":"c-1","user":"alice"}]`},
		{string(enc.stateChange(&record.Event{Type: record.TypeSet, Room: "r", Key: "k", From: "c-1"}, consumer.Entry{Value: json.RawMessage(`"v"`), Version: 2}, pos)),
			`2["rl:state",{"room":"r","key":"k","action":"set","value":"v","version":2,"from":"c-1","pos":"2-3-0000000000000001"}]`},
		{string(enc.presenceChange("left", "r", &consumer.Member{Conn: "c-1", Relay: "x", JoinedAt: 5}, "closed", pos)),
			`2["rl:left",{"room":"r","member":{"conn":"c-1","relay":"x","joined_at":5},"reason":"closed","pos":"2-3-0000000000000001"}]`},
		{string(appendSIOConnectError(nil, "/", CodeUnauthorized, "bad")), `4{"message":"bad","data":{"code":"unauthorized"}}`},
		{string(appendSIOConnectError(nil, "/admin", "", "Invalid namespace")), `4/admin,{"message":"Invalid namespace"}`},
	} {
		if tt.got != tt.want {
			t.Errorf("got  %s\nwant %s", tt.got, tt.want)
		}
	}
	// Every packet the codec writes decodes.
	var d socketio.Decoder
	if _, err := d.Decode(false, enc.message("r", "e\"\n", json.RawMessage(`[1]`), "", "", pos)); err != nil {
		t.Fatal(err)
	}
}

// FuzzDecodeSIOEvent: any event the packet decoder accepts maps to a valid
// frame or a frameError, never a panic; a valid publish keeps its data.
func FuzzDecodeSIOEvent(f *testing.F) {
	for _, s := range []string{`["join","a",{"since":"1-2-0000000000000003"}]`, `["chat","a",{"x":1},{"mid":"m"}]`,
		`["rl:cas","a","k",1,0]`, `["rl:get","a",null,{"after":""}]`, `["rl:history","a",{"limit":-1}]`, `[1,"a"]`, `["rl:",""]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var d socketio.Decoder
		p, err := d.Decode(false, append([]byte("2"), b...))
		if err != nil || p == nil || p.Type != socketio.Event {
			return
		}
		name, numeric, args, err := p.Event()
		if err != nil {
			t.Fatal(err)
		}
		fr, ferr := decodeSIOEvent(name, numeric, args, nil)
		if ferr != nil {
			return
		}
		if ops[fr.Op] == nil || record.ValidName(fr.Room, record.MaxRoomBytes) != nil {
			t.Fatalf("%s: accepted %+v", b, fr)
		}
		if fr.Op == opPublish && !json.Valid(fr.Data) {
			t.Fatalf("%s: publish data %q", b, fr.Data)
		}
	})
}
