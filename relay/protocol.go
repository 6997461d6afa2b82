package relay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/roomlog/roomlog/consumer"
	"github.com/roomlog/roomlog/internal/trunc"
	"github.com/roomlog/roomlog/record"
)

// This file is the JSON of the relay (docs/protocol.md): decoding client
// frames and backend API bodies into clientFrame, validating them against the
// op table (ops.go), and encoding every server frame, ack, error and API
// answer. It is the only file that knows the JSON shapes; the rest of the
// relay works with decoded values and reply values (ack, frameError).

// History page sizes.
const (
	DefaultHistoryLimit = 50
	MaxHistoryLimit     = 1000
)

// ErrorCode is the stable code of an error frame, documented in
// docs/protocol.md. Clients branch on it; never change a code's meaning.
type ErrorCode string

const (
	CodeBadRequest     ErrorCode = "bad_request"     // frame is not a JSON object of the documented shape
	CodeUnknownOp      ErrorCode = "unknown_op"      // op missing or not one this relay knows
	CodeInvalidRoom    ErrorCode = "invalid_room"    // room missing, too long, or with control characters
	CodeInvalidEvent   ErrorCode = "invalid_event"   // event name too long or with control characters
	CodeInvalidID      ErrorCode = "invalid_id"      // id is not a string or number, or too long
	CodeInvalidData    ErrorCode = "invalid_data"    // data is not JSON
	CodeNotJoined      ErrorCode = "not_joined"      // an op on a room the connection is not in
	CodeInvalidKey     ErrorCode = "invalid_key"     // state key missing, too long, or with control characters
	CodeInvalidValue   ErrorCode = "invalid_value"   // set/cas without a value; incr delta or cas version not an integer
	CodeBadPosition    ErrorCode = "bad_position"    // since/after/before is not a position
	CodeStalePosition  ErrorCode = "stale_position"  // a position from another topic or an earlier incarnation of it
	CodeTimeout        ErrorCode = "timeout"         // the relay could not catch up with a position, or read the log, in time
	CodeConflict       ErrorCode = "conflict"        // cas: the key's version is not the expected one
	CodeNotInteger     ErrorCode = "not_integer"     // incr of a value that is not an integer
	CodeOverflow       ErrorCode = "overflow"        // incr beyond the int64 range
	CodeStateFull      ErrorCode = "state_full"      // a new key in a room that has the most keys allowed
	CodeValueTooLarge  ErrorCode = "value_too_large" // a state value over the size limit
	CodeRelayRestarted ErrorCode = "relay_restarted" // the join's relay session ended before the join took effect; rejoin
	CodeTooManyRooms   ErrorCode = "too_many_rooms"  // join beyond the per-connection room limit
	CodeLogUnavailable ErrorCode = "log_unavailable" // the log did not take the record in time; retry
	CodeShuttingDown   ErrorCode = "shutting_down"   // the relay is draining; reconnect elsewhere
)

// frameError is a client-visible error: a code and a message for humans,
// and for a state op the fold refused, the key's current value and version.
type frameError struct {
	Code    ErrorCode
	Message string
	Entry   *consumer.Entry
}

func (e *frameError) Error() string { return string(e.Code) + ": " + e.Message }

