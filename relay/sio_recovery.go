package relay

import (
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/roomlog/roomlog/consumer"
	"github.com/roomlog/roomlog/internal/engineio"
	"github.com/roomlog/roomlog/record"
)

// Connection state recovery for Socket.IO clients (docs/socketio.md), in
// three parts:
//
//   - The session is in the log. A Socket.IO connection gets a private id
//     (pid) on CONNECT; its join and leave records carry the pid's hash and
//     its socket id (record.SIORef), and every relay's fold keeps, per
//     session, its rooms and where the socket's delivery of each began
//     (consumer/siosession.go).
//   - Every event carries the socket's position. sioStamp appends the
//     socket's offset (sio_offset.go) as the last argument of every event
//     delivering a record, as the reference server does; the client keeps
//     the last one.
//   - Any relay resumes it. A CONNECT with {pid, offset} is planned by
//     resumeSIO from the folded session: each room is joined again with
//     since = what the offset says the socket received (or where its
//     delivery began), through the native join's recovery, so every missed
//     record is delivered once and in order before live ones.

// sioSession is a Socket.IO connection's recoverable session.
type sioSession struct {
	pid  string // the client's secret; never logged, never in the log
	hash string // record.SIORef.Hash: the key of the session in the log
	sid  string // the socket id the client knows (kept across recoveries)
	left bool   // the client disconnected the socket itself: not recoverable
}

// newSIOPid returns a fresh private id: 16 random bytes, base64url.
func newSIOPid() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// sioHash is the session key of pid: the first 16 bytes of its SHA-256,
// in hex. A pid of another form has none.
func sioHash(pid string) (string, bool) {
	if b, err := base64.RawURLEncoding.DecodeString(pid); err != nil || len(b) != 16 {
		return "", false
	}
	sum := sha256.Sum256([]byte(pid))
	return hex.EncodeToString(sum[:16]), true
}

// ref is the rl-sio header of this session's join or leave.
func (ss *sioSession) ref(since int64, presence, gone bool) *record.SIORef {
	return &record.SIORef{Hash: ss.hash, SID: ss.sid, Since: since, Presence: presence, Gone: gone}
}

// sioStamp is a Socket.IO socket's delivery position: the newest record
// delivered per partition, and the rooms whose backlog is under way. It
// stamps the position on each event in the order the events are queued:
// stamping and queueing happen under mu. Lock order: after the hub's locks
// and sub.mu, before the Engine.IO session's.
type sioStamp struct {
	mu      sync.Mutex
	off     sioOffset                 // parts ascending; rooms rebuilt from backlog
	backlog map[string]*sioRoomOffset // rooms with a backlog under way
	buf     []byte
}

func newSIOStamp(epoch uint64) *sioStamp {
	return &sioStamp{off: sioOffset{epoch: epoch}, backlog: make(map[string]*sioRoomOffset)}
}

// noted is what note changed, for undo.
type noted struct {
	i        int // index of the partition's entry
	inserted bool
	oldOff   int64
	backlog  *sioRoomOffset
	oldLast  int64
}

// note records that the record at is delivered; undo takes it back.
func (st *sioStamp) note(at *frameAt) noted {
	p := at.pos
	i, found := slices.BinarySearchFunc(st.off.parts, p.Partition, func(e sioPartOffset, t int32) int { return cmp.Compare(e.part, t) })
	n := noted{i: i, inserted: !found}
	if !found {
		st.off.parts = slices.Insert(st.off.parts, i, sioPartOffset{part: p.Partition, off: p.Offset})
	} else {
		n.oldOff = st.off.parts[i].off
		st.off.parts[i].off = max(n.oldOff, p.Offset)
	}
	if b := st.backlog[at.room]; b != nil && b.part == p.Partition {
		n.backlog, n.oldLast = b, b.off
		b.off = p.Offset
	}
	return n
}

// undo takes back the last note.
func (st *sioStamp) undo(n noted) {
	if n.backlog != nil {
		n.backlog.off = n.oldLast
	}
	if n.inserted {
		st.off.parts = slices.Delete(st.off.parts, n.i, n.i+1)
	} else {
		st.off.parts[n.i].off = n.oldOff
	}
}

// stamp returns f's packet with the socket's offset as its last argument:
// `2[...]` becomes `2[...,"<offset>"]`.
func (st *sioStamp) stamp(data []byte) []byte {
	if len(data) < 2 || data[len(data)-1] != ']' {
		return data
	}
	st.off.rooms = st.off.rooms[:0]
	for _, b := range st.backlog {
		st.off.rooms = append(st.off.rooms, *b)
	}
	slices.SortFunc(st.off.rooms, func(a, b sioRoomOffset) int {
		return cmp.Or(cmp.Compare(a.part, b.part), cmp.Compare(a.room, b.room))
	})
	st.buf = appendSIOOffset(st.buf[:0], &st.off)
	out := make([]byte, 0, len(data)+len(st.buf)+3)
	out = append(out, data[:len(data)-1]...)
	out = append(out, ',', '"')
	out = append(out, st.buf...)
	return append(out, '"', ']')
}

