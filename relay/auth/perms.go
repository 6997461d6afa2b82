package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/roomlog/roomlog/internal/trunc"
	"github.com/roomlog/roomlog/record"

	"github.com/roomlog/roomlog/internal/glob"
)

// Principal is an authenticated client: its user id, permissions and the
// expiry of its token, and what revocations match (its id and issue time).
type Principal struct {
	User      string
	Exp       time.Time // zero: never (anonymous)
	Perms     Perms
	Anonymous bool
	JTI       string    // the token's jti, if any
	IssuedAt  time.Time // the token's iat; zero without one
}

// Anonymous is the principal of a client without a token on a relay that
// allows them: every permission, no user id. Every anonymous connection
// shares this one value; nothing may modify it.
func Anonymous() *Principal { return anonymous }

var anonymous = &Principal{Anonymous: true, Perms: Perms{all: true}}

// Perm is a kind of permission, as named in the rooms claim.
type Perm string

// The permissions.
const (
	Join     Perm = "join"
	Publish  Perm = "publish"
	Presence Perm = "presence"
	State    Perm = "state"
)

// Perms are the room patterns a token allows per kind of op.
type Perms struct {
	all                            bool // anonymous: everything
	join, publish, presence, state []string
}

// Allows reports whether the permissions allow kind in room.
func (p *Perms) Allows(kind Perm, room string) bool {
	if p.all {
		return true
	}
	var pats []string
	switch kind {
	case Join:
		pats = p.join
	case Publish:
		pats = p.publish
	case Presence:
		pats = p.presence
	case State:
		pats = p.state
	}
	for _, pat := range pats {
		if Match(pat, room) {
			return true
		}
	}
	return false
}

// ParseRooms reads the rooms claim: a list of patterns (every permission),
// or an object {"join":[...],"publish":[...],"presence":[...],"state":[...]}.
// Absent: no room at all.
func ParseRooms(raw json.RawMessage) (Perms, error) {
	var p Perms
	if len(raw) == 0 || string(raw) == "null" {
		return p, nil
	}
	check := func(l []string) error {
		if len(l) > maxRoomPatterns {
			return fmt.Errorf("more than %d patterns", maxRoomPatterns)
		}
		for _, s := range l {
			if s == "" || len(s) > record.MaxRoomBytes {
				return fmt.Errorf("pattern %q: want 1 to %d bytes", trunc.String(s, 32), record.MaxRoomBytes)
			}
		}
		return nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err == nil {
		if err := check(list); err != nil {
			return p, err
		}
		p.join, p.publish, p.presence, p.state = list, list, list, list
		return p, nil
	}
	var obj struct {
		Join     []string `json:"join"`
		Publish  []string `json:"publish"`
		Presence []string `json:"presence"`
		State    []string `json:"state"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return p, errors.New("want a list of room patterns or an object of join, publish, presence and state lists")
	}
	for _, l := range [][]string{obj.Join, obj.Publish, obj.Presence, obj.State} {
		if err := check(l); err != nil {
			return p, err
		}
	}
	p.join, p.publish, p.presence, p.state = obj.Join, obj.Publish, obj.Presence, obj.State
	return p, nil
}

// Match reports whether s matches pattern, where '*' matches any run of
// characters (including none, and '/') and '?' any one byte.
func Match(pattern, s string) bool { return glob.Match(pattern, s) }
