package relay

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/roomlog/roomlog/internal/engineio"
	"github.com/roomlog/roomlog/internal/socketio"
	"github.com/roomlog/roomlog/relay/auth"
)

// The Socket.IO endpoint /socket.io/ (docs/socketio.md): an Engine.IO
// server (internal/engineio) whose sessions are connections of the relay,
// each with a reader that decodes Socket.IO packets (internal/socketio),
// maps events to ops (protocol_sio.go) and runs them through the op table,
// and a transport (sioTransport) that hands frames to the session.

// newSIOServer builds the Engine.IO server from the relay's config. Its
// session ids name this relay's session, so any relay can forward a request
// to the owner (peers.go).
func (s *Server) newSIOServer() (*engineio.Server, error) {
	return engineio.NewServer(engineio.Config{
		OnOpen:       s.openSIOSession,
		PingInterval: s.cfg.PingInterval,
		PingTimeout:  s.cfg.PongTimeout,
		MaxPayload:   s.cfg.MaxMessageBytes,
		WriteTimeout: s.cfg.WriteTimeout,
		SendQueue:    s.cfg.SendQueue,
		CheckOrigin:  s.checkOrigin,
		NewSID:       func() (string, error) { return engineio.RandomSID(s.currentSession() + ".") },
		Forward:      s.forwardSIO,
	})
}

// sioAdmission is a handshake's admission (a connection slot), handed to
// the session through its request's context.
type sioAdmission struct {
	ip      string
	release func()
	taken   atomic.Bool // a session took the slot: its connection releases it
}

type sioAdmissionKey struct{}

// serveSocketIO admits a handshake like /ws (ready, not draining, the
// connection caps) and hands every request to the Engine.IO server. A
// request naming a session (sid) is not a new connection: its owner, here
// or on the relay it is forwarded to, serves it.
func (s *Server) serveSocketIO(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodOptions || r.URL.Query().Get("sid") != "" {
		s.sio.ServeHTTP(w, r)
		return
	}
	if !s.serving(w) {
		return
	}
	ip := s.clientIP(r)
	release, ok := s.acquireConn(w, ip)
	if !ok {
		return
	}
	adm := &sioAdmission{ip: ip, release: release}
	s.sio.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sioAdmissionKey{}, adm)))
	// A session outlives its handshake, and its connection releases the
	// slot when it ends; a handshake refused, or a WebSocket upgrade that
	// failed, opened no session (engineio opens it before it answers).
	if !adm.taken.Load() {
		release()
	}
}

// openSIOSession is the Engine.IO OnOpen handler: it makes the session a
// connection of the relay, whose reader (sioReader) is the session's
// Handler. It holds no goroutine: engineio calls the reader for each
// message, on a POST's goroutine or the WebSocket's reader's.
func (s *Server) openSIOSession(sess *engineio.Session, r *http.Request) engineio.Handler {
	adm, _ := r.Context().Value(sioAdmissionKey{}).(*sioAdmission)
	if adm == nil || !adm.taken.CompareAndSwap(false, true) { // every handshake passes serveSocketIO, once
		return nil
	}
	session := s.currentSession()
	c := newConn(s, session+"-"+strconv.FormatUint(s.nextConn.Add(1), 36), session, sioCodec{})
	t := &sioTransport{c: c, sess: sess}
	if s.cfg.SIOMaxDisconnection > 0 {
		t.rec = newSIOStamp(s.epoch)
	}
	c.t = t
	c.sec = &connSec{ip: adm.ip, release: adm.release, limiter: newFrameLimiter(&s.cfg.Limits)}
	if !s.addConn(c) {
		adm.release()
		sess.Close(engineio.ReasonShutdown)
		return nil
	}
	s.metrics.connsTotal.Inc()
	c.startConnSec() // the auth timer: CONNECT must come within --auth-timeout
	return &sioReader{c: c, sess: sess}
}

// sioReader is a session's Handler: it serves the session's packets, one
// at a time (engineio never calls it concurrently), and ends the connection
// when the session closes.
type sioReader struct {
	c         *conn
	sess      *engineio.Session
	dec       socketio.Decoder
	connected bool // the main namespace is connected
}

var _ engineio.Handler = (*sioReader)(nil)

// Closed: the session has closed and no message follows. The connection
// leaves its rooms and ends.
func (r *sioReader) Closed() {
	r.c.cleanup()
	r.c.shutdown(DisconnectNormal)
	r.c.s.wg.Done()
}

