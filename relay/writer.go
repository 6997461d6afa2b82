package relay

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/roomlog/roomlog/internal/asyncconn"
	"github.com/roomlog/roomlog/record"
)

// The WebSocket transport of a connection: its send queue, the writer
// goroutine that runs only while the queue is non-empty, pings from a
// timer, and the close. See the Concurrency section of the package comment.

// outFrame is one queued server frame: a prepared message shared by a room's
// WebSocket sockets, or bytes.
type outFrame struct {
	pm   *websocket.PreparedMessage
	data []byte
	slot bool // an ack holding an inflight slot, freed once written
	// spread: a big room's frame, written by a writer goroutine, never on
	// the fan-out's (spreadFanout).
	spread bool
	// at is the record a Socket.IO event delivers (nil otherwise): the
	// Socket.IO transport stamps the socket's recovery offset on it
	// (sio_recovery.go).
	at *frameAt
}

// frameAt is the room and position of a delivered record.
type frameAt struct {
	room string
	pos  record.Pos
}

// wsWriter is a connection's WebSocket transport. One goroutine at a time
// writes its data frames (writeLoop): on a socket whose writes never block
// (async, an asyncconn.Conn), the goroutine that queued the first frame
// into an empty queue, so a delivery is written by the fan-out without
// waking a goroutine; otherwise a writer goroutine started for the burst.
type wsWriter struct {
	c     *conn
	ws    *websocket.Conn
	async *asyncconn.Conn // nil: writes may block, a writer goroutine writes

	mu        sync.Mutex // guards queue, closed, closeWith, writing, space
	queue     []outFrame
	closed    bool
	closeWith Disconnect

	writing  bool          // a writer goroutine runs (or, once closed, the finisher)
	space    chan struct{} // cap 1: the writer took the queue; made by the first enqueueWait that waits
	finished chan struct{} // closed once the socket is closed
	pinger   *time.Timer
	heard    atomic.Int64 // unix nanoseconds of the client's last frame (the reader's stamp)
}

var _ transport = (*wsWriter)(nil)

func newWSWriter(c *conn, ws *websocket.Conn) *wsWriter {
	w := &wsWriter{c: c, ws: ws, finished: make(chan struct{})}
	if ws != nil && asyncconn.Enable(ws.NetConn()) {
		w.async = asyncconn.Find(ws.NetConn())
		// A client that takes nothing before its write deadline, or
		// leaves more than the pending bound unread, is slow.
		w.async.SetOnFail(func(error) { c.shutdown(DisconnectSlow) })
	}
	return w
}

// enqueue hands frames to the writer, in order, starting the writer if it
// is not running. Safe from any goroutine; never blocks. It reports false,
// queuing nothing, when the frames do not fit in the queue: the client is too
// slow, and the caller decides what follows (usually DisconnectSlow). On a
// closed connection it drops the frames and reports true.
func (w *wsWriter) enqueue(fs ...outFrame) bool {
	return w.add(len(fs), false, func(q []outFrame) []outFrame { return append(q, fs...) })
}

// push is enqueue of one frame, without the variadic slice (fan-out's hot
// path).
func (w *wsWriter) push(f outFrame) bool {
	return w.add(1, f.spread, func(q []outFrame) []outFrame { return append(q, f) })
}

// add appends n frames to the queue with appendTo, under the lock, unless
// they do not fit (false) or the connection is closed (true, dropped).
func (w *wsWriter) add(n int, spread bool, appendTo func([]outFrame) []outFrame) bool {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return true
	}
	if len(w.queue)+n > w.c.s.cfg.SendQueue {
		w.mu.Unlock()
		return false
	}
	w.queue = appendTo(w.queue)
	start := !w.writing
	w.writing = true
	w.mu.Unlock()
	if start {
		w.startWriter(spread)
	}
	return true
}

// startWriter runs writeLoop for the frames just queued: in this goroutine
// when writes never block (unless spread), else in a goroutine of its own.
func (w *wsWriter) startWriter(spread bool) {
	if w.async != nil && !spread {
		w.writeLoop()
		return
	}
	go w.writeLoop()
}

// enqueueWait hands frames to the writer, waiting for room in the queue
// instead of closing the connection. For backlogs, never on the consumer's
// goroutine.
func (w *wsWriter) enqueueWait(fs []outFrame) {
	for len(fs) > 0 {
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			return
		}
		n := min(w.c.s.cfg.SendQueue-len(w.queue), len(fs))
		start := false
		if n > 0 {
			w.queue = append(w.queue, fs[:n]...)
			fs = fs[n:]
			start = !w.writing
			w.writing = true
		}
		if len(fs) > 0 && w.space == nil {
			w.space = make(chan struct{}, 1)
		}
		space := w.space
		w.mu.Unlock()
		if start {
			go w.writeLoop() // a backlog: never written on the caller's goroutine
		}
		if len(fs) > 0 {
			select {
			case <-space:
			case <-w.c.done:
				return
			}
		}
	}
}

