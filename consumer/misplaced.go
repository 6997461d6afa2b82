package consumer

import (
	"sort"
	"time"

	"github.com/roomlog/roomlog/record"
)

// Misplaced records and their re-homed copies (docs/DESIGN.md, "Misplaced
// records"). A record whose key maps to another partition than the one it
// was written to is misplaced: the fold of that partition skips it (Result
// Misplaced, Home), so no relay delivers it from there. The owner of the
// partition re-appends it to its home with an rl-origin header
// (relay/rehome.go); the home partition's fold applies the first copy of
// each origin and marks later ones duplicates, so a re-home retried after a
// crash or an owner change takes effect once. Which origins were applied is
// state: remembered exactly for RehomeWindowMillis of record time (and at
// most MaxRehomedEntries), and as the highest origin offset per source
// partition forever, which is what a new owner consults to know what is left
// to re-home.

const (
	// RehomeWindowMillis is how long, in record time, the fold remembers
	// each applied origin exactly.
	RehomeWindowMillis = DedupeWindowMillis
	// MaxRehomedEntries caps the origins remembered exactly per partition.
	MaxRehomedEntries = 100_000
)

type rehomedEntry struct {
	origin record.Origin
	ts     int64
}

// SetTopicPartitions tells every partition, now and later, how many
// partitions the topic has, which decides whether a record is misplaced.
// Call it before folding; without it (0) no record is misplaced.
func (s *State) SetTopicPartitions(n int32) {
	s.topicParts = n
	for _, p := range s.parts {
		p.SetTopicPartitions(n)
	}
}

// SetTopicPartitions sets the topic's partition count for this partition's
// fold (see State.SetTopicPartitions).
func (p *Partition) SetTopicPartitions(n int32) {
	p.mu.Lock()
	p.topicParts = n
	p.mu.Unlock()
}

// place decides what a decoded record is before it is applied: misplaced
// (skipped here), a repeated re-homed copy (skipped), or an ordinary record
// to apply (false). Called with the write lock held.
func (p *Partition) place(ev *record.Event, off, ts int64, res *Result) bool {
	if home, ok := record.Home(ev, p.topicParts); ok && home != p.id {
		res.Misplaced, res.Home = true, home
		return true
	}
	o := ev.Origin
	if o == nil {
		return false
	}
	p.expireRehomed(ts)
	// Exact memory only: a copy of an origin at or below the high offset
	// but not remembered is a late copy (its produce was retried after a
	// later one landed), not a repeat; repeats come within seconds, from
	// a producer retrying or an old owner's copy in flight.
	if first, ok := p.rehomed[*o]; ok {
		res.Duplicate, res.Original = true, first
		return true
	}
	if p.rehomed == nil {
		p.rehomed = make(map[record.Origin]int64)
		p.rehomedHigh = make(map[int32]int64)
	}
	p.rehomed[*o] = off
	p.rehomedQ = append(p.rehomedQ, rehomedEntry{origin: *o, ts: ts})
	if h, ok := p.rehomedHigh[o.Partition]; !ok || o.Offset > h {
		p.rehomedHigh[o.Partition] = o.Offset
	}
	return false
}

// expireRehomed forgets exact origins older than the window or beyond the
// cap, oldest first (as expireDedupe).
func (p *Partition) expireRehomed(now int64) {
	for p.rehomedHead < len(p.rehomedQ) {
		e := p.rehomedQ[p.rehomedHead]
		if now-e.ts < RehomeWindowMillis && len(p.rehomedQ)-p.rehomedHead < MaxRehomedEntries {
			break
		}
		delete(p.rehomed, e.origin)
		p.rehomedQ[p.rehomedHead] = rehomedEntry{}
		p.rehomedHead++
	}
	if p.rehomedHead > 0 && p.rehomedHead*2 >= len(p.rehomedQ) {
		n := copy(p.rehomedQ, p.rehomedQ[p.rehomedHead:])
		p.rehomedQ = p.rehomedQ[:n]
		p.rehomedHead = 0
	}
}

// Rehomed reports whether a copy of the misplaced record at o has been
// folded into this partition (its home): remembered exactly, or at or below
// the highest origin offset applied from o's partition. The relay that owns
// o's partition re-homes only records for which it is false.
func (p *Partition) Rehomed(o record.Origin) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if _, ok := p.rehomed[o]; ok {
		return true
	}
	h, ok := p.rehomedHigh[o.Partition]
	return ok && o.Offset <= h
}

// RehomedExactly reports whether a copy of o has been folded here and is
// still remembered exactly: what the relay that sent a copy checks before
// sending it again (a copy of a later origin may have landed first, so the
// high offset does not tell).
func (p *Partition) RehomedExactly(o record.Origin) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	_, ok := p.rehomed[o]
	return ok
}

// rehomedDuplicate reports whether the copy of o at offset off was folded
// as a repeat of an earlier copy (as far as the exact memory reaches). Call
// with the read lock held.
func (p *Partition) rehomedDuplicate(o record.Origin, off int64) bool {
	first, ok := p.rehomed[o]
	return ok && first != off
}

// snapshotRehomed is the re-home memory in a snapshot.
type snapshotRehomed struct {
	High   map[int32]int64    `json:"high,omitempty"`
	Recent []snapshotRehomedE `json:"recent,omitempty"`
}

type snapshotRehomedE struct {
	Partition int32 `json:"p"`
	Offset    int64 `json:"o"`
	First     int64 `json:"f"`
	TS        int64 `json:"t"`
}

func (p *Partition) encodeRehomed() *snapshotRehomed {
	if len(p.rehomedHigh) == 0 {
		return nil
	}
	s := &snapshotRehomed{High: make(map[int32]int64, len(p.rehomedHigh))}
	for k, v := range p.rehomedHigh {
		s.High[k] = v
	}
	for _, e := range p.rehomedQ[p.rehomedHead:] {
		s.Recent = append(s.Recent, snapshotRehomedE{Partition: e.origin.Partition, Offset: e.origin.Offset, First: p.rehomed[e.origin], TS: e.ts})
	}
	return s
}

func (p *Partition) decodeRehomed(s *snapshotRehomed) {
	if s == nil || len(s.High) == 0 {
		return
	}
	p.rehomed = make(map[record.Origin]int64, len(s.Recent))
	p.rehomedHigh = make(map[int32]int64, len(s.High))
	for k, v := range s.High {
		p.rehomedHigh[k] = v
	}
	for _, e := range s.Recent {
		o := record.Origin{Partition: e.Partition, Offset: e.Offset}
		p.rehomed[o] = e.First
		p.rehomedQ = append(p.rehomedQ, rehomedEntry{origin: o, ts: e.TS})
	}
}

// rehomedDump is the re-home memory in a Dump: the high offsets, sorted.
func (p *Partition) rehomedDump() []int64 {
	if len(p.rehomedHigh) == 0 {
		return nil
	}
	keys := make([]int32, 0, len(p.rehomedHigh))
	for k := range p.rehomedHigh {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	out := make([]int64, 0, 2*len(keys))
	for _, k := range keys {
		out = append(out, int64(k), p.rehomedHigh[k])
	}
	return out
}

// warnLimiter lets a warning through at most once per interval, counting
// what it held back. Used by the consumer's folder goroutine only.
type warnLimiter struct {
	every time.Duration
	last  time.Time
	held  int
}

// allow reports whether to log now, and how many were held back before.
func (w *warnLimiter) allow(now time.Time) (bool, int) {
	if !w.last.IsZero() && now.Sub(w.last) < w.every {
		w.held++
		return false, 0
	}
	held := w.held
	w.last, w.held = now, 0
	return true, held
}
