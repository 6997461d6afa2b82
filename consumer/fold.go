package consumer

import (
	"encoding/json"
	"math"
	"sort"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/record"
)

// The fold: the state of every room is a pure function of the records of its
// partition, applied in offset order. Nothing here reads a clock, a random
// source or a setting that may differ between relays (the history window is
// a cache and does not change results); record timestamps come from the log.

// Left is one member leaving a room.
type Left struct {
	Room   string
	Member Member
	Reason string // "leave", "disconnect", "expired", "restarted"
}

// Leave reasons.
const (
	ReasonLeave     = "leave"
	ReasonExpired   = "expired"
	ReasonRestarted = "restarted"
	ReasonRemoved   = "removed" // a remove record (the backend API)
)

// Result is what folding one record did.
type Result struct {
	// Publish: Duplicate is set when the client message id was already
	// seen in the dedupe window; Original is the first publish's offset.
	Duplicate bool
	Original  int64

	// State ops (set, del, incr, cas) and joins: Code is empty when the op
	// took effect, else why not (CodeConflict, ...). Entry is the key's
	// value and version after the op (Version 0: absent).
	Code  string
	Entry Entry

	// Presence changes.
	Joined *Member
	Left   []Left

	// Ended is set when a lease or expire record ended a relay session
	// (its members are in Left).
	Ended string

	// Misplaced is set for a record written to another partition than its
	// key's (Home): the fold skipped it, and its re-homed copy takes its
	// place (misplaced.go). A re-homed copy (Event.Origin set) folded
	// before has Duplicate set, and Original is the first copy's offset.
	Misplaced bool
	Home      int32
}

// State is the folded state of every partition of the events topic. The
// relays' consumer and the replay tools run exactly this code.
type State struct {
	window     int
	topicParts int32
	parts      map[int32]*Partition
}

// NewState returns an empty state. window is the number of recent publishes
// kept in memory per room (a cache for recovery and history).
func NewState(window int) *State {
	return &State{window: window, parts: make(map[int32]*Partition)}
}

// Partition returns partition id's state, creating it empty.
func (s *State) Partition(id int32) *Partition {
	p := s.parts[id]
	if p == nil {
		p = newPartition(id, s.window)
		p.topicParts = s.topicParts
		s.parts[id] = p
	}
	return p
}

// Partitions returns the partitions known so far.
func (s *State) Partitions() []*Partition {
	ps := make([]*Partition, 0, len(s.parts))
	for _, p := range s.parts {
		ps = append(ps, p)
	}
	return ps
}

// Apply decodes and folds one record into its partition, under the
// partition's lock. A record that does not decode advances the partition and
// returns the error. It must be called in offset order per partition.
func (p *Partition) Apply(r *kgo.Record, res *Result) (record.Event, error) {
	ev, err := record.Decode(r)
	p.mu.Lock()
	*res = Result{}
	if err == nil {
		ts := r.Timestamp.UnixMilli()
		if !p.place(&ev, r.Offset, ts, res) {
			p.apply(&ev, r.Offset, ts, res)
		}
	}
	p.next = r.Offset + 1
	p.mu.Unlock()
	return ev, err
}

// Advance marks the partition as folded up to next (after a batch), waking
// waiters. The consumer calls it once per fetched batch, not per record.
func (p *Partition) Advance() {
	p.mu.Lock()
	close(p.notify)
	p.notify = make(chan struct{})
	p.mu.Unlock()
}

func (p *Partition) room(name string) *Room {
	r := p.rooms[name]
	if r == nil {
		r = &Room{Members: make(map[string]*Member), KV: make(map[string]*Entry), name: name, dropped: -1}
		p.rooms[name] = r
	}
	return r
}

// gc drops a room with nothing left in it.
func (p *Partition) gc(name string, r *Room) {
	if len(r.Members) == 0 && len(r.KV) == 0 && len(r.history) == 0 {
		delete(p.rooms, name)
	}
}

