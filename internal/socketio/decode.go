package socketio

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Kinds of decoding errors, for errors.Is. Every one also matches
// ErrMalformed.
var (
	ErrMalformed        = errors.New("socketio: malformed packet")
	ErrUnknownType      = errors.New("socketio: unknown packet type")
	ErrAttachments      = errors.New("socketio: bad attachments")
	ErrTooManyAttach    = errors.New("socketio: too many attachments")
	ErrNamespace        = errors.New("socketio: bad namespace")
	ErrID               = errors.New("socketio: bad ack id")
	ErrPayload          = errors.New("socketio: bad payload")
	ErrUnexpectedBinary = errors.New("socketio: binary message outside a binary packet")
	ErrUnexpectedText   = errors.New("socketio: text message while attachments are due")
)

// DecodeError is a malformed packet: its kind (Err, one of the ErrX
// above) and a human reason.
type DecodeError struct {
	Err    error
	Reason string
}

func (e *DecodeError) Error() string {
	if e.Reason == "" {
		return e.Err.Error()
	}
	return e.Err.Error() + ": " + e.Reason
}

func (e *DecodeError) Unwrap() error { return e.Err }

// Is makes every DecodeError match ErrMalformed.
func (e *DecodeError) Is(target error) bool { return target == ErrMalformed }

func malformed(kind error, format string, args ...any) error {
	return &DecodeError{Err: kind, Reason: fmt.Sprintf(format, args...)}
}

// DefaultMaxAttachments is the reference parser's limit.
const DefaultMaxAttachments = 10

// reservedEvents may not be sent as event names (socket.io-parser).
var reservedEvents = map[string]bool{
	"connect": true, "connect_error": true, "disconnect": true,
	"disconnecting": true, "newListener": true, "removeListener": true,
}

// Decoder decodes the Engine.IO messages of one connection into packets,
// gathering a binary packet's attachments. It is not safe for concurrent
// use: the connection's reader owns it. After an error its state is reset;
// the connection should be closed (the reference server closes it).
type Decoder struct {
	// MaxAttachments bounds a binary packet's attachments; 0 means
	// DefaultMaxAttachments.
	MaxAttachments int

	pending *Packet // a binary packet waiting for attachments
	want    int
}

// Decode decodes one Engine.IO message. It returns the packet once
// complete, or nil while a binary packet awaits attachments. The packet
// keeps references to data and to earlier attachments' slices.
func (d *Decoder) Decode(binary bool, data []byte) (*Packet, error) {
	if binary {
		if d.pending == nil {
			return nil, &DecodeError{Err: ErrUnexpectedBinary}
		}
		d.pending.Attachments = append(d.pending.Attachments, data)
		if len(d.pending.Attachments) < d.want {
			return nil, nil
		}
		p := d.pending
		d.pending = nil
		return p, nil
	}
	if d.pending != nil {
		d.pending = nil
		return nil, &DecodeError{Err: ErrUnexpectedText}
	}
	max := d.MaxAttachments
	if max <= 0 {
		max = DefaultMaxAttachments
	}
	p, n, err := parse(data, max)
	if err != nil {
		return nil, err
	}
	if p.Type.IsBinary() && n > 0 {
		p.Attachments = make([][]byte, 0, n)
		d.pending, d.want = p, n
		return nil, nil
	}
	return p, nil
}

// Pending reports whether a binary packet is waiting for attachments.
func (d *Decoder) Pending() bool { return d.pending != nil }

// parse decodes a packet's text form. For a binary packet it also returns
// the number of attachments announced (and checked against the
// placeholders).
func parse(b []byte, maxAttach int) (*Packet, int, error) {
	if len(b) == 0 {
		return nil, 0, malformed(ErrUnknownType, "empty packet")
	}
	if b[0] < '0' || b[0] > '6' {
		return nil, 0, malformed(ErrUnknownType, "type %q", b[0])
	}
	p := &Packet{Type: Type(b[0] - '0'), Namespace: MainNamespace}
	i := 1
	n := 0
	if p.Type.IsBinary() {
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			if n = n*10 + int(b[i]-'0'); n > maxAttach {
				return nil, 0, malformed(ErrTooManyAttach, "over %d", maxAttach)
			}
			i++
		}
		if i == start || i == len(b) || b[i] != '-' {
			return nil, 0, malformed(ErrAttachments, "no attachment count")
		}
		i++
	}
	if i < len(b) && b[i] == '/' {
		end := bytes.IndexByte(b[i:], ',')
		if end < 0 {
			end = len(b) - i
		}
		nsp := b[i : i+end]
		if !utf8.Valid(nsp) || bytes.ContainsFunc(nsp, isControl) {
			return nil, 0, malformed(ErrNamespace, "not UTF-8 text")
		}
		p.Namespace = string(nsp)
		i += end
		if i < len(b) { // the comma
			i++
		}
	}
	if i < len(b) && b[i] >= '0' && b[i] <= '9' {
		var id uint64
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			if id = id*10 + uint64(b[i]-'0'); id > MaxID {
				return nil, 0, malformed(ErrID, "over 2^53-1")
			}
		}
		p.ID, p.HasID = id, true
	}
	if i < len(b) {
		if !json.Valid(b[i:]) {
			return nil, 0, malformed(ErrPayload, "invalid JSON")
		}
		p.Data = b[i:]
	}
	if err := checkShape(p); err != nil {
		return nil, 0, err
	}
	if p.Type.IsBinary() {
		if err := checkPlaceholders(p.Data, n); err != nil {
			return nil, 0, err
		}
	}
	return p, n, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// checkShape checks the payload and id against the packet type, as
// socket.io-parser's isPayloadValid does, and a little more: an EVENT and
// an ACK need a payload, an ACK an id, and only they may have an id.
func checkShape(p *Packet) error {
	kind := firstByte(p.Data)
	switch p.Type {
	case Connect:
		if p.Data != nil && kind != '{' {
			return malformed(ErrPayload, "CONNECT payload is not an object")
		}
	case Disconnect:
		if p.Data != nil {
			return malformed(ErrPayload, "DISCONNECT with a payload")
		}
	case ConnectError:
		if kind != '{' && kind != '"' {
			return malformed(ErrPayload, "CONNECT_ERROR payload is not an object or a string")
		}
	case Event, BinaryEvent:
		if kind != '[' {
			return malformed(ErrPayload, "%s payload is not an array", p.Type)
		}
		elems, _ := splitArray(p.Data)
		if len(elems) == 0 {
			return malformed(ErrPayload, "%s without an event name", p.Type)
		}
		switch first := elems[0]; first[0] {
		case '"':
			var name string
			if json.Unmarshal(first, &name) != nil || reservedEvents[name] {
				return malformed(ErrPayload, "reserved event name %s", first)
			}
		case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		default:
			return malformed(ErrPayload, "event name is not a string or a number")
		}
	case Ack, BinaryAck:
		if kind != '[' {
			return malformed(ErrPayload, "%s payload is not an array", p.Type)
		}
		if !p.HasID {
			return malformed(ErrID, "%s without an id", p.Type)
		}
	}
	if p.HasID && p.Type != Event && p.Type != BinaryEvent && p.Type != Ack && p.Type != BinaryAck {
		return malformed(ErrID, "%s with an id", p.Type)
	}
	return nil
}

// firstByte is the first non-space byte of a JSON value, 0 for none.
func firstByte(b []byte) byte {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return 0
	}
	return b[0]
}