// close makes the running writer send d's close frame, or starts a
// finisher when none runs.
func (w *wsWriter) close(d Disconnect) {
	w.mu.Lock()
	w.closed = true
	w.closeWith = d
	start := !w.writing
	w.writing = true // from now on only the finisher writes
	w.mu.Unlock()
	if start {
		go w.finish(nil)
	}
}

// writeLoop is the connection's writer while it has frames to send: it
// runs only while the queue is non-empty (an idle connection has no writer
// goroutine), and it is the only goroutine writing data frames. On shutdown
// it sends the close frame and closes the socket.
func (w *wsWriter) writeLoop() {
	var batch []outFrame
	for {
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			w.finish(nil)
			return
		}
		if len(w.queue) == 0 {
			w.writing = false
			if cap(w.queue) == 0 && cap(batch) <= 16 {
				w.queue = batch[:0] // cleared: the next frame needs no allocation
			}
			w.mu.Unlock()
			return
		}
		batch, w.queue = w.queue, batch[:0]
		space := w.space
		w.mu.Unlock()
		if space != nil {
			select {
			case space <- struct{}{}:
			default:
			}
		}
		corked := len(batch) > 1
		if corked {
			w.cork() // the batch in one system call
		}
		for i, f := range batch {
			if i%16 == 0 {
				select {
				case <-w.c.done:
					if corked {
						w.uncork()
					}
					w.finish(batch[i:])
					return
				default:
				}
			}
			if err := w.write(f); err != nil {
				if corked {
					w.uncork()
				}
				if errors.Is(err, asyncconn.ErrOverflow) {
					w.c.shutdown(DisconnectSlow)
				} else {
					w.c.shutdown(DisconnectWriteFailed)
				}
				w.finish(nil)
				return
			}
			if f.slot {
				w.c.freeSlot()
			}
			batch[i] = outFrame{}
		}
		if corked {
			w.uncork()
		}
	}
}

func (w *wsWriter) cork() {
	if w.async != nil {
		w.async.Cork()
	}
}

func (w *wsWriter) uncork() {
	if w.async != nil {
		w.async.Uncork()
	}
}

// finish sends what is still queued (pending, then the queue: the error
// frame that explains a close must arrive before it) within a second, then
// the close frame, and closes the socket, which ends the reader. A slow
// client gets no flush. It runs once, on the last writer.
func (w *wsWriter) finish(pending []outFrame) {
	w.mu.Lock()
	rest := w.queue
	w.queue = nil
	d := w.closeWith
	w.mu.Unlock()
	if d.Code != CloseSlowClient {
		_ = w.ws.SetWriteDeadline(time.Now().Add(time.Second))
		for _, fs := range [][]outFrame{pending, rest} {
			for _, f := range fs {
				var err error
				if f.pm != nil {
					err = w.ws.WritePreparedMessage(f.pm)
				} else {
					err = w.ws.WriteMessage(websocket.TextMessage, f.data)
				}
				if err != nil {
					break
				}
			}
		}
	}
	_ = w.ws.WriteControl(websocket.CloseMessage, d.closeMessage(), time.Now().Add(time.Second))
	_ = w.ws.Close()
	close(w.finished)
}

// ping runs on a timer, not on a goroutine of the connection: gorilla lets
// WriteControl run beside the writer.
func (w *wsWriter) ping() {
	select {
	case <-w.c.done:
		return
	default:
	}
	// The reader parks between frames with no read deadline running, so
	// the liveness check is here: nothing heard, not even the pong of the
	// last ping, for PingInterval + PongTimeout.
	if silent := time.Since(time.Unix(0, w.heard.Load())); silent > w.c.s.cfg.PingInterval+w.c.s.cfg.PongTimeout {
		w.c.shutdown(DisconnectPongTimeout)
		return
	}
	if err := w.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(w.c.s.cfg.WriteTimeout)); err != nil {
		w.c.shutdown(DisconnectPingFailed)
		return
	}
	w.pinger.Reset(w.c.s.cfg.PingInterval)
}

func (w *wsWriter) write(f outFrame) error {
	if err := w.ws.SetWriteDeadline(time.Now().Add(w.c.s.cfg.WriteTimeout)); err != nil {
		return err
	}
	if f.pm != nil {
		return w.ws.WritePreparedMessage(f.pm)
	}
	return w.ws.WriteMessage(websocket.TextMessage, f.data)
}
