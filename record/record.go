// Package record is the one definition of how a roomlog event is stored in the
// log: the Kafka record key, headers and value that the relay writes, the
// consumer reads, and third-party producers and consumers see.
//
// It lives at the top level, beside relay/ and consumer/, because both sides
// (and the replay tools) must agree on it byte for byte; a copy in either would
// drift.
//
// Layout of a roomlog record (docs/protocol.md has the full table):
//
//	key      room name (UTF-8); for lease and expire records, "~relay/<name>";
//	         for revoke and disconnect records, "~control"
//	value    publish: the data exactly as the client sent it (JSON);
//	         set, cas: the new value (JSON); incr: the delta (JSON integer);
//	         revoke: {"jti":...,"issued_before":ms,"until":ms} (control.go)
//	headers  rl-type     publish, join, leave, set, del, incr, cas, lease,
//	                     expire, revoke, disconnect, remove
//	         rl-event    event name (publish)
//	         rl-from     sender connection id
//	         rl-mid      client message id, for deduplication (publish)
//	         rl-req      the request id to echo in the sender's ack
//	         rl-user     authenticated user id
//	         rl-relay    relay name (join, lease, expire)
//	         rl-session  relay session (join, lease, expire)
//	         rl-key      state key (set, del, incr, cas)
//	         rl-version  expected version (cas); last lease offset (expire)
//	         rl-addr     the relay's internal host:port (lease; optional)
//	         rl-origin   where a re-homed copy's misplaced original lies (origin.go)
//	         rl-sio      a Socket.IO session's key, socket id and flags (join, leave; optional)
//
// A record with no rl-type header was written by a plain Kafka producer
// (kcat -P -K:, a backend service): it is a publish of event "message" to the
// room named by its key, and its value is the data (JSON if it parses, else a
// JSON string).
//
// A room's partition is part of the format too: PartitionOf (murmur2 of the
// key, as Kafka's default partitioner), and NewPartitioner for producers. A
// record written elsewhere is misplaced: Home tells, and Rehome makes the
// copy that takes its place in the room's order (origin.go).
//
// # Concurrency
//
// Everything here is a pure function of its arguments, starts no goroutine
// and is safe for concurrent use; a partitioner from NewPartitioner may be
// shared by any number of producers.
package record

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Header keys. They are part of the public record format: never rename them.
const (
	HeaderType    = "rl-type"
	HeaderEvent   = "rl-event"
	HeaderFrom    = "rl-from"
	HeaderMID     = "rl-mid"
	HeaderReq     = "rl-req"
	HeaderUser    = "rl-user"
	HeaderRelay   = "rl-relay"
	HeaderSession = "rl-session"
	HeaderKey     = "rl-key"
	HeaderVersion = "rl-version"
	HeaderAddr    = "rl-addr"
)

// Type is the kind of a record.
type Type string

// Record types understood by this version. A consumer meeting another type
// (written by a newer relay) skips it.
const (
	TypePublish Type = "publish"
	TypeJoin    Type = "join"
	TypeLeave   Type = "leave"
	TypeSet     Type = "set"
	TypeDel     Type = "del"
	TypeIncr    Type = "incr"
	TypeCAS     Type = "cas"
	TypeLease   Type = "lease"
	TypeExpire  Type = "expire"
	// Server-side control (control.go): refuse tokens, close a user's
	// connections on every relay, remove a user from a room.
	TypeRevoke     Type = "revoke"
	TypeDisconnect Type = "disconnect"
	TypeRemove     Type = "remove"
)

// IsState reports whether t changes a room's key-value state.
func (t Type) IsState() bool {
	return t == TypeSet || t == TypeDel || t == TypeIncr || t == TypeCAS
}

// RelayKeyPrefix starts the key of lease and expire records: they belong to
// a relay, not a room, and are written to every partition.
const RelayKeyPrefix = "~relay/"

