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
//
// Stamping costs no copy of the event: the shared frame `2[...]` is queued
// as the message's Data without its final ']', and the socket's
// `,"<offset>"]` as its Tail (engineio writes them as one message). The
// tail is re-encoded only from what changed since the previous one.
type sioStamp struct {
	mu      sync.Mutex
	off     sioOffset                 // parts ascending; rooms unused (see rooms)
	backlog map[string]*sioRoomOffset // rooms with a backlog under way
	rooms   []*sioRoomOffset          // backlog's entries in the offset's order
	tail    sioTail
}

func newSIOStamp(epoch uint64) *sioStamp {
	st := &sioStamp{off: sioOffset{epoch: epoch}, backlog: make(map[string]*sioRoomOffset)}
	st.tail.init(epoch)
	return st
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
		st.tail.partsChanged(i)
	} else {
		n.oldOff = st.off.parts[i].off
		if p.Offset > n.oldOff {
			st.off.parts[i].off = p.Offset
			st.tail.partsChanged(i)
		}
	}
	if len(st.backlog) == 0 {
		return n
	}
	if b := st.backlog[at.room]; b != nil && b.part == p.Partition {
		n.backlog, n.oldLast = b, b.off
		if b.off != p.Offset {
			b.off = p.Offset
			st.tail.roomsChanged()
		}
	}
	return n
}

// undo takes back the last note.
func (st *sioStamp) undo(n noted) {
	if n.backlog != nil && n.backlog.off != n.oldLast {
		n.backlog.off = n.oldLast
		st.tail.roomsChanged()
	}
	if n.inserted {
		st.off.parts = slices.Delete(st.off.parts, n.i, n.i+1)
		st.tail.partsChanged(n.i)
	} else if st.off.parts[n.i].off != n.oldOff {
		st.off.parts[n.i].off = n.oldOff
		st.tail.partsChanged(n.i)
	}
}

// message is f's Engine.IO message. An event delivering a record (f.at) is
// noted as delivered and, if it is an event `2[...]`, gets the socket's
// offset as its last argument: Data is the shared `2[...` (no copy) and
// Tail this socket's `,"<offset>"]`. The caller undoes what was noted if
// the message is not queued.
func (st *sioStamp) message(f *outFrame) (engineio.Message, noted) {
	if f.at == nil {
		return engineio.Message{Data: f.data}, noted{}
	}
	n := st.note(f.at)
	return st.stamp(f.data), n
}

// stamp returns data's message with the socket's current offset appended
// as its last argument: `2[...]` becomes `2[...` and `,"<offset>"]`. Data
// that is not a JSON array is left as it is.
func (st *sioStamp) stamp(data []byte) engineio.Message {
	if len(data) < 2 || data[len(data)-1] != ']' {
		return engineio.Message{Data: data}
	}
	n := len(data) - 1
	return engineio.Message{Data: data[:n:n], Tail: st.tail.get(&st.off, st.rooms)}
}

// beginBacklog marks room's backlog (records after since) under way: until
// endBacklog, the offset names the room with its own newest record.
func (st *sioStamp) beginBacklog(room string, part int32, since int64) {
	st.mu.Lock()
	st.backlog[room] = &sioRoomOffset{part: part, room: sioRoomHash(room), off: since}
	st.sortRooms()
	st.mu.Unlock()
}

// endBacklog: room's backlog and what arrived meanwhile are queued, so its
// partition's entry covers it again.
func (st *sioStamp) endBacklog(room string) {
	st.mu.Lock()
	delete(st.backlog, room)
	st.sortRooms()
	st.mu.Unlock()
}

// sortRooms lists the backlog's entries as the offset does: by partition,
// then room hash.
func (st *sioStamp) sortRooms() {
	clear(st.rooms)
	st.rooms = st.rooms[:0]
	for _, b := range st.backlog {
		st.rooms = append(st.rooms, b)
	}
	slices.SortFunc(st.rooms, func(a, b *sioRoomOffset) int {
		return cmp.Or(cmp.Compare(a.part, b.part), cmp.Compare(a.room, b.room))
	})
	st.tail.roomsChanged()
}