func errorf(code ErrorCode, format string, args ...any) *frameError {
	return &frameError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// clientFrame is a decoded client frame.
type clientFrame struct {
	Op       string          `json:"op"`
	ID       json.RawMessage `json:"id"`
	Room     string          `json:"room"`
	Event    string          `json:"event"`
	Data     json.RawMessage `json:"data"`
	MID      string          `json:"mid"`
	Key      *string         `json:"key"`
	Value    json.RawMessage `json:"value"`
	Delta    json.RawMessage `json:"delta"`
	Version  json.RawMessage `json:"version"`
	Since    string          `json:"since"`
	After    string          `json:"after"`
	Before   string          `json:"before"`
	Limit    int             `json:"limit"`
	Presence bool            `json:"presence"`

	// Parsed from the above by decodeFrame.
	since, after, before record.Pos
	hasSince, hasAfter   bool
	hasBefore            bool
	delta, version       int64
	// resume: a join a Socket.IO session's recovery makes (never decoded).
	resume bool
}

const maxIDBytes = record.MaxMIDBytes

// decodeFrame parses and validates one client text frame. On error, the
// returned frame still carries the id when it could be read, so the error
// frame can echo it. The frame is the one json.Unmarshal allocates anyway:
// returned by pointer, it stays off the reader's stack (a copy there made
// every reader's stack outgrow 4 KiB on its first op; see DESIGN.md,
// idle memory).
func decodeFrame(b []byte) (*clientFrame, *frameError) {
	f := new(clientFrame)
	if err := json.Unmarshal(b, f); err != nil {
		return f, frameJSONError(err)
	}
	return f, validateFrame(f)
}

// frameJSONError is decodeFrame's error for a frame json.Unmarshal refused.
// A function of its own so that its locals stay out of decodeFrame's stack
// frame, which is under encoding/json's on every frame.
//
//go:noinline
func frameJSONError(err error) *frameError {
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) && ute.Field != "" {
		return errorf(CodeBadRequest, "field %q must not be a JSON %s", ute.Field, ute.Value)
	}
	return errorf(CodeBadRequest, "frame is not a JSON object: %v", err)
}

// validateFrame checks a parsed frame (a client frame or an HTTP API
// request) against the op table and fills its parsed fields. On an invalid
// id, it clears f.ID.
func validateFrame(f *clientFrame) *frameError {
	if err := validID(f.ID); err != nil {
		f.ID = nil
		return err
	}
	spec, ferr := lookupOp(f.Op)
	if ferr != nil {
		return ferr
	}
	if !spec.roomless {
		if err := record.ValidName(f.Room, record.MaxRoomBytes); err != nil {
			return errorf(CodeInvalidRoom, "room %v", err)
		}
	}
	if spec.validate == nil {
		return nil
	}
	return spec.validate(f)
}

// validateJoin parses since.
func validateJoin(f *clientFrame) (ferr *frameError) {
	f.since, f.hasSince, ferr = parsePos("since", f.Since)
	return ferr
}

// validatePublish defaults event and data and bounds mid.
func validatePublish(f *clientFrame) *frameError {
	if f.Event == "" {
		f.Event = record.DefaultEvent
	} else if err := record.ValidName(f.Event, record.MaxEventBytes); err != nil {
		return errorf(CodeInvalidEvent, "event %v", err)
	}
	if len(f.Data) == 0 {
		f.Data = json.RawMessage("null")
	}
	if len(f.MID) > record.MaxMIDBytes {
		return errorf(CodeBadRequest, "mid is %d bytes, more than %d", len(f.MID), record.MaxMIDBytes)
	}
	return nil
}

// validateKey checks the key of a state op.
func validateKey(f *clientFrame) *frameError {
	if f.Key == nil {
		return errorf(CodeInvalidKey, "%s needs a key", f.Op)
	}
	if err := record.ValidName(*f.Key, record.MaxKeyBytes); err != nil {
		return errorf(CodeInvalidKey, "key %v", err)
	}
	return nil
}

// validateValue checks the key and the value of set and cas.
func validateValue(f *clientFrame) *frameError {
	if ferr := validateKey(f); ferr != nil {
		return ferr
	}
	if len(f.Value) == 0 {
		return errorf(CodeInvalidValue, "%s needs a value (JSON; null is a value)", f.Op)
	}
	if len(f.Value) > consumer.MaxValueBytes {
		return errorf(CodeValueTooLarge, "value is %d bytes, more than %d", len(f.Value), consumer.MaxValueBytes)
	}
	return nil
}

func validateIncr(f *clientFrame) *frameError {
	if ferr := validateKey(f); ferr != nil {
		return ferr
	}
	f.delta = 1
	if len(f.Delta) > 0 {
		var err error
		if f.delta, err = strconv.ParseInt(string(f.Delta), 10, 64); err != nil {
			return errorf(CodeInvalidValue, "delta must be an integer in the int64 range")
		}
	}
	return nil
}

