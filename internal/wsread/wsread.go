// Package wsread reads a gorilla WebSocket frame by frame without holding a
// goroutine while the client is silent: the reader of the relay's own
// protocol (/ws) and of Engine.IO's WebSocket transport (/socket.io/).
//
// Once the reader has read everything the client sent (gorilla's read
// buffer is empty), it parks the socket (asyncconn.WaitRead) and its
// goroutine ends; the socket's next bytes, or its close, start a new one. So
// an idle connection costs no stack. A client that sends often (its last two
// frames less than ParkAfter apart) is waited for up to ParkAfter before
// parking, since waking a parked reader costs an epoll event, a new goroutine
// and a re-arm, where a waiting read costs nothing more.
//
// Parking needs two things: the read buffer must be one the reader can see
// (Hijacker makes gorilla reuse a bufio.Reader of BufferSize bytes), and the
// connection must be an asyncconn.Conn with a socket (not TLS, whose own
// buffer the reader cannot see). Without them the reader blocks in its read
// on one goroutine for the connection's life, as a reader always did.
//
// # Concurrency
//
// One read runs at a time: Config.Frame is called on one goroutine at a time,
// never concurrently, and Config.End once, after the last Frame. The reader
// parks as its last act, and the wake comes after. Config.Heard is called
// on the reading goroutine too (from gorilla's pong handler, within Frame).
package wsread

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/gorilla/websocket"

	"github.com/roomlog/roomlog/internal/asyncconn"
)

// BufferSize is the size of a connection's read buffer, which it keeps for
// its whole life: 512 bytes hold a typical client frame whole (a larger one
// takes a second read) and cost half of 1024 on every idle connection.
const BufferSize = 512

// ParkAfter is how long a reader waits for the next frame of a client that
// sends often before it parks.
const ParkAfter = time.Second

// Hijacker hands gorilla a read buffer that the reader can see. With
// Upgrader.ReadBufferSize 0, Upgrade reads frames through the hijacked
// bufio.Reader when it holds more than 256 bytes; Hijacker makes that reader
// (BufferSize bytes, over the connection), so the reader can tell whether a
// client frame is already buffered before it parks. Wrap the
// ResponseWriter given to Upgrade in one, then pass Buffer() to Start.
type Hijacker struct {
	http.ResponseWriter
	br *bufio.Reader // nil until Hijack
}

// Hijack hijacks the connection and gives it a read buffer of BufferSize.
func (h *Hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("wsread: the response writer cannot be hijacked")
	}
	nc, brw, err := hj.Hijack()
	if err != nil || brw.Reader.Buffered() > 0 {
		return nc, brw, err // gorilla refuses bytes sent before the handshake ends
	}
	h.br = bufio.NewReaderSize(nc, BufferSize)
	return nc, bufio.NewReadWriter(h.br, brw.Writer), nil
}

// Buffer is the read buffer Hijack made (nil before, or when the client sent
// bytes early).
func (h *Hijacker) Buffer() *bufio.Reader { return h.br }

// Config is what a Reader does with a connection.
type Config struct {
	// Frame reads one frame (ws.NextReader or ws.ReadMessage) and serves
	// it; false ends the reading. Required.
	Frame func() bool
	// End runs once, after the last Frame. Required.
	End func()
	// Heard, if set, is told of bytes from the client (a frame, or pongs).
	Heard func(now time.Time)
	// ReadTimeout bounds the read of one frame, from its first bytes; 0:
	// none (the caller's heartbeat closes a silent client).
	ReadTimeout time.Duration
}

// reader reads one connection. See the package comment.
type reader struct {
	cfg  Config
	ws   *websocket.Conn
	br   *bufio.Reader   // gorilla's read buffer
	park *asyncconn.Conn // nil: never park
	run  func()          // r.read, made once: WaitRead's wake

	last   time.Time // when the last data frame came
	active bool      // the last two data frames came less than ParkAfter apart
}

// Start starts reading ws, whose read buffer is br (Hijacker.Buffer; nil:
// unknown, never park): parked until the client's first bytes, or on a
// goroutine of its own when it cannot park. It sets ws's pong handler: a
// pong counts as heard.
func Start(ws *websocket.Conn, br *bufio.Reader, cfg Config) {
	r := &reader{cfg: cfg, ws: ws, br: br}
	ws.SetPongHandler(func(string) error { r.heard(); return nil })
	if ac, ok := ws.NetConn().(*asyncconn.Conn); ok && br != nil {
		r.park = ac // not under TLS: the socket's bytes are all gorilla's
	}
	r.run = r.read
	// Bytes already in br (read with the handshake, or an Engine.IO
	// upgrade's probe packets) are read at once: the socket would not wake.
	if r.park == nil || (br != nil && br.Buffered() > 0) || !r.park.WaitRead(r.run) {
		go r.read()
	}
}

// heard notes bytes from the client: Config.Heard, and the read deadline of
// the frame they start. It returns the time.
func (r *reader) heard() time.Time {
	now := time.Now()
	if r.cfg.Heard != nil {
		r.cfg.Heard(now)
	}
	var deadline time.Time
	if r.cfg.ReadTimeout > 0 {
		deadline = now.Add(r.cfg.ReadTimeout)
	}
	_ = r.ws.SetReadDeadline(deadline)
	return now
}

// read reads and serves frames until the client has sent nothing more (it
// parks) or the reading ends.
func (r *reader) read() {
	if r.park == nil {
		for {
			r.heard()
			if !r.cfg.Frame() {
				r.cfg.End()
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
		// Pongs (the answers to the caller's pings) are taken here:
		// NextReader would take them and then block for a data frame.
		if _, err := skipPongs(r.br); err == nil && r.br.Buffered() == 0 {
			continue // pongs only
		}
		if !r.cfg.Frame() {
			r.cfg.End()
			return
		}
		r.active = now.Sub(r.last) < ParkAfter
		r.last = now
	}
}

// linger waits up to ParkAfter for the next bytes of a client that sends
// often, and reports whether they came (or the read failed, which the next
// Frame then meets); false: park.
func (r *reader) linger() bool {
	if !r.active {
		return false
	}
	_ = r.ws.SetReadDeadline(time.Now().Add(ParkAfter))
	_, err := r.br.Peek(1) // a timeout stays here: bufio hands it out once
	if errors.Is(err, os.ErrDeadlineExceeded) {
		r.active = false
		return false
	}
	return true
}

// skipPongs consumes the client's pong frames at the head of br, waiting as
// a read does for the first bytes of a frame, and reports whether it took
// any. It stops at anything else (left whole to gorilla) and at a read error
// (which the next read then meets). A client frame is masked: a pong is
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
