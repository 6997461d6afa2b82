package engineio

import (
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/roomlog/roomlog/internal/asyncconn"
)

// Message is one Engine.IO message: text (UTF-8) or binary. Its bytes are
// Data followed by Tail, written as one message (one WebSocket message, one
// packet of a polling payload): a message sent to many sessions can share
// Data and carry a small Tail of each session's own, with no copy of Data
// per session. A received message has no Tail. Data and Tail passed to Send
// must not be modified afterwards: they are written as they are, possibly
// after Send has returned, and may be shared by many sessions.
type Message struct {
	Binary bool
	Data   []byte
	Tail   []byte
}

// packet is m's queued packet.
func (m *Message) packet() Packet {
	return Packet{Type: PacketMessage, Data: m.Data, Tail: m.Tail, Binary: m.Binary}
}

// Transport names, as on the wire.
const (
	TransportPolling   = "polling"
	TransportWebSocket = "websocket"
)

// Session is one Engine.IO client, on HTTP long-polling or WebSocket; an
// upgrade moves it from the first to the second without the caller
// noticing. See the package comment for its concurrency rules.
type Session struct {
	srv *Server
	id  string

	done chan struct{} // closed on close

	// readMu is held while the handler runs (Message, Closed): one call at
	// a time, whichever transport the message came on.
	readMu sync.Mutex

	mu       sync.Mutex
	h        Handler // set once by open; nil before
	opened   bool    // open has set h (or found none)
	closed   bool
	reason   CloseReason
	closedAt time.Time
	queue    []Packet
	ws       *websocket.Conn // the transport, once a WebSocket; never changes after
	async    *asyncconn.Conn // ws's connection when its writes never block, else nil
	writing  bool            // a WebSocket writer runs
	wsDone   bool            // the writer has closed ws

	upgrading bool            // an upgrade is under way
	probe     *websocket.Conn // its WebSocket, once handshaken
	probed    bool            // probe answered: answer polls at once so the client can pause polling
	polling   bool            // a GET is pending
	posting   bool            // a POST is being read
	wake      chan struct{}   // cap 1: wakes the pending GET
	space     chan struct{}   // cap 1: a writer took the queue (SendWait, WaitSpace)
	final     bool            // the close packet went out (polling); the session left the registry
	timer     *time.Timer
	timerGen  uint64
	awaiting  bool // a ping is out, its pong not yet in
}

func newSession(srv *Server, id string) *Session {
	return &Session{
		srv:   srv,
		id:    id,
		done:  make(chan struct{}),
		wake:  make(chan struct{}, 1),
		space: make(chan struct{}, 1),
	}
}

// ID returns the session id (sid).
func (s *Session) ID() string { return s.id }

// Transport returns the session's current transport.
func (s *Session) Transport() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ws != nil {
		return TransportWebSocket
	}
	return TransportPolling
}

// Done is closed when the session closes.
func (s *Session) Done() <-chan struct{} { return s.done }

// Reason returns why the session closed; the zero CloseReason while open.
func (s *Session) Reason() CloseReason {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reason
}

// Send queues msgs, in order and all together, and returns without
// waiting for the socket. If the queue would exceed Config.SendQueue, the
// session is closed with ReasonSlowClient and nothing is queued. On a
// closed session it returns a *CloseError.
func (s *Session) Send(msgs ...Message) error {
	return s.send(true, msgs)
}

// Queue is Send whose messages are always written by a writer goroutine,
// never on the caller's: for a message going to many sessions at once,
// whose writes are better spread over the CPUs.
func (s *Session) Queue(msgs ...Message) error {
	return s.send(false, msgs)
}

func (s *Session) send(inline bool, msgs []Message) error {
	s.mu.Lock()
	if s.closed {
		defer s.mu.Unlock()
		return &CloseError{s.reason}
	}
	if len(s.queue)+len(msgs) > s.srv.cfg.SendQueue {
		defer s.mu.Unlock()
		s.closeLocked(ReasonSlowClient, false)
		return &CloseError{s.reason}
	}
	for _, m := range msgs {
		s.queue = append(s.queue, m.packet())
	}
	s.kickUnlock(inline)
	return nil
}