// send stamps fs and queues them on sess, all or none, without blocking.
func (st *sioStamp) send(sess *engineio.Session, fs []outFrame) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	var buf [4]engineio.Message // enough for every caller's usual batch: no allocation
	msgs := buf[:0]
	for i := range fs {
		if len(fs[i].data) == 0 {
			continue
		}
		m, _ := st.message(&fs[i])
		msgs = append(msgs, m)
	}
	if len(msgs) == 0 {
		return nil
	}
	return sess.Send(msgs...)
}

// sendOne is send of one frame: fan-out's hot path.
func (st *sioStamp) sendOne(sess *engineio.Session, f *outFrame) error {
	if len(f.data) == 0 {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	m, _ := st.message(f)
	if f.spread {
		return sess.Queue(m)
	}
	return sess.Send(m)
}

// sendWait stamps and queues fs one by one, waiting for room: each event's
// offset is taken when it is queued, so it never claims a record queued
// after it. It gives up when done closes.
func (st *sioStamp) sendWait(sess *engineio.Session, done <-chan struct{}, fs []outFrame) {
	for i := range fs {
		f := &fs[i]
		if len(f.data) == 0 {
			continue
		}
		for {
			st.mu.Lock()
			m, n := st.message(f)
			ok, err := sess.TrySend(m)
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

// sioTail is a socket's offset as the tail of its events, `,"<offset>"]`,
// kept encoded: a change re-encodes the offset from the first partition
// entry it touched (the epoch and the entries before stay), and the tail
// handed out is reused until something changes. Tails handed out are never
// written again: they are cut from an arena that only grows at its end, and
// capped, so an append to one cannot reach the next.
type sioTail struct {
	enc      []byte // `,"1-<epoch>-<parts>-<rooms>"]`, the last encoding
	partAt   []int  // where each encoded partition entry starts in enc ('_' included)
	partsEnd int    // where the partition entries end in enc
	clean    int    // how many leading entries of partAt still match the offset
	last     []byte // the tail of the current offset, nil once it changed
	arena    []byte // where tails are cut from
}

// sioTailArena is the size of a tail arena: a few tails per allocation, and
// no more than this kept by a socket that has gone quiet.
const sioTailArena = 256

func (t *sioTail) init(epoch uint64) {
	t.enc = appendSIOHead(append(t.enc[:0], ',', '"'), epoch)
	t.partsEnd = len(t.enc) // no partition entries yet
}

// partsChanged: partition entry i (and, when one was inserted or removed,
// the ones after it) changed.
func (t *sioTail) partsChanged(i int) {
	t.clean = min(t.clean, i)
	t.last = nil
}

// roomsChanged: the rooms with a backlog, or one's offset, changed.
func (t *sioTail) roomsChanged() { t.last = nil }

// get returns the tail of the offset o with rooms (o.rooms unused).
func (t *sioTail) get(o *sioOffset, rooms []*sioRoomOffset) []byte {
	if t.last != nil {
		return t.last
	}
	c := min(t.clean, len(t.partAt), len(o.parts))
	cut := t.partsEnd
	if c < len(t.partAt) {
		cut = t.partAt[c]
	}
	b, at := t.enc[:cut], t.partAt[:c]
	for i := c; i < len(o.parts); i++ {
		at = append(at, len(b))
		b = appendSIOPart(b, i, o.parts[i])
	}
	t.partAt, t.partsEnd, t.clean = at, len(b), len(o.parts)
	b = append(b, '-')
	for i, r := range rooms {
		b = appendSIORoom(b, i, *r)
	}
	t.enc = append(b, '"', ']')
	t.last = t.keep(t.enc)
	return t.last
}

// keep returns an immutable copy of b, cut from the arena.
func (t *sioTail) keep(b []byte) []byte {
	if cap(t.arena)-len(t.arena) < len(b) {
		t.arena = make([]byte, 0, max(sioTailArena, 4*len(b)))
	}
	n := len(t.arena)
	t.arena = append(t.arena, b...)
	return t.arena[n:len(t.arena):len(t.arena)]
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
	if s.fol != nil {
		// The session's parts can be in any partition: follow them all
		// (the idle ones are dropped again later).
		ctx, cancel := s.readDeadline()
		err := s.ensureAll(ctx)
		cancel()
		if err != nil {
			s.cfg.Logger.Warn("loading partitions for a Socket.IO recovery", "err", err)
			return nil, "log_unavailable"
		}
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
