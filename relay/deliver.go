package relay

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/roomlog/roomlog/consumer"
	"github.com/roomlog/roomlog/record"
)

// Deliver implements consumer.Sink: it runs on the consumer goroutine after
// each record is folded, answers the record's sender if it is connected
// here, and fans the record's effects out to the room's local subscribers,
// one method per record type. It never blocks.
func (s *Server) Deliver(d *consumer.Delivery) {
	s.apiDelivered(d) // answers a backend API request waiting for this record
	// The sender's answer holds the record's inflight slot (appendRecord)
	// until it has been written (so a fast publisher cannot pile acks onto
	// its own queue); a record no answer carries frees it here. Records a
	// connection appends without a slot (its leaves on close) find none.
	a := answerer{c: s.ownConn(d.Event.From), req: json.RawMessage(d.Event.Req)}
	if s.placed(d) {
		a.done()
		return
	}
	switch d.Event.Type {
	case record.TypePublish:
		s.deliverPublish(d, &a)
	case record.TypeJoin:
		s.deliverJoin(d, a.c)
	case record.TypeLeave:
		a.ack(ack{pos: &d.Pos})
	case record.TypeSet, record.TypeDel, record.TypeIncr, record.TypeCAS:
		s.deliverState(d, &a)
	case record.TypeLease:
		s.deliverLease(d)
	case record.TypeRevoke, record.TypeDisconnect, record.TypeRemove:
		s.deliverControl(d)
	}
	a.done()
	s.deliverLeft(d)
	if ended := d.Result.Ended; ended != "" {
		s.peers.drop(ended)
		if ended == s.currentSession() && s.ownLeaseCurrent(d.Pos.Partition, d.Event.Version) {
			s.sessionEnded(d.Pos)
		}
	}
}

// placed handles misplaced records and re-homed copies before delivery
// (rehome.go): a misplaced record is noted for re-homing and not delivered
// (its copy will be); a copy clears its original's note, and a repeated
// copy is not delivered again. It reports whether d is done with.
func (s *Server) placed(d *consumer.Delivery) bool {
	if d.Result.Misplaced {
		s.noteMisplaced(d)
		return true
	}
	if d.Event.Origin == nil {
		return false
	}
	s.rehomedFolded(*d.Event.Origin)
	if d.Result.Duplicate {
		s.stats.duplicates.Add(1)
		return true
	}
	return false
}

// deliverLease notes when a relay's lease was folded (lease.go) and where
// the relay's session can be reached (peers.go).
func (s *Server) deliverLease(d *consumer.Delivery) {
	s.leases.seen(d.Pos.Partition, d.Event.Relay, d.Pos.Offset)
	if d.Event.Addr != "" {
		s.peers.set(d.Event.Session, d.Event.Addr)
	}
}

// answerer sends the answer to a record's sender, when it is connected
// here and asked for one (the record has a request id).
type answerer struct {
	c        *conn
	req      json.RawMessage
	answered bool
	slot     *conn // no answer, only the record's slot to free (an overdue publish)
}

func (a *answerer) ack(v ack) {
	if a.c != nil && len(a.req) > 0 {
		a.send(a.c.enc.ack(a.req, v))
	}
}

func (a *answerer) fail(e *frameError) {
	if a.c != nil && len(a.req) > 0 {
		a.c.s.countError(e.Code)
		a.send(a.c.enc.error(a.req, e))
	}
}

// send queues the answer with the record's inflight slot.
func (a *answerer) send(b []byte) {
	a.c.sendFrame(outFrame{data: b, slot: true})
	a.answered = true
}

// done frees the record's slot if no answer carries it.
func (a *answerer) done() {
	if a.slot != nil {
		a.slot.freeSlot()
	} else if a.c != nil && !a.answered {
		a.c.freeSlot()
	}
}

func (s *Server) deliverPublish(d *consumer.Delivery, a *answerer) {
	ev, res := &d.Event, d.Result
	if a.c != nil && !a.c.settlePublish(ev.Req) {
		// Answered log_unavailable when it was overdue; the client retries
		// with its mid. The record's slot is freed by a.done.
		a.slot, a.c = a.c, nil
	}
	if a.c != nil {
		if res.Duplicate {
			s.metrics.publishes.WithLabelValues(outcomeDuplicate).Inc()
		} else {
			s.metrics.publishes.WithLabelValues(outcomeAcked).Inc()
		}
	}
	if res.Duplicate {
		orig := d.Part.Pos(s.epoch, res.Original)
		a.ack(ack{pos: &orig, duplicate: true})
		s.stats.duplicates.Add(1)
		return
	}
	// The sender is usually a member of the room: its ack and its copy
	// of the message leave in one system call.
	if a.c != nil {
		a.c.t.cork()
		defer a.c.t.uncork()
	}
	a.ack(ack{pos: &d.Pos})
	n := s.hub.broadcast(ev.Room, false, "", d.Pos, func(enc codec) []byte {
		return enc.message(ev.Room, ev.Event, ev.Data, ev.From, ev.User, d.Pos)
	})
	if n > 0 {
		s.metrics.deliveries.WithLabelValues(kindMessage).Add(float64(n))
		if d.Live {
			s.metrics.since(s.metrics.deliverLatency, d.Timestamp)
		}
	}
}

