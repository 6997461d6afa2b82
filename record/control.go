package record

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Control records: what the backend API's server-side control appends
// (relay/control.go) so that every relay, including one that starts later,
// applies it.
//
//	revoke      key ControlKey; rl-user: the user an issued_before applies
//	            to (none: every user); value: a Revocation as JSON
//	disconnect  key ControlKey; rl-user: the user whose connections close
//	remove      key: the room; rl-user: the user who leaves it
//
// Revoke and disconnect records name no room: their key is ControlKey, so
// they all sit in one partition (PartitionOf(ControlKey)), in one order, and
// the fold of that partition keeps the revocation list.

// ControlKey is the key of revoke and disconnect records.
const ControlKey = "~control"

// MaxJTIBytes bounds a token id (jti) the relay accepts and a revoke
// record names.
const MaxJTIBytes = 200

// Revocation is what a revoke record refuses: the token with id JTI, and
// (IssuedBefore > 0) every token of the record's user, or of every user
// when the record names none, issued before IssuedBefore. Until is when the
// revocation may be forgotten: once every token it refuses has expired.
// Times are Unix milliseconds.
type Revocation struct {
	JTI          string `json:"jti,omitempty"`
	IssuedBefore int64  `json:"issued_before,omitempty"`
	Until        int64  `json:"until"`
}

func (v *Revocation) encode() []byte {
	b, _ := json.Marshal(v) // cannot fail: strings and integers
	return b
}

// Validate reports why v cannot be a revocation, or nil.
func (v *Revocation) Validate() error {
	switch {
	case v.JTI == "" && v.IssuedBefore <= 0:
		return fmt.Errorf("%w: revoke with neither jti nor issued_before", ErrInvalidValue)
	case v.Until <= 0:
		return fmt.Errorf("%w: revoke without until", ErrInvalidValue)
	case v.IssuedBefore < 0:
		return fmt.Errorf("%w: revoke with a negative issued_before", ErrInvalidValue)
	}
	if v.JTI != "" {
		if err := ValidName(v.JTI, MaxJTIBytes); err != nil {
			return fmt.Errorf("%w: jti %v", ErrInvalidValue, err)
		}
	}
	return nil
}

// decodeControl checks a revoke, disconnect or remove record (its type and
// headers are read) and decodes a revoke's value.
func decodeControl(r *kgo.Record, e *Event) error {
	if e.User != "" || e.Type != TypeRevoke {
		if err := ValidName(e.User, MaxUserBytes); err != nil {
			return fmt.Errorf("%w: %s user %v", ErrBadHeader, e.Type, err)
		}
	}
	if e.Type == TypeRemove {
		if strings.HasPrefix(e.Room, "~") {
			return fmt.Errorf("%w: remove from %q, which is not a room", ErrBadHeader, truncate([]byte(e.Room)))
		}
		return nil
	}
	if e.Room != ControlKey {
		return fmt.Errorf("%w: %s keyed %q, not %q", ErrBadHeader, e.Type, truncate([]byte(e.Room)), ControlKey)
	}
	if e.Type != TypeRevoke {
		return nil
	}
	// Decoded into a value of its own: &e.Revoke handed to encoding/json
	// would move every Decode's Event to the heap, not only a revoke's.
	rev := new(Revocation)
	dec := json.NewDecoder(bytes.NewReader(r.Value))
	if err := dec.Decode(rev); err != nil || dec.More() {
		return fmt.Errorf("%w: revoke value %q", ErrInvalidValue, truncate(r.Value))
	}
	e.Revoke = *rev
	return e.Revoke.Validate()
}
