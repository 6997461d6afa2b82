package relay

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/roomlog/roomlog/consumer"
	"github.com/roomlog/roomlog/record"
)

// joined is a room the connection asked to be in. The hub subscription
// (sub) is made when the relay folds the join record.
type joined struct {
	presence bool       // wants joined/left events
	since    record.Pos // recovery position, if hasSince
	hasSince bool
	id       json.RawMessage
	resume   bool // a Socket.IO session's room joined again on recovery
}

// conn is one client connection, whatever its protocol: its rooms, its
// records in flight, its security state, and the ops' handlers. What it is
// told goes through enc (how the protocol encodes acks, errors and
// deliveries) and t (the transport that writes to the socket: the WebSocket
// writer in writer.go). Its protocol's reader runs every op on one
// goroutine; other goroutines (the consumer through Server.Deliver, produce
// callbacks, recoveries, timers) only queue frames, which never blocks.
type conn struct {
	s       *Server
	id      string
	session string // the relay session this conn belongs to
	t       transport
	enc     codec

	mu        sync.Mutex // guards rooms, lastWrite and publishes
	rooms     joinedRooms
	lastWrite writeMarks                 // partition → offset of this conn's newest record
	publishes map[string]*pendingPublish // request id → publish the log has not settled yet

	done      chan struct{} // closed by shutdown
	closeOnce sync.Once

	inflight chan struct{} // records appended and not yet acknowledged to the client

	sec *connSec // authentication, rate limit, timers (connsec.go)

	// sio is a Socket.IO connection's recoverable session (set on CONNECT
	// by its reader, read by the reader only), nil otherwise.
	sio *sioSession
}

// transport writes a connection's frames to its socket. enqueue and
// enqueueWait come from any goroutine; close is called once, by
// conn.shutdown, before the connection's done channel closes.
type transport interface {
	// enqueue queues frames in order without blocking; false (nothing
	// queued) when they do not fit: the client is too slow.
	enqueue(fs ...outFrame) bool
	// push is enqueue of one frame, without a slice: fan-out's hot path.
	push(f outFrame) bool
	// enqueueWait queues frames, waiting for room; it gives up when the
	// connection closes. Never on the consumer's goroutine.
	enqueueWait(fs []outFrame)
	// close flushes what is queued (unless d is a slow client), tells the
	// client d and closes the socket, without blocking the caller.
	close(d Disconnect)
	// cork holds what is written to the socket until the matching uncork,
	// which writes it in one system call: the sender's ack and its own
	// copy of a message. A transport that cannot does nothing.
	cork()
	uncork()
}

// codec encodes what a client is told, in its protocol. jsonCodec
// (protocol.go) is the native protocol's.
type codec interface {
	ack(id json.RawMessage, a ack) []byte
	error(id json.RawMessage, e *frameError) []byte
	pong(id json.RawMessage) []byte
	message(room, event string, data json.RawMessage, from, user string, pos record.Pos) []byte
	stateChange(ev *record.Event, e consumer.Entry, pos record.Pos) []byte
	presenceChange(op, room string, m *consumer.Member, reason string, pos record.Pos) []byte
	// removed tells the connection it is no longer in room (control.go).
	removed(room, reason string, pos *record.Pos) []byte
}

func newConn(s *Server, id, session string, enc codec) *conn {
	return &conn{
		s:        s,
		id:       id,
		session:  session,
		enc:      enc,
		done:     make(chan struct{}),
		inflight: make(chan struct{}, s.cfg.MaxInflight),
	}
}

// sendFrames queues frames for the client, and closes it as too slow when
// they do not fit.
func (c *conn) sendFrames(fs ...outFrame) {
	if !c.t.enqueue(fs...) {
		c.shutdown(DisconnectSlow)
	}
}

// sendFrame queues one frame (see sendFrames).
func (c *conn) sendFrame(f outFrame) {
	if !c.t.push(f) {
		c.shutdown(DisconnectSlow)
	}
}

// send queues a frame for this client alone (see sendFrames).
func (c *conn) send(b []byte) { c.sendFrame(outFrame{data: b}) }

// reply answers request id with a.
func (c *conn) reply(id json.RawMessage, a ack) { c.send(c.enc.ack(id, a)) }

func (c *conn) sendError(id json.RawMessage, e *frameError) {
	c.s.countError(e.Code)
	c.send(c.enc.error(id, e))
}

// shutdown ends the connection with d. The first call wins; it never
// blocks.
func (c *conn) shutdown(d Disconnect) { c.closeFor("", d) }