// deliverJoin subscribes the joining connection, when it is here, and
// tells the room's members who joined.
func (s *Server) deliverJoin(d *consumer.Delivery, own *conn) {
	ev, res := &d.Event, d.Result
	if own != nil {
		s.joinFolded(own, d)
	}
	if res.Joined != nil {
		n := s.hub.broadcast(ev.Room, true, res.Joined.Conn, d.Pos, func(enc codec) []byte {
			return enc.presenceChange("joined", ev.Room, res.Joined, "", d.Pos)
		})
		s.metrics.deliveries.WithLabelValues(kindPresence).Add(float64(n))
	}
}

// deliverState answers a state op with its effect and tells the room's
// members about a change that took effect.
func (s *Server) deliverState(d *consumer.Delivery, a *answerer) {
	ev, res := &d.Event, d.Result
	if res.Code != "" {
		a.fail(stateError(res.Code, res.Entry))
		return
	}
	a.ack(ack{pos: &d.Pos, entry: &res.Entry})
	n := s.hub.broadcast(ev.Room, false, "", d.Pos, func(enc codec) []byte { return enc.stateChange(ev, res.Entry, d.Pos) })
	s.metrics.deliveries.WithLabelValues(kindState).Add(float64(n))
}

// deliverLeft tells rooms' members who left: by a leave record, a closed
// connection or an expired relay.
func (s *Server) deliverLeft(d *consumer.Delivery) {
	for i := range d.Result.Left {
		l := &d.Result.Left[i]
		n := s.hub.broadcast(l.Room, true, l.Member.Conn, d.Pos, func(enc codec) []byte {
			return enc.presenceChange("left", l.Room, &l.Member, l.Reason, d.Pos)
		})
		s.metrics.deliveries.WithLabelValues(kindPresence).Add(float64(n))
	}
}

// stateError is the error a refused state op answers, with the key's
// current value and version.
func stateError(code string, cur consumer.Entry) *frameError {
	e := stateErrorText(code)
	e.Entry = &consumer.Entry{Value: cur.Value, Version: cur.Version}
	return e
}

func stateErrorText(code string) *frameError {
	switch code {
	case consumer.CodeConflict:
		return errorf(CodeConflict, "the key's version is not the expected one")
	case consumer.CodeNotInteger:
		return errorf(CodeNotInteger, "the key's value is not an integer")
	case consumer.CodeOverflow:
		return errorf(CodeOverflow, "the result is outside the int64 range")
	case consumer.CodeStateFull:
		return errorf(CodeStateFull, "the room has %d keys, the most allowed", consumer.MaxKeysPerRoom)
	case consumer.CodeTooLarge:
		return errorf(CodeValueTooLarge, "the value is over %d bytes", consumer.MaxValueBytes)
	}
	return errorf(ErrorCode(code), "state op refused")
}

// ownConn returns the connection with id if it belongs to this relay's
// current session and is still connected.
func (s *Server) ownConn(id string) *conn {
	if id == "" || !strings.HasPrefix(id, s.currentSession()+"-") {
		return nil
	}
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	return s.conns[id]
}

