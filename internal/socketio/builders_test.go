package socketio

import (
	"encoding/json"
	"fmt"
)

// Payload builders for the tests' own server (interop_test.go) and the
// encoder's tests; the relay builds its payloads in place (relay/protocol_sio.go).

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