func (p *Partition) apply(ev *record.Event, off, ts int64, res *Result) {
	p.expireRevocations(ts)
	switch ev.Type {
	case record.TypePublish:
		p.publish(ev, off, ts, res)
	case record.TypeJoin:
		p.join(ev, off, ts, res)
	case record.TypeLeave:
		if ev.SIO != nil {
			p.sioLeave(ev, ts)
		}
		r := p.rooms[ev.Room]
		if r == nil {
			return
		}
		if m := r.Members[ev.From]; m != nil {
			p.removeMember(ev.Room, r, m, ReasonLeave, res)
			p.gc(ev.Room, r)
		}
	case record.TypeSet, record.TypeDel, record.TypeIncr, record.TypeCAS:
		p.state(ev, off, res)
	case record.TypeLease:
		p.lease(ev, off, ts, res)
	case record.TypeRevoke:
		p.revoke(ev, ts, res)
	case record.TypeRemove:
		p.remove(ev, res)
	case record.TypeExpire:
		l := p.relays[ev.Relay]
		if l == nil || l.Session != ev.Session || l.LeaseOffset != ev.Version {
			return // renewed since, or already ended: the expiry is stale
		}
		// The relay's entry goes: names are not reused forever (pods), and
		// a join from the ended session finds no live lease either way.
		delete(p.relays, ev.Relay)
		res.Ended = ev.Session
		p.dropSession(ev.Session, ReasonExpired, res)
		p.sioSessionEnded(ev.Session, ts)
	}
}

func (p *Partition) publish(ev *record.Event, off, ts int64, res *Result) {
	if ev.MID != "" {
		p.expireDedupe(ts)
		k := dedupeKey{room: ev.Room, user: ev.User, mid: ev.MID}
		if first, ok := p.dedupe[k]; ok {
			res.Duplicate, res.Original = true, first
			return
		}
		p.dedupe[k] = off
		p.dedupeQ = append(p.dedupeQ, dedupeEntry{key: k, ts: ts})
	}
	if p.window <= 0 {
		return
	}
	r := p.room(ev.Room)
	m := Message{
		Event:     ev.Event,
		Data:      append(json.RawMessage(nil), ev.Data...), // the record's buffer is not ours to keep
		From:      ev.From,
		User:      ev.User,
		Offset:    off,
		Timestamp: ts,
	}
	if len(r.history) < p.window {
		r.history = append(r.history, m)
		return
	}
	// Full: overwrite the oldest (a ring; head is the oldest).
	r.dropped = r.history[r.head].Offset
	r.history[r.head] = m
	r.head = (r.head + 1) % len(r.history)
}

// expireDedupe forgets ids older than the window (in record time) and
// beyond the cap, oldest first. The queue is consumed from dedupeHead and
// compacted only when the consumed part is at least half of it, so each
// entry is moved O(1) times.
func (p *Partition) expireDedupe(now int64) {
	for p.dedupeHead < len(p.dedupeQ) {
		e := p.dedupeQ[p.dedupeHead]
		if now-e.ts < DedupeWindowMillis && len(p.dedupeQ)-p.dedupeHead < MaxDedupeEntries {
			break
		}
		delete(p.dedupe, e.key)
		p.dedupeQ[p.dedupeHead] = dedupeEntry{}
		p.dedupeHead++
	}
	if p.dedupeHead > 0 && p.dedupeHead*2 >= len(p.dedupeQ) {
		n := copy(p.dedupeQ, p.dedupeQ[p.dedupeHead:])
		p.dedupeQ = p.dedupeQ[:n]
		p.dedupeHead = 0
	}
}

func (p *Partition) join(ev *record.Event, off, ts int64, res *Result) {
	l := p.liveLease(ev.Relay, ev.Session)
	if l == nil {
		// The relay's session ended before this join was folded (it
		// crashed or restarted): the member would never leave.
		res.Code = CodeStale
		return
	}
	if ev.SIO != nil {
		p.sioJoin(ev, off)
	}
	r := p.room(ev.Room)
	if _, ok := r.Members[ev.From]; ok {
		return
	}
	// Every relay folds every member: the relay's name and session and
	// the room's name are the lease's and the room's copies, not this
	// record's.
	m := &Member{Conn: ev.From, User: ev.User, Relay: l.name, Session: l.Session, JoinedAt: ts, Offset: off}
	r.Members[ev.From] = m
	conns := p.sessions[l.Session]
	if conns == nil {
		conns = make(map[memberKey]struct{})
		p.sessions[l.Session] = conns
	}
	conns[memberKey{conn: ev.From, room: r.name}] = struct{}{}
	res.Joined = m
}

