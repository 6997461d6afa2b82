package relay

import (
	"bytes"
	"encoding/json"
	"strconv"

	"github.com/roomlog/roomlog/consumer"
	"github.com/roomlog/roomlog/internal/socketio"
	"github.com/roomlog/roomlog/internal/trunc"
	"github.com/roomlog/roomlog/record"
)

// The JSON of the Socket.IO protocol (docs/socketio.md), beside
// protocol.go's: events decoded into clientFrame, and sioCodec, which
// encodes acks, errors and deliveries as Socket.IO packets. Payloads are
// written byte for byte, never re-encoded.

// Reserved event names. Any other event is a publish.
const (
	sioJoin    = "join"
	sioLeave   = "leave"
	sioPrefix  = "rl:" // reserved for roomlog's own events
	sioError   = "rl:error"
	sioState   = "rl:state"
	sioJoined  = "rl:joined"
	sioLeft    = "rl:left"
	sioRemoved = "rl:removed"
)

// sioOps maps the reserved events that run an op to it.
var sioOps = map[string]string{
	sioJoin: opJoin, sioLeave: opLeave,
	"rl:get": opGet, "rl:set": opSet, "rl:del": opDel, "rl:incr": opIncr, "rl:cas": opCAS,
	"rl:presence": opPresence, "rl:history": opHistory,
}

// sioOpts are the optional trailing object of join, publish, rl:get,
// rl:presence and rl:history.
type sioOpts struct {
	Since    string `json:"since"`
	Presence bool   `json:"presence"`
	MID      string `json:"mid"`
	After    string `json:"after"`
	Before   string `json:"before"`
	Limit    int    `json:"limit"`
}

// decodeSIOEvent maps an event (its name and arguments, as received) to a
// client frame and validates it against the op table. id is the ack id's
// JSON, or nil; the frame carries it even on error.
func decodeSIOEvent(name string, numeric bool, args []json.RawMessage, id json.RawMessage) (clientFrame, *frameError) {
	f := clientFrame{ID: id}
	if numeric {
		return f, errorf(CodeInvalidEvent, "event names must be strings")
	}
	op, reserved := sioOps[name]
	if !reserved && len(name) >= len(sioPrefix) && name[:len(sioPrefix)] == sioPrefix {
		return f, errorf(CodeUnknownOp, "unknown event %q: the rl: prefix is reserved", trunc.String(name, 32))
	}
	if !reserved {
		op = opPublish
		f.Event = name
	}
	f.Op = op
	// arg returns the next argument, or nil.
	arg := func() json.RawMessage {
		if len(args) == 0 {
			return nil
		}
		a := args[0]
		args = args[1:]
		return a
	}
	room := arg()
	if room == nil || room[0] != '"' || json.Unmarshal(room, &f.Room) != nil {
		return f, errorf(CodeInvalidRoom, "%s: the first argument must be the room name, a string", name)
	}
	var opts json.RawMessage
	switch op {
	case opJoin, opPresence, opHistory:
		opts = arg()
	case opPublish:
		f.Data = arg()
		opts = arg()
	case opGet:
		if a := arg(); a != nil && a[0] == '{' {
			opts = a
		} else if a != nil && a[0] != 'n' { // null: the whole state
			if ferr := sioKey(&f, a); ferr != nil {
				return f, ferr
			}
			opts = arg()
		} else {
			opts = arg()
		}
	case opSet, opDel, opIncr, opCAS:
		if ferr := sioKey(&f, arg()); ferr != nil {
			return f, ferr
		}
		switch op {
		case opSet:
			f.Value = arg()
		case opIncr:
			f.Delta = arg()
		case opCAS:
			f.Value, f.Version = arg(), arg()
		}
	}
	if len(args) > 0 {
		return f, errorf(CodeBadRequest, "%s: too many arguments", name)
	}
	if ferr := sioApplyOpts(&f, opts); ferr != nil {
		return f, ferr
	}
	return f, validateFrame(&f)
}

// sioKey sets a state op's key from a string argument.
func sioKey(f *clientFrame, a json.RawMessage) *frameError {
	var k string
	if a == nil || a[0] != '"' || json.Unmarshal(a, &k) != nil {
		return errorf(CodeInvalidKey, "the key must be a string argument after the room")
	}
	f.Key = &k
	return nil
}

func sioApplyOpts(f *clientFrame, raw json.RawMessage) *frameError {
	if raw == nil || bytes.Equal(raw, []byte("null")) {
		return nil
	}
	var o sioOpts
	if raw[0] != '{' || json.Unmarshal(raw, &o) != nil {
		return errorf(CodeBadRequest, "options must be an object such as {\"since\": pos}")
	}
	f.Since, f.Presence, f.MID, f.After, f.Before, f.Limit = o.Since, o.Presence, o.MID, o.After, o.Before, o.Limit
	return nil
}

// sioAckID is an ack id's JSON: the request id of the frame, nil without
// one.
func sioAckID(p *socketio.Packet) json.RawMessage {
	if !p.HasID {
		return nil
	}
	return strconv.AppendUint(nil, p.ID, 10)
}

// sioConnectAuth is CONNECT's auth payload: the app's auth object, to
// which a client with connection state recovery adds the private id (pid)
// and the last offset it received of its previous session.
type sioConnectAuth struct {
	Token  string
	PID    string
	Offset string
}

