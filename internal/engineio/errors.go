package engineio

import (
	"encoding/json"
	"errors"
	"net/http"
)

// ErrorCode is an Engine.IO HTTP error code, sent as the JSON body
// {"code":N,"message":"..."} of a refused request, as the reference server
// does.
type ErrorCode int

// Engine.IO's error codes (engine.io Server.errors).
const (
	CodeUnknownTransport    ErrorCode = 0 // transport missing, unknown or disabled
	CodeUnknownSID          ErrorCode = 1 // no such session here (and not forwarded)
	CodeBadHandshakeMethod  ErrorCode = 2 // a handshake that is not a GET
	CodeBadRequest          ErrorCode = 3 // anything else the protocol does not allow
	CodeForbidden           ErrorCode = 4 // origin refused
	CodeUnsupportedProtocol ErrorCode = 5 // EIO is not 4
)

func (c ErrorCode) String() string {
	switch c {
	case CodeUnknownTransport:
		return "Transport unknown"
	case CodeUnknownSID:
		return "Session ID unknown"
	case CodeBadHandshakeMethod:
		return "Bad handshake method"
	case CodeBadRequest:
		return "Bad request"
	case CodeForbidden:
		return "Forbidden"
	case CodeUnsupportedProtocol:
		return "Unsupported protocol version"
	}
	return "Unknown error"
}

// ErrClosed is the kind of the errors Send, TrySend and SendWait return
// once the session has closed; the error is a *CloseError that names the
// reason.
var ErrClosed = errors.New("engineio: session closed")

// CloseReason says why a session ended. Code is the WebSocket close code
// sent when the session is on a WebSocket (Engine.IO clients do not act on
// it, but proxies and logs see it). Reasons are compared by value.
type CloseReason struct {
	Code int
	Text string
}

// Reasons the package closes sessions with, and a few for callers.
var (
	// ReasonServerClose: the server closed the session (Close, or the
	// handler's Message returned false).
	ReasonServerClose = CloseReason{1000, "server close"}
	// ReasonShutdown: the server is draining. Only the transport closes:
	// a Socket.IO client sees "transport close" and reconnects by itself.
	ReasonShutdown = CloseReason{1001, "server shutting down"}
	// ReasonClientClose: the client sent a close packet or closed its
	// WebSocket.
	ReasonClientClose = CloseReason{1000, "client close"}
	// ReasonTransportError: a poll request that ended early, overlapping
	// requests, a failed read or write.
	ReasonTransportError = CloseReason{1011, "transport error"}
	// ReasonParseError: a malformed or unexpected packet.
	ReasonParseError = CloseReason{1002, "parse error"}
	// ReasonTooBig: a payload over MaxPayload.
	ReasonTooBig = CloseReason{1009, "payload too large"}
	// ReasonPingTimeout: no pong within PingTimeout.
	ReasonPingTimeout = CloseReason{1000, "ping timeout"}
	// ReasonSlowClient: the send queue overflowed or a write missed its
	// deadline.
	ReasonSlowClient = CloseReason{4001, "slow client"}
)

func (r CloseReason) String() string { return r.Text }

// CloseError is returned by a closed session's Send, TrySend and SendWait.
type CloseError struct {
	Reason CloseReason
}

func (e *CloseError) Error() string { return "engineio: session closed: " + e.Reason.Text }

// Is makes every CloseError match ErrClosed.
func (e *CloseError) Is(target error) bool { return target == ErrClosed }

// refuse writes an Engine.IO error response.
func (s *Server) refuse(w http.ResponseWriter, status int, code ErrorCode) {
	body, _ := json.Marshal(struct {
		Code    ErrorCode `json:"code"`
		Message string    `json:"message"`
	}{code, code.String()})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}