// DefaultEvent is the event name of a publish that names none, and of every
// record written by a plain Kafka producer.
const DefaultEvent = "message"

// Limits on names. They bound what a hostile client can make every relay hold.
const (
	MaxRoomBytes  = 200
	MaxEventBytes = 100
	MaxFromBytes  = 100
	MaxMIDBytes   = 128
	MaxKeyBytes   = 200
	MaxUserBytes  = 200
	MaxAddrBytes  = 255
	// MaxDataBytes bounds a publish's value, whoever wrote it: relays
	// never write larger ones, and the fold skips a larger one from
	// another producer (ErrTooLarge) rather than hold and fan it out.
	MaxDataBytes = 1000 << 10
)

// Errors a caller may branch on.
var (
	ErrNoKey        = errors.New("record has no key (room)")
	ErrUnknownType  = errors.New("unknown record type")
	ErrInvalidValue = errors.New("record value is not valid JSON")
	ErrBadHeader    = errors.New("malformed roomlog header")
	ErrBadRoom      = errors.New("invalid room name (key)")
	ErrTooLarge     = errors.New("publish value over the size limit")
)

// SkipReason names why Decode refused a record, for counters and logs: one
// of no_key, bad_room, too_large, bad_value, unknown_type, bad_header.
func SkipReason(err error) string {
	switch {
	case errors.Is(err, ErrNoKey):
		return "no_key"
	case errors.Is(err, ErrBadRoom):
		return "bad_room"
	case errors.Is(err, ErrTooLarge):
		return "too_large"
	case errors.Is(err, ErrInvalidValue):
		return "bad_value"
	case errors.Is(err, ErrUnknownType):
		return "unknown_type"
	}
	return "bad_header"
}

// SkipReasons lists every SkipReason.
var SkipReasons = []string{"no_key", "bad_room", "too_large", "bad_value", "unknown_type", "bad_header"}

