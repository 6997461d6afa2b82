package relay

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/roomlog/roomlog/record"
)

// joined is a room the connection asked to be in. The hub subscription
// (sub) is made when the relay folds the join record.
type joined struct {
	presence bool       // wants joined/left events
	since    record.Pos // recovery position, if hasSince
	hasSince bool
	id       json.RawMessage
}

// conn is one WebSocket client. Its reader goroutine (readLoop,
// handler_websocket.go) owns the socket's read side and runs every client
// op; its writer goroutine (writeLoop, writer.go) is the only one that
// writes frames. Other goroutines (the consumer through Server.Deliver,
// produce callbacks, recoveries, timers) hand frames to the writer through
// enqueue, which never blocks.
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
	closeWith Disconnect // set once, before done is closed

	inflight chan struct{} // records appended and not yet acknowledged to the client

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

// The ops' handlers for a connection (the op table, ops.go, dispatches to
// them). They run on the reader goroutine.

func (c *conn) join(f *clientFrame) {
	if f.hasSince {
		if ferr := c.s.checkPos("since", f.since, f.Room); ferr != nil {
			if ferr.Code == CodeStalePosition {
				ferr.Message += ": join without since, then resync with get and history"
			}
			c.sendError(f.ID, ferr)
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
	ev := ops[opJoin].event(f)
	ev.Relay, ev.Session = c.s.cfg.RelayName, c.session
	c.appendRecord(ev, f.ID, func() { c.forget(room) }) // the log never heard of this join
}

func (c *conn) leave(f *clientFrame) {
	c.forget(f.Room)
	c.s.hub.remove(f.Room, c)
	c.appendOp(f)
}

func (c *conn) publish(f *clientFrame) {
	c.s.stats.publishes.Add(1)
	c.appendOp(f)
}

// appendOp appends the op's record (opSpec.event).
func (c *conn) appendOp(f *clientFrame) {
	c.appendRecord(ops[f.Op].event(f), f.ID, nil)
}

// pong answers the application-level heartbeat.
func (c *conn) pong(f *clientFrame) { c.send(appendPong(nil, f.ID)) }

// appendRecord appends ev to the log as this connection's. The client's ack
// is sent when this relay folds the record (Server.Deliver), so it reflects
// the record's effect; if the log does not take the record, the client gets
// log_unavailable and undo (if set) runs. The record holds one of the
// connection's MaxInflight slots until its ack has been written to the
// socket (or, for a record without an ack, until it is folded): while all
// slots are taken this blocks, which stops reading from this socket only
// and bounds the acks that can pile onto its send queue.
func (c *conn) appendRecord(ev *record.Event, id json.RawMessage, undo func()) {
	ev.From = c.id
	ev.Req = idString(id)
	ev.User = c.user()
	select {
	case c.inflight <- struct{}{}:
	case <-c.done:
		return
	}
	c.s.produce(ev, func(pos record.Pos, err error) {
		if err != nil {
			<-c.inflight // the log never took it: no fold will free the slot
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

// forget drops room from the connection's rooms.
func (c *conn) forget(room string) {
	c.mu.Lock()
	delete(c.rooms, room)
	c.mu.Unlock()
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
