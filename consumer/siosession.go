package consumer

import (
	"maps"

	"github.com/roomlog/roomlog/record"
)

// Socket.IO sessions for connection state recovery (docs/socketio.md): the
// join and leave records of a Socket.IO connection carry its session's key
// (a hash of the private id the client holds), its socket id and flags
// (record.SIORef). Each partition folds, per session, the rooms it holds
// there and where the socket's delivery of each began, and when its
// connection went; any relay reads that to resume the session after the
// relay that held it is gone. Like the rest of the fold it reads no clock:
// times are the records' own.

// MaxSIODisconnectMillis is how long, in record time, a partition keeps a
// Socket.IO session after its connection went. A relay's
// --sio-max-disconnection may be shorter, never longer.
const MaxSIODisconnectMillis = 15 * 60 * 1000

// maxSIORooms bounds the rooms one session holds in one partition (a relay
// allows far fewer per connection; this bounds a hostile producer).
const maxSIORooms = 10_000

// SIOSession is one Socket.IO session as folded in one partition.
type SIOSession struct {
	SID  string `json:"sid"`            // the socket id the client knows
	User string `json:"user,omitempty"` // who it was authenticated as
	// Conn, Relay and Session name the connection that holds it (the
	// newest join's), its relay and relay session.
	Conn    string `json:"conn"`
	Relay   string `json:"relay"`
	Session string `json:"session"`
	// Gone is the record time the connection went (a leave marked gone, or
	// the end of its relay session); 0 while it holds the session.
	Gone  int64              `json:"gone,omitempty"`
	Rooms map[string]SIORoom `json:"rooms"`
}

// SIORoom is one of a session's rooms.
type SIORoom struct {
	// Start is the offset after which the socket receives the room's
	// records: its join's, or the since of a join that resumed from a
	// position.
	Start    int64 `json:"start"`
	Presence bool  `json:"presence,omitempty"`
}

// sioJoin folds a Socket.IO connection's join at off: the session now
// holds the room, through this connection.
func (p *Partition) sioJoin(ev *record.Event, off int64) {
	ref := ev.SIO
	s := p.sio[ref.Hash]
	if s == nil {
		s = &SIOSession{Rooms: make(map[string]SIORoom)}
		p.sio[ref.Hash] = s
	}
	if _, ok := s.Rooms[ev.Room]; !ok && len(s.Rooms) >= maxSIORooms {
		return
	}
	s.SID, s.User, s.Conn, s.Relay, s.Session, s.Gone = ref.SID, ev.User, ev.From, ev.Relay, ev.Session, 0
	start := off
	if ref.Since >= 0 && ref.Since < off {
		start = ref.Since
	}
	s.Rooms[ev.Room] = SIORoom{Start: start, Presence: ref.Presence}
}

// sioLeave folds a Socket.IO connection's leave at record time ts: a leave
// drops the room, a connection that went marks the session gone. Leaves of
// a connection that no longer holds the session (it was resumed elsewhere)
// change nothing.
func (p *Partition) sioLeave(ev *record.Event, ts int64) {
	s := p.sio[ev.SIO.Hash]
	if s == nil || s.Conn != ev.From {
		return
	}
	if ev.SIO.Gone {
		if s.Gone == 0 {
			s.Gone = ts
		}
		return
	}
	delete(s.Rooms, ev.Room)
	if len(s.Rooms) == 0 {
		delete(p.sio, ev.SIO.Hash)
	}
}

// sioSessionEnded marks the sessions held by an ended relay session gone at
// ts, and forgets sessions gone for longer than MaxSIODisconnectMillis.
func (p *Partition) sioSessionEnded(session string, ts int64) {
	for _, s := range p.sio {
		if s.Session == session && s.Gone == 0 {
			s.Gone = ts
		}
	}
	p.sioPrune(ts)
}

// sioPrune forgets sessions gone for longer than MaxSIODisconnectMillis. It
// runs on lease records (every relay appends them regularly), at most once a
// second of record time.
func (p *Partition) sioPrune(ts int64) {
	if len(p.sio) == 0 || ts-p.sioPruned < 1000 {
		return
	}
	p.sioPruned = ts
	for h, s := range p.sio {
		if s.Gone != 0 && ts-s.Gone > MaxSIODisconnectMillis {
			delete(p.sio, h)
		}
	}
}

// SIOSession returns a copy of the session with key hash as folded here.
func (p *Partition) SIOSession(hash string) (SIOSession, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	s := p.sio[hash]
	if s == nil {
		return SIOSession{}, false
	}
	c := *s
	c.Rooms = maps.Clone(s.Rooms)
	return c, true
}

func (p *Partition) sioDump() map[string]SIOSession {
	if len(p.sio) == 0 {
		return nil
	}
	out := make(map[string]SIOSession, len(p.sio))
	for h, s := range p.sio {
		out[h] = *s
	}
	return out
}