func validateCAS(f *clientFrame) *frameError {
	if ferr := validateValue(f); ferr != nil {
		return ferr
	}
	if len(f.Version) == 0 {
		return errorf(CodeInvalidValue, "cas needs the expected version (0: the key must be absent)")
	}
	var err error
	if f.version, err = strconv.ParseInt(string(f.Version), 10, 64); err != nil || f.version < 0 {
		return errorf(CodeInvalidValue, "version must be a non-negative integer")
	}
	return nil
}

// validateGet checks the optional key and parses after.
func validateGet(f *clientFrame) (ferr *frameError) {
	if f.Key != nil {
		if err := record.ValidName(*f.Key, record.MaxKeyBytes); err != nil {
			return errorf(CodeInvalidKey, "key %v", err)
		}
	}
	f.after, f.hasAfter, ferr = parsePos("after", f.After)
	return ferr
}

// validatePresence parses after.
func validatePresence(f *clientFrame) (ferr *frameError) {
	f.after, f.hasAfter, ferr = parsePos("after", f.After)
	return ferr
}

// validateHistory defaults and bounds limit and parses before.
func validateHistory(f *clientFrame) (ferr *frameError) {
	switch {
	case f.Limit == 0:
		f.Limit = DefaultHistoryLimit
	case f.Limit < 0 || f.Limit > MaxHistoryLimit:
		return errorf(CodeBadRequest, "limit must be between 1 and %d", MaxHistoryLimit)
	}
	f.before, f.hasBefore, ferr = parsePos("before", f.Before)
	return ferr
}

// authFrame is {"op":"auth","token":"...","id":...}.
type authFrame struct {
	Op    string          `json:"op"`
	ID    json.RawMessage `json:"id"`
	Token string          `json:"token"`
}

var authOp = []byte(`"auth"`)

// decodeAuthFrame parses b if it is an auth frame. ok is false for any
// other frame.
func decodeAuthFrame(b []byte) (f authFrame, ok bool, ferr *frameError) {
	if !bytes.Contains(b, authOp) {
		return f, false, nil
	}
	if err := json.Unmarshal(b, &f); err != nil {
		// A frame that names the auth op but does not decode (a token that
		// is not a string) is a refused auth frame, not some other frame:
		// a first one closes the connection at once.
		var op struct {
			Op string          `json:"op"`
			ID json.RawMessage `json:"id"`
		}
		if json.Unmarshal(b, &op) != nil || op.Op != "auth" {
			return authFrame{}, false, nil // decodeFrame reports it
		}
		f = authFrame{Op: op.Op}
		if validID(op.ID) == nil {
			f.ID = op.ID
		}
		return f, true, errorf(CodeUnauthorized, "auth needs a token, as a JSON string")
	}
	if f.Op != "auth" {
		return authFrame{}, false, nil
	}
	if err := validID(f.ID); err != nil {
		f.ID = nil
		return f, true, err
	}
	if f.Token == "" {
		return f, true, errorf(CodeUnauthorized, "auth needs a token")
	}
	return f, true, nil
}

// frameID extracts a frame's id for an error reply, or nil.
func frameID(b []byte) json.RawMessage {
	var f struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(b, &f) != nil || validID(f.ID) != nil {
		return nil
	}
	return f.ID
}

// apiRequest is the body of both endpoints. Unknown fields are refused.
type apiRequest struct {
	Room    string          `json:"room"`
	Event   string          `json:"event"`
	Data    json.RawMessage `json:"data"`
	MID     string          `json:"mid"`
	Op      string          `json:"op"`
	Key     *string         `json:"key"`
	Value   json.RawMessage `json:"value"`
	Delta   json.RawMessage `json:"delta"`
	Version json.RawMessage `json:"version"`
}

