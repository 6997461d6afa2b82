package consumer

import "github.com/roomlog/roomlog/record"

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

// sioSession is a SIOSession as the fold keeps it: its rooms in a slice,
// since most sessions hold one or two rooms per partition, and a map of one
// room costs about 300 bytes where a slice of one costs 32; every relay
// folds every connected Socket.IO client's session. A session holds at
// most maxSIORooms rooms, so a search stays bounded.
type sioSession struct {
	SID, User, Conn, Relay, Session string
	Gone                            int64
	rooms                           []sioRoomAt
}

type sioRoomAt struct {
	room string
	SIORoom
}

// find returns the index of room in s.rooms, or -1.
func (s *sioSession) find(room string) int {
	for i := range s.rooms {
		if s.rooms[i].room == room {
			return i
		}
	}
	return -1
}

// export returns s as a SIOSession, with a map of its own.
func (s *sioSession) export() SIOSession {
	out := SIOSession{SID: s.SID, User: s.User, Conn: s.Conn, Relay: s.Relay, Session: s.Session, Gone: s.Gone,
		Rooms: make(map[string]SIORoom, len(s.rooms))}
	for _, r := range s.rooms {
		out.Rooms[r.room] = r.SIORoom
	}
	return out
}

// importSIO returns ss as the fold keeps it.
func importSIO(ss SIOSession) *sioSession {
	s := &sioSession{SID: ss.SID, User: ss.User, Conn: ss.Conn, Relay: ss.Relay, Session: ss.Session, Gone: ss.Gone,
		rooms: make([]sioRoomAt, 0, len(ss.Rooms))}
	for room, r := range ss.Rooms {
		s.rooms = append(s.rooms, sioRoomAt{room, r})
	}
	return s
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
		s = &sioSession{}
		p.sio[ref.Hash] = s
	}
	i := s.find(ev.Room)
	if i < 0 && len(s.rooms) >= maxSIORooms {
		return
	}
	s.SID, s.User, s.Conn, s.Relay, s.Session, s.Gone = ref.SID, ev.User, ev.From, ev.Relay, ev.Session, 0
	start := off
	if ref.Since >= 0 && ref.Since < off {
		start = ref.Since
	}
	r := SIORoom{Start: start, Presence: ref.Presence}
	if i < 0 {
		s.rooms = append(s.rooms, sioRoomAt{ev.Room, r})
	} else {
		s.rooms[i].SIORoom = r
	}
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
	if i := s.find(ev.Room); i >= 0 {
		last := len(s.rooms) - 1
		s.rooms[i] = s.rooms[last]
		s.rooms[last] = sioRoomAt{}
		s.rooms = s.rooms[:last]
	}
	if len(s.rooms) == 0 {
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
	return s.export(), true
}

func (p *Partition) sioDump() map[string]SIOSession {
	if len(p.sio) == 0 {
		return nil
	}
	out := make(map[string]SIOSession, len(p.sio))
	for h, s := range p.sio {
		out[h] = s.export() // its own maps: a snapshot encodes them after the lock is released
	}
	return out
}