// Message serves one message; false ends the connection.
func (r *sioReader) Message(m engineio.Message) bool {
	c := r.c
	p, err := r.dec.Decode(m.Binary, m.Data)
	if err != nil {
		// As the reference server: a malformed packet closes the session.
		c.s.stats.badFrames.Add(1)
		r.sess.Close(engineio.ReasonParseError)
		return false
	}
	if p == nil {
		return true // a binary packet's attachments are due
	}
	if !c.throttle(func() []byte { return sioAckID(p) }) {
		return true
	}
	if p.Namespace != socketio.MainNamespace {
		// Packets for a namespace that is not connected are ignored, as
		// the reference server does.
		if p.Type == socketio.Connect {
			c.send(appendSIOConnectError(nil, p.Namespace, "", "Invalid namespace"))
		}
		return true
	}
	switch p.Type {
	case socketio.Connect:
		return r.connect(p)
	case socketio.Disconnect:
		// One socket per session: the client left, and as with the
		// reference server its session is not to be recovered.
		if c.sio != nil {
			c.sio.left = true
		}
		return false
	case socketio.Event, socketio.BinaryEvent:
		if !r.connected {
			c.s.stats.badFrames.Add(1)
			r.sess.Close(engineio.ReasonParseError)
			return false
		}
		r.event(p)
	case socketio.Ack, socketio.BinaryAck:
		// The relay asks for no acks.
	default: // CONNECT_ERROR comes from servers only
		c.s.stats.badFrames.Add(1)
		r.sess.Close(engineio.ReasonParseError)
		return false
	}
	return true
}

// connect authenticates the CONNECT's auth payload {token} (or lets an
// anonymous client in when the relay allows it) and answers CONNECT with
// the socket id (and, with connection state recovery, the pid), or
// CONNECT_ERROR with the error code and closes. A payload with the pid of
// a recoverable session resumes it (sio_recovery.go): the same socket id,
// its rooms joined again from where the client's offset says it stopped.
func (r *sioReader) connect(p *socketio.Packet) bool {
	c := r.c
	if r.connected {
		c.send(appendSIOConnect(nil, r.sid(), r.pid()))
		return true
	}
	a, ferr := decodeSIOAuth(p.Data)
	var pr *auth.Principal
	if ferr == nil {
		switch {
		case a.Token != "":
			pr, ferr = c.s.verifyToken(a.Token)
		case c.s.cfg.Auth.Anonymous:
			pr = auth.Anonymous()
		default:
			ferr = errorf(CodeUnauthorized, "no token: connect with io(url, {auth: {token}})")
		}
	}
	if ferr == nil && !c.s.bindUser(c.sec, pr) {
		ferr = errorf(CodeRateLimited, "this user holds the most connections allowed on this relay")
	}
	if ferr != nil {
		c.s.countLimit("unauthorized")
		c.s.countError(ferr.Code)
		c.send(appendSIOConnectError(nil, socketio.MainNamespace, ferr.Code, ferr.Message))
		c.shutdown(DisconnectAuthRefused.With(ferr.Message))
		return false
	}
	c.authenticated(pr)
	c.closeIfRevoked()
	r.connected = true
	var plan *sioResume
	if c.s.cfg.SIOMaxDisconnection > 0 {
		plan = r.session(a)
	}
	c.send(appendSIOConnect(nil, r.sid(), r.pid()))
	if plan != nil {
		for _, rm := range plan.rooms {
			c.run(&clientFrame{Op: opJoin, Room: rm.room, Presence: rm.presence, since: rm.since, hasSince: true, resume: true})
		}
	}
	return true
}

// session gives the connection its recoverable session: the one the pid
// names when it can be resumed (with the plan of its rooms), else a new
// one.
func (r *sioReader) session(a sioConnectAuth) *sioResume {
	c := r.c
	if a.PID != "" {
		plan, why := c.s.resumeSIO(a.PID, a.Offset, c.user())
		if plan != nil {
			for _, rm := range plan.rooms {
				f := clientFrame{Op: opJoin, Room: rm.room, Presence: rm.presence}
				if c.authorize(ops[opJoin], &f) != nil {
					plan, why = nil, "forbidden"
					break
				}
			}
		}
		if plan != nil {
			hash, _ := sioHash(a.PID)
			c.sio = &sioSession{pid: a.PID, hash: hash, sid: plan.sid}
			c.s.metrics.sioResumes.WithLabelValues("recovered").Inc()
			return plan
		}
		c.s.metrics.sioResumes.WithLabelValues(why).Inc()
	}
	pid, err := newSIOPid()
	if err != nil {
		c.s.cfg.Logger.Error("no random source for a Socket.IO pid; the session is not recoverable", "err", err)
		return nil
	}
	hash, _ := sioHash(pid)
	c.sio = &sioSession{pid: pid, hash: hash, sid: c.id}
	return nil
}

