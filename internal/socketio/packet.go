package socketio

import (
	"encoding/json"
	"fmt"
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
	dst = append(dst, '0'+byte(p.Type))
	if p.Type.IsBinary() {
		dst = strconv.AppendInt(dst, int64(len(p.Attachments)), 10)
		dst = append(dst, '-')
	}
	if p.Namespace != "" && p.Namespace != MainNamespace {
		dst = append(dst, p.Namespace...)
		dst = append(dst, ',')
	}
	if p.HasID {
		dst = strconv.AppendUint(dst, p.ID, 10)
	}
	return append(dst, p.Data...)
}

// Encode returns p's Engine.IO messages: its text, then its attachments.
func Encode(p *Packet) (text []byte, attachments [][]byte) {
	return Append(nil, p), p.Attachments
}

// ArrayData builds an array payload from elements that are each valid
// JSON, without re-encoding them: ACK arguments, or an event's arguments
// after EventData's name.
func ArrayData(elems ...json.RawMessage) json.RawMessage {
	n := 2
	for _, e := range elems {
		n += len(e) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	for i, e := range elems {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e...)
	}
	return append(b, ']')
}

// EventData builds an EVENT payload: the name, then args as given.
func EventData(name string, args ...json.RawMessage) json.RawMessage {
	q, _ := json.Marshal(name) // a string always marshals
	return ArrayData(append([]json.RawMessage{q}, args...)...)
}

// ConnectErrorData builds a CONNECT_ERROR payload: {"message":...} and,
// unless data is nil, "data", which must be valid JSON. socket.io-client
// hands them to its connect_error listeners as err.message and err.data.
func ConnectErrorData(message string, data json.RawMessage) (json.RawMessage, error) {
	v := struct {
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data,omitempty"`
	}{message, data}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("socketio: connect error data: %w", err)
	}
	return b, nil
}
