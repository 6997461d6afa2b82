package relay

import (
	"encoding/json"
	"time"

	"github.com/gorilla/websocket"
)

// The writer side of a connection: its send queue, the writer goroutine
// that runs only while the queue is non-empty, pings from a timer, and the
// close. See the Concurrency section of the package comment.

// outFrame is one queued server frame: a prepared message shared by a room's
// sockets, or bytes for this socket alone.
type outFrame struct {
	pm   *websocket.PreparedMessage
	data []byte
	slot bool // an ack holding an inflight slot, freed once written
}

// enqueue hands frames to the writer, in order, starting the writer if it
// is not running. Safe from any goroutine; never blocks. It reports false,
// queuing nothing, when the frames do not fit in the queue: the client is too
// slow, and the caller decides what follows (usually DisconnectSlow). On a
// closed connection it drops the frames and reports true.
func (c *conn) enqueue(fs ...outFrame) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return true
	}
	if len(c.queue)+len(fs) > c.s.cfg.SendQueue {
		c.mu.Unlock()
		return false
	}
	c.queue = append(c.queue, fs...)
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
	return true
}

// enqueueWait hands frames to the writer, waiting for room in the queue
// instead of closing the connection. For backlogs, never on the consumer's
// goroutine.
func (c *conn) enqueueWait(fs []outFrame) {
	for len(fs) > 0 {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return
		}
		n := min(c.s.cfg.SendQueue-len(c.queue), len(fs))
		start := false
		if n > 0 {
			c.queue = append(c.queue, fs[:n]...)
			fs = fs[n:]
			start = !c.writing
			c.writing = true
		}
		c.mu.Unlock()
		if start {
			go c.writeLoop()
		}
		if len(fs) > 0 {
			select {
			case <-c.space:
			case <-c.done:
				return
			}
		}
	}
}

// sendFrames queues frames for the client, and closes it as too slow when
// they do not fit.
func (c *conn) sendFrames(fs ...outFrame) {
	if !c.enqueue(fs...) {
		c.shutdown(DisconnectSlow)
	}
}

// send queues a frame for this client alone (see sendFrames).
func (c *conn) send(b []byte) { c.sendFrames(outFrame{data: b}) }

func (c *conn) sendError(id json.RawMessage, e *frameError) {
	c.s.countError(e.Code)
	c.send(appendError(nil, id, e))
}

// shutdown ends the connection with d's close frame: the running writer
// sends it, or a goroutine started here when none runs. The first call wins.
func (c *conn) shutdown(d Disconnect) {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.closeWith = d
		start := !c.writing
		c.writing = true // from now on only the finisher writes
		c.mu.Unlock()
		if d.Code == CloseSlowClient {
			c.s.stats.slowCloses.Add(1)
		}
		c.s.metrics.closes.WithLabelValues(d.Label).Inc()
		close(c.done)
		if start {
			go c.finish(nil)
		}
	})
}

// writeLoop is the connection's writer while it has frames to send: it
// runs only while the queue is non-empty (an idle connection has no writer
// goroutine), and it is the only goroutine writing data frames. On shutdown
// it sends the close frame and closes the socket.
func (c *conn) writeLoop() {
	var batch []outFrame
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			c.finish(nil)
			return
		}
		if len(c.queue) == 0 {
			c.writing = false
			c.mu.Unlock()
			return
		}
		batch, c.queue = c.queue, batch[:0]
		c.mu.Unlock()
		select {
		case c.space <- struct{}{}:
		default:
		}
		for i, f := range batch {
			if i%16 == 0 {
				select {
				case <-c.done:
					c.finish(batch[i:])
					return
				default:
				}
			}
			if err := c.write(f); err != nil {
				c.shutdown(DisconnectWriteFailed)
				c.finish(nil)
				return
			}
			if f.slot {
				c.freeSlot()
			}
			batch[i] = outFrame{}
		}
	}
}

// finish sends what is still queued (pending, then the queue: the error
// frame that explains a close must arrive before it) within a second, then
// the close frame, and closes the socket, which ends the reader. A slow
// client gets no flush. It runs once, on the last writer.
func (c *conn) finish(pending []outFrame) {
	c.mu.Lock()
	rest := c.queue
	c.queue = nil
	c.mu.Unlock()
	if c.closeWith.Code != CloseSlowClient {
		_ = c.ws.SetWriteDeadline(time.Now().Add(time.Second))
		for _, fs := range [][]outFrame{pending, rest} {
			for _, f := range fs {
				var err error
				if f.pm != nil {
					err = c.ws.WritePreparedMessage(f.pm)
				} else {
					err = c.ws.WriteMessage(websocket.TextMessage, f.data)
				}
				if err != nil {
					break
				}
			}
		}
	}
	_ = c.ws.WriteControl(websocket.CloseMessage, c.closeWith.closeMessage(), time.Now().Add(time.Second))
	_ = c.ws.Close()
	close(c.finished)
}

// ping runs on a timer, not on a goroutine of the connection: gorilla lets
// WriteControl run beside the writer.
func (c *conn) ping() {
	select {
	case <-c.done:
		return
	default:
	}
	if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.s.cfg.WriteTimeout)); err != nil {
		c.shutdown(DisconnectPingFailed)
		return
	}
	c.pinger.Reset(c.s.cfg.PingInterval)
}

func (c *conn) write(f outFrame) error {
	if err := c.ws.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout)); err != nil {
		return err
	}
	if f.pm != nil {
		return c.ws.WritePreparedMessage(f.pm)
	}
	return c.ws.WriteMessage(websocket.TextMessage, f.data)
}
