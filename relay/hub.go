package relay

import (
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/gorilla/websocket"

	"github.com/roomlog/roomlog/record"
)

// hub maps rooms to the local connections subscribed to them, and fans a
// frame out to a room's subscribers: encoded once, enqueued on each without
// blocking.
//
// Rooms are spread over shards, each with its own lock, so joins in one room
// never wait on fan-out in another. Lock order: a shard lock, then a sub's
// lock, then a conn's queue lock (conn.mu); never the other way round.
type hub struct {
	seed   maphash.Seed
	shards [hubShards]hubShard

	delivered atomic.Uint64 // frames enqueued to sockets
}

const hubShards = 64

type hubShard struct {
	mu    sync.RWMutex
	rooms map[string]*hubRoom
}

// hubRoom's members are a slice for fast iteration, with an index for O(1)
// removal.
type hubRoom struct {
	members  []*sub
	index    map[*conn]int
	presence int // members that want joined/left events
}

// sub is one connection's subscription to one room. While recovering, the
// room's live frames for it are held in buf, behind the backlog being read
// from the log; finishRecovery sends the backlog, then buf, then goes live.
type sub struct {
	c          *conn
	presence   bool // written under the shard's write lock (add, mutePresence)
	recovering atomic.Bool
	mu         sync.Mutex
	buf        []outFrame
}

func newHub() *hub {
	h := &hub{seed: maphash.MakeSeed()}
	for i := range h.shards {
		h.shards[i].rooms = make(map[string]*hubRoom)
	}
	return h
}

// eachRoom calls fn with the name of every room with a local subscriber,
// under each shard's read lock in turn (fn must not call the hub).
func (h *hub) eachRoom(fn func(room string)) {
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.RLock()
		for name := range sh.rooms {
			fn(name)
		}
		sh.mu.RUnlock()
	}
}

func (h *hub) shard(room string) *hubShard {
	return &h.shards[maphash.String(h.seed, room)%hubShards]
}

// add subscribes s.c to room; it reports false if it already was.
func (h *hub) add(room string, s *sub) bool {
	sh := h.shard(room)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r := sh.rooms[room]
	if r == nil {
		r = &hubRoom{index: make(map[*conn]int)}
		sh.rooms[room] = r
	}
	if _, ok := r.index[s.c]; ok {
		return false
	}
	r.index[s.c] = len(r.members)
	r.members = append(r.members, s)
	if s.presence {
		r.presence++
	}
	return true
}

// remove unsubscribes c from room; it reports false if c was not there.
func (h *hub) remove(room string, c *conn) bool {
	sh := h.shard(room)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r := sh.rooms[room]
	if r == nil {
		return false
	}
	i, ok := r.index[c]
	if !ok {
		return false
	}
	if r.members[i].presence {
		r.presence--
	}
	last := len(r.members) - 1
	if i != last {
		r.members[i] = r.members[last]
		r.index[r.members[i].c] = i
	}
	r.members[last] = nil
	r.members = r.members[:last]
	delete(r.index, c)
	if len(r.members) == 0 {
		delete(sh.rooms, room)
	}
	return true
}

// mutePresence stops joined/left events to c in room (its token no longer
// allows presence there); it reports false if c was not there.
func (h *hub) mutePresence(room string, c *conn) bool {
	sh := h.shard(room)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r := sh.rooms[room]
	if r == nil {
		return false
	}
	i, ok := r.index[c]
	if !ok {
		return false
	}
	if s := r.members[i]; s.presence {
		s.presence = false
		r.presence--
	}
	return true
}

// rooms returns the number of rooms with at least one local subscriber.
func (h *hub) rooms() int {
	n := 0
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.RLock()
		n += len(sh.rooms)
		sh.mu.RUnlock()
	}
	return n
}