// TrySend queues msgs like Send when they all fit in the queue and reports
// true; when they do not, it queues nothing, leaves the session open and
// reports false (wait with WaitSpace and try again). On a closed session it
// returns a *CloseError.
func (s *Session) TrySend(msgs ...Message) (bool, error) {
	s.mu.Lock()
	if s.closed {
		defer s.mu.Unlock()
		return false, &CloseError{s.reason}
	}
	if len(s.queue)+len(msgs) > s.srv.cfg.SendQueue {
		s.mu.Unlock()
		return false, nil
	}
	for _, m := range msgs {
		s.queue = append(s.queue, m.packet())
	}
	s.kickUnlock(true)
	return true, nil
}

// WaitSpace waits until a writer takes the queue (there may be room for a
// TrySend), the session closes, done closes, or at most d.
func (s *Session) WaitSpace(done <-chan struct{}, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.space:
	case <-s.done:
	case <-done:
	case <-t.C:
	}
}

// SendWait queues msgs in order like Send, but waits for room in the queue
// instead of closing the session: for a backlog longer than the queue. It
// queues as many as fit, waits until a writer takes the queue, and goes on;
// it gives up (returning nil, with the rest not queued) when done closes,
// and returns a *CloseError once the session has closed. Other goroutines'
// Sends may interleave between its parts.
func (s *Session) SendWait(done <-chan struct{}, msgs ...Message) error {
	for len(msgs) > 0 {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return &CloseError{s.reason}
		}
		if n := min(s.srv.cfg.SendQueue-len(s.queue), len(msgs)); n > 0 {
			for _, m := range msgs[:n] {
				s.queue = append(s.queue, m.packet())
			}
			msgs = msgs[n:]
			s.kickLocked()
		}
		s.mu.Unlock()
		if len(msgs) == 0 {
			return nil
		}
		select {
		case <-s.space:
		case <-s.done:
		case <-done:
			return nil
		}
	}
	return nil
}

// tookQueueLocked tells a waiting SendWait that the queue has room.
func (s *Session) tookQueueLocked() {
	select {
	case s.space <- struct{}{}:
	default:
	}
}

// Close closes the session: what is already queued is still written for up
// to Config.CloseFlush, then the transport closes (a WebSocket with
// reason.Code; a pending poll gets Engine.IO's close packet). Nothing else
// is sent: closing with ReasonShutdown lets a Socket.IO client reconnect
// by itself. Closing a closed session does nothing.
func (s *Session) Close(reason CloseReason) {
	s.mu.Lock()
	s.closeLocked(reason, true)
	s.mu.Unlock()
}

// fail closes the session at once, dropping what is queued.
func (s *Session) fail(reason CloseReason) {
	s.mu.Lock()
	s.closeLocked(reason, false)
	s.mu.Unlock()
}

func (s *Session) closeLocked(reason CloseReason, flush bool) {
	if s.closed {
		return
	}
	s.closed, s.reason, s.closedAt = true, reason, time.Now()
	close(s.done)
	s.timerGen++
	if s.timer != nil {
		s.timer.Stop()
	}
	if s.opened {
		defer s.finishLater() // after a WebSocket writer has started: the session is still counted in wg
	}
	if !flush {
		clear(s.queue)
		s.queue = s.queue[:0]
	}
	// A probed client (it has "3probe") is pausing polling to move to the
	// probe: it may never poll again, so what was queued (a CONNECT_ERROR,
	// say) goes out on the probe once the client sends the upgrade packet
	// (serveUpgrade, within UpgradeTimeout). Otherwise the probe ends now.
	if s.probe != nil && !(flush && s.probed) {
		s.probe.Close()
	}
	if s.ws != nil {
		if !s.writing {
			s.startWriterLocked()
		}
		s.srv.remove(s)
		return
	}
	// Polling: a pending poll takes the queue and the close packet now;
	// otherwise the next poll does, if it comes within pollCloseWait (a
	// client that is slow to poll still learns why, e.g. CONNECT_ERROR).
	if s.polling {
		s.notifyLocked()
		return
	}
	if reason == ReasonClientClose {
		s.final = true
		s.srv.remove(s)
		return
	}
	time.AfterFunc(s.srv.cfg.pollCloseWait(), func() {
		s.mu.Lock()
		s.final = true
		s.mu.Unlock()
		s.srv.remove(s)
	})
}

