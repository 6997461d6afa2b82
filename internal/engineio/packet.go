package engineio

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
)

// PacketType is an Engine.IO v4 packet type, the packet's first character.
type PacketType byte

// The packet types of Engine.IO v4.
const (
	PacketOpen    PacketType = '0'
	PacketClose   PacketType = '1'
	PacketPing    PacketType = '2'
	PacketPong    PacketType = '3'
	PacketMessage PacketType = '4'
	PacketUpgrade PacketType = '5'
	PacketNoop    PacketType = '6'
)

func (t PacketType) String() string {
	switch t {
	case PacketOpen:
		return "open"
	case PacketClose:
		return "close"
	case PacketPing:
		return "ping"
	case PacketPong:
		return "pong"
	case PacketMessage:
		return "message"
	case PacketUpgrade:
		return "upgrade"
	case PacketNoop:
		return "noop"
	}
	return fmt.Sprintf("PacketType(%q)", byte(t))
}

// wire is the packet type's character as a string, for io.WriteString
// (no allocation, unlike a one-byte slice handed to an io.Writer).
func (t PacketType) wire() string {
	const types = "0123456"
	if t >= PacketOpen && t <= PacketNoop {
		return types[t-PacketOpen : t-PacketOpen+1]
	}
	return string(rune(t))
}

// payloadSeparator joins the packets of an HTTP long-polling payload.
const payloadSeparator = 0x1e

// Packet is one Engine.IO packet. Binary is set for a binary message (a
// binary WebSocket frame, or a 'b' packet of a polling payload); its Type
// is then PacketMessage. A packet's data is Data followed by Tail: a sender
// may share Data between many packets and give each its own Tail without
// joining them (Message). A decoded packet has no Tail.
type Packet struct {
	Type   PacketType
	Data   []byte
	Tail   []byte
	Binary bool
}

// ErrMalformed is the kind of every decoding error of this package: a
// packet or payload that is not Engine.IO v4. Match it with errors.Is.
var ErrMalformed = errors.New("engineio: malformed packet")

// DecodeError reports a malformed packet: which packet of a payload (0 for
// a single packet) and why.
type DecodeError struct {
	Index  int
	Reason string
	Err    error // an underlying error (base64), if any
}

func (e *DecodeError) Error() string {
	s := fmt.Sprintf("engineio: malformed packet %d: %s", e.Index, e.Reason)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is makes every DecodeError match ErrMalformed.
func (e *DecodeError) Is(target error) bool { return target == ErrMalformed }

func (e *DecodeError) Unwrap() error { return e.Err }

// DecodePacket decodes one packet: a WebSocket frame (binary says whether
// the frame was binary) or one packet of a polling payload. Data aliases b,
// except for base64 packets, which are decoded into a new slice.
func DecodePacket(b []byte, binary bool) (Packet, error) {
	return decodePacket(b, binary, 0)
}

func decodePacket(b []byte, binary bool, index int) (Packet, error) {
	if binary {
		return Packet{Type: PacketMessage, Data: b, Binary: true}, nil
	}
	if len(b) == 0 {
		return Packet{}, &DecodeError{Index: index, Reason: "empty packet"}
	}
	t := PacketType(b[0])
	if t == 'b' {
		if bytes.ContainsAny(b[1:], "\r\n") { // which Go's decoder skips
			return Packet{}, &DecodeError{Index: index, Reason: "bad base64: line break"}
		}
		data := make([]byte, base64.StdEncoding.DecodedLen(len(b)-1))
		n, err := base64.StdEncoding.Strict().Decode(data, b[1:])
		if err != nil {
			return Packet{}, &DecodeError{Index: index, Reason: "bad base64", Err: err}
		}
		return Packet{Type: PacketMessage, Data: data[:n], Binary: true}, nil
	}
	if t < PacketOpen || t > PacketNoop {
		return Packet{}, &DecodeError{Index: index, Reason: fmt.Sprintf("unknown packet type %q", b[0])}
	}
	return Packet{Type: t, Data: b[1:]}, nil
}

// DecodePayload decodes an HTTP long-polling payload, packets joined by
// the record separator 0x1e, calling fn for each packet in order. It stops
// at the first malformed packet (fn has seen the ones before it) or at
// fn's first error, which it returns.
func DecodePayload(b []byte, fn func(Packet) error) error {
	for i := 0; ; i++ {
		chunk, rest, more := bytes.Cut(b, []byte{payloadSeparator})
		p, err := decodePacket(chunk, false, i)
		if err != nil {
			return err
		}
		if err := fn(p); err != nil {
			return err
		}
		if !more {
			return nil
		}
		b = rest
	}
}

// AppendPacket appends p in its text form: the type character and the
// data (Data then Tail), or 'b' and the data in standard base64 for a
// binary message (as on polling; on a WebSocket, a binary message is the
// frame's bytes alone).
func AppendPacket(dst []byte, p Packet) []byte {
	if p.Binary {
		dst = append(dst, 'b')
		data := p.Data
		if len(p.Tail) > 0 { // base64 cannot be cut between the two: join them
			data = append(data[:len(data):len(data)], p.Tail...)
		}
		return base64.StdEncoding.AppendEncode(dst, data)
	}
	dst = append(dst, byte(p.Type))
	dst = append(dst, p.Data...)
	return append(dst, p.Tail...)
}

// AppendPayload appends packets as one polling payload.
func AppendPayload(dst []byte, packets []Packet) []byte {
	for i, p := range packets {
		if i > 0 {
			dst = append(dst, payloadSeparator)
		}
		dst = AppendPacket(dst, p)
	}
	return dst
}
