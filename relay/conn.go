package relay

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/roomlog/roomlog/record"
)

// WebSocket close codes the relay sends, documented in docs/protocol.md.
const (
	CloseGoingAway       = websocket.CloseGoingAway       // 1001: relay shutting down; reconnect
	CloseUnsupportedData = websocket.CloseUnsupportedData // 1003: binary frame
	CloseTooBig          = websocket.CloseMessageTooBig   // 1009: frame over --max-message-bytes
	CloseSlowClient      = 4001                           // send queue overflowed or a write timed out
)

// outFrame is one queued server frame: a prepared message shared by a room's
// sockets, or bytes for this socket alone.
type outFrame struct {
	pm   *websocket.PreparedMessage
	data []byte
}

// conn is one WebSocket client. Its reader goroutine (readLoop) owns the
// socket's read side and handles every client frame; its writer goroutine
// (writeLoop) is the only one that writes frames. Other goroutines (the hub,
// produce callbacks) hand frames to the writer through enqueue, which never
// blocks: a queue over its limit closes the connection.
type conn struct {
	s  *Server
	id string
	ws *websocket.Conn

	mu     sync.Mutex // guards queue and rooms
	queue  []outFrame
	rooms  map[string]struct{}
	wake   chan struct{} // cap 1: queue became non-empty
	closed bool

	done      chan struct{} // closed by shutdown
	closeOnce sync.Once
	closeCode int
	closeText string

	inflight chan struct{} // publish/join/leave records awaiting the log's ack
}

func newConn(s *Server, ws *websocket.Conn, id string) *conn {
	return &conn{
		s:        s,
		id:       id,
		ws:       ws,
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		inflight: make(chan struct{}, s.cfg.MaxInflight),
	}
}

// enqueue hands f to the writer. Safe from any goroutine; never blocks.
func (c *conn) enqueue(f outFrame) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if len(c.queue) >= c.s.cfg.SendQueue {
		c.mu.Unlock()
		c.s.stats.slowCloses.Add(1)
		c.shutdown(CloseSlowClient, "send queue full: client too slow")
		return
	}
	c.queue = append(c.queue, f)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *conn) send(b []byte) { c.enqueue(outFrame{data: b}) }

func (c *conn) sendError(id json.RawMessage, e *frameError) {
	c.s.stats.errorFrames.Add(1)
	c.send(appendError(nil, id, e))
}

// shutdown asks the writer to send a close frame with code and end the
// connection. The first call wins.
func (c *conn) shutdown(code int, text string) {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		c.closeCode, c.closeText = code, text
		close(c.done)
	})
}

func (c *conn) writeLoop() {
	defer c.s.wg.Done()
	defer c.ws.Close() // unblocks the reader
	ping := time.NewTicker(c.s.cfg.PingInterval)
	defer ping.Stop()
	var batch []outFrame
	for {
		select {
		case <-c.wake:
			c.mu.Lock()
			batch, c.queue = c.queue, batch[:0]
			c.mu.Unlock()
			for i, f := range batch {
				if err := c.write(f); err != nil {
					c.s.stats.slowCloses.Add(1)
					c.shutdown(CloseSlowClient, "write failed or timed out")
					return
				}
				batch[i] = outFrame{}
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.s.cfg.WriteTimeout)); err != nil {
				c.shutdown(CloseGoingAway, "ping failed")
				return
			}
		case <-c.done:
			msg := websocket.FormatCloseMessage(c.closeCode, c.closeText)
			_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
			return
		}
	}
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

func (c *conn) readLoop() {
	defer c.s.wg.Done()
	defer c.cleanup()
	c.ws.SetReadLimit(int64(c.s.cfg.MaxMessageBytes))
	deadline := func() { _ = c.ws.SetReadDeadline(time.Now().Add(c.s.cfg.PingInterval + c.s.cfg.PongTimeout)) }
	deadline()
	c.ws.SetPongHandler(func(string) error { deadline(); return nil })
	for {
		mt, data, err := c.ws.ReadMessage()
		if err != nil {
			if err == websocket.ErrReadLimit {
				// gorilla has already sent close 1009.
				c.s.stats.badFrames.Add(1)
				c.shutdown(CloseTooBig, "frame too big")
			} else {
				c.shutdown(websocket.CloseNormalClosure, "")
			}
			return
		}
		deadline()
		if mt != websocket.TextMessage {
			c.s.stats.badFrames.Add(1)
			c.shutdown(CloseUnsupportedData, "binary frames are not supported; send JSON text frames")
			return
		}
		c.handle(data)
	}
}

