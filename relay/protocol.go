package relay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/roomlog/roomlog/record"
)

// This file is the JSON wire protocol (docs/protocol.md): decoding client
// frames and encoding server frames. It is the only place that knows the JSON
// shape; conn.go works with the decoded values.

// Client ops.
const (
	opJoin    = "join"
	opLeave   = "leave"
	opPublish = "publish"
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
	CodeNotJoined      ErrorCode = "not_joined"      // leave of a room the connection is not in
	CodeTooManyRooms   ErrorCode = "too_many_rooms"  // join beyond the per-connection room limit
	CodeLogUnavailable ErrorCode = "log_unavailable" // the log did not take the record in time; retry
	CodeShuttingDown   ErrorCode = "shutting_down"   // the relay is draining; reconnect elsewhere
)

// frameError is a client-visible error: a code and a message for humans.
type frameError struct {
	Code    ErrorCode
	Message string
}

func (e *frameError) Error() string { return string(e.Code) + ": " + e.Message }

func errorf(code ErrorCode, format string, args ...any) *frameError {
	return &frameError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// clientFrame is a decoded client frame.
type clientFrame struct {
	Op    string          `json:"op"`
	ID    json.RawMessage `json:"id"`
	Room  string          `json:"room"`
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

const maxIDBytes = record.MaxMIDBytes

// decodeFrame parses and validates one client text frame. On error, the
// returned frame still carries the id when it could be read, so the error
// frame can echo it.
func decodeFrame(b []byte) (clientFrame, *frameError) {
	var f clientFrame
	if err := json.Unmarshal(b, &f); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) && ute.Field != "" {
			return f, errorf(CodeBadRequest, "field %q must not be a JSON %s", ute.Field, ute.Value)
		}
		return f, errorf(CodeBadRequest, "frame is not a JSON object: %v", err)
	}
	if err := validID(f.ID); err != nil {
		f.ID = nil
		return f, err
	}
	switch f.Op {
	case opJoin, opLeave:
		if err := record.ValidName(f.Room, record.MaxRoomBytes); err != nil {
			return f, errorf(CodeInvalidRoom, "room %v", err)
		}
	case opPublish:
		if err := record.ValidName(f.Room, record.MaxRoomBytes); err != nil {
			return f, errorf(CodeInvalidRoom, "room %v", err)
		}
		if f.Event == "" {
			f.Event = record.DefaultEvent
		} else if err := record.ValidName(f.Event, record.MaxEventBytes); err != nil {
			return f, errorf(CodeInvalidEvent, "event %v", err)
		}
		if len(f.Data) == 0 {
			f.Data = json.RawMessage("null")
		}
	case "":
		return f, errorf(CodeUnknownOp, "frame has no op")
	default:
		return f, errorf(CodeUnknownOp, "unknown op %q", truncate(f.Op, 32))
	}
	return f, nil
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

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// Server frames. Each encoder appends to b and returns it.

func appendWelcome(b []byte, connID, relayID string) []byte {
	b = append(b, `{"op":"welcome","conn":`...)
	b = appendString(b, connID)
	b = append(b, `,"relay":`...)
	b = appendString(b, relayID)
	return append(b, '}')
}

func appendAck(b []byte, id json.RawMessage, pos record.Pos, withPos bool) []byte {
	b = append(b, `{"op":"ack"`...)
	if len(id) > 0 {
		b = append(b, `,"id":`...)
		b = append(b, id...)
	}
	if withPos {
		b = append(b, `,"pos":"`...)
		b = pos.Append(b)
		b = append(b, '"')
	}
	return append(b, '}')
}

func appendError(b []byte, id json.RawMessage, e *frameError) []byte {
	b = append(b, `{"op":"error"`...)
	if len(id) > 0 {
		b = append(b, `,"id":`...)
		b = append(b, id...)
	}
	b = append(b, `,"code":`...)
	b = appendString(b, string(e.Code))
	b = append(b, `,"message":`...)
	b = appendString(b, e.Message)
	return append(b, '}')
}

// appendMessage encodes the delivery of a publish record. It is built once per
// record and shared by every socket in the room.
func appendMessage(b []byte, e *record.Event, pos record.Pos) []byte {
	b = append(b, `{"op":"message","room":`...)
	b = appendString(b, e.Room)
	b = append(b, `,"event":`...)
	b = appendString(b, e.Event)
	b = append(b, `,"data":`...)
	b = append(b, e.Data...)
	if e.From != "" {
		b = append(b, `,"from":`...)
		b = appendString(b, e.From)
	}
	b = append(b, `,"pos":"`...)
	b = pos.Append(b)
	return append(b, `"}`...)
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
