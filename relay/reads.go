package relay

import (
	"encoding/json"
	"sort"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

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

// waitFolded waits until the fold has passed the connection's own newest
// record in p and the client's `after` position: read-your-writes.
func (s *Server) waitFolded(c *conn, f *clientFrame, p *consumer.Partition) *frameError {
	c.mu.Lock()
	next := c.lastWrite[p.ID()] + 1
	c.mu.Unlock()
	part := p.ID()
	if f.hasAfter {
		if f.after.Epoch != s.epoch {
			return errorf(CodeStalePosition, "after is a position in another topic, or in an earlier incarnation of this one")
		}
		if f.after.Partition != part {
			return errorf(CodeBadPosition, "after is not a position of room %q", f.Room)
		}
		next = max(next, f.after.Offset+1)
	}
	ctx, cancel := s.readDeadline()
	defer cancel()
	if err := s.cons.WaitFor(ctx, part, next); err != nil {
		return errorf(CodeTimeout, "this relay has not caught up with the position yet: %v", err)
	}
	return nil
}

func (s *Server) get(c *conn, f *clientFrame) {
	p := s.partitionOf(f.Room)
	if ferr := s.waitFolded(c, f, p); ferr != nil {
		c.sendError(f.ID, ferr)
		return
	}
	p.RLock()
	at := p.Pos(s.epoch, p.Next()-1)
	b := appendAckWith(nil, f.ID, ack{pos: &at})
	b = b[:len(b)-1] // reopen the object for the answer's fields
	r := p.Room(f.Room)
	if f.Key != nil {
		var e consumer.Entry
		if r != nil && r.KV[*f.Key] != nil {
			e = *r.KV[*f.Key]
		}
		b = appendEntry(b, e)
	} else {
		b = append(b, `,"state":{`...)
		if r != nil {
			keys := make([]string, 0, len(r.KV))
			for k := range r.KV {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for i, k := range keys {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendString(b, k)
				b = append(b, `:{"value":`...)
				b = append(b, r.KV[k].Value...)
				b = append(b, `,"version":`...)
				b = strconv.AppendInt(b, r.KV[k].Version, 10)
				b = append(b, '}')
			}
		}
		b = append(b, '}')
	}
	p.RUnlock()
	c.send(append(b, '}'))
}

func (s *Server) presence(c *conn, f *clientFrame) {
	p := s.partitionOf(f.Room)
	if ferr := s.waitFolded(c, f, p); ferr != nil {
		c.sendError(f.ID, ferr)
		return
	}
	p.RLock()
	at := p.Pos(s.epoch, p.Next()-1)
	var members []consumer.Member
	if r := p.Room(f.Room); r != nil {
		members = consumer.SortedMembers(r)
	}
	p.RUnlock()
	b := appendAckWith(nil, f.ID, ack{pos: &at})
	b = append(b[:len(b)-1], `,"members":[`...)
	for i := range members {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendMember(b, &members[i])
	}
	c.send(append(b, "]}"...))
}

// history answers up to f.Limit of the room's publishes before f.before
// (default: the newest), oldest first: from the in-memory window when it
// covers the page, else read back from the log in growing chunks.
func (s *Server) history(c *conn, f *clientFrame) {
	p := s.partitionOf(f.Room)
	if f.hasBefore && f.before.Epoch != s.epoch {
		c.sendError(f.ID, errorf(CodeStalePosition, "before is a position in another topic, or in an earlier incarnation of this one"))
		return
	}
	if f.hasBefore && f.before.Partition != p.ID() {
		c.sendError(f.ID, errorf(CodeBadPosition, "before is not a position of room %q", f.Room))
		return
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
	var err error
	if len(msgs) < f.Limit && dropped >= 0 {
		// The window does not reach back far enough: read the log below
		// what the window holds.
		upTo := before
		if len(msgs) > 0 {
			upTo = msgs[0].Offset
		}
		var older []consumer.Message
		older, more, err = s.readHistory(f.Room, p, upTo, f.Limit-len(msgs))
		msgs = append(older, msgs...)
	}
	if err != nil {
		c.sendError(f.ID, errorf(CodeTimeout, "reading history from the log: %v", err))
		return
	}
	b := appendAckWith(nil, f.ID, ack{})
	b = append(b[:len(b)-1], `,"messages":[`...)
	for i, m := range msgs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendMessage(b, f.Room, m.Event, m.Data, m.From, m.User, p.Pos(s.epoch, m.Offset))
	}
	b = append(b, `],"more":`...)
	b = strconv.AppendBool(b, more && len(msgs) > 0)
	c.send(append(b, '}'))
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
		logStart, err := consumer.ReadRange(ctx, s.clientOpts(), s.cfg.Topic, p.ID(), lo, hi, func(r *kgo.Record) bool {
			if string(r.Key) != room {
				return true
			}
			ev, err := record.Decode(r)
			if err != nil || ev.Type != record.TypePublish || p.IsDuplicate(&ev, r.Offset) {
				return true
			}
			page = append(page, consumer.Message{Event: ev.Event, Data: append(json.RawMessage(nil), ev.Data...), From: ev.From, User: ev.User, Offset: r.Offset, Timestamp: r.Timestamp.UnixMilli()})
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