// Event is one decoded roomlog event: what a record means, independent of
// where in the log it sits.
type Event struct {
	Type    Type
	Room    string          // the key; for lease and expire, RelayKeyPrefix+Relay
	Event   string          // publish
	Data    json.RawMessage // publish, set, cas: valid JSON; incr: a JSON integer
	From    string          // sender connection id; empty for plain Kafka producers
	MID     string          // client message id for deduplication (publish)
	Req     string          // request id (JSON text) to echo in the sender's ack
	User    string          // authenticated user id, if any
	Relay   string          // relay name (join, lease, expire)
	Session string          // relay session (join, lease, expire)
	Key     string          // state key (set, del, incr, cas)
	Version int64           // cas: expected version; expire: the lease offset it ends
	Delta   int64           // incr (decoded from Data)
	// Addr is where other relays reach this relay's HTTP listener
	// (host:port), on lease records; "" when the relay publishes none or
	// the header is not a host:port (it is ignored, the lease is not).
	Addr string
	// Revoke is what a revoke record refuses (decoded from its value).
	Revoke Revocation
	// Origin is set on a re-homed copy (rl-origin): where its misplaced
	// original was written.
	Origin *Origin
	// SIO ties a join or leave to a Socket.IO session (connection state
	// recovery); nil for other connections.
	SIO *SIORef
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
	r.Headers = make([]kgo.RecordHeader, 0, 6)
	add := func(k, v string) {
		if v != "" {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
		}
	}
	add(HeaderType, string(e.Type))
	switch e.Type {
	case TypePublish:
		add(HeaderEvent, e.Event)
		r.Value = e.Data
	case TypeSet, TypeCAS:
		r.Value = e.Data
	case TypeIncr:
		r.Value = strconv.AppendInt(nil, e.Delta, 10)
	case TypeRevoke:
		r.Value = e.Revoke.encode()
	}
	add(HeaderFrom, e.From)
	add(HeaderMID, e.MID)
	add(HeaderReq, e.Req)
	add(HeaderUser, e.User)
	add(HeaderRelay, e.Relay)
	add(HeaderSession, e.Session)
	add(HeaderKey, e.Key)
	add(HeaderAddr, e.Addr)
	if e.Origin != nil {
		add(HeaderOrigin, e.Origin.String())
	}
	if e.SIO != nil && (e.Type == TypeJoin || e.Type == TypeLeave) {
		add(HeaderSIO, e.SIO.String())
	}
	if e.Type == TypeCAS || e.Type == TypeExpire {
		add(HeaderVersion, strconv.FormatInt(e.Version, 10))
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
		return e, fmt.Errorf("%w: room %v", ErrBadRoom, err)
	}
	var typ, ev, version, sio []byte
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
		case HeaderReq:
			e.Req = string(h.Value)
		case HeaderUser:
			e.User = string(h.Value)
		case HeaderRelay:
			e.Relay = string(h.Value)
		case HeaderSession:
			e.Session = string(h.Value)
		case HeaderKey:
			e.Key = string(h.Value)
		case HeaderVersion:
			version = h.Value
		case HeaderAddr:
			e.Addr = validAddr(h.Value)
		case HeaderOrigin:
			o, err := ParseOrigin(h.Value)
			if err != nil {
				return e, fmt.Errorf("%w: %v", ErrBadHeader, err)
			}
			e.Origin = &o
		case HeaderSIO:
			sio = h.Value
		}
	}
	if len(r.Value) > MaxDataBytes && (!hasType || Type(typ) == TypePublish) {
		return e, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, len(r.Value), MaxDataBytes)
	}
	if !hasType {
		return decodeForeign(r, e)
	}
	e.Type = Type(typ)
	switch e.Type {
	case TypePublish:
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
	case TypeJoin, TypeLeave:
		if e.From == "" {
			return e, fmt.Errorf("%w: %s without %s", ErrBadHeader, e.Type, HeaderFrom)
		}
		if sio != nil {
			ref, err := ParseSIORef(string(sio))
			if err != nil {
				return e, err
			}
			e.SIO = ref
		}
	case TypeSet, TypeCAS, TypeDel, TypeIncr:
		if err := ValidName(e.Key, MaxKeyBytes); err != nil {
			return e, fmt.Errorf("%w: state key %v", ErrBadHeader, err)
		}
		switch e.Type {
		case TypeIncr:
			d, err := strconv.ParseInt(string(r.Value), 10, 64)
			if err != nil {
				return e, fmt.Errorf("%w: incr delta %q", ErrInvalidValue, truncate(r.Value))
			}
			e.Delta = d
		case TypeSet, TypeCAS:
			if !json.Valid(r.Value) {
				return e, ErrInvalidValue
			}
			e.Data = r.Value
		}
	case TypeLease, TypeExpire:
		if e.Relay == "" || e.Session == "" {
			return e, fmt.Errorf("%w: %s without relay or session", ErrBadHeader, e.Type)
		}
	case TypeRevoke, TypeDisconnect, TypeRemove:
		if err := decodeControl(r, &e); err != nil {
			return e, err
		}
	default:
		return e, fmt.Errorf("%w %q", ErrUnknownType, truncate(typ))
	}
	if e.Type == TypeCAS || e.Type == TypeExpire {
		v, err := strconv.ParseInt(string(version), 10, 64)
		if err != nil || v < 0 {
			return e, fmt.Errorf("%w: %s %q", ErrBadHeader, HeaderVersion, truncate(version))
		}
		e.Version = v
	}
	return e, nil
}

// validAddr returns b as an address if it is a host:port of printable
// characters, else "".
func validAddr(b []byte) string {
	s := string(b)
	if ValidName(s, MaxAddrBytes) != nil {
		return ""
	}
	if host, port, err := net.SplitHostPort(s); err != nil || host == "" || port == "" {
		return ""
	}
	return s
}

func truncate(b []byte) string {
	if len(b) > 32 {
		return string(b[:32]) + "..."
	}
	return string(b)
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
