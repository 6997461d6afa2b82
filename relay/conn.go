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
	CloseSessionEnded    = 4002                           // the relay's lease ended (it was cut off from the log); reconnect and rejoin
)

// outFrame is one queued server frame: a prepared message shared by a room's
// sockets, or bytes for this socket alone.
type outFrame struct {
	pm   *websocket.PreparedMessage
	data []byte
	slot bool // an ack holding an inflight slot, freed once written
}

// joined is a room the connection asked to be in. The hub subscription
// (sub) is made when the relay folds the join record.
type joined struct {
	presence bool       // wants joined/left events
	since    record.Pos // recovery position, if hasSince
	hasSince bool
	id       json.RawMessage
}

// conn is one WebSocket client. Its reader goroutine (readLoop) owns the
// socket's read side and handles every client frame; its writer goroutine
// (writeLoop) is the only one that writes frames. Other goroutines (the
// consumer through Server.Deliver, produce callbacks, recoveries) hand frames
// to the writer through enqueue, which never blocks: a queue over its limit
// closes the connection.
type conn struct {
	s       *Server
	id      string
	session string // the relay session this conn belongs to
	ws      *websocket.Conn

	mu        sync.Mutex // guards queue, closed, rooms, lastWrite
	queue     []outFrame
	closed    bool
	rooms     map[string]*joined
	lastWrite map[int32]int64 // partition → offset of this conn's newest record

	writing   bool          // a writer goroutine runs (or, once closed, the finisher)
	space     chan struct{} // cap 1: the writer took the queue
	finished  chan struct{} // closed once the socket is closed
	pinger    *time.Timer
	done      chan struct{} // closed by shutdown
	closeOnce sync.Once
	closeCode int
	closeText string

	inflight chan struct{} // records awaiting the log's ack

	sec *connSec // authentication, rate limit, timers (connsec.go)
}

func newConn(s *Server, ws *websocket.Conn, id, session string) *conn {
	return &conn{
		s:        s,
		id:       id,
		session:  session,
		ws:       ws,
		space:    make(chan struct{}, 1),
		done:     make(chan struct{}),
		finished: make(chan struct{}),
		inflight: make(chan struct{}, s.cfg.MaxInflight),
	}
}

// enqueue hands frames to the writer, in order, starting the writer if it
// is not running. Safe from any goroutine; never blocks.
func (c *conn) enqueue(fs ...outFrame) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if len(c.queue)+len(fs) > c.s.cfg.SendQueue {
		c.mu.Unlock()
		c.shutdown(CloseSlowClient, "send queue full: client too slow")
		return
	}
	c.queue = append(c.queue, fs...)
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
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

func (c *conn) send(b []byte) { c.enqueue(outFrame{data: b}) }

func (c *conn) sendError(id json.RawMessage, e *frameError) {
	c.s.countError(e.Code)
	c.send(appendError(nil, id, e))
}

