// Package engineio is an Engine.IO v4 server (the transport under
// Socket.IO v5), as socket.io-client 4.x speaks it: the handshake, server
// heartbeats, HTTP long-polling (packets joined with 0x1e, binary in base64),
// the upgrade to WebSocket (probe, upgrade, noop) and WebSocket alone. It
// knows nothing of Socket.IO: a session carries text and binary messages.
//
// # Sessions without sticky load balancing
//
// Every polling request and the upgrade name their session (sid). A server
// holds the sessions it created; Config.NewSID lets the caller make a sid
// name its owner, and Config.Forward is asked for a request whose sid this
// server does not hold, so the caller can proxy it to the owner.
//
// # Concurrency
//
// A Session has one reader and one writer:
//   - the reader hands the client's messages to the session's Handler
//     (from Config.OnOpen), one call at a time, never concurrently (the
//     session's readMu): on polling, each POST's handler, message by
//     message (a POST is answered once its messages are served); on a
//     WebSocket, a reader that parks between messages without a goroutine
//     (internal/wsread), so an idle session holds no goroutine at all. The
//     Handler's Closed runs once, after the close and the last Message, on
//     a goroutine of its own.
//   - the writer: on a WebSocket, one writer that runs only while the send
//     queue is non-empty (started by Send, exiting when it has drained it):
//     a goroutine of its own, or, when the socket's writes never block (an
//     asyncconn.Conn), the goroutine of the Send or TrySend that found no
//     writer running; on polling, the pending GET handler, which takes the
//     whole queue.
//
// Send and Close may be called from any goroutine and never block on the
// network: Send appends to a bounded queue (overflow closes the session
// with ReasonSlowClient). Beside these run a heartbeat timer per session
// (time.AfterFunc: queue a ping, or close when its pong is late), the
// upgrade's HTTP handler while a WebSocket probes (it writes what a session
// that closed after the probe was answered still had queued), and, for a polling
// session that closes between two polls, a timer that drops it after
// Config.CloseFlush.
//
// Lock order: Session.readMu, then Session.mu, then Server.mu. Only readMu
// is held while calling the caller's Handler, and no lock while writing to
// a socket (a writer run by Send holds the caller's locks, if any, but its
// writes never block).
package engineio