// decodeSIOAuth reads a CONNECT's auth payload. token must be a string if
// present; a pid or offset that is not a string is ignored (the client
// starts a new session).
func decodeSIOAuth(data json.RawMessage) (sioConnectAuth, *frameError) {
	var a sioConnectAuth
	if len(data) == 0 {
		return a, nil
	}
	var raw struct {
		Token  *string         `json:"token"`
		PID    json.RawMessage `json:"pid"`
		Offset json.RawMessage `json:"offset"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return a, errorf(CodeUnauthorized, "auth.token must be a string")
	}
	if raw.Token != nil {
		a.Token = *raw.Token
	}
	_ = json.Unmarshal(raw.PID, &a.PID)
	_ = json.Unmarshal(raw.Offset, &a.Offset)
	return a, nil
}

// appendSIOConnect is the CONNECT answer: 0{"sid":"<socket id>"}, with
// "pid" when the session is recoverable.
func appendSIOConnect(b []byte, sid, pid string) []byte {
	b = socketio.AppendHeader(b, socketio.Connect, socketio.MainNamespace, 0, false)
	b = append(b, `{"sid":`...)
	b = appendString(b, sid)
	if pid != "" {
		b = append(b, `,"pid":`...)
		b = appendString(b, pid)
	}
	return append(b, '}')
}

// appendSIOConnectError is CONNECT_ERROR {"message":…} with, unless code is
// empty, "data":{"code":…}, for the client's connect_error listeners
// (err.message, err.data.code).
func appendSIOConnectError(b []byte, nsp string, code ErrorCode, msg string) []byte {
	b = socketio.AppendHeader(b, socketio.ConnectError, nsp, 0, false)
	b = append(b, `{"message":`...)
	b = appendString(b, msg)
	if code != "" {
		b = append(b, `,"data":{"code":`...)
		b = appendString(b, string(code))
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendSIOAck opens the ACK for request id (the ack id's digits, as
// sioAckID made them).
func appendSIOAck(b []byte, id json.RawMessage) []byte {
	n, _ := strconv.ParseUint(string(id), 10, 64) // sioAckID wrote it
	return socketio.AppendHeader(b, socketio.Ack, socketio.MainNamespace, n, true)
}

// appendSIOEvent opens the EVENT of a reserved name, up to its object
// argument: 2["<name>",{.
func appendSIOEvent(b []byte, name string) []byte {
	b = socketio.AppendHeader(b, socketio.Event, socketio.MainNamespace, 0, false)
	b = append(b, '[')
	b = appendString(b, name)
	return append(b, ',', '{')
}

// sioCodec encodes replies and deliveries as Socket.IO packets of the main
// namespace.
type sioCodec struct{}

var _ codec = sioCodec{}

// ack is the ACK 3<id>[{"ok":true,…the ack's fields}]; nothing when the
// request had no ack id.
func (sioCodec) ack(id json.RawMessage, a ack) []byte {
	if len(id) == 0 {
		return nil
	}
	b := appendSIOAck(nil, id)
	b = append(b, `[{"ok":true`...)
	return append(appendAckFields(b, a), '}', ']')
}

// error is the ACK 3<id>[{"ok":false,"code":…,"message":…}], or without an
// ack id the event rl:error.
func (sioCodec) error(id json.RawMessage, e *frameError) []byte {
	if len(id) == 0 {
		b := appendSIOEvent(nil, sioError)
		return append(appendErrorFields(b, e), '}', ']')
	}
	b := appendSIOAck(nil, id)
	b = append(b, `[{"ok":false,`...)
	return append(appendErrorFields(b, e), '}', ']')
}

// pong: Socket.IO has its own heartbeats, and no ping event maps to the op.
func (sioCodec) pong(json.RawMessage) []byte { return nil }

// message is the EVENT 2["<event>",<data>,{"room","pos","from","user"}].
func (sioCodec) message(room, event string, data json.RawMessage, from, user string, pos record.Pos) []byte {
	b := make([]byte, 0, 64+len(room)+len(event)+len(data)+len(from)+len(user))
	b = socketio.AppendHeader(b, socketio.Event, socketio.MainNamespace, 0, false)
	b = append(b, '[')
	b = appendString(b, event)
	b = append(b, ',')
	b = append(b, data...)
	b = append(b, `,{"room":`...)
	b = appendString(b, room)
	b = append(b, `,"pos":"`...)
	b = pos.Append(b)
	b = append(b, '"')
	return append(appendSender(b, from, user), '}', ']')
}

// stateChange is the EVENT rl:state with the native state frame's fields.
func (sioCodec) stateChange(ev *record.Event, e consumer.Entry, pos record.Pos) []byte {
	b := appendSIOEvent(nil, sioState)
	return append(appendStateFields(b, ev, e, pos), '}', ']')
}

// presenceChange is the EVENT rl:joined or rl:left with the native frame's
// fields.
func (sioCodec) presenceChange(op, room string, m *consumer.Member, reason string, pos record.Pos) []byte {
	name := sioJoined
	if op == "left" {
		name = sioLeft
	}
	b := appendSIOEvent(nil, name)
	return append(appendPresenceFields(b, room, m, reason, pos), '}', ']')
}

// removed is the EVENT rl:removed with the native frame's fields.
func (sioCodec) removed(room, reason string, pos *record.Pos) []byte {
	b := appendSIOEvent(nil, sioRemoved)
	return append(appendRemovedFields(b, room, reason, pos), '}', ']')
}