// decodeAPIRequest parses and validates a body for endpoint "publish" or
// "state", with the same rules as a client frame.
func decodeAPIRequest(endpoint string, body []byte) (clientFrame, *frameError) {
	var r apiRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return clientFrame{}, errorf(CodeBadRequest, "body is not a JSON object of the documented shape: %v", err)
	}
	if dec.More() {
		return clientFrame{}, errorf(CodeBadRequest, "body holds more than one JSON value")
	}
	f := clientFrame{Op: r.Op, Room: r.Room, Event: r.Event, Data: r.Data, MID: r.MID, Key: r.Key, Value: r.Value, Delta: r.Delta, Version: r.Version}
	switch endpoint {
	case apiPublish:
		if r.Op != "" && r.Op != opPublish {
			return f, errorf(CodeUnknownOp, "op must be absent or publish")
		}
		if r.Key != nil || r.Value != nil || r.Delta != nil || r.Version != nil {
			return f, errorf(CodeBadRequest, "key, value, delta and version belong to /api/state")
		}
		f.Op = opPublish
	case apiState:
		if spec := ops[r.Op]; spec == nil || spec.api != apiState {
			return f, errorf(CodeUnknownOp, "op must be set, del, incr or cas")
		}
		if r.Event != "" || r.Data != nil || r.MID != "" {
			return f, errorf(CodeBadRequest, "event, data and mid belong to /api/publish")
		}
	}
	if ferr := validateFrame(&f); ferr != nil {
		return f, ferr
	}
	return f, nil
}

// controlRequest is the body of /api/revoke, /api/disconnect and
// /api/remove (control.go). Unknown fields are refused. Times are Unix
// seconds, as in tokens.
type controlRequest struct {
	User         string `json:"user"`
	Room         string `json:"room"`
	JTI          string `json:"jti"`
	IssuedBefore *int64 `json:"issued_before"`
	Until        *int64 `json:"until"`
}

// validRoom checks a room a control request names: a valid name, and not
// one of the log's reserved keys ("~..."), which a remove record cannot
// name.
func validRoom(room string) *frameError {
	if err := record.ValidName(room, record.MaxRoomBytes); err != nil {
		return errorf(CodeInvalidRoom, "room %v", err)
	}
	if strings.HasPrefix(room, "~") {
		return errorf(CodeInvalidRoom, "rooms starting with ~ cannot be removed from")
	}
	return nil
}

// maxControlSeconds bounds the times of a control request (year 5138), so
// their milliseconds cannot overflow.
const maxControlSeconds = 100_000_000_000

// decodeControlRequest parses and validates a control endpoint's body.
func decodeControlRequest(endpoint string, body []byte) (controlRequest, *frameError) {
	var r controlRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return r, errorf(CodeBadRequest, "body is not a JSON object of the documented shape: %v", err)
	}
	if dec.More() {
		return r, errorf(CodeBadRequest, "body holds more than one JSON value")
	}
	if r.User != "" {
		if err := record.ValidName(r.User, record.MaxUserBytes); err != nil {
			return r, errorf(CodeBadRequest, "user %v", err)
		}
	}
	for _, t := range []struct {
		name string
		v    *int64
	}{{"issued_before", r.IssuedBefore}, {"until", r.Until}} {
		if t.v != nil && (*t.v <= 0 || *t.v >= maxControlSeconds) {
			return r, errorf(CodeBadRequest, "%s must be a time in Unix seconds", t.name)
		}
	}
	if endpoint != apiRevoke && (r.JTI != "" || r.IssuedBefore != nil || r.Until != nil) {
		return r, errorf(CodeBadRequest, "jti, issued_before and until belong to /api/revoke")
	}
	switch endpoint {
	case apiRevoke:
		if r.Room != "" {
			return r, errorf(CodeBadRequest, "room belongs to /api/remove")
		}
		if r.JTI != "" {
			if err := record.ValidName(r.JTI, record.MaxJTIBytes); err != nil {
				return r, errorf(CodeBadRequest, "jti %v", err)
			}
		}
		if r.JTI == "" && r.User == "" && r.IssuedBefore == nil {
			return r, errorf(CodeBadRequest, "give jti, user or issued_before")
		}
	case apiDisconnect:
		if r.Room != "" {
			return r, errorf(CodeBadRequest, "room belongs to /api/remove")
		}
		if r.User == "" {
			return r, errorf(CodeBadRequest, "user is required")
		}
	case apiRemove:
		if err := validRoom(r.Room); err != nil {
			return r, err
		}
		if r.User == "" {
			return r, errorf(CodeBadRequest, "user is required")
		}
	default:
		return r, errorf(CodeUnknownOp, "unknown control endpoint %q", trunc.String(endpoint, 32))
	}
	return r, nil
}