// kickUnlock is kickLocked, then releases mu. With inline, on a WebSocket
// whose writes never block (asyncconn) and no writer running, the caller
// becomes the writer instead: it runs writeLoop once mu is released.
func (s *Session) kickUnlock(inline bool) {
	if !inline || s.ws == nil || s.async == nil || s.writing {
		s.kickLocked()
		s.mu.Unlock()
		return
	}
	s.writing = true
	s.srv.wg.Add(1) // the session is open: its handler is still counted (see startWriterLocked)
	s.mu.Unlock()
	s.writeLoop()
}

// kickLocked gets what was queued moving: a WebSocket writer, or the
// pending poll.
func (s *Session) kickLocked() {
	if s.ws != nil {
		if !s.writing {
			s.startWriterLocked()
		}
		return
	}
	s.notifyLocked()
}

func (s *Session) notifyLocked() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Handler serves one session's messages. The session calls it one call at
// a time, never concurrently, on whatever goroutine has the message: a
// polling POST's handler, or the WebSocket's reader. It must not block on
// the client (Send never does; SendWait returns when the session closes).
type Handler interface {
	// Message serves one client message; false closes the session (with
	// ReasonServerClose, unless the handler closed it already).
	Message(Message) bool
	// Closed runs once, after the session has closed and the last Message
	// has returned; no Message follows it.
	Closed()
}

// open asks Config.OnOpen for the session's handler, showing it the
// handshake request r, and starts its heartbeat. A nil handler closes the
// session (ReasonServerClose). Called once, after the session is added and
// before any message can reach it.
func (s *Session) open(r *http.Request) {
	h := s.srv.cfg.OnOpen(s, r)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.h, s.opened = h, true
	switch {
	case s.closed: // OnOpen closed it, or Shutdown did meanwhile
		s.finishLater()
	case h == nil:
		s.closeLocked(ReasonServerClose, true)
	default:
		s.armLocked(s.srv.cfg.PingInterval)
	}
}

// finishLater runs the handler's Closed once no Message runs, then counts
// the session out of the server's wait group. Called once, under mu, when
// the session is both opened and closed.
func (s *Session) finishLater() {
	h := s.h
	go func() {
		defer s.srv.wg.Done()
		if h == nil {
			return
		}
		s.readMu.Lock()
		defer s.readMu.Unlock()
		h.Closed()
	}()
}

// deliver hands m to the handler, one call at a time. taken: the handler
// had it (not: the session had closed); more: the session goes on.
func (s *Session) deliver(m Message) (taken, more bool) {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	s.mu.Lock()
	h, closed := s.h, s.closed
	s.mu.Unlock()
	if closed || h == nil {
		return false, false
	}
	if h.Message(m) {
		return true, true
	}
	s.Close(ReasonServerClose)
	return true, false
}

// Heartbeats: the server pings every PingInterval and closes the session
// when the pong is not in within PingTimeout. One timer, rearmed; timerGen
// tells a stale firing from the current one.

func (s *Session) armLocked(d time.Duration) {
	s.timerGen++
	gen := s.timerGen
	if s.timer != nil {
		s.timer.Stop()
	}
	s.timer = time.AfterFunc(d, func() { s.onTimer(gen) })
}

func (s *Session) onTimer(gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || gen != s.timerGen {
		return
	}
	if s.awaiting {
		s.closeLocked(ReasonPingTimeout, false)
		return
	}
	s.awaiting = true
	s.queue = append(s.queue, Packet{Type: PacketPing})
	s.kickLocked()
	s.armLocked(s.srv.cfg.PingTimeout)
}

func (s *Session) onPong() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !s.awaiting {
		return
	}
	s.awaiting = false
	s.armLocked(s.srv.cfg.PingInterval)
}
