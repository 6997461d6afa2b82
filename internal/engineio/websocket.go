package engineio

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/gorilla/websocket"

	"github.com/roomlog/roomlog/internal/asyncconn"
	"github.com/roomlog/roomlog/internal/wsread"
)

// openWebSocket serves a session that starts on a WebSocket
// (transports: ['websocket']): the open packet, then the session's reader,
// parked until the client sends (internal/wsread). This goroutine, the HTTP
// server's, ends.
func (s *Server) openWebSocket(w http.ResponseWriter, r *http.Request, sess *Session) {
	hj := &wsread.Hijacker{ResponseWriter: w}
	ws, err := s.up.Upgrade(hj, r, nil)
	if err != nil {
		return // Upgrade has answered
	}
	ws.SetReadLimit(int64(s.cfg.MaxPayload))
	open := AppendPacket(nil, Packet{Type: PacketOpen, Data: s.openData(sess.id, false)})
	_ = ws.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	if err := ws.WriteMessage(websocket.TextMessage, open); err != nil {
		ws.Close()
		return
	}
	sess.ws = ws
	sess.useAsync()
	if !s.add(sess) {
		closeWebSocket(ws, ReasonShutdown, time.Now().Add(s.cfg.WriteTimeout))
		return
	}
	sess.open(r)
	sess.startReader(hj.Buffer())
}

// serveUpgrade moves a polling session to a WebSocket: the client probes
// ("2probe", answered "3probe"), pauses polling (a pending poll is answered
// at once, with a noop if nothing is queued), then sends "5"; from then on
// the WebSocket is the transport and the reader reads it.
func (s *Session) serveUpgrade(w http.ResponseWriter, r *http.Request) {
	cfg := &s.srv.cfg
	s.mu.Lock()
	if s.closed || s.ws != nil || s.upgrading || cfg.DisablePolling {
		s.mu.Unlock()
		s.srv.refuse(w, http.StatusBadRequest, CodeBadRequest)
		return
	}
	// Claim the upgrade before the handshake so a second one is refused.
	s.upgrading = true
	s.mu.Unlock()
	abort := func(ws *websocket.Conn) {
		s.mu.Lock()
		s.upgrading, s.probe, s.probed = false, nil, false
		s.mu.Unlock()
		if ws != nil {
			ws.Close()
		}
	}
	hj := &wsread.Hijacker{ResponseWriter: w}
	ws, err := s.srv.up.Upgrade(hj, r, nil)
	if err != nil {
		abort(nil)
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		abort(ws)
		return
	}
	s.probe = ws
	s.mu.Unlock()
	ws.SetReadLimit(int64(cfg.MaxPayload))
	deadline := time.Now().Add(cfg.UpgradeTimeout)
	_ = ws.SetReadDeadline(deadline)
	if !readPacket(ws, PacketPing, "probe") {
		abort(ws)
		return
	}
	// probed is set before "3probe" goes out: from the moment the client
	// may have it, a close must keep the probe for the flush (closeLocked).
	s.mu.Lock()
	s.probed = true
	s.mu.Unlock()
	_ = ws.SetWriteDeadline(time.Now().Add(cfg.WriteTimeout))
	if err := ws.WriteMessage(websocket.TextMessage, []byte("3probe")); err != nil {
		abort(ws)
		return
	}
	s.mu.Lock()
	s.notifyLocked()
	s.mu.Unlock()
	if !readPacket(ws, PacketUpgrade, "") {
		abort(ws)
		return
	}
	_ = ws.SetReadDeadline(time.Time{})
	s.mu.Lock()
	if s.closed {
		s.flushClosedUpgrade(ws) // unlocks
		return
	}
	s.ws, s.upgrading, s.probe, s.probed = ws, false, nil, false
	s.useAsync()
	s.notifyLocked() // a pending poll ends with a noop
	if len(s.queue) > 0 && !s.writing {
		s.startWriterLocked()
	}
	s.mu.Unlock()
	s.startReader(hj.Buffer())
}

// flushClosedUpgrade ends an upgrade whose session closed after the probe
// was answered: the client had paused polling, so what is still queued
// (unless a poll took it) goes out on ws, then the close. It writes on the
// upgrade's goroutine: the session is closed, no writer may start. Called
// with s.mu held; it unlocks it.
func (s *Session) flushClosedUpgrade(ws *websocket.Conn) {
	s.ws, s.upgrading, s.probe, s.probed = ws, false, nil, false
	s.wsDone, s.final = true, true
	batch := s.queue
	s.queue = nil
	s.tookQueueLocked()
	reason := s.reason
	s.mu.Unlock()
	s.srv.remove(s)
	deadline := time.Now().Add(s.srv.cfg.WriteTimeout)
	_ = s.writeBatch(batch, deadline) // the close follows either way
	closeWebSocket(ws, reason, deadline)
}

// readPacket reads one text frame and reports whether it is the packet
// wanted.
func readPacket(ws *websocket.Conn, t PacketType, data string) bool {
	typ, b, err := ws.ReadMessage()
	if err != nil || typ != websocket.TextMessage {
		return false
	}
	p, err := DecodePacket(b, false)
	return err == nil && p.Type == t && string(p.Data) == data
}

