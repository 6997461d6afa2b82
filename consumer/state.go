package consumer

import (
	"encoding/json"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/roomlog/roomlog/record"
)

// Limits of the fold. They are constants, not settings: every relay and every
// replay must evaluate the log identically, so they are part of the format.
const (
	// MaxKeysPerRoom bounds a room's key-value state; a set, cas or incr of a
	// new key beyond it fails with CodeStateFull.
	MaxKeysPerRoom = 1000
	// MaxValueBytes bounds one state value (the relay refuses larger ones
	// before they reach the log; the fold refuses them too).
	MaxValueBytes = 16 << 10
	// DedupeWindowMillis is how long, in record time, a client message id
	// is remembered per room: a retry within it is not delivered again.
	DedupeWindowMillis = 5 * 60 * 1000
	// MaxDedupeEntries caps the ids remembered per partition (the oldest
	// are forgotten first).
	MaxDedupeEntries = 200_000
)

// Result codes of state operations the fold refuses. They are also the
// error codes the requester sees.
const (
	CodeConflict   = "conflict"    // cas: the key's version is not the expected one
	CodeNotInteger = "not_integer" // incr: the value is not an integer
	CodeOverflow   = "overflow"    // incr: the result leaves the int64 range
	CodeStateFull  = "state_full"  // a new key beyond MaxKeysPerRoom
	CodeTooLarge   = "value_too_large"
	CodeStale      = "stale_session" // join from a relay session that has ended
)

// Member is one connection in a room's presence.
type Member struct {
	Conn     string `json:"conn"`
	User     string `json:"user,omitempty"`
	Relay    string `json:"relay"`
	Session  string `json:"-"`
	JoinedAt int64  `json:"joined_at"` // record timestamp, Unix milliseconds
	Offset   int64  `json:"-"`         // of the join record
}

// Entry is one key of a room's state. Version is the offset of the record
// that last wrote it: unique, increasing, and 0 for a key that is absent.
type Entry struct {
	Value   json.RawMessage `json:"value"`
	Version int64           `json:"version"`
}

// Message is a publish kept in a room's in-memory history window.
type Message struct {
	Event     string
	Data      json.RawMessage
	From      string
	User      string
	Offset    int64
	Timestamp int64
}

// Room is the folded state of one room within one partition.
type Room struct {
	Members map[string]*Member
	KV      map[string]*Entry

	name string // the room's name (the map's key), shared by its members' keys

	// history holds the room's most recent publishes (a ring), at
	// most Config.HistoryWindow. It is a cache of the log, not part of
	// the state's identity: dropped is the offset of the newest publish
	// evicted from it (-1 if none), so a reader knows whether the window
	// alone covers a range.
	history []Message // a ring once full: history[head] is the oldest
	head    int
	dropped int64
}

// History returns room r's window of recent publishes, oldest first, and
// the offset below which the window may be missing publishes: the newest
// one evicted from it, or, if older, the offset before the first record
// this fold saw (the log's start, or a snapshot's). -1 when the window holds
// the room's whole history. Call with the read lock held.
func (p *Partition) History(r *Room) ([]Message, int64) {
	out := make([]Message, 0, len(r.history))
	out = append(out, r.history[r.head:]...)
	out = append(out, r.history[:r.head]...)
	return out, max(r.dropped, p.floor-1)
}

type relayLease struct {
	// name is the relay's name (the map's key), so that members share
	// one copy of their relay's name and session.
	name        string
	Session     string `json:"session"`
	LeaseOffset int64  `json:"lease_offset"`
	LeaseTime   int64  `json:"lease_time"`
	Expired     bool   `json:"expired"`
}

type dedupeKey struct{ room, user, mid string }

type memberKey struct{ conn, room string }

type dedupeEntry struct {
	key dedupeKey
	ts  int64
}

// Partition is the folded state of one partition of the events topic. The
// consumer's folder goroutine writes it under mu; readers (presence, get, history,
// recovery) take mu.RLock.
type Partition struct {
	mu sync.RWMutex

	id   int32
	next int64        // offset of the next record to fold
	hwm  atomic.Int64 // the log's end as last fetched
	// floor is the first offset this fold applied (the log's start when
	// it began, or the offset a snapshot covered): history before it was
	// never seen here.
	floor int64
	// notify is closed and replaced each time next advances (waiters for
	// read-your-writes select on it).
	notify chan struct{}

	rooms      map[string]*Room
	relays     map[string]*relayLease            // relay name → its current session
	sessions   map[string]map[memberKey]struct{} // session → its members here
	dedupe     map[dedupeKey]int64               // → offset of the first publish
	dedupeQ    []dedupeEntry                     // FIFO of dedupe keys, oldest first
	dedupeHead int                               // entries of dedupeQ before it are consumed
	revoked    *revocations                      // nil: none (revoke.go)
	window     int

	// Misplaced records and re-homed copies (misplaced.go).
	topicParts  int32                   // the topic's partition count; 0: unknown
	rehomed     map[record.Origin]int64 // origin → offset of its first copy here
	rehomedQ    []rehomedEntry          // FIFO of rehomed's keys, oldest first
	rehomedHead int
	rehomedHigh map[int32]int64        // source partition → highest origin offset applied
	sio         map[string]*sioSession // Socket.IO sessions by key (siosession.go)
	sioPruned   int64                  // record time of the last prune
}

func newPartition(id int32, window int) *Partition {
	return &Partition{
		id:       id,
		notify:   make(chan struct{}),
		rooms:    make(map[string]*Room),
		relays:   make(map[string]*relayLease),
		sessions: make(map[string]map[memberKey]struct{}),
		dedupe:   make(map[dedupeKey]int64),
		window:   window,
		sio:      make(map[string]*sioSession),
	}
}