// joinFolded subscribes a connection to a room at the join record's
// position, first sending the backlog after its `since` position, and acks.
// Runs on the consumer goroutine: no other record of the partition is
// delivered meanwhile, so backlog and live delivery meet without gap or
// overlap.
func (s *Server) joinFolded(c *conn, d *consumer.Delivery) {
	ev, res := &d.Event, d.Result
	j := c.room(ev.Room)
	if j == nil {
		// Left (or disconnected) before the join took effect.
		if ev.Req != "" {
			c.reply(json.RawMessage(ev.Req), ack{pos: &d.Pos})
		}
		return
	}
	if res.Code == consumer.CodeStale {
		c.forget(ev.Room)
		c.sendError(j.id, errorf(CodeRelayRestarted, "the relay's session ended before the join took effect; rejoin"))
		return
	}
	s.metrics.joins.Inc()
	sb := &sub{c: c, presence: j.presence}
	if !j.hasSince {
		s.hub.add(ev.Room, sb)
		c.reply(j.id, ack{pos: &d.Pos})
		return
	}
	since := j.since
	if s.checkPos("since", since, ev.Room, d.Pos.Partition) != nil || since.Offset >= d.Pos.Offset {
		// Another topic (or incarnation of it), or a position that is not
		// in this room's partition before the join: nothing can be
		// recovered exactly.
		s.hub.add(ev.Room, sb)
		no := false
		c.reply(j.id, ack{pos: &d.Pos, recovered: &no})
		s.stats.recoveries.Add(1)
		s.metrics.recoveries.WithLabelValues("none").Inc()
		if j.resume {
			c.shutdown(DisconnectResumeLost)
		}
		return
	}
	st := c.sioStamp()
	d.Part.RLock()
	var backlog []outFrame
	covered := false
	if r := d.Part.Room(ev.Room); r != nil {
		hist, dropped := d.Part.History(r)
		if dropped <= since.Offset {
			covered = true
			for _, m := range hist {
				if m.Offset > since.Offset && m.Offset < d.Pos.Offset {
					backlog = append(backlog, backlogFrame(c.enc, st, ev.Room, m, d.Part.Pos(s.epoch, m.Offset)))
				}
			}
		}
	}
	d.Part.RUnlock()
	s.stats.recoveries.Add(1)
	if covered {
		s.metrics.recoveries.WithLabelValues("window").Inc()
		yes := true
		backlog = append(backlog, outFrame{data: c.enc.ack(j.id, ack{pos: &d.Pos, recovered: &yes})})
		if st != nil {
			st.beginBacklog(ev.Room, d.Pos.Partition, since.Offset)
		}
		c.sendFrames(backlog...)
		if st != nil {
			st.endBacklog(ev.Room)
		}
		s.hub.add(ev.Room, sb)
		return
	}
	// Older than the window: read the gap from the log on another
	// goroutine while live frames wait in the sub.
	sb.recovering.Store(true)
	if st != nil {
		st.beginBacklog(ev.Room, d.Pos.Partition, since.Offset)
	}
	s.hub.add(ev.Room, sb)
	s.stats.logRecoveries.Add(1)
	s.metrics.recoveries.WithLabelValues("log").Inc()
	room, part, join, id, resume := ev.Room, d.Part, d.Pos, j.id, j.resume
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		backlog, complete := s.readRoom(c.enc, st, room, part, since.Offset+1, join.Offset)
		sb.finishRecovery(backlog, outFrame{data: c.enc.ack(id, ack{pos: &join, recovered: &complete})})
		if st != nil {
			st.endBacklog(room)
		}
		if resume && !complete {
			// The socket was told it recovered: it must not go on with a
			// gap. Its reconnection finds the gap and starts afresh.
			c.shutdown(DisconnectResumeLost)
		}
	}()
}

// backlogFrame is a recovered message as a frame of enc; for a Socket.IO
// socket with recovery (st), tagged to carry the socket's offset.
func backlogFrame(enc codec, st *sioStamp, room string, m consumer.Message, pos record.Pos) outFrame {
	f := outFrame{data: enc.message(room, m.Event, m.Data, m.From, m.User, pos)}
	if st != nil {
		f.at = &frameAt{room: room, pos: pos}
	}
	return f
}

// readRoom reads the room's messages with offsets in [from, to) of part
// from the log, as message frames of enc. complete is false when some of them are
// gone (retention) or the read failed.
func (s *Server) readRoom(enc codec, st *sioStamp, room string, part *consumer.Partition, from, to int64) ([]outFrame, bool) {
	ctx, cancel := s.readDeadline()
	defer cancel()
	var frames []outFrame
	logStart, err := consumer.ReadPublishes(ctx, s.clientOpts(kafkaClientReader), s.cfg.Topic, part, room, from, to, func(m consumer.Message) bool {
		frames = append(frames, backlogFrame(enc, st, room, m, part.Pos(s.epoch, m.Offset)))
		return true
	})
	if err != nil {
		s.cfg.Logger.Warn("reading the log for a recovery", "room", room, "partition", part.ID(), "from", from, "to", to, "err", err)
		return frames, false
	}
	return frames, logStart <= from
}

// sessionEnded runs when the fold ends this relay's own session: the relay
// was cut off from the log for longer than the lease timeout and the other
// relays expired it, so every member it holds is gone from presence. Its
// clients must rejoin: close them all, and start a new session.
func (s *Server) sessionEnded(at record.Pos) {
	old := s.currentSession()
	s.newSession()
	s.cfg.Logger.Error("this relay's session was ended by the log (lease expired); closing all connections so clients rejoin",
		"old_session", old, "new_session", s.currentSession(), "at", at.String())
	s.connsMu.Lock()
	for _, c := range s.conns {
		c.shutdown(DisconnectSessionEnded)
	}
	s.connsMu.Unlock()
	s.leases.kick()
}

var _ consumer.Sink = (*Server)(nil)

// countError counts an error frame about to be sent.
func (s *Server) countError(code ErrorCode) {
	s.stats.errorFrames.Add(1)
	s.metrics.errors.WithLabelValues(string(code)).Inc()
}

// readDeadline bounds the waits of reads.
func (s *Server) readDeadline() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.cfg.ReadTimeout)
}