func parsePos(field, s string) (record.Pos, bool, *frameError) {
	if s == "" {
		return record.Pos{}, false, nil
	}
	p, err := record.ParsePos(s)
	if err != nil {
		return p, false, errorf(CodeBadPosition, "%s: %v", field, err)
	}
	return p, true, nil
}

// validID accepts a missing id, a JSON string or a JSON number, at most
// maxIDBytes long.
func validID(id json.RawMessage) *frameError {
	if len(id) == 0 || bytes.Equal(id, []byte("null")) {
		return nil
	}
	if len(id) > maxIDBytes {
		return errorf(CodeInvalidID, "id is %d bytes, more than %d", len(id), maxIDBytes)
	}
	switch c := id[0]; {
	case c == '"', c == '-', c >= '0' && c <= '9':
		return nil
	}
	return errorf(CodeInvalidID, "id must be a string or a number")
}

// idString is the client message id stored in the record: the id's JSON text.
func idString(id json.RawMessage) string {
	if len(id) == 0 || bytes.Equal(id, []byte("null")) {
		return ""
	}
	return string(id)
}

// jsonCodec is the native protocol's codec: JSON frames.
type jsonCodec struct{}

var _ codec = jsonCodec{}

func (jsonCodec) ack(id json.RawMessage, a ack) []byte {
	// A publish's or a join's ack fits in 96 bytes and the id: one allocation.
	return appendAckWith(make([]byte, 0, 96+len(id)), id, a)
}
func (jsonCodec) error(id json.RawMessage, e *frameError) []byte { return appendError(nil, id, e) }
func (jsonCodec) pong(id json.RawMessage) []byte                 { return appendPong(nil, id) }
func (jsonCodec) message(room, event string, data json.RawMessage, from, user string, pos record.Pos) []byte {
	// Sized once: the field names, the quotes and a position take under
	// 128 bytes; only escapes in the strings can make it grow.
	b := make([]byte, 0, 128+len(room)+len(event)+len(data)+len(from)+len(user))
	return appendMessage(b, room, event, data, from, user, pos)
}
func (jsonCodec) stateChange(ev *record.Event, e consumer.Entry, pos record.Pos) []byte {
	return appendStateEvent(nil, ev, e, pos)
}
func (jsonCodec) presenceChange(op, room string, m *consumer.Member, reason string, pos record.Pos) []byte {
	return appendPresenceEvent(nil, op, room, m, reason, pos)
}
func (jsonCodec) removed(room, reason string, pos *record.Pos) []byte {
	return append(appendRemovedFields([]byte(`{"op":"removed",`), room, reason, pos), '}')
}

// appendRemovedFields appends a removed frame's fields to an open object:
// the room the connection no longer is in, why, and the position of the
// record that removed it (none when the relay left the room itself).
func appendRemovedFields(b []byte, room, reason string, pos *record.Pos) []byte {
	b = append(b, `"room":`...)
	b = appendString(b, room)
	b = append(b, `,"reason":`...)
	b = appendString(b, reason)
	if pos != nil {
		b = append(b, `,"pos":"`...)
		b = pos.Append(b)
		b = append(b, '"')
	}
	return b
}

// Server frames. Each encoder appends to b and returns it.

func appendWelcome(b []byte, connID, relayID string) []byte {
	b = append(b, `{"op":"welcome","conn":`...)
	b = appendString(b, connID)
	b = append(b, `,"relay":`...)
	b = appendString(b, relayID)
	return append(b, '}')
}

func appendError(b []byte, id json.RawMessage, e *frameError) []byte {
	b = append(b, `{"op":"error"`...)
	if len(id) > 0 {
		b = append(b, `,"id":`...)
		b = append(b, id...)
	}
	return append(appendErrorFields(append(b, ','), e), '}')
}

// appendErrorFields appends an error's fields to an open object:
// "code":…,"message":… and, for a refused state op, the key's value and
// version. Shared by every protocol's error.
func appendErrorFields(b []byte, e *frameError) []byte {
	b = append(b, `"code":`...)
	b = appendString(b, string(e.Code))
	b = append(b, `,"message":`...)
	b = appendString(b, e.Message)
	if e.Entry != nil {
		b = appendEntry(b, *e.Entry)
	}
	return b
}