// ID is the partition number.
func (p *Partition) ID() int32 { return p.id }

// RLock and RUnlock guard reads of the partition's rooms.
func (p *Partition) RLock()   { p.mu.RLock() }
func (p *Partition) RUnlock() { p.mu.RUnlock() }

// Next is the offset of the next record to fold: everything before it has
// been applied. Call with the read lock held, or use Progress.
func (p *Partition) Next() int64 { return p.next }

// Lag is how many records the log held beyond the fold at the last fetch.
func (p *Partition) Lag() int64 {
	p.mu.RLock()
	next := p.next
	p.mu.RUnlock()
	return max(p.hwm.Load()-next, 0)
}

// Progress returns Next and a channel closed when it next advances.
func (p *Partition) Progress() (int64, <-chan struct{}) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.next, p.notify
}

// Room returns a room's state, or nil. Call with the read lock held.
func (p *Partition) Room(name string) *Room { return p.rooms[name] }

// liveLease is the lease of relay name's session when it is live (the
// relay's current session is session and has not expired), or nil. Call
// with the read lock held.
func (p *Partition) liveLease(name, session string) *relayLease {
	l := p.relays[name]
	if l == nil || l.Session != session || l.Expired {
		return nil
	}
	return l
}

// Dump is a canonical, comparable view of a partition's state: what two
// relays at the same offset must agree on. Caches (the history window) are
// left out.
type Dump struct {
	Partition int32                 `json:"partition"`
	Next      int64                 `json:"next"`
	Rooms     map[string]RoomDump   `json:"rooms"`
	Relays    map[string]relayLease `json:"relays"`
	Dedupe    int                   `json:"dedupe_entries"`
	Revoked   *RevocationDump       `json:"revoked,omitempty"`
	// Rehomed is, per source partition in order, the partition and the
	// highest origin offset of a re-homed copy applied here.
	Rehomed []int64 `json:"rehomed,omitempty"`
	// RehomedExact is how many origins are remembered exactly.
	RehomedExact int                   `json:"rehomed_exact,omitempty"`
	SIO          map[string]SIOSession `json:"sio,omitempty"`
}

// RoomDump is one room in a Dump.
type RoomDump struct {
	Members []Member         `json:"members"`
	KV      map[string]Entry `json:"kv"`
}

// Dump returns the partition's canonical state.
func (p *Partition) Dump() Dump {
	p.mu.RLock()
	defer p.mu.RUnlock()
	d := Dump{Partition: p.id, Next: p.next, Rooms: map[string]RoomDump{}, Relays: map[string]relayLease{}, Dedupe: len(p.dedupe),
		Rehomed: p.rehomedDump(), RehomedExact: len(p.rehomed), SIO: p.sioDump()}
	for name, r := range p.rooms {
		if len(r.Members) == 0 && len(r.KV) == 0 {
			continue
		}
		d.Rooms[name] = r.dump()
	}
	for name, l := range p.relays {
		d.Relays[name] = *l
	}
	d.Revoked = p.revoked.dump()
	return d
}

func (r *Room) dump() RoomDump {
	rd := RoomDump{KV: make(map[string]Entry, len(r.KV)), Members: SortedMembers(r)}
	for k, e := range r.KV {
		rd.KV[k] = *e
	}
	return rd
}

// SortedMembers returns a room's members ordered by join offset, then
// connection id. Call with the read lock held.
func SortedMembers(r *Room) []Member {
	ms := make([]Member, 0, len(r.Members))
	for _, m := range r.Members {
		ms = append(ms, *m)
	}
	sort.Slice(ms, func(i, j int) bool {
		if ms[i].Offset != ms[j].Offset {
			return ms[i].Offset < ms[j].Offset
		}
		return ms[i].Conn < ms[j].Conn
	})
	return ms
}

// IsDuplicate reports whether the publish ev at offset off was folded as a
// retry of an earlier one (as far as the dedupe window still remembers).
func (p *Partition) IsDuplicate(ev *record.Event, off int64) bool {
	if ev.MID == "" && ev.Origin == nil {
		return false
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if ev.Origin != nil && p.rehomedDuplicate(*ev.Origin, off) {
		return true
	}
	if ev.MID == "" {
		return false
	}
	first, ok := p.dedupe[dedupeKey{room: ev.Room, user: ev.User, mid: ev.MID}]
	return ok && first != off
}

// RelayLease is a relay's lease as folded in one partition.
type RelayLease struct {
	Relay       string
	Session     string
	LeaseOffset int64
	LeaseTime   int64 // the lease record's timestamp, Unix milliseconds
	Expired     bool
	Members     int // members of the session in this partition
}

// Leases returns the relays' leases in this partition.
func (p *Partition) Leases() []RelayLease {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]RelayLease, 0, len(p.relays))
	for name, l := range p.relays {
		out = append(out, RelayLease{Relay: name, Session: l.Session, LeaseOffset: l.LeaseOffset, LeaseTime: l.LeaseTime, Expired: l.Expired, Members: len(p.sessions[l.Session])})
	}
	return out
}

// RoomNames returns up to limit names of the rooms this partition holds
// state for (members, keys or recent messages) that match, unsorted, and
// whether more matched.
func (p *Partition) RoomNames(match func(string) bool, limit int) ([]string, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	var out []string
	for name := range p.rooms {
		if !match(name) {
			continue
		}
		if len(out) == limit {
			return out, true
		}
		out = append(out, name)
	}
	return out, false
}

// Pos builds the position of an offset in this partition.
func (p *Partition) Pos(epoch uint64, off int64) record.Pos {
	return record.Pos{Epoch: epoch, Partition: p.id, Offset: off}
}