// closeFor is shutdown for a limit's close (close_idle, close_revoked, ...):
// the limit is counted (Server.LimitCounts) only when this close is the one
// that wins, before the close frame can go out, so a connection closed twice
// over counts once.
func (c *conn) closeFor(limit string, d Disconnect) {
	c.closeOnce.Do(func() {
		if limit != "" {
			c.s.countLimit(limit)
		}
		if d.Code == CloseSlowClient {
			c.s.stats.slowCloses.Add(1)
		}
		c.s.metrics.closes.WithLabelValues(d.Label).Inc()
		c.t.close(d)
		close(c.done)
	})
}

// The ops' handlers for a connection (the op table, ops.go, dispatches to
// them). They run on the reader goroutine.

func (c *conn) join(f *clientFrame) {
	if f.hasSince {
		if ferr := c.s.checkPos("since", f.since, f.Room, c.s.partitionOf(f.Room).ID()); ferr != nil {
			if ferr.Code == CodeStalePosition {
				ferr.Message += ": join without since, then resync with get and history"
			}
			c.sendError(f.ID, ferr)
			return
		}
	}
	c.mu.Lock()
	already := c.rooms.get(f.Room) != nil
	full := !already && c.rooms.len() >= c.s.cfg.MaxRoomsPerConn
	if !already && !full {
		c.rooms.set(f.Room, &joined{presence: f.Presence, since: f.since, hasSince: f.hasSince, id: f.ID, resume: f.resume})
	}
	c.mu.Unlock()
	switch {
	case already:
		c.reply(f.ID, ack{})
		return
	case full:
		c.s.countLimit("too_many_rooms")
		c.sendError(f.ID, errorf(CodeTooManyRooms, "a connection may be in at most %d rooms", c.s.cfg.MaxRoomsPerConn))
		return
	}
	room := f.Room
	ev := ops[opJoin].event(f)
	ev.Relay, ev.Session = c.s.cfg.RelayName, c.session
	if c.sio != nil {
		since := int64(-1)
		if f.hasSince {
			since = f.since.Offset
		}
		ev.SIO = c.sio.ref(since, f.Presence, false)
	}
	c.appendRecord(ev, f.ID, func() { c.forget(room) }) // the log never heard of this join
}

func (c *conn) leave(f *clientFrame) {
	c.forget(f.Room)
	c.s.hub.remove(f.Room, c)
	ev := ops[f.Op].event(f)
	if c.sio != nil {
		ev.SIO = c.sio.ref(-1, false, false)
	}
	c.appendRecord(ev, f.ID, nil)
}

func (c *conn) publish(f *clientFrame) {
	if !c.allowUserPublish() {
		c.s.countLimit("user_rate_limited")
		c.s.metrics.publishes.WithLabelValues(outcomeRejected).Inc()
		c.sendError(f.ID, errorf(CodeRateLimited, "over %g publishes per second for this user: publish dropped; slow down", c.s.cfg.Limits.UserPublishRate))
		return
	}
	c.s.stats.publishes.Add(1)
	c.appendOp(f)
}

// appendOp appends the op's record (opSpec.event).
func (c *conn) appendOp(f *clientFrame) {
	c.appendRecord(ops[f.Op].event(f), f.ID, nil)
}

// pong answers the application-level heartbeat.
func (c *conn) pong(f *clientFrame) { c.send(c.enc.pong(f.ID)) }

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
	pp := c.watchPublish(ev, id)
	c.s.produce(ev, func(pos record.Pos, err error) {
		if err != nil {
			<-c.inflight // the log never took it: no fold will free the slot
			if undo != nil {
				undo()
			}
			c.s.stats.produceErrors.Add(1)
			if pp.settle() {
				return // the client was told already, when the publish was overdue
			}
			if ev.Type == record.TypePublish {
				c.s.metrics.publishes.WithLabelValues(outcomeLogUnavailable).Inc()
			}
			c.sendError(id, errorf(CodeLogUnavailable, "the log did not take the record: %v", err))
			return
		}
		pp.written()
		c.mu.Lock()
		c.lastWrite.note(pos.Partition, pos.Offset)
		c.mu.Unlock()
	})
}

// writeMarks is, per partition a connection wrote to, the offset of its
// newest record there. A connection writes to few partitions (its rooms'),
// so a slice is searched: smaller than a map on every connection.
type writeMarks []writeMark

type writeMark struct {
	partition int32
	offset    int64
}

