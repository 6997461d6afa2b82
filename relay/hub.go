package relay

import (
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/gorilla/websocket"

	"github.com/roomlog/roomlog/consumer"
	"github.com/roomlog/roomlog/record"
)

// hub maps rooms to the local connections in them. It is the consumer's Sink:
// for each record it encodes the outgoing frame once and enqueues it, without
// blocking, on every member's send queue.
//
// Rooms are spread over shards, each with its own lock, so joins in one room
// never wait on fan-out in another. Lock order: a shard lock is taken alone; a
// conn's queue lock (conn.mu) may be taken while holding a shard read lock,
// never the other way round.
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
	members []*conn
	index   map[*conn]int
}

func newHub() *hub {
	h := &hub{seed: maphash.MakeSeed()}
	for i := range h.shards {
		h.shards[i].rooms = make(map[string]*hubRoom)
	}
	return h
}

func (h *hub) shard(room string) *hubShard {
	return &h.shards[maphash.String(h.seed, room)%hubShards]
}

// add puts c in room; it reports false if c was already there.
func (h *hub) add(room string, c *conn) bool {
	s := h.shard(room)
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[room]
	if r == nil {
		r = &hubRoom{index: make(map[*conn]int)}
		s.rooms[room] = r
	}
	if _, ok := r.index[c]; ok {
		return false
	}
	r.index[c] = len(r.members)
	r.members = append(r.members, c)
	return true
}

// remove takes c out of room; it reports false if c was not there.
func (h *hub) remove(room string, c *conn) bool {
	s := h.shard(room)
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[room]
	if r == nil {
		return false
	}
	i, ok := r.index[c]
	if !ok {
		return false
	}
	last := len(r.members) - 1
	if i != last {
		r.members[i] = r.members[last]
		r.index[r.members[i]] = i
	}
	r.members[last] = nil
	r.members = r.members[:last]
	delete(r.index, c)
	if len(r.members) == 0 {
		delete(s.rooms, room)
	}
	return true
}

// rooms returns the number of rooms with at least one local member.
func (h *hub) rooms() int {
	n := 0
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.RLock()
		n += len(s.rooms)
		s.mu.RUnlock()
	}
	return n
}

// Deliver implements consumer.Sink. It runs on the consumer goroutine: it
// must never block, so a full send queue closes that connection instead.
func (h *hub) Deliver(d *consumer.Delivery) {
	if d.Event.Type != record.TypePublish {
		return
	}
	s := h.shard(d.Event.Room)
	s.mu.RLock()
	r := s.rooms[d.Event.Room]
	if r == nil {
		s.mu.RUnlock()
		return
	}
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, appendMessage(nil, &d.Event, d.Pos))
	if err != nil { // only on a compression failure, which we never ask for
		s.mu.RUnlock()
		return
	}
	for _, c := range r.members {
		c.enqueue(outFrame{pm: pm})
	}
	h.delivered.Add(uint64(len(r.members)))
	s.mu.RUnlock()
}

var _ consumer.Sink = (*hub)(nil)