// broadcast sends the frame built by encode to the room's subscribers (only
// those that asked for presence events, if presenceOnly), except the
// connection with id except. encode runs at most once per protocol (codec)
// among the subscribers, and only if someone may receive the frame. It
// returns how many sockets it was enqueued for. pos is the record's.
func (h *hub) broadcast(room string, presenceOnly bool, except string, pos record.Pos, encode func(codec) []byte) int {
	sh := h.shard(room)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	r := sh.rooms[room]
	if r == nil || (presenceOnly && r.presence == 0) {
		return 0
	}
	fc := frameCache{room: room, pos: pos}
	n := 0
	for _, s := range r.members {
		if (presenceOnly && !s.presence) || (except != "" && s.c.id == except) {
			continue
		}
		s.send(fc.frame(s.c.enc, encode, len(r.members)))
		n++
	}
	h.delivered.Add(uint64(n))
	return n
}

// spreadFanout is the most local members of a room whose frames the
// fan-out writes itself (over asyncconn, without waking a goroutine per
// socket). Beyond it, one goroutine writing every socket in turn is
// slower than a writer goroutine per socket: those run on every CPU, and a
// socket whose client lags gets its frames together (one write, fewer
// packets), where writing the room socket by socket sends each frame
// alone. Measured with the big-room benchmark (5,000 members, 50
// messages/s): 186k deliveries/s written by the fan-out, 248k by writer
// goroutines.
const spreadFanout = 256

// frameCache holds one broadcast's frame per codec: one slot per codec the
// relay has (jsonCodec, sioCodec). Grow it with a new protocol, or its
// subscribers get a frame encoded each.
type frameCache struct {
	room   string
	pos    record.Pos
	n      int
	codecs [2]codec
	frames [2]outFrame
}

// A prepared message frames a payload once for every WebSocket, but
// building one allocates gorilla's write buffer (4 KiB) besides the frame.
// It pays for a big room, or a payload that plain writes would send in
// pieces; a small room's sockets get plain bytes, which gorilla's server
// writes without allocating. In scenario 1 of docs/benchmarks.md (rooms of
// 10, five members per relay) plain writes gave 10% more deliveries per CPU
// second and a p99 of 5.5 ms instead of 7.6 (less garbage to collect).
const (
	preparedMinMembers = 64
	preparedMinBytes   = 4096
)

func (fc *frameCache) frame(enc codec, encode func(codec) []byte, members int) outFrame {
	for i := range fc.n {
		if fc.codecs[i] == enc {
			return fc.frames[i]
		}
	}
	f := outFrame{data: encode(enc)}
	if _, sio := enc.(sioCodec); sio {
		f.at = &frameAt{room: fc.room, pos: fc.pos}
	}
	// A big room's frames are written by writer goroutines: spread over
	// the CPUs, and batched per socket when its client lags (see
	// spreadFanout).
	f.spread = members > spreadFanout
	if _, native := enc.(jsonCodec); native && members > 1 && (members > preparedMinMembers || len(f.data) >= preparedMinBytes) {
		if pm, err := websocket.NewPreparedMessage(websocket.TextMessage, f.data); err == nil { // fails only when compressing, which we never ask for
			f = outFrame{pm: pm, spread: f.spread}
		}
	}
	if fc.n < len(fc.codecs) {
		fc.codecs[fc.n], fc.frames[fc.n] = enc, f
		fc.n++
	}
	return f
}

// send delivers f to the subscriber, holding it back while the subscription
// is recovering.
func (s *sub) send(f outFrame) {
	if s.recovering.Load() {
		s.mu.Lock()
		if s.recovering.Load() {
			if len(s.buf) >= s.c.s.cfg.SendQueue {
				s.mu.Unlock()
				s.c.shutdown(DisconnectSlowRecovery)
				return
			}
			s.buf = append(s.buf, f)
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
	}
	s.c.sendFrame(f)
}

// finishRecovery sends backlog (waiting for the writer to make room, so a
// long backlog is not mistaken for a slow client), then after, then what
// arrived live meanwhile, then lets live frames through. It runs on the
// recovery's goroutine, never the consumer's.
func (s *sub) finishRecovery(backlog []outFrame, after outFrame) {
	s.c.t.enqueueWait(backlog)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.c.sendFrames(after)
	s.c.sendFrames(s.buf...)
	s.buf = nil
	s.recovering.Store(false)
}
