// Package record is the one definition of how a roomlog event is stored in the
// log: the Kafka record key, headers and value that the relay writes, the
// consumer reads, and third-party producers and consumers see.
//
// It lives at the top level, beside relay/ and consumer/, because both sides
// (and the replay tools) must agree on it byte for byte; a copy in either would
// drift.
//
// Layout of a roomlog record:
//
//	key      room name (UTF-8)
//	value    the publish's data, exactly as the client sent it (JSON)
//	headers  rl-type   record type: "publish", "join", "leave"
//	         rl-event  event name (publish only)
//	         rl-from   sender connection id
//	         rl-mid    client message id (optional)
//
// A record with no rl-type header was written by a plain Kafka producer
// (kcat -P -K:, a backend service): it is a publish of event "message" to the
// room named by its key, and its value is the data (JSON if it parses, else a
// JSON string).
//
// Everything here is a pure function of its arguments and safe for concurrent
// use.
package record

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Header keys. They are part of the public record format: never rename them.
const (
	HeaderType  = "rl-type"
	HeaderEvent = "rl-event"
	HeaderFrom  = "rl-from"
	HeaderMID   = "rl-mid"
)

// Type is the kind of a record.
type Type string

// Record types understood by this version. A consumer meeting another type
// (written by a newer relay) skips it.
const (
	TypePublish Type = "publish"
	TypeJoin    Type = "join"
	TypeLeave   Type = "leave"
)

// DefaultEvent is the event name of a publish that names none, and of every
// record written by a plain Kafka producer.
const DefaultEvent = "message"

// Limits on names. They bound what a hostile client can make every relay hold.
const (
	MaxRoomBytes  = 200
	MaxEventBytes = 100
	MaxFromBytes  = 100
	MaxMIDBytes   = 128
)

// Errors a caller may branch on.
var (
	ErrNoKey        = errors.New("record has no key (room)")
	ErrUnknownType  = errors.New("unknown record type")
	ErrInvalidValue = errors.New("record value is not valid JSON")
)

// Event is one decoded roomlog event: what a record means, independent of
// where in the log it sits.
type Event struct {
	Type  Type
	Room  string
	Event string          // publish only
	Data  json.RawMessage // publish only; always valid JSON
	From  string          // sender connection id; empty for plain Kafka producers
	MID   string          // client message id, if the client gave one
}

// ValidName reports why s cannot be a room or event name, or nil: it must be
// non-empty, at most max bytes of valid UTF-8, with no control characters.
func ValidName(s string, max int) error {
	switch {
	case s == "":
		return errors.New("is empty")
	case len(s) > max:
		return fmt.Errorf("is %d bytes, more than the limit of %d", len(s), max)
	case !utf8.ValidString(s):
		return errors.New("is not valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("contains control character %U", r)
		}
	}
	return nil
}

// Encode turns e into a record to produce. The caller validates e first (the
// relay does, with ValidName); Encode does not copy Data.
func Encode(e *Event) *kgo.Record {
	r := &kgo.Record{Key: []byte(e.Room)}
	r.Headers = make([]kgo.RecordHeader, 0, 4)
	r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderType, Value: []byte(e.Type)})
	if e.Type == TypePublish {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderEvent, Value: []byte(e.Event)})
		r.Value = e.Data
	}
	if e.From != "" {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderFrom, Value: []byte(e.From)})
	}
	if e.MID != "" {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderMID, Value: []byte(e.MID)})
	}
	return r
}

// Decode reads a record produced by a relay or by any Kafka producer. It never
// panics on hostile input; an error says what is wrong with the record.
func Decode(r *kgo.Record) (Event, error) {
	var e Event
	if len(r.Key) == 0 {
		return e, ErrNoKey
	}
	e.Room = string(r.Key)
	if err := ValidName(e.Room, MaxRoomBytes); err != nil {
		return e, fmt.Errorf("room %w", err)
	}
	var typ, ev []byte
	var hasType bool
	for _, h := range r.Headers {
		switch h.Key {
		case HeaderType:
			typ, hasType = h.Value, true
		case HeaderEvent:
			ev = h.Value
		case HeaderFrom:
			e.From = string(h.Value)
		case HeaderMID:
			e.MID = string(h.Value)
		}
	}
	if !hasType {
		return decodeForeign(r, e)
	}
	e.Type = Type(typ)
	switch e.Type {
	case TypePublish:
	case TypeJoin, TypeLeave:
		return e, nil
	default:
		return e, fmt.Errorf("%w %q", ErrUnknownType, typ)
	}
	e.Event = string(ev)
	if e.Event == "" {
		e.Event = DefaultEvent
	} else if err := ValidName(e.Event, MaxEventBytes); err != nil {
		return e, fmt.Errorf("event %w", err)
	}
	switch {
	case len(r.Value) == 0:
		e.Data = json.RawMessage("null")
	case json.Valid(r.Value):
		e.Data = r.Value
	default:
		return e, ErrInvalidValue
	}
	return e, nil
}

// decodeForeign maps a record without roomlog headers to a publish of event
// "message" whose data is the value as JSON, or as a JSON string when it does
// not parse.
func decodeForeign(r *kgo.Record, e Event) (Event, error) {
	e.Type = TypePublish
	e.Event = DefaultEvent
	switch {
	case len(r.Value) == 0:
		e.Data = json.RawMessage("null")
	case json.Valid(r.Value):
		e.Data = r.Value
	default:
		s, _ := json.Marshal(string(r.Value)) // cannot fail for a string
		e.Data = s
	}
	return e, nil
}
