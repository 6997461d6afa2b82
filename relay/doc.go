// Package relay is roomlog's edge process: an HTTP server whose /ws endpoint
// accepts WebSocket clients (and /socket.io/ Socket.IO clients), appends every client event to the Kafka events
// topic (keyed by room), and fans the records its consumer reads back out to
// the local sockets of each room.
//
// # The path of a message, by file
//
//	handler_websocket.go  serveWS admits and upgrades; wsReader reads a frame
//	protocol.go           decodeFrame: JSON → clientFrame, validated
//	ops.go                the op table: permissions, membership, the record, the handler
//	conn.go               the op's handler appends its record (appendRecord)
//	producer.go           Server.produce: franz-go, acks=all, idempotent
//	                      … the log, consumer.Consumer folds the record …
//	deliver.go            Server.Deliver: the sender's ack, then fan-out
//	hub.go                rooms → local subscriptions; a frame encoded once per room
//	writer.go             conn.enqueue → wsWriter.writeLoop → the socket (asyncconn)
//
// A Socket.IO client takes the same path from ops.go on:
// handler_socketio.go (serveSocketIO admits the handshake; the session's
// reader decodes packets), protocol_sio.go (events → clientFrame; sioCodec
// encodes acks and deliveries), and sioTransport hands frames to the
// Engine.IO session (internal/engineio), whose writer writes them. peers.go
// forwards requests for other relays' sessions to their owner.
//
// The backend API (api.go) goes through the same op table. A publish is
// acknowledged only when the log has it and this relay has folded it; a
// message is delivered only when read back from the log, so every relay
// delivers the same records in the same per-room order.
//
// # Concurrency
//
// Server methods are safe for concurrent use. What runs, and what may touch a
// connection:
//
//   - The connection's reader (wsReader), one per socket: it reads frames
//     and runs every op, so ops of one connection run in order. On exit it
//     leaves the connection's rooms, then waits for the socket to close.
//     Between frames it parks (asyncconn.WaitRead) and its goroutine ends;
//     asyncconn's poller starts a new one when the socket is readable or
//     closed. One runs at a time: the park is a run's last act.
//   - The connection's writer (wsWriter.writeLoop): one goroutine at a time
//     writes data frames, and none while the queue is empty, so an idle
//     socket has no writer. The socket is an asyncconn.Conn (listen.go)
//     whose writes never block, so the goroutine that queues a frame into an
//     empty queue (the consumer's, fanning a record out) writes it itself,
//     and whatever the client cannot take at once goes to asyncconn's
//     flusher goroutine; without one (a socket with no file descriptor),
//     enqueue starts a writer goroutine for the burst. After a shutdown the
//     last writer (or a finisher goroutine that shutdown starts when none
//     runs) flushes, sends the close frame and closes the socket.
//   - Timers, each calling only WriteControl or shutdown: the pinger
//     (every PingInterval; it also closes a client silent for PingInterval +
//     PongTimeout, since a parked reader has no read deadline running), and in connsec.go the auth deadline, the token
//     expiry and the idle check.
//   - The consumer's folder goroutine calls Server.Deliver for every record
//     (deliver.go): acks to the sender, join subscriptions and recoveries
//     from the in-memory window, fan-out through the hub. It never blocks:
//     frames go through enqueue, and a client whose queue is full is closed
//     (DisconnectSlow).
//   - franz-go's produce callbacks (appendRecord) send log_unavailable and
//     note the connection's last write.
//   - A publish's overdue timer (conn.watchPublish, one per publish with a
//     request id, stopped when the log settles it): after ProduceTimeout it
//     sends log_unavailable and marks the publish answered under conn.mu, so
//     neither its late fold nor the producer's callback answers again.
//   - Recoveries that read the log run on goroutines of their own (Server.bg)
//     and hand their backlog over with enqueueWait, which waits for room.
//   - The lease and snapshot loops (lease.go, snapshot.go) on Server.bg;
//     a relay whose session the log ended closes every socket (4002).
//   - The secret file watchers (secrets.go, internal/secretfile), one
//     polling goroutine each, from Start to Shutdown; a reload swaps the
//     verifier's HS256 secrets and the API keys atomically.
//   - Control records (control.go) are applied on the consumer's
//     goroutine in Deliver: closing connections (shutdown) and removing
//     them from rooms (forget, hub.remove, a queued removed frame) never
//     block.
//   - The re-home loop (rehome.go) on Server.bg: it appends copies of the
//     misplaced records of the partitions this relay owns, which the
//     consumer's folder notes (and clears when their copy is folded);
//     franz-go's produce callbacks mark a failed copy for a retry.
//   - A Socket.IO connection (handler_socketio.go) has the Engine.IO
//     session's goroutines instead of the WebSocket reader and writer: the
//     connection's reader (sioReader: it runs every op, and its Closed
//     leaves the rooms) is the session's Handler, called one message at a
//     time by a polling POST's handler or the session's WebSocket reader
//     (which parks between messages, as wsReader does); the writer is
//     engineio's (a WebSocket writer goroutine that runs only while the
//     session's queue is non-empty, or the pending poll's HTTP handler);
//     engineio's heartbeat timer and, during an upgrade, the probe's HTTP
//     handler.
//     sioTransport.enqueue and push call Session.Send, which never blocks
//     (a full queue closes the session as a slow client); enqueueWait calls
//     Session.SendWait, which waits for room, from recovery goroutines only.
//     With connection state recovery, each event is stamped with the
//     socket's offset (a tail of its own after the shared frame) and
//     queued under sioStamp.mu (sio_recovery.go), so the offsets follow
//     queue order; the recovery goroutines queue their
//     backlog one event at a time (TrySend, then WaitSpace outside the
//     lock).
//     The relay's timers (auth deadline, which also bounds the wait for
//     CONNECT, token expiry, idle) are connsec.go's; there is no pinger
//     (engineio pings). Requests for another relay's session run a
//     reverse proxy (peers.go) on their HTTP handler's goroutine.
//   - HTTP handlers: /ws admission, the backend API (which waits for its
//     records' folds, never touching a connection), the console's read-only
//     API (admin.go: partitions' read locks to copy out, log reads with
//     clients of their own), metrics and health.
//
// Locks and their order are in docs/DESIGN.md. No lock is held while calling
// into franz-go or writing to a socket.
package relay