// get returns the newest offset noted in partition p, 0 if none.
func (w writeMarks) get(p int32) int64 {
	for _, m := range w {
		if m.partition == p {
			return m.offset
		}
	}
	return 0
}

// note raises partition p's offset to off.
func (w *writeMarks) note(p int32, off int64) {
	for i := range *w {
		if m := &(*w)[i]; m.partition == p {
			m.offset = max(m.offset, off)
			return
		}
	}
	*w = append(*w, writeMark{p, off})
}

// A publish whose fate the log has not told within ProduceTimeout is
// answered log_unavailable by the relay itself. franz-go enforces its record
// timeout only when that is safe for the idempotent producer's sequence
// numbers: a record sent to a broker that died before answering waits, with
// every later record of its partition, until the partition has a leader
// again, however long that takes. The client should not wait that long
// without an answer; a publish carries its mid, so the client's retry is
// deduplicated if the first attempt lands after all, and that late record's
// fold sends no second answer. Other ops keep waiting for the log's verdict:
// retrying them is not idempotent.
type pendingPublish struct {
	c       *conn
	req     string
	timer   *time.Timer
	overdue bool // the client was answered log_unavailable (under c.mu)
	settled bool // the fold or the producer decided (under c.mu)
}

// watchPublish starts the overdue timer of a publish with a request id; nil
// (a no-op) for any other record.
func (c *conn) watchPublish(ev *record.Event, id json.RawMessage) *pendingPublish {
	if ev.Type != record.TypePublish || ev.Req == "" || c.s.cfg.ProduceTimeout <= 0 {
		return nil
	}
	pp := &pendingPublish{c: c, req: ev.Req}
	c.mu.Lock()
	if c.publishes == nil {
		c.publishes = make(map[string]*pendingPublish)
	}
	c.publishes[ev.Req] = pp
	c.mu.Unlock()
	pp.timer = time.AfterFunc(c.s.cfg.ProduceTimeout, func() {
		c.mu.Lock()
		if pp.settled {
			c.mu.Unlock()
			return
		}
		pp.overdue = true
		c.mu.Unlock()
		c.s.metrics.publishes.WithLabelValues(outcomeLogUnavailable).Inc()
		c.sendError(id, errorf(CodeLogUnavailable,
			"the log has not confirmed the publish within %s; retry with the same mid (it may still be appended)", c.s.cfg.ProduceTimeout))
	})
	return pp
}

// written stops the timer: the log has the record, its fold answers.
func (pp *pendingPublish) written() {
	if pp != nil {
		pp.timer.Stop()
	}
}

// settle records that the publish's fate is known and reports whether the
// client was already answered (so it gets no second answer).
func (pp *pendingPublish) settle() (answered bool) {
	if pp == nil {
		return false
	}
	pp.timer.Stop()
	c := pp.c
	c.mu.Lock()
	defer c.mu.Unlock()
	pp.settled = true
	if c.publishes[pp.req] == pp {
		delete(c.publishes, pp.req)
	}
	return pp.overdue
}

// settlePublish is settle for the publish with request id req, when the fold
// answers it: false if the client was answered log_unavailable already.
func (c *conn) settlePublish(req string) (answer bool) {
	c.mu.Lock()
	pp := c.publishes[req]
	c.mu.Unlock()
	return !pp.settle()
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
	return c.rooms.get(name)
}

// sioStamp is the connection's Socket.IO delivery position, nil unless it
// is a Socket.IO connection with connection state recovery.
func (c *conn) sioStamp() *sioStamp {
	if t, ok := c.t.(*sioTransport); ok {
		return t.rec
	}
	return nil
}

// forget drops room from the connection's rooms.
func (c *conn) forget(room string) {
	c.mu.Lock()
	c.rooms.remove(room)
	c.mu.Unlock()
}

// cleanup runs when the reader ends: the connection leaves its rooms, and the
// leaves are appended to the log (unacknowledged: nobody is listening).
func (c *conn) cleanup() {
	c.mu.Lock()
	rooms := c.rooms
	c.rooms = joinedRooms{}
	c.mu.Unlock()
	rooms.each(func(room string, _ *joined) {
		c.s.hub.remove(room, c)
		ev := &record.Event{Type: record.TypeLeave, Room: room, From: c.id, User: c.user()}
		if c.sio != nil {
			// Gone: the session stays recoverable, unless the client
			// disconnected it (then its rooms are left).
			ev.SIO = c.sio.ref(-1, false, !c.sio.left)
		}
		c.s.produce(ev, nil)
	})
	c.s.removeConn(c)
	c.closeConnSec()
}