// appendPong answers a ping (the application-level heartbeat).
func appendPong(b []byte, id json.RawMessage) []byte {
	b = append(b, `{"op":"pong"`...)
	if len(id) > 0 {
		b = append(b, `,"id":`...)
		b = append(b, id...)
	}
	return append(b, '}')
}

// appendMessage encodes the delivery of a publish. It is built once per
// record and shared by every socket in the room.
func appendMessage(b []byte, room, event string, data json.RawMessage, from, user string, pos record.Pos) []byte {
	b = append(b, `{"op":"message","room":`...)
	b = appendString(b, room)
	b = append(b, `,"event":`...)
	b = appendString(b, event)
	b = append(b, `,"data":`...)
	b = append(b, data...)
	b = appendSender(b, from, user)
	b = append(b, `,"pos":"`...)
	b = pos.Append(b)
	return append(b, `"}`...)
}

// appendSender appends a message's "from" and "user" fields, when set.
func appendSender(b []byte, from, user string) []byte {
	if from != "" {
		b = append(b, `,"from":`...)
		b = appendString(b, from)
	}
	if user != "" {
		b = append(b, `,"user":`...)
		b = appendString(b, user)
	}
	return b
}

// ack is the body of an ack frame: what an op answers. Zero fields are left
// out. Every protocol builds its answers from this value.
type ack struct {
	pos       *record.Pos
	recovered *bool
	duplicate bool
	entry     *consumer.Entry    // get of a key, state ops: value and version
	state     *[]keyEntry        // get of a whole room
	members   *[]consumer.Member // presence
	history   *historyPage       // history
	auth      *authAck           // auth
}

// keyEntry is one key of a room's state.
type keyEntry struct {
	Key string
	consumer.Entry
}

// historyPage is a page of a room's messages, oldest first.
type historyPage struct {
	room     string
	epoch    uint64
	part     int32
	messages []consumer.Message
	more     bool
}

// authAck is what an accepted token grants.
type authAck struct {
	user string
	exp  int64 // Unix seconds
}

func appendAckWith(b []byte, id json.RawMessage, a ack) []byte {
	b = append(b, `{"op":"ack"`...)
	if len(id) > 0 {
		b = append(b, `,"id":`...)
		b = append(b, id...)
	}
	return append(appendAckFields(b, a), '}')
}

// appendAckFields appends an ack's fields, each with its leading comma, to
// an open object. Shared by every protocol's ack.
func appendAckFields(b []byte, a ack) []byte {
	if a.pos != nil {
		b = append(b, `,"pos":"`...)
		b = a.pos.Append(b)
		b = append(b, '"')
	}
	if a.recovered != nil {
		b = append(b, `,"recovered":`...)
		b = strconv.AppendBool(b, *a.recovered)
	}
	if a.duplicate {
		b = append(b, `,"duplicate":true`...)
	}
	if a.entry != nil {
		b = appendEntry(b, *a.entry)
	}
	if a.state != nil {
		b = appendState(b, *a.state)
	}
	if a.members != nil {
		b = append(b, `,"members":[`...)
		for i := range *a.members {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendMember(b, &(*a.members)[i])
		}
		b = append(b, ']')
	}
	if h := a.history; h != nil {
		b = append(b, `,"messages":[`...)
		for i, m := range h.messages {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendMessage(b, h.room, m.Event, m.Data, m.From, m.User, record.Pos{Epoch: h.epoch, Partition: h.part, Offset: m.Offset})
		}
		b = append(b, `],"more":`...)
		b = strconv.AppendBool(b, h.more)
	}
	if a.auth != nil {
		b = append(b, `,"user":`...)
		b = appendString(b, a.auth.user)
		b = append(b, `,"exp":`...)
		b = strconv.AppendInt(b, a.auth.exp, 10)
	}
	return b
}

