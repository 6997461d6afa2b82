package socketio

import (
	"encoding/json"
	"strconv"
)

// Type is a Socket.IO v5 packet type.
type Type byte

// The packet types of Socket.IO v5.
const (
	Connect      Type = 0
	Disconnect   Type = 1
	Event        Type = 2
	Ack          Type = 3
	ConnectError Type = 4
	BinaryEvent  Type = 5
	BinaryAck    Type = 6
)

func (t Type) String() string {
	switch t {
	case Connect:
		return "CONNECT"
	case Disconnect:
		return "DISCONNECT"
	case Event:
		return "EVENT"
	case Ack:
		return "ACK"
	case ConnectError:
		return "CONNECT_ERROR"
	case BinaryEvent:
		return "BINARY_EVENT"
	case BinaryAck:
		return "BINARY_ACK"
	}
	return "Type(" + strconv.Itoa(int(t)) + ")"
}

// IsBinary reports whether packets of type t carry binary attachments.
func (t Type) IsBinary() bool { return t == BinaryEvent || t == BinaryAck }

// MainNamespace is the namespace of a packet that names none.
const MainNamespace = "/"

// MaxID is the largest ack id: JavaScript's largest safe integer, so an id
// the client sent comes back unchanged.
const MaxID = 1<<53 - 1

// Packet is one Socket.IO packet.
//
// Data is the JSON payload exactly as received (or to send): an object for
// CONNECT (the auth payload) and CONNECT_ERROR, an array for EVENT (the
// event name, then the arguments) and ACK (the arguments); nil when absent.
// For BINARY_EVENT and BINARY_ACK, Data holds placeholders
// {"_placeholder":true,"num":N} where attachment N goes, and Attachments
// holds the binary attachments in order.
type Packet struct {
	Type        Type
	Namespace   string // MainNamespace when the packet names none
	ID          uint64 // the ack id, if HasID
	HasID       bool
	Data        json.RawMessage
	Attachments [][]byte
}

// Event splits an EVENT or BINARY_EVENT payload into the event name and the
// arguments, each exactly as received. A numeric event name, which the
// protocol allows, is returned as its JSON text with numeric set.
func (p *Packet) Event() (name string, numeric bool, args []json.RawMessage, err error) {
	elems, err := splitArray(p.Data)
	if err != nil || len(elems) == 0 {
		return "", false, nil, &DecodeError{Err: ErrPayload, Reason: "not an event"}
	}
	first := elems[0]
	if first[0] != '"' {
		return string(first), true, elems[1:], nil
	}
	if err := json.Unmarshal(first, &name); err != nil {
		return "", false, nil, &DecodeError{Err: ErrPayload, Reason: "bad event name"}
	}
	return name, false, elems[1:], nil
}

// Args splits an array payload (ACK, BINARY_ACK, or an event's whole
// array) into its elements, each exactly as received.
func (p *Packet) Args() ([]json.RawMessage, error) {
	elems, err := splitArray(p.Data)
	if err != nil {
		return nil, &DecodeError{Err: ErrPayload, Reason: "not an array"}
	}
	return elems, nil
}

// Append appends p's text form, the packet's first Engine.IO message; for a
// binary packet each attachment follows as a binary message of its own. A
// binary packet announces len(p.Attachments) attachments. Data is written
// as is: it must be valid JSON of the packet type's shape.
func Append(dst []byte, p *Packet) []byte {
	dst = appendHeader(dst, p.Type, len(p.Attachments), p.Namespace, p.ID, p.HasID)
	return append(dst, p.Data...)
}

// AppendHeader appends the text form of a packet without attachments up to
// its data: type, namespace (none for the main one) and id (when hasID).
// The caller appends the data, for packets built in place.
func AppendHeader(dst []byte, t Type, namespace string, id uint64, hasID bool) []byte {
	return appendHeader(dst, t, 0, namespace, id, hasID)
}

func appendHeader(dst []byte, t Type, attachments int, namespace string, id uint64, hasID bool) []byte {
	dst = append(dst, '0'+byte(t))
	if t.IsBinary() {
		dst = strconv.AppendInt(dst, int64(attachments), 10)
		dst = append(dst, '-')
	}
	if namespace != "" && namespace != MainNamespace {
		dst = append(dst, namespace...)
		dst = append(dst, ',')
	}
	if hasID {
		dst = strconv.AppendUint(dst, id, 10)
	}
	return dst
}

// Encode returns p's Engine.IO messages: its text, then its attachments.
func Encode(p *Packet) (text []byte, attachments [][]byte) {
	return Append(nil, p), p.Attachments
}