// beginBacklog marks room's backlog (records after since) under way: until
// endBacklog, the offset names the room with its own newest record.
func (st *sioStamp) beginBacklog(room string, part int32, since int64) {
	st.mu.Lock()
	st.backlog[room] = &sioRoomOffset{part: part, room: sioRoomHash(room), off: since}
	st.mu.Unlock()
}

// endBacklog: room's backlog and what arrived meanwhile are queued, so its
// partition's entry covers it again.
func (st *sioStamp) endBacklog(room string) {
	st.mu.Lock()
	delete(st.backlog, room)
	st.mu.Unlock()
}

// send stamps fs and queues them on sess, all or none, without blocking.
func (st *sioStamp) send(sess *engineio.Session, fs []outFrame) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	msgs := make([]engineio.Message, 0, len(fs))
	for _, f := range fs {
		if len(f.data) == 0 {
			continue
		}
		data := f.data
		if f.at != nil {
			st.note(f.at)
			data = st.stamp(data)
		}
		msgs = append(msgs, engineio.Message{Data: data})
	}
	if len(msgs) == 0 {
		return nil
	}
	return sess.Send(msgs...)
}

// sendWait stamps and queues fs one by one, waiting for room: each event's
// offset is taken when it is queued, so it never claims a record queued
// after it. It gives up when done closes.
func (st *sioStamp) sendWait(sess *engineio.Session, done <-chan struct{}, fs []outFrame) {
	for _, f := range fs {
		if len(f.data) == 0 {
			continue
		}
		for {
			st.mu.Lock()
			data := f.data
			var n noted
			if f.at != nil {
				n = st.note(f.at)
				data = st.stamp(data)
			}
			ok, err := sess.TrySend(engineio.Message{Data: data})
			if !ok && f.at != nil {
				st.undo(n)
			}
			st.mu.Unlock()
			if err != nil {
				return
			}
			if ok {
				break
			}
			select {
			case <-done:
				return
			default:
			}
			sess.WaitSpace(done, 100*time.Millisecond)
		}
	}
}

// sioResume is a session to resume: its socket id and each room's join.
type sioResume struct {
	sid   string
	rooms []sioResumeRoom
}

type sioResumeRoom struct {
	room     string
	presence bool
	since    record.Pos // the last record of the room the socket received, or where its delivery began
}

// resumeSIO plans the recovery of the session of pid for a client whose
// last offset is offset ("" if it received no event) and who is now
// authenticated as user. It returns why the session cannot be resumed
// (a metric label) when it cannot: the client then starts a new session.
func (s *Server) resumeSIO(pid, offset, user string) (*sioResume, string) {
	hash, ok := sioHash(pid)
	if !ok {
		return nil, "unknown"
	}
	var off *sioOffset
	if offset != "" {
		o, err := parseSIOOffset(offset)
		if err != nil {
			return nil, "bad_offset"
		}
		if o.epoch != s.epoch {
			return nil, "other_epoch"
		}
		off = o
	}
	plan := &sioResume{}
	found, held := false, false
	var gone int64
	type check struct {
		part  *consumer.Partition
		since int64
	}
	var old []check // rooms whose backlog starts before the history window
	for id := range s.partitions {
		p := s.cons.State().Partition(id)
		ss, ok := p.SIOSession(hash)
		if !ok {
			continue
		}
		if ss.User != user {
			return nil, "other_user"
		}
		found = true
		plan.sid = ss.SID
		if ss.Gone == 0 {
			held = true
		}
		gone = max(gone, ss.Gone)
		for room, r := range ss.Rooms {
			since := r.Start
			if off != nil {
				if o, ok := off.roomOffset(id, room); ok {
					since = max(since, o)
				} else if o, ok := off.partOffset(id); ok {
					since = max(since, o)
				}
			}
			plan.rooms = append(plan.rooms, sioResumeRoom{room: room, presence: r.Presence, since: p.Pos(s.epoch, since)})
			if !s.windowCovers(p, room, since) {
				old = append(old, check{p, since})
			}
		}
	}
	switch {
	case !found:
		return nil, "unknown"
	case !held && time.Since(time.UnixMilli(gone)) > s.cfg.SIOMaxDisconnection:
		return nil, "expired"
	}
	if len(old) > 0 {
		ctx, cancel := s.readDeadline()
		defer cancel()
		starts, err := kadm.NewClient(s.prod).ListStartOffsets(ctx, s.cfg.Topic)
		if err == nil {
			err = starts.Error()
		}
		if err != nil {
			return nil, "log_unavailable"
		}
		for _, c := range old {
			if lo, ok := starts.Lookup(s.cfg.Topic, c.part.ID()); !ok || lo.Offset > c.since+1 {
				return nil, "retention"
			}
		}
	}
	slices.SortFunc(plan.rooms, func(a, b sioResumeRoom) int {
		return cmp.Or(cmp.Compare(a.since.Partition, b.since.Partition), cmp.Compare(a.since.Offset, b.since.Offset), cmp.Compare(a.room, b.room))
	})
	return plan, ""
}

// windowCovers reports whether the room's in-memory history window holds
// every message after since.
func (s *Server) windowCovers(p *consumer.Partition, room string, since int64) bool {
	p.RLock()
	defer p.RUnlock()
	r := p.Room(room)
	if r == nil {
		return false // no window: the log says
	}
	_, dropped := p.History(r)
	return dropped <= since
}