// startReader starts reading the WebSocket transport: between messages the
// reader parks without a goroutine when the socket allows it (internal/wsread).
// Silence is the heartbeat's to judge: no read deadline.
func (s *Session) startReader(br *bufio.Reader) {
	wsread.Start(s.ws, br, wsread.Config{Frame: s.readFrame, End: func() {}})
}

// readFrame reads one WebSocket message and serves its packet; false: the
// session is closed.
func (s *Session) readFrame() bool {
	typ, b, err := s.ws.ReadMessage()
	if err != nil {
		s.fail(readErrorReason(err))
		return false
	}
	p, err := DecodePacket(b, typ == websocket.BinaryMessage)
	if err != nil {
		s.fail(ReasonParseError)
		return false
	}
	switch p.Type {
	case PacketMessage:
		_, more := s.deliver(Message{Binary: p.Binary, Data: p.Data})
		return more
	case PacketPong:
		s.onPong()
	case PacketClose:
		s.fail(ReasonClientClose)
		return false
	case PacketPing:
		s.fail(ReasonParseError) // in v4 only the server pings
		return false
	}
	return true
}

func readErrorReason(err error) CloseReason {
	var ce *websocket.CloseError
	switch {
	case errors.As(err, &ce):
		return ReasonClientClose
	case errors.Is(err, websocket.ErrReadLimit):
		return ReasonTooBig
	case errors.Is(err, net.ErrClosed):
		return ReasonServerClose // only reached if the session was not closed first
	}
	return ReasonTransportError
}

// The WebSocket writer runs only while there is something to write (or a
// close to perform): an idle session costs no writer goroutine. When the
// socket's writes never block (an asyncconn.Conn, as the relay's listener
// makes), Send and TrySend run it on their own goroutine (kickUnlock).

// useAsync makes ws's writes never block, if its connection is an
// asyncconn.Conn; a client that misses its write deadline or leaves too
// much unread then fails the session as slow. Called once ws is set, before
// any writer runs.
func (s *Session) useAsync() {
	if !asyncconn.Enable(s.ws.NetConn()) {
		return
	}
	s.async = asyncconn.Find(s.ws.NetConn())
	s.async.SetOnFail(func(error) { s.fail(ReasonSlowClient) })
}

// startWriterLocked: the session's handler is still counted in wg here
// (writers start only while the session is open, or from closeLocked), so
// this Add never races Shutdown's Wait.
func (s *Session) startWriterLocked() {
	s.writing = true
	s.srv.wg.Add(1)
	go s.writeLoop()
}

func (s *Session) writeLoop() {
	defer s.srv.wg.Done()
	cfg := &s.srv.cfg
	var batch []Packet
	for {
		s.mu.Lock()
		if len(s.queue) == 0 {
			if s.closed && !s.wsDone {
				s.wsDone = true
				reason, deadline := s.reason, s.closedAt.Add(cfg.CloseFlush)
				s.writing = false
				s.mu.Unlock()
				closeWebSocket(s.ws, reason, deadline)
				return
			}
			s.writing = false
			s.mu.Unlock()
			return
		}
		batch, s.queue = s.queue, batch[:0]
		s.tookQueueLocked()
		deadline := time.Now().Add(cfg.WriteTimeout)
		if s.closed {
			deadline = s.closedAt.Add(cfg.CloseFlush)
		}
		s.mu.Unlock()
		if err := s.writeBatch(batch, deadline); err != nil {
			s.fail(writeErrorReason(err))
		}
		clear(batch)
	}
}

// writeBatch writes packets in order until one fails. One deadline for the
// batch: it bounds the batch's writes together, as a poll's WriteTimeout
// bounds its whole payload. The caller is the session's only writer.
func (s *Session) writeBatch(batch []Packet, deadline time.Time) error {
	_ = s.ws.SetWriteDeadline(deadline) // gorilla only stores it
	if s.async != nil && len(batch) > 1 {
		s.async.Cork() // the batch in one system call
		defer s.async.Uncork()
	}
	for _, p := range batch {
		if err := s.writePacket(p); err != nil {
			return err
		}
	}
	return nil
}

// writePacket writes one packet as one WebSocket message: its type, Data
// and Tail through one writer (a binary message is its data alone).
func (s *Session) writePacket(p Packet) error {
	if p.Binary && len(p.Tail) == 0 {
		return s.ws.WriteMessage(websocket.BinaryMessage, p.Data)
	}
	typ := websocket.TextMessage
	if p.Binary {
		typ = websocket.BinaryMessage
	}
	w, err := s.ws.NextWriter(typ)
	if err != nil {
		return err
	}
	if !p.Binary {
		if _, err := io.WriteString(w, p.Type.wire()); err != nil {
			return err
		}
	}
	if _, err := w.Write(p.Data); err != nil {
		return err
	}
	if len(p.Tail) > 0 {
		if _, err := w.Write(p.Tail); err != nil {
			return err
		}
	}
	return w.Close()
}

// writeErrorReason: a missed deadline is a slow client; anything else, a
// broken transport.
func writeErrorReason(err error) CloseReason {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, asyncconn.ErrOverflow) {
		return ReasonSlowClient
	}
	return ReasonTransportError
}

func closeWebSocket(ws *websocket.Conn, reason CloseReason, deadline time.Time) {
	msg := websocket.FormatCloseMessage(reason.Code, reason.Text)
	_ = ws.WriteControl(websocket.CloseMessage, msg, deadline)
	ws.Close()
}
