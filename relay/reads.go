package relay

import (
	"encoding/json"
	"sort"

	"github.com/roomlog/roomlog/consumer"
	"github.com/roomlog/roomlog/record"
)

// Reads of the folded state: get, presence, history. They run on the
// connection's reader goroutine and take a partition's read lock.

// partitionOf is room's partition (record.PartitionOf): where its joins and
// state live.
func (s *Server) partitionOf(room string) *consumer.Partition {
	return s.cons.State().Partition(record.PartitionOf(room, s.partitions))
}

// checkPos checks that a client's position pos (its field) can be
// compared with the positions of room, whose partition is part: from this
// topic's incarnation (stale_position) and in that partition
// (bad_position).
func (s *Server) checkPos(field string, pos record.Pos, room string, part int32) *frameError {
	if pos.Epoch != s.epoch {
		return errorf(CodeStalePosition, "%s is a position in another topic, or in an earlier incarnation of this one", field)
	}
	if pos.Partition != part {
		return errorf(CodeBadPosition, "%s is not a position of room %q", field, room)
	}
	return nil
}

// waitFolded waits until the fold has passed the connection's own newest
// record in p and the client's `after` position: read-your-writes.
func (s *Server) waitFolded(c *conn, f *clientFrame, p *consumer.Partition) *frameError {
	c.mu.Lock()
	next := c.lastWrite.get(p.ID()) + 1
	c.mu.Unlock()
	if f.hasAfter {
		if ferr := s.checkPos("after", f.after, f.Room, p.ID()); ferr != nil {
			return ferr
		}
		next = max(next, f.after.Offset+1)
	}
	ctx, cancel := s.readDeadline()
	defer cancel()
	if err := s.cons.WaitFor(ctx, p.ID(), next); err != nil {
		return errorf(CodeTimeout, "this relay has not caught up with the position yet: %v", err)
	}
	return nil
}

// get answers a key's value and version, or the room's whole state.
func (s *Server) get(c *conn, f *clientFrame) (ack, *frameError) {
	p := s.partitionOf(f.Room)
	if ferr := s.waitFolded(c, f, p); ferr != nil {
		return ack{}, ferr
	}
	p.RLock()
	defer p.RUnlock()
	at := p.Pos(s.epoch, p.Next()-1)
	a := ack{pos: &at}
	r := p.Room(f.Room)
	if f.Key != nil {
		var e consumer.Entry
		if r != nil && r.KV[*f.Key] != nil {
			e = *r.KV[*f.Key]
		}
		a.entry = &e
		return a, nil
	}
	kv := []keyEntry{}
	if r != nil {
		for k, e := range r.KV {
			kv = append(kv, keyEntry{Key: k, Entry: *e})
		}
		sort.Slice(kv, func(i, j int) bool { return kv[i].Key < kv[j].Key })
	}
	a.state = &kv
	return a, nil
}

// presence answers the room's members on every relay, in join order.
func (s *Server) presence(c *conn, f *clientFrame) (ack, *frameError) {
	p := s.partitionOf(f.Room)
	if ferr := s.waitFolded(c, f, p); ferr != nil {
		return ack{}, ferr
	}
	p.RLock()
	at := p.Pos(s.epoch, p.Next()-1)
	members := []consumer.Member{}
	if r := p.Room(f.Room); r != nil {
		members = consumer.SortedMembers(r)
	}
	p.RUnlock()
	return ack{pos: &at, members: &members}, nil
}

// history answers up to f.Limit of the room's publishes before f.before
// (default: the newest), oldest first: from the in-memory window when it
// covers the page, else read back from the log in growing chunks.
func (s *Server) history(_ *conn, f *clientFrame) (ack, *frameError) {
	p := s.partitionOf(f.Room)
	if f.hasBefore {
		if ferr := s.checkPos("before", f.before, f.Room, p.ID()); ferr != nil {
			return ack{}, ferr
		}
	}
	p.RLock()
	before := p.Next()
	if f.hasBefore && f.before.Offset < before {
		before = f.before.Offset
	}
	var msgs []consumer.Message
	dropped := int64(-1)
	if r := p.Room(f.Room); r != nil {
		var hist []consumer.Message
		hist, dropped = p.History(r)
		for _, m := range hist {
			if m.Offset < before {
				msgs = append(msgs, m)
			}
		}
	}
	p.RUnlock()
	more := dropped >= 0 || len(msgs) > f.Limit
	if len(msgs) > f.Limit {
		msgs = msgs[len(msgs)-f.Limit:]
	}
	if len(msgs) < f.Limit && dropped >= 0 {
		// The window does not reach back far enough: read the log below
		// what the window holds.
		upTo := before
		if len(msgs) > 0 {
			upTo = msgs[0].Offset
		}
		older, olderMore, err := s.readHistory(f.Room, p, upTo, f.Limit-len(msgs))
		if err != nil {
			return ack{}, errorf(CodeTimeout, "reading history from the log: %v", err)
		}
		msgs, more = append(older, msgs...), olderMore
	}
	return ack{history: &historyPage{room: f.Room, epoch: s.epoch, part: p.ID(), messages: msgs, more: more && len(msgs) > 0}}, nil
}

// Bounds of a history read from the log.
const (
	historyFirstChunk = 1024
	historyMaxScan    = 1 << 20 // records scanned per request
)

// readHistory reads back from offset upTo (exclusive) until it has limit of
// the room's publishes or reaches the log's start. more reports whether
// older records may exist.
func (s *Server) readHistory(room string, p *consumer.Partition, upTo int64, limit int) ([]consumer.Message, bool, error) {
	ctx, cancel := s.readDeadline()
	defer cancel()
	var out []consumer.Message
	chunk, scanned := int64(historyFirstChunk), int64(0)
	for hi := upTo; hi > 0 && len(out) < limit && scanned < historyMaxScan; {
		lo := max(hi-chunk, 0)
		var page []consumer.Message
		logStart, err := consumer.ReadPublishes(ctx, s.clientOpts(kafkaClientReader), s.cfg.Topic, p, room, lo, hi, func(m consumer.Message) bool {
			m.Data = append(json.RawMessage(nil), m.Data...) // kept past the call: not the fetch buffer's
			page = append(page, m)
			return true
		})
		if err != nil {
			return out, true, err
		}
		out = append(page, out...)
		scanned += hi - lo
		if lo <= logStart {
			if len(out) > limit {
				out = out[len(out)-limit:]
				return out, true, nil
			}
			return out, false, nil
		}
		hi, chunk = lo, chunk*2
	}
	if len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out, true, nil
}
