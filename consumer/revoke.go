package consumer

import (
	"errors"
	"sort"
	"strconv"

	"github.com/roomlog/roomlog/record"
)

// The revocation list: what revoke records (record/control.go) refuse, kept
// by the fold of the partition they sit in (record.PartitionOf of
// record.ControlKey) so that a relay that starts later, or restores a
// snapshot, refuses the same tokens. Each entry lasts until its record's
// Until (record time): the fold forgets it at the first record of the
// partition at or after that time, so the list cannot grow without bound.

// MaxRevocations caps the list (jti entries plus users); a revoke of a new
// jti or user beyond it is refused by the fold with CodeRevocationsFull. A
// constant, like every limit of the fold.
const MaxRevocations = 100_000

// CodeRevocationsFull: a revoke beyond MaxRevocations, without effect.
const CodeRevocationsFull = "revocations_full"

// revokedBefore refuses tokens issued before Before, until Until (Unix
// milliseconds).
type revokedBefore struct {
	Before int64 `json:"before"`
	Until  int64 `json:"until"`
}

// revocations is a partition's revocation list.
type revocations struct {
	JTI   map[string]int64         `json:"jti,omitempty"`   // jti → until
	Users map[string]revokedBefore `json:"users,omitempty"` // user → tokens issued before
	All   revokedBefore            `json:"all"`             // every user
	// next is the earliest Until in the list: no record before it can
	// expire anything.
	next int64
}

func (v *revocations) empty() bool {
	return len(v.JTI) == 0 && len(v.Users) == 0 && v.All.Until == 0
}

func (v *revocations) size() int { return len(v.JTI) + len(v.Users) }

// expire drops the entries whose Until is at or before now (record time).
func (v *revocations) expire(now int64) {
	if v.next == 0 || now < v.next {
		return
	}
	v.next = 0
	note := func(until int64) {
		if v.next == 0 || until < v.next {
			v.next = until
		}
	}
	for k, until := range v.JTI {
		if until <= now {
			delete(v.JTI, k)
		} else {
			note(until)
		}
	}
	for k, b := range v.Users {
		if b.Until <= now {
			delete(v.Users, k)
		} else {
			note(b.Until)
		}
	}
	if v.All.Until != 0 && v.All.Until <= now {
		v.All = revokedBefore{}
	} else if v.All.Until != 0 {
		note(v.All.Until)
	}
}

// add folds one revocation (validated by record.Decode) at record time now.
// It reports false when the list is full and the revocation is new.
func (v *revocations) add(user string, r *record.Revocation, now int64) bool {
	if r.Until <= now {
		return true // refuses only tokens that have expired already
	}
	newJTI := r.JTI != "" && v.JTI[r.JTI] == 0
	newUser := r.IssuedBefore > 0 && user != "" && v.Users[user].Until == 0
	grow := 0
	if newJTI {
		grow++
	}
	if newUser {
		grow++
	}
	if grow > 0 && v.size()+grow > MaxRevocations {
		return false
	}
	if r.JTI != "" {
		if v.JTI == nil {
			v.JTI = make(map[string]int64)
		}
		v.JTI[r.JTI] = max(v.JTI[r.JTI], r.Until)
	}
	if r.IssuedBefore > 0 {
		if user == "" {
			v.All = widen(v.All, r)
		} else {
			if v.Users == nil {
				v.Users = make(map[string]revokedBefore)
			}
			v.Users[user] = widen(v.Users[user], r)
		}
	}
	if v.next == 0 || r.Until < v.next {
		v.next = r.Until
	}
	return true
}

// widen merges a revocation into b: the later cut-off and the later end.
func widen(b revokedBefore, r *record.Revocation) revokedBefore {
	return revokedBefore{Before: max(b.Before, r.IssuedBefore), Until: max(b.Until, r.Until)}
}

// revoke folds a revoke record.
func (p *Partition) revoke(ev *record.Event, ts int64, res *Result) {
	if p.revoked == nil {
		p.revoked = &revocations{}
	}
	if !p.revoked.add(ev.User, &ev.Revoke, ts) {
		res.Code = CodeRevocationsFull
	}
	if p.revoked.empty() {
		p.revoked = nil
	}
}

// expireRevocations runs for every record of the partition, before it is
// applied: O(1) unless an entry is due.
func (p *Partition) expireRevocations(ts int64) {
	if p.revoked == nil {
		return
	}
	p.revoked.expire(ts)
	if p.revoked.empty() {
		p.revoked = nil
	}
}

// Token is what the revocation list is asked about: a token's user, id and
// issue time (Unix milliseconds; 0 when the token has no iat).
type Token struct {
	User     string
	JTI      string
	IssuedAt int64
}

// Revoked reports whether the partition's revocation list refuses t at now
// (Unix milliseconds; an entry whose Until has passed refuses nothing even
// before the fold forgets it). A token without iat is refused by every
// issued_before that applies to its user: its age cannot be told.
func (p *Partition) Revoked(t Token, now int64) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	v := p.revoked
	if v == nil {
		return false
	}
	if t.JTI != "" {
		if until, ok := v.JTI[t.JTI]; ok && until > now {
			return true
		}
	}
	before := func(b revokedBefore) bool { return b.Until > now && t.IssuedAt < b.Before }
	if before(v.All) {
		return true
	}
	if b, ok := v.Users[t.User]; ok && t.User != "" && before(b) {
		return true
	}
	return false
}

// RevocationDump is the revocation list in a Dump: sorted, comparable.
type RevocationDump struct {
	JTI   []string                 `json:"jti,omitempty"` // "jti until"
	Users map[string]revokedBefore `json:"users,omitempty"`
	All   revokedBefore            `json:"all"`
}

func (v *revocations) dump() *RevocationDump {
	if v == nil {
		return nil
	}
	d := &RevocationDump{All: v.All, Users: make(map[string]revokedBefore, len(v.Users))}
	for k, u := range v.Users {
		d.Users[k] = u
	}
	for k, until := range v.JTI {
		d.JTI = append(d.JTI, k+" "+strconv.FormatInt(until, 10))
	}
	sort.Strings(d.JTI)
	return d
}

var errRevocations = errors.New("snapshot: corrupt revocation list")

// restore checks a decoded snapshot's list and sets next.
func (v *revocations) restore() error {
	if v.size() > MaxRevocations || v.All.Until < 0 {
		return errRevocations
	}
	for k, until := range v.JTI {
		if until <= 0 || record.ValidName(k, record.MaxJTIBytes) != nil {
			return errRevocations
		}
	}
	for k, b := range v.Users {
		if b.Until <= 0 || record.ValidName(k, record.MaxUserBytes) != nil {
			return errRevocations
		}
	}
	v.next = 0
	for _, until := range v.JTI {
		if v.next == 0 || until < v.next {
			v.next = until
		}
	}
	for _, b := range v.Users {
		if v.next == 0 || b.Until < v.next {
			v.next = b.Until
		}
	}
	if v.All.Until != 0 && (v.next == 0 || v.All.Until < v.next) {
		v.next = v.All.Until
	}
	return nil
}
