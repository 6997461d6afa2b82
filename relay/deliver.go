package relay

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/consumer"
	"github.com/roomlog/roomlog/record"
)

// Deliver implements consumer.Sink: it runs on the consumer goroutine after
// each record is folded, answers the record's sender if it is connected
// here, and fans the record's effects out to the room's local subscribers.
// It never blocks.
func (s *Server) Deliver(d *consumer.Delivery) {
	ev, res := &d.Event, d.Result
	s.apiDelivered(d) // answers a backend API request waiting for this record
	own := s.ownConn(ev.From)
	// The record's inflight slot (appendRecord) is freed when its ack has
	// been written (so a fast publisher cannot pile acks onto its own
	// queue), or here when no ack carries it. Records the connection
	// appends without a slot (its leaves on close) find none to free.
	slot := own != nil
	defer func() {
		if slot {
			own.freeSlot()
		}
	}()
	ackOwn := func(b []byte) {
		own.enqueue(outFrame{data: b, slot: true})
		slot = false
	}
	switch ev.Type {
	case record.TypePublish:
		if own != nil {
			if res.Duplicate {
				s.metrics.publishes.WithLabelValues(outcomeDuplicate).Inc()
			} else {
				s.metrics.publishes.WithLabelValues(outcomeAcked).Inc()
			}
		}
		if own != nil && ev.Req != "" {
			a := ack{pos: &d.Pos, duplicate: res.Duplicate}
			if res.Duplicate {
				orig := d.Part.Pos(s.epoch, res.Original)
				a.pos = &orig
			}
			ackOwn(appendAckWith(nil, json.RawMessage(ev.Req), a))
		}
		if res.Duplicate {
			s.stats.duplicates.Add(1)
			return
		}
		n := s.hub.broadcast(ev.Room, false, "", func() []byte {
			return appendMessage(nil, ev.Room, ev.Event, ev.Data, ev.From, ev.User, d.Pos)
		})
		if n > 0 {
			s.metrics.deliveries.WithLabelValues(kindMessage).Add(float64(n))
			if d.Live {
				s.metrics.since(s.metrics.deliverLatency, d.Timestamp)
			}
		}
	case record.TypeJoin:
		if own != nil {
			s.joinFolded(own, d)
		}
		if res.Joined != nil {
			n := s.hub.broadcast(ev.Room, true, res.Joined.Conn, func() []byte {
				return appendPresenceEvent(nil, "joined", ev.Room, res.Joined, "", d.Pos)
			})
			s.metrics.deliveries.WithLabelValues(kindPresence).Add(float64(n))
		}
	case record.TypeLeave:
		if own != nil && ev.Req != "" {
			ackOwn(appendAckWith(nil, json.RawMessage(ev.Req), ack{pos: &d.Pos}))
		}
	case record.TypeSet, record.TypeDel, record.TypeIncr, record.TypeCAS:
		if own != nil && ev.Req != "" {
			if res.Code != "" {
				s.countError(ErrorCode(res.Code))
				ackOwn(appendStateError(nil, json.RawMessage(ev.Req), stateError(res.Code), res.Entry))
			} else {
				ackOwn(appendAckWith(nil, json.RawMessage(ev.Req), ack{pos: &d.Pos, entry: &res.Entry}))
			}
		}
		if res.Code == "" {
			n := s.hub.broadcast(ev.Room, false, "", func() []byte { return appendStateEvent(nil, ev, res.Entry, d.Pos) })
			s.metrics.deliveries.WithLabelValues(kindState).Add(float64(n))
		}
	case record.TypeLease:
		s.leases.seen(d.Pos.Partition, ev.Relay, d.Pos.Offset)
	}
	for i := range res.Left {
		l := &res.Left[i]
		n := s.hub.broadcast(l.Room, true, l.Member.Conn, func() []byte {
			return appendPresenceEvent(nil, "left", l.Room, &l.Member, l.Reason, d.Pos)
		})
		s.metrics.deliveries.WithLabelValues(kindPresence).Add(float64(n))
	}
	if res.Ended != "" && res.Ended == s.currentSession() {
		s.sessionEnded(d.Pos)
	}
}