func (p *Partition) removeMember(room string, r *Room, m *Member, reason string, res *Result) {
	delete(r.Members, m.Conn)
	if conns := p.sessions[m.Session]; conns != nil {
		delete(conns, memberKey{conn: m.Conn, room: room})
		if len(conns) == 0 {
			delete(p.sessions, m.Session)
		}
	}
	res.Left = append(res.Left, Left{Room: room, Member: *m, Reason: reason})
}

// remove folds a remove record: every connection of the user leaves the
// room, in join order.
func (p *Partition) remove(ev *record.Event, res *Result) {
	r := p.rooms[ev.Room]
	if r == nil {
		return
	}
	for _, m := range SortedMembers(r) {
		if m.User == ev.User {
			p.removeMember(ev.Room, r, r.Members[m.Conn], ReasonRemoved, res)
		}
	}
	p.gc(ev.Room, r)
}

// dropSession removes every member of a relay session from this partition's
// rooms, in a deterministic order (by join offset).
func (p *Partition) dropSession(session, reason string, res *Result) {
	conns := p.sessions[session]
	if len(conns) == 0 {
		return
	}
	type gone struct {
		room string
		m    *Member
	}
	all := make([]gone, 0, len(conns))
	for k := range conns {
		if m := p.rooms[k.room].Members[k.conn]; m != nil {
			all = append(all, gone{k.room, m})
		}
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].m.Offset != all[j].m.Offset {
			return all[i].m.Offset < all[j].m.Offset
		}
		return all[i].m.Conn < all[j].m.Conn
	})
	for _, g := range all {
		r := p.rooms[g.room]
		p.removeMember(g.room, r, g.m, reason, res)
		p.gc(g.room, r)
	}
	delete(p.sessions, session)
}

func (p *Partition) lease(ev *record.Event, off, ts int64, res *Result) {
	l := p.relays[ev.Relay]
	if l == nil {
		p.relays[ev.Relay] = &relayLease{name: ev.Relay, Session: ev.Session, LeaseOffset: off, LeaseTime: ts}
		return
	}
	if l.Session != ev.Session {
		// The relay restarted: its previous session's members are gone.
		res.Ended = l.Session
		p.dropSession(l.Session, ReasonRestarted, res)
		p.sioSessionEnded(l.Session, ts)
		*l = relayLease{name: l.name, Session: ev.Session, LeaseOffset: off, LeaseTime: ts}
		return
	}
	if !l.Expired {
		l.LeaseOffset, l.LeaseTime = off, ts
	}
	p.sioPrune(ts)
}

func (p *Partition) state(ev *record.Event, off int64, res *Result) {
	r := p.rooms[ev.Room]
	var cur *Entry
	if r != nil {
		cur = r.KV[ev.Key]
	}
	if cur != nil {
		res.Entry = *cur
	}
	isNew := cur == nil
	full := isNew && r != nil && len(r.KV) >= MaxKeysPerRoom
	switch ev.Type {
	case record.TypeDel:
		if cur != nil {
			delete(r.KV, ev.Key)
			p.gc(ev.Room, r)
		}
		res.Entry = Entry{}
		return
	case record.TypeCAS:
		var have int64
		if cur != nil {
			have = cur.Version
		}
		if have != ev.Version {
			res.Code = CodeConflict
			return
		}
		fallthrough
	case record.TypeSet:
		if len(ev.Data) > MaxValueBytes {
			res.Code = CodeTooLarge
			return
		}
		if full {
			res.Code = CodeStateFull
			return
		}
		res.Entry = Entry{Value: append(json.RawMessage(nil), ev.Data...), Version: off}
	case record.TypeIncr:
		var n int64
		if cur != nil {
			v, err := strconv.ParseInt(string(cur.Value), 10, 64)
			if err != nil {
				res.Code = CodeNotInteger
				return
			}
			n = v
		}
		if (ev.Delta > 0 && n > math.MaxInt64-ev.Delta) || (ev.Delta < 0 && n < math.MinInt64-ev.Delta) {
			res.Code = CodeOverflow
			return
		}
		if full {
			res.Code = CodeStateFull
			return
		}
		res.Entry = Entry{Value: strconv.AppendInt(nil, n+ev.Delta, 10), Version: off}
	}
	e := res.Entry
	p.room(ev.Room).KV[ev.Key] = &e
}