// handle serves one client text frame.
func (c *conn) handle(b []byte) {
	f, ferr := decodeFrame(b)
	if ferr != nil {
		c.s.stats.badFrames.Add(1)
		c.sendError(f.ID, ferr)
		return
	}
	if c.s.draining.Load() {
		c.sendError(f.ID, errorf(CodeShuttingDown, "relay is shutting down; reconnect"))
		return
	}
	switch f.Op {
	case opJoin:
		c.join(&f)
	case opLeave:
		c.leave(&f)
	case opPublish:
		c.publish(&f)
	}
}

func (c *conn) join(f *clientFrame) {
	c.mu.Lock()
	_, already := c.rooms[f.Room]
	full := !already && len(c.rooms) >= c.s.cfg.MaxRoomsPerConn
	if !already && !full {
		if c.rooms == nil {
			c.rooms = make(map[string]struct{})
		}
		c.rooms[f.Room] = struct{}{}
	}
	c.mu.Unlock()
	switch {
	case already:
		c.send(appendAck(nil, f.ID, record.Pos{}, false))
		return
	case full:
		c.sendError(f.ID, errorf(CodeTooManyRooms, "a connection may be in at most %d rooms", c.s.cfg.MaxRoomsPerConn))
		return
	}
	c.s.hub.add(f.Room, c)
	room, id := f.Room, f.ID
	c.appendRecord(&record.Event{Type: record.TypeJoin, Room: room, From: c.id}, id, func(err error) {
		if err == nil {
			return
		}
		// The log never heard of this join: undo it so local membership
		// matches the log.
		c.mu.Lock()
		delete(c.rooms, room)
		c.mu.Unlock()
		c.s.hub.remove(room, c)
	})
}

func (c *conn) leave(f *clientFrame) {
	c.mu.Lock()
	_, ok := c.rooms[f.Room]
	delete(c.rooms, f.Room)
	c.mu.Unlock()
	if !ok {
		c.sendError(f.ID, errorf(CodeNotJoined, "not in room %q", f.Room))
		return
	}
	c.s.hub.remove(f.Room, c)
	c.appendRecord(&record.Event{Type: record.TypeLeave, Room: f.Room, From: c.id}, f.ID, nil)
}

func (c *conn) publish(f *clientFrame) {
	c.s.stats.publishes.Add(1)
	ev := &record.Event{Type: record.TypePublish, Room: f.Room, Event: f.Event, Data: f.Data, From: c.id, MID: idString(f.ID)}
	c.appendRecord(ev, f.ID, nil)
}

// appendRecord appends ev to the log and answers the client once the log has
// it (ack with its position) or has failed to take it (log_unavailable). It
// blocks while MaxInflight records of this connection are unacknowledged,
// which pushes back on a client that publishes faster than the log accepts.
func (c *conn) appendRecord(ev *record.Event, id json.RawMessage, after func(error)) {
	select {
	case c.inflight <- struct{}{}:
	case <-c.done:
		return
	}
	c.s.produce(ev, func(pos record.Pos, err error) {
		<-c.inflight
		if after != nil {
			after(err)
		}
		if err != nil {
			c.s.stats.produceErrors.Add(1)
			c.sendError(id, errorf(CodeLogUnavailable, "the log did not take the record: %v", err))
			return
		}
		c.send(appendAck(nil, id, pos, true))
	})
}

// cleanup runs when the reader ends: the connection leaves its rooms, and the
// leaves are appended to the log (unacknowledged: nobody is listening).
func (c *conn) cleanup() {
	c.mu.Lock()
	rooms := c.rooms
	c.rooms = nil
	c.mu.Unlock()
	for room := range rooms {
		c.s.hub.remove(room, c)
		c.s.produce(&record.Event{Type: record.TypeLeave, Room: room, From: c.id}, nil)
	}
	c.s.removeConn(c)
}
