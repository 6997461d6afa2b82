package relay

import (
	"bufio"
	"bytes"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/roomlog/roomlog/internal/wsread"
)

// The WebSocket endpoint /ws: admission and upgrade (serveWS), then the
// connection's reader (wsReader), which decodes each client frame
// (protocol.go) and runs it through the op table (ops.go); between frames it
// parks without a goroutine.

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if !s.serving(w) {
		return
	}
	sec, ok := s.admit(w, r) // connection limits and a token on the URL or header; writes the HTTP error itself
	if !ok {
		return
	}
	hj := &wsread.Hijacker{ResponseWriter: w}
	ws, err := s.up.Upgrade(hj, r, nil) // writes the HTTP error itself
	if err != nil {
		sec.release()
		return
	}
	session := s.currentSession()
	c := newConn(s, session+"-"+strconv.FormatUint(s.nextConn.Add(1), 36), session, jsonCodec{})
	wr := newWSWriter(c, ws)
	c.t, c.sec = wr, sec
	if !s.addConn(c) {
		sec.release()
		_ = ws.WriteControl(websocket.CloseMessage, DisconnectShutdown.closeMessage(), time.Now().Add(time.Second))
		ws.Close()
		return
	}
	s.metrics.connsTotal.Inc()
	c.send(appendWelcome(nil, c.id, s.cfg.RelayName))
	c.startConnSec()
	c.closeIfRevoked()
	c.startReader(wr, hj.Buffer())
}

// serving reports whether the relay takes new connections, answering 503
// when it does not (replaying the log, or draining).
func (s *Server) serving(w http.ResponseWriter) bool {
	if s.draining.Load() {
		http.Error(w, "relay is shutting down", http.StatusServiceUnavailable)
		return false
	}
	if !s.ready.Load() {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "relay is replaying the log; retry shortly", http.StatusServiceUnavailable)
		return false
	}
	return true
}

// addConn registers c and counts its reader in s.wg, unless the relay is
// draining.
func (s *Server) addConn(c *conn) bool {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	if s.draining.Load() {
		return false
	}
	s.conns[c.id] = c
	s.wg.Add(1)
	return true
}

// wsReader is a connection's reader: it reads frames and runs them until
// the socket fails or closes, then leaves the rooms and waits for the writer
// to have closed the socket. Between frames it parks without a goroutine
// (internal/wsread), so an idle connection costs no stack.
//
// A parked connection has no read deadline running, so the pinger checks
// the client's liveness instead: no frame (pongs included) for PingInterval
// + PongTimeout closes it (DisconnectPongTimeout).
type wsReader struct {
	c  *conn
	w  *wsWriter
	ws *websocket.Conn
}

// startReader starts c's reader: parked until the client's first frame.
// br is gorilla's read buffer (wsread.Hijacker).
func (c *conn) startReader(w *wsWriter, br *bufio.Reader) {
	r := &wsReader{c: c, w: w, ws: w.ws}
	w.heard.Store(time.Now().UnixNano())
	w.pinger = time.AfterFunc(c.s.cfg.PingInterval, w.ping)
	r.ws.SetReadLimit(int64(c.s.cfg.MaxMessageBytes))
	wsread.Start(r.ws, br, wsread.Config{
		Frame:       r.frame,
		End:         r.end,
		Heard:       func(now time.Time) { w.heard.Store(now.UnixNano()) },
		ReadTimeout: c.s.cfg.PingInterval + c.s.cfg.PongTimeout,
	})
}

// frame reads one frame and runs it; false ends the connection.
func (r *wsReader) frame() bool {
	c := r.c
	mt, rd, err := r.ws.NextReader()
	var buf *bytes.Buffer
	if err == nil {
		buf = frameBufs.Get().(*bytes.Buffer)
		buf.Reset()
		_, err = buf.ReadFrom(rd)
	}
	if err != nil {
		putFrameBuf(buf)
		if err == websocket.ErrReadLimit {
			// gorilla has already sent close 1009.
			c.s.stats.badFrames.Add(1)
			c.s.countLimit("frame_too_big")
			c.shutdown(DisconnectTooBig)
		} else {
			c.shutdown(DisconnectNormal)
		}
		return false
	}
	if mt != websocket.TextMessage {
		putFrameBuf(buf)
		c.s.stats.badFrames.Add(1)
		c.shutdown(DisconnectBinary)
		return false
	}
	c.handle(buf.Bytes())
	putFrameBuf(buf)
	return true
}

// end: the connection is over. It leaves the rooms, has the writer close
// the socket and waits for that, then tells the server the reader is done.
func (r *wsReader) end() {
	r.w.pinger.Stop()
	r.c.cleanup()
	r.c.shutdown(DisconnectNormal)
	<-r.w.finished // the writer has sent the close frame and closed the socket
	r.c.s.wg.Done()
}

// frameBufs holds the buffers readers read client frames into. A frame is
// needed only while handle runs (decoding copies what it keeps), so one
// buffer serves many frames instead of a new one per frame; an idle
// connection holds none.
var frameBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledFrame: a buffer grown past this by a large frame is left to the
// garbage collector rather than kept in the pool.
const maxPooledFrame = 16 << 10

func putFrameBuf(buf *bytes.Buffer) {
	if buf != nil && buf.Cap() <= maxPooledFrame {
		frameBufs.Put(buf)
	}
}

// handle serves one client text frame.
func (c *conn) handle(b []byte) {
	if !c.gate(b) { // rate limit, auth frames, unauthenticated connections
		return
	}
	f, ferr := decodeFrame(b)
	if ferr != nil {
		c.s.stats.badFrames.Add(1)
		if f.Op == opPublish {
			c.s.metrics.publishes.WithLabelValues(outcomeRejected).Inc()
		}
		c.sendError(f.ID, ferr)
		return
	}
	c.run(f)
}
