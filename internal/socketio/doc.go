// Package socketio is a Socket.IO v5 packet codec (socket.io-parser's
// format): CONNECT with its auth payload, CONNECT_ERROR, DISCONNECT, EVENT
// and ACK with ids, BINARY_EVENT and BINARY_ACK with their attachments, and
// namespaces. Packets travel as Engine.IO messages (package engineio): a
// packet's text form is one text message; a binary packet's attachments
// follow as binary messages.
//
// Payloads are kept as raw JSON, byte for byte: the decoder validates them
// (json.Valid, the shape each packet type requires, placeholders that name
// an attachment) but never re-encodes, so an argument such as a large
// integer reaches the log exactly as the client sent it. Malformed input
// returns a *DecodeError whose kind (ErrPayload, ErrID, ...) errors.Is
// finds; the decoder never panics (fuzz tests hold it to that).
//
// # Concurrency
//
// A Decoder belongs to one connection's reader. Packets, Append and the
// payload builders have no shared state.
package socketio