// appendState is a room's whole state: "state":{"key":{"value":…,"version":…},…}.
func appendState(b []byte, kv []keyEntry) []byte {
	b = append(b, `,"state":{`...)
	for i, e := range kv {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, e.Key)
		b = append(b, ':', '{')
		b = appendEntryFields(b, e.Entry)
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendEntry appends a key's value and version as fields of an open
// object.
func appendEntry(b []byte, e consumer.Entry) []byte {
	return appendEntryFields(append(b, ','), e)
}

func appendEntryFields(b []byte, e consumer.Entry) []byte {
	b = append(b, `"value":`...)
	if len(e.Value) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, e.Value...)
	}
	b = append(b, `,"version":`...)
	return strconv.AppendInt(b, e.Version, 10)
}

// appendStateEvent tells a room's members that a key changed.
func appendStateEvent(b []byte, ev *record.Event, e consumer.Entry, pos record.Pos) []byte {
	return append(appendStateFields(append(b, `{"op":"state",`...), ev, e, pos), '}')
}

// appendStateFields appends a state change's fields to an open object.
func appendStateFields(b []byte, ev *record.Event, e consumer.Entry, pos record.Pos) []byte {
	b = append(b, `"room":`...)
	b = appendString(b, ev.Room)
	b = append(b, `,"key":`...)
	b = appendString(b, ev.Key)
	b = append(b, `,"action":`...)
	b = appendString(b, string(ev.Type))
	b = appendEntry(b, e)
	if ev.From != "" {
		b = append(b, `,"from":`...)
		b = appendString(b, ev.From)
	}
	b = append(b, `,"pos":"`...)
	b = pos.Append(b)
	return append(b, '"')
}

func appendMember(b []byte, m *consumer.Member) []byte {
	b = append(b, `{"conn":`...)
	b = appendString(b, m.Conn)
	if m.User != "" {
		b = append(b, `,"user":`...)
		b = appendString(b, m.User)
	}
	b = append(b, `,"relay":`...)
	b = appendString(b, m.Relay)
	b = append(b, `,"joined_at":`...)
	b = strconv.AppendInt(b, m.JoinedAt, 10)
	return append(b, '}')
}

// appendPresenceEvent is a joined or left frame.
func appendPresenceEvent(b []byte, op, room string, m *consumer.Member, reason string, pos record.Pos) []byte {
	b = append(b, `{"op":"`...)
	b = append(b, op...)
	b = append(b, `",`...)
	return append(appendPresenceFields(b, room, m, reason, pos), '}')
}

// appendPresenceFields appends a joined or left event's fields to an open
// object.
func appendPresenceFields(b []byte, room string, m *consumer.Member, reason string, pos record.Pos) []byte {
	b = append(b, `"room":`...)
	b = appendString(b, room)
	b = append(b, `,"member":`...)
	b = appendMember(b, m)
	if reason != "" {
		b = append(b, `,"reason":`...)
		b = appendString(b, reason)
	}
	b = append(b, `,"pos":"`...)
	b = pos.Append(b)
	return append(b, '"')
}

// The backend API's bodies (docs/security.md): one JSON object per answer.

// appendAPIAnswer is the body of a backend API answer: the record's
// position, whether it was a duplicate, the key's value and version for a
// state op, and the error that refused it.
func appendAPIAnswer(b []byte, pos record.Pos, a ack, e *frameError) []byte {
	b = append(b, `{"pos":"`...)
	b = pos.Append(b)
	b = append(b, '"')
	if a.duplicate {
		b = append(b, `,"duplicate":true`...)
	}
	if a.entry != nil {
		b = appendEntry(b, *a.entry)
	}
	if e != nil {
		b = append(b, `,"error":`...)
		b = appendString(b, string(e.Code))
		b = append(b, `,"message":`...)
		b = appendString(b, e.Message)
	}
	return append(b, '}', '\n')
}

// appendHTTPError is the body of every HTTP error: {"error":code,"message":…}.
func appendHTTPError(b []byte, code, msg string) []byte {
	b = append(b, `{"error":`...)
	b = appendString(b, code)
	b = append(b, `,"message":`...)
	b = appendString(b, msg)
	return append(b, '}', '\n')
}

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, as
// encoding/json does; HTML characters are not escaped.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
