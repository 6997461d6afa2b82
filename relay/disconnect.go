package relay

import (
	"github.com/gorilla/websocket"

	"github.com/roomlog/roomlog/internal/trunc"
)

// This file is every way the relay ends a connection, as values: the
// WebSocket close code a client sees, the reason text it reads, and the
// label of roomlog_closes_total. It mirrors the "Close codes" table of
// docs/protocol.md; add a row there when you add a value here.

// WebSocket close codes the relay sends, documented in docs/protocol.md.
const (
	CloseNormal          = websocket.CloseNormalClosure   // 1000
	CloseGoingAway       = websocket.CloseGoingAway       // 1001: relay shutting down; reconnect
	CloseUnsupportedData = websocket.CloseUnsupportedData // 1003: binary frame
	CloseTooBig          = websocket.CloseMessageTooBig   // 1009: frame over --max-message-bytes
	CloseSlowClient      = 4001                           // send queue overflowed or a write timed out
	CloseSessionEnded    = 4002                           // the relay's lease ended (it was cut off from the log); reconnect and rejoin
	CloseTokenExpired    = 4003                           // the connection's token expired and was not refreshed
	CloseUnauthorized    = 4004                           // no valid token within --auth-timeout, or a refused first auth frame
	CloseRateLimited     = 4008                           // sustained sending far over the rate limit
	CloseIdle            = 4009                           // no frame from the client for --idle-timeout
	CloseRevoked         = 4010                           // the connection's token was revoked (/api/revoke)
	CloseByServer        = 4011                           // the backend disconnected the user (/api/disconnect)
	CloseUserLimit       = 4012                           // the user holds --max-conns-per-user connections on this relay
)

// Disconnect is why the relay closes a connection. Code and Reason go into
// the close frame; Label names the reason in roomlog_closes_total.
type Disconnect struct {
	Code   int
	Reason string
	Label  string
}

// The reasons a connection ends. A reason that needs detail (a duration, a
// token error) is made from one of these with With.
var (
	DisconnectNormal       = Disconnect{CloseNormal, "", "normal"}
	DisconnectShutdown     = Disconnect{CloseGoingAway, "relay shutting down; reconnect", "going_away"}
	DisconnectPingFailed   = Disconnect{CloseGoingAway, "ping failed", "going_away"}
	DisconnectPongTimeout  = Disconnect{CloseGoingAway, "no pong within the pong timeout", "going_away"}
	DisconnectBinary       = Disconnect{CloseUnsupportedData, "binary frames are not supported; send JSON text frames", "binary"}
	DisconnectTooBig       = Disconnect{CloseTooBig, "frame too big", "too_big"}
	DisconnectSlow         = Disconnect{CloseSlowClient, "send queue full: client too slow", "slow_client"}
	DisconnectWriteFailed  = Disconnect{CloseSlowClient, "write failed or timed out", "slow_client"}
	DisconnectSlowRecovery = Disconnect{CloseSlowClient, "too many messages during recovery", "slow_client"}
	DisconnectResumeLost   = Disconnect{CloseGoingAway, "the log no longer holds what the resumed session missed; reconnect", "resume_lost"}
	DisconnectSessionEnded = Disconnect{CloseSessionEnded, "relay lost its lease; reconnect and rejoin", "session_ended"}
	DisconnectTokenExpired = Disconnect{CloseTokenExpired, "token expired; reconnect with a fresh token", "token_expired"}
	DisconnectAuthTimeout  = Disconnect{CloseUnauthorized, "no valid token within the auth timeout", "unauthorized"}
	DisconnectAuthRefused  = Disconnect{CloseUnauthorized, "authentication refused", "unauthorized"}
	DisconnectRateLimited  = Disconnect{CloseRateLimited, "sustained sending over the rate limit", "rate_limited"}
	DisconnectIdle         = Disconnect{CloseIdle, "idle: no frame within the idle timeout", "idle"}
	DisconnectRevoked      = Disconnect{CloseRevoked, "token revoked; reconnect with a new token", "revoked"}
	DisconnectByServer     = Disconnect{CloseByServer, "disconnected by the server", "disconnected"}
	DisconnectUserLimit    = Disconnect{CloseUserLimit, "too many connections for this user", "max_conns_per_user"}
)

// disconnectReasonMaxBytes keeps a reason inside a close frame's 123 bytes.
const disconnectReasonMaxBytes = 100

// With returns d with reason as its text, cut to fit a close frame.
func (d Disconnect) With(reason string) Disconnect {
	d.Reason = trunc.String(reason, disconnectReasonMaxBytes)
	return d
}

// closeMessage is d's WebSocket close frame payload.
func (d Disconnect) closeMessage() []byte { return websocket.FormatCloseMessage(d.Code, d.Reason) }
