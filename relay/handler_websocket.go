package relay

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/roomlog/roomlog/internal/asyncconn"
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
	hj := &bufHijacker{ResponseWriter: w}
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
	c.startReader(wr, hj.br)
}

// wsReadBuffer is the size of a connection's read buffer, which it keeps
// for its whole life: 512 bytes hold a typical client frame whole (a larger
// one takes a second read) and cost half of 1024 on every idle connection.
const wsReadBuffer = 512

// bufHijacker hands gorilla a read buffer that the reader can see. With
// Upgrader.ReadBufferSize 0, Upgrade reads frames through the hijacked
// bufio.Reader when it holds more than 256 bytes; bufHijacker makes that
// reader (wsReadBuffer bytes, over the connection), so br.Buffered() tells
// whether a client frame is already buffered, which the reader must know
// before it parks (TestReaderParks covers a gorilla that stops reusing it).
type bufHijacker struct {
	http.ResponseWriter
	br *bufio.Reader // nil until Hijack
}

func (h *bufHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("relay: the response writer cannot be hijacked")
	}
	nc, brw, err := hj.Hijack()
	if err != nil || brw.Reader.Buffered() > 0 {
		return nc, brw, err // gorilla refuses bytes sent before the handshake ends
	}
	h.br = bufio.NewReaderSize(nc, wsReadBuffer)
	return nc, bufio.NewReadWriter(h.br, brw.Writer), nil
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
// to have closed the socket.
//
// Between frames it need not hold a goroutine: once it has read everything
// the client sent (gorilla's buffer, br, is empty), it parks the socket
// (asyncconn.WaitRead) and its goroutine ends; the socket's next bytes, or
// its close, start a new one (read). So an idle connection costs no stack.
// A client that sends often (its last two frames less than parkAfter
// apart) is waited for up to parkAfter before parking, since waking a parked
// reader costs more than a blocked read. One read runs at a time: it parks
// as its last act, and the wake comes after. Without a socket to park (TLS,
// whose own buffer br cannot see, or no file descriptor), read never parks
// and blocks in the read, as a reader goroutine always did.
//
// A parked connection has no read deadline running, so the pinger checks
// the client's liveness instead: no frame (pongs included) for PingInterval
// + PongTimeout closes it (DisconnectPongTimeout).
type wsReader struct {
	c    *conn
	w    *wsWriter
	ws   *websocket.Conn
	br   *bufio.Reader   // gorilla's read buffer
	park *asyncconn.Conn // nil: never park
	run  func()          // r.read, made once: WaitRead's wake

	last   time.Time // when the last data frame came
	active bool      // the last two data frames came less than parkAfter apart
}

// parkAfter: how long a reader waits for the next frame of a client that
// sends often before it parks.
const parkAfter = time.Second

// startReader starts c's reader: parked until the client's first frame.
func (c *conn) startReader(w *wsWriter, br *bufio.Reader) {
	r := &wsReader{c: c, w: w, ws: w.ws, br: br}
	if ac, ok := w.ws.NetConn().(*asyncconn.Conn); ok && br != nil {
		r.park = ac // not under TLS: the socket's bytes are all gorilla's
	}
	r.run = r.read
	w.heard.Store(time.Now().UnixNano())
	w.pinger = time.AfterFunc(c.s.cfg.PingInterval, w.ping)
	r.ws.SetReadLimit(int64(c.s.cfg.MaxMessageBytes))
	r.ws.SetPongHandler(func(string) error { r.heard(); return nil })
	if r.park == nil || !r.park.WaitRead(r.run) {
		go r.read()
	}
}

// heard notes bytes from the client: the liveness stamp for the pinger,
// and the read deadline of the frame they start. It returns the time.
func (r *wsReader) heard() time.Time {
	now := time.Now()
	r.w.heard.Store(now.UnixNano())
	_ = r.ws.SetReadDeadline(now.Add(r.c.s.cfg.PingInterval + r.c.s.cfg.PongTimeout))
	return now
}

// read reads and runs frames until the client has sent nothing more (it
// parks) or the connection ends.
func (r *wsReader) read() {
	if r.park == nil {
		for {
			r.heard()
			if !r.frame() {
				r.end()
				return
			}
		}
	}
	woke := true // the socket has bytes, or is closed
	for {
		if r.br.Buffered() == 0 && !woke && !r.linger() && r.park.WaitRead(r.run) {
			return
		}
		woke = false
		now := r.heard() // the read deadline left from before is stale
		// The pongs that answer the relay's pings are taken here:
		// NextReader would take them and then block for a data frame.
		if _, err := skipPongs(r.br); err == nil && r.br.Buffered() == 0 {
			continue // pongs only
		}
		if !r.frame() {
			r.end()
			return
		}
		r.active = now.Sub(r.last) < parkAfter
		r.last = now
	}
}

// linger waits up to parkAfter for the next bytes of a client that sends
// often, and reports whether they came (or the read failed, which
// NextReader then meets); false: park.
func (r *wsReader) linger() bool {
	if !r.active {
		return false
	}
	_ = r.ws.SetReadDeadline(time.Now().Add(parkAfter))
	_, err := r.br.Peek(1) // a timeout stays here: bufio hands it out once
	if errors.Is(err, os.ErrDeadlineExceeded) {
		r.active = false
		return false
	}
	return true
}

// skipPongs consumes the client's pong frames at the head of br, waiting
// as a read does for the first bytes of a frame, and reports whether it
// took any. It stops at anything else (left whole to gorilla) and at a read
// error (which NextReader then meets). A client frame is masked: a pong is
// 0x8A, then 0x80 | its length (at most 125), a 4-byte key and the payload.
func skipPongs(br *bufio.Reader) (skipped bool, err error) {
	for {
		h, err := br.Peek(2)
		if err != nil {
			return skipped, err
		}
		if h[0] != 0x8A || h[1]&0x80 == 0 || h[1]&0x7F > 125 {
			return skipped, nil
		}
		n := 2 + 4 + int(h[1]&0x7F)
		if _, err := br.Peek(n); err != nil {
			return skipped, err
		}
		_, _ = br.Discard(n)
		skipped = true
		if br.Buffered() == 0 {
			return true, nil
		}
	}
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