// sid is the socket id the client knows: its session's, which a recovery
// keeps, or the connection id.
func (r *sioReader) sid() string {
	if r.c.sio != nil {
		return r.c.sio.sid
	}
	return r.c.id
}

func (r *sioReader) pid() string {
	if r.c.sio != nil {
		return r.c.sio.pid
	}
	return ""
}

// event maps an EVENT to an op and runs it through the op table. Binary
// attachments are refused with an error ack; the socket stays open.
func (r *sioReader) event(p *socketio.Packet) {
	c := r.c
	id := sioAckID(p)
	var f clientFrame
	var ferr *frameError
	if p.Type == socketio.BinaryEvent {
		ferr = errorf(CodeBadRequest, "binary attachments are not supported: send JSON (binary data as a base64 string)")
	} else if name, numeric, args, err := p.Event(); err != nil {
		ferr = errorf(CodeBadRequest, "not an event")
	} else {
		f, ferr = decodeSIOEvent(name, numeric, args, id)
	}
	if ferr != nil {
		c.s.stats.badFrames.Add(1)
		if f.Op == opPublish {
			c.s.metrics.publishes.WithLabelValues(outcomeRejected).Inc()
		}
		c.sendError(id, ferr)
		return
	}
	c.run(&f)
}

// sioTransport is a Socket.IO connection's transport: frames go to the
// Engine.IO session's bounded queue, whose writer (a WebSocket writer
// goroutine or the pending poll) writes them. An inflight slot is freed
// once its frame is handed to the session.
type sioTransport struct {
	c    *conn
	sess *engineio.Session
	rec  *sioStamp // with connection state recovery: stamps events with the socket's offset
}

var _ transport = (*sioTransport)(nil)

func (t *sioTransport) enqueue(fs ...outFrame) bool {
	var err error
	if t.rec != nil {
		err = t.rec.send(t.sess, fs)
	} else {
		var buf [4]engineio.Message
		err = t.sess.Send(appendMessages(buf[:0], fs)...)
	}
	t.freeSlots(fs)
	return sent(err)
}

func (t *sioTransport) push(f outFrame) bool {
	var err error
	switch {
	case len(f.data) == 0:
	case t.rec != nil && f.at != nil:
		err = t.rec.sendOne(t.sess, &f)
	case f.spread:
		err = t.sess.Queue(engineio.Message{Data: f.data})
	default:
		err = t.sess.Send(engineio.Message{Data: f.data})
	}
	if f.slot {
		t.c.freeSlot()
	}
	return sent(err)
}

func (t *sioTransport) enqueueWait(fs []outFrame) {
	if t.rec != nil {
		t.rec.sendWait(t.sess, t.c.done, fs)
	} else {
		_ = t.sess.SendWait(t.c.done, appendMessages(nil, fs)...)
	}
	t.freeSlots(fs)
}

// close closes the session's transport only (never a Socket.IO DISCONNECT),
// so the client reconnects by itself; the WebSocket close frame carries d.
func (t *sioTransport) close(d Disconnect) {
	if d.Code == CloseRevoked || d.Code == CloseByServer || d.Code == CloseUserLimit {
		// The server ended the socket on purpose: a DISCONNECT packet
		// (flushed by Close) makes the client report "io server
		// disconnect" and not reconnect by itself.
		_ = t.sess.Send(engineio.Message{Data: socketio.Append(nil, &socketio.Packet{Type: socketio.Disconnect, Namespace: socketio.MainNamespace})})
	}
	t.sess.Close(engineio.CloseReason{Code: d.Code, Text: d.Reason})
}

// appendMessages appends the frames' messages to msgs; a codec answers
// nothing (nil) where Socket.IO has no packet, such as an ack without an ack
// id.
func appendMessages(msgs []engineio.Message, fs []outFrame) []engineio.Message {
	for _, f := range fs {
		if len(f.data) > 0 {
			msgs = append(msgs, engineio.Message{Data: f.data})
		}
	}
	return msgs
}

// cork and uncork do nothing: the Engine.IO session writes its packets
// itself (its writer gathers a batch into one system call).
func (t *sioTransport) cork()   {}
func (t *sioTransport) uncork() {}

func (t *sioTransport) freeSlots(fs []outFrame) {
	for _, f := range fs {
		if f.slot {
			t.c.freeSlot()
		}
	}
}

// sent reports whether frames handed to Send count as sent: false only when
// they overflowed the queue (the session closes as a slow client). On a
// session already closed they are dropped, as on a closed WebSocket.
func sent(err error) bool {
	if err == nil {
		return true // before errors.As, whose target escapes: no allocation per frame
	}
	var ce *engineio.CloseError
	return !errors.As(err, &ce) || ce.Reason != engineio.ReasonSlowClient
}