func stateError(code string) *frameError {
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
			c.send(appendAckWith(nil, json.RawMessage(ev.Req), ack{pos: &d.Pos}))
		}
		return
	}
	if res.Code == consumer.CodeStale {
		c.mu.Lock()
		delete(c.rooms, ev.Room)
		c.mu.Unlock()
		c.sendError(j.id, errorf(CodeRelayRestarted, "the relay's session ended before the join took effect; rejoin"))
		return
	}
	s.metrics.joins.Inc()
	sb := &sub{c: c, presence: j.presence}
	if !j.hasSince {
		s.hub.add(ev.Room, sb)
		c.send(appendAckWith(nil, j.id, ack{pos: &d.Pos}))
		return
	}
	since := j.since
	if since.Epoch != s.epoch || since.Partition != d.Pos.Partition || since.Offset >= d.Pos.Offset {
		// Another topic (or incarnation of it), or a position that is not
		// in this room's partition before the join: nothing can be
		// recovered exactly.
		s.hub.add(ev.Room, sb)
		no := false
		c.send(appendAckWith(nil, j.id, ack{pos: &d.Pos, recovered: &no}))
		s.stats.recoveries.Add(1)
		s.metrics.recoveries.WithLabelValues("none").Inc()
		return
	}
	d.Part.RLock()
	var backlog []outFrame
	covered := false
	if r := d.Part.Room(ev.Room); r != nil {
		hist, dropped := d.Part.History(r)
		if dropped <= since.Offset {
			covered = true
			for _, m := range hist {
				if m.Offset > since.Offset && m.Offset < d.Pos.Offset {
					backlog = append(backlog, outFrame{data: appendMessage(nil, ev.Room, m.Event, m.Data, m.From, m.User, d.Part.Pos(s.epoch, m.Offset))})
				}
			}
		}
	}
	d.Part.RUnlock()
	s.stats.recoveries.Add(1)
	if covered {
		s.metrics.recoveries.WithLabelValues("window").Inc()
		yes := true
		backlog = append(backlog, outFrame{data: appendAckWith(nil, j.id, ack{pos: &d.Pos, recovered: &yes})})
		c.enqueue(backlog...)
		s.hub.add(ev.Room, sb)
		return
	}
	// Older than the window: read the gap from the log on another
	// goroutine while live frames wait in the sub.
	sb.recovering.Store(true)
	s.hub.add(ev.Room, sb)
	s.stats.logRecoveries.Add(1)
	s.metrics.recoveries.WithLabelValues("log").Inc()
	room, part, join, id := ev.Room, d.Part, d.Pos, j.id
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		backlog, complete := s.readRoom(room, part, since.Offset+1, join.Offset)
		sb.finishRecovery(backlog, outFrame{data: appendAckWith(nil, id, ack{pos: &join, recovered: &complete})})
	}()
}

// readRoom reads the room's publishes with offsets in [from, to) of part
// from the log, as message frames. complete is false when some of them are
// gone (retention) or the read failed.
func (s *Server) readRoom(room string, part *consumer.Partition, from, to int64) ([]outFrame, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ReadTimeout)
	defer cancel()
	var frames []outFrame
	logStart, err := consumer.ReadRange(ctx, s.clientOpts(), s.cfg.Topic, part.ID(), from, to, func(r *kgo.Record) bool {
		if string(r.Key) != room {
			return true
		}
		ev, err := record.Decode(r)
		if err != nil || ev.Type != record.TypePublish || part.IsDuplicate(&ev, r.Offset) {
			return true
		}
		frames = append(frames, outFrame{data: appendMessage(nil, room, ev.Event, ev.Data, ev.From, ev.User, part.Pos(s.epoch, r.Offset))})
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
		c.shutdown(CloseSessionEnded, "relay lost its lease; reconnect and rejoin")
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