// shutdown ends the connection with a close frame carrying code: the
// running writer sends it, or a goroutine started here when none runs. The
// first call wins.
func (c *conn) shutdown(code int, text string) {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.closeCode, c.closeText = code, text
		start := !c.writing
		c.writing = true // from now on only the finisher writes
		c.mu.Unlock()
		if code == CloseSlowClient {
			c.s.stats.slowCloses.Add(1)
		}
		c.s.metrics.closes.WithLabelValues(closeReason(code)).Inc()
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
				c.shutdown(CloseSlowClient, "write failed or timed out")
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
	if c.closeCode != CloseSlowClient {
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
	msg := websocket.FormatCloseMessage(c.closeCode, c.closeText)
	_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
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
		c.shutdown(CloseGoingAway, "ping failed")
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

func (c *conn) readLoop() {
	defer c.s.wg.Done()
	defer func() {
		c.shutdown(websocket.CloseNormalClosure, "")
		<-c.finished // the writer has sent the close frame and closed the socket
	}()
	defer c.cleanup()
	c.pinger = time.AfterFunc(c.s.cfg.PingInterval, c.ping)
	defer c.pinger.Stop()
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
				c.s.countLimit("frame_too_big")
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
	if f.Op == opPing {
		c.send(appendPong(nil, f.ID))
		return
	}
	if c.s.draining.Load() {
		c.sendError(f.ID, errorf(CodeShuttingDown, "relay is shutting down; reconnect"))
		return
	}
	if ferr := c.authorize(&f); ferr != nil {
		c.sendError(f.ID, ferr)
		return
	}
	switch f.Op {
	case opJoin:
		c.join(&f)
		return
	case opPublish:
		c.publish(&f)
		return
	}
	c.mu.Lock()
	_, in := c.rooms[f.Room]
	c.mu.Unlock()
	if !in {
		c.sendError(f.ID, errorf(CodeNotJoined, "not in room %q: join it first", f.Room))
		return
	}
	switch f.Op {
	case opLeave:
		c.leave(&f)
	case opSet, opDel, opIncr, opCAS:
		c.stateOp(&f)
	case opGet:
		c.s.get(c, &f)
	case opPresence:
		c.s.presence(c, &f)
	case opHistory:
		c.s.history(c, &f)
	}
}

func (c *conn) join(f *clientFrame) {
	if f.hasSince {
		if f.since.Epoch != c.s.epoch {
			c.sendError(f.ID, errorf(CodeStalePosition, "since is a position in another topic, or in an earlier incarnation of this one: join without since, then resync with get and history"))
			return
		}
		if p := c.s.partitionOf(f.Room); f.since.Partition != p.ID() {
			c.sendError(f.ID, errorf(CodeBadPosition, "since is not a position of room %q", f.Room))
			return
		}
	}
	c.mu.Lock()
	_, already := c.rooms[f.Room]
	full := !already && len(c.rooms) >= c.s.cfg.MaxRoomsPerConn
	if !already && !full {
		if c.rooms == nil {
			c.rooms = make(map[string]*joined)
		}
		c.rooms[f.Room] = &joined{presence: f.Presence, since: f.since, hasSince: f.hasSince, id: f.ID}
	}
	c.mu.Unlock()
	switch {
	case already:
		c.send(appendAckWith(nil, f.ID, ack{}))
		return
	case full:
		c.s.countLimit("too_many_rooms")
		c.sendError(f.ID, errorf(CodeTooManyRooms, "a connection may be in at most %d rooms", c.s.cfg.MaxRoomsPerConn))
		return
	}
	room := f.Room
	c.appendRecord(&record.Event{Type: record.TypeJoin, Room: room, From: c.id, Relay: c.s.cfg.RelayName, Session: c.session}, f.ID, func() {
		// The log never heard of this join: forget it.
		c.mu.Lock()
		delete(c.rooms, room)
		c.mu.Unlock()
	})
}

func (c *conn) leave(f *clientFrame) {
	c.mu.Lock()
	delete(c.rooms, f.Room)
	c.mu.Unlock()
	c.s.hub.remove(f.Room, c)
	c.appendRecord(&record.Event{Type: record.TypeLeave, Room: f.Room, From: c.id}, f.ID, nil)
}

func (c *conn) publish(f *clientFrame) {
	c.s.stats.publishes.Add(1)
	ev := &record.Event{Type: record.TypePublish, Room: f.Room, Event: f.Event, Data: f.Data, From: c.id, MID: f.MID}
	c.appendRecord(ev, f.ID, nil)
}

func (c *conn) stateOp(f *clientFrame) {
	ev := &record.Event{Room: f.Room, Key: *f.Key, From: c.id}
	switch f.Op {
	case opSet:
		ev.Type, ev.Data = record.TypeSet, f.Value
	case opDel:
		ev.Type = record.TypeDel
	case opIncr:
		ev.Type, ev.Delta = record.TypeIncr, f.delta
	case opCAS:
		ev.Type, ev.Data, ev.Version = record.TypeCAS, f.Value, f.version
	}
	c.appendRecord(ev, f.ID, nil)
}

// appendRecord appends ev to the log. The client's ack is sent when this
// relay folds the record (Server.Deliver), so it reflects the record's
// effect; if the log does not take the record, the client gets
// log_unavailable and undo (if set) runs. It blocks while MaxInflight
// records of this connection are not yet folded, which pushes back on a
// client that writes faster than the log and the fold go, and bounds the
// acks that can burst onto its send queue.
func (c *conn) appendRecord(ev *record.Event, id json.RawMessage, undo func()) {
	ev.Req = idString(id)
	ev.User = c.user()
	select {
	case c.inflight <- struct{}{}:
	case <-c.done:
		return
	}
	c.s.produce(ev, func(pos record.Pos, err error) {
		if err != nil {
			<-c.inflight // a taken record's slot is freed by its fold (Server.Deliver)
			if undo != nil {
				undo()
			}
			c.s.stats.produceErrors.Add(1)
			if ev.Type == record.TypePublish {
				c.s.metrics.publishes.WithLabelValues(outcomeLogUnavailable).Inc()
			}
			c.sendError(id, errorf(CodeLogUnavailable, "the log did not take the record: %v", err))
			return
		}
		c.mu.Lock()
		if c.lastWrite == nil {
			c.lastWrite = make(map[int32]int64)
		}
		if pos.Offset > c.lastWrite[pos.Partition] {
			c.lastWrite[pos.Partition] = pos.Offset
		}
		c.mu.Unlock()
	})
}

// freeSlot frees one inflight slot, if one is taken.
func (c *conn) freeSlot() {
	select {
	case <-c.inflight:
	default:
	}
}

// room returns the connection's join of room, or nil.
func (c *conn) room(name string) *joined {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rooms[name]
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
		c.s.produce(&record.Event{Type: record.TypeLeave, Room: room, From: c.id, User: c.user()}, nil)
	}
	c.s.removeConn(c)
	c.closeConnSec()
}
