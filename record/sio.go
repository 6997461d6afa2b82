package record

import (
	"fmt"
	"strconv"
	"strings"
)

// HeaderSIO ties a join or leave record to a Socket.IO session, for
// connection state recovery (docs/socketio.md): the fold keeps, per
// session, its socket id and rooms, so any relay can resume it.
const HeaderSIO = "rl-sio"

// SIOHashLen is the length of a Socket.IO session's key: the hex of the
// first 16 bytes of the SHA-256 of its private id (pid). The pid itself is
// never written to the log, which anyone with read access may read.
const SIOHashLen = 32

// SIORef is the rl-sio header of a Socket.IO connection's join or leave:
//
//	<hash>/<flags>/<since>/<sid>
//
// flags is "-" or a combination of "p" (join: the socket asked for presence
// events) and "g" (leave: the connection went, as opposed to leaving the
// room); since is the offset after which the socket receives the room (a
// join with since or a resumed join), -1 for the join's own offset; sid is
// the socket id the client knows.
type SIORef struct {
	Hash     string
	SID      string
	Since    int64
	Presence bool
	Gone     bool
}

// String formats r as its header value.
func (r *SIORef) String() string {
	flags := ""
	if r.Presence {
		flags += "p"
	}
	if r.Gone {
		flags += "g"
	}
	if flags == "" {
		flags = "-"
	}
	return r.Hash + "/" + flags + "/" + strconv.FormatInt(r.Since, 10) + "/" + r.SID
}

// ParseSIORef parses an rl-sio header value.
func ParseSIORef(s string) (*SIORef, error) {
	parts := strings.SplitN(s, "/", 4)
	if len(parts) != 4 {
		return nil, fmt.Errorf("%w: %s %q", ErrBadHeader, HeaderSIO, truncate([]byte(s)))
	}
	r := &SIORef{Hash: parts[0], SID: parts[3]}
	if !ValidSIOHash(r.Hash) {
		return nil, fmt.Errorf("%w: %s hash %q", ErrBadHeader, HeaderSIO, truncate([]byte(r.Hash)))
	}
	if parts[1] == "" {
		return nil, fmt.Errorf("%w: %s without flags", ErrBadHeader, HeaderSIO)
	}
	if parts[1] != "-" {
		for _, f := range parts[1] {
			switch {
			case f == 'p' && !r.Presence:
				r.Presence = true
			case f == 'g' && !r.Gone:
				r.Gone = true
			default:
				return nil, fmt.Errorf("%w: %s flags %q", ErrBadHeader, HeaderSIO, truncate([]byte(parts[1])))
			}
		}
	}
	since, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || since < -1 {
		return nil, fmt.Errorf("%w: %s since %q", ErrBadHeader, HeaderSIO, truncate([]byte(parts[2])))
	}
	r.Since = since
	if err := ValidName(r.SID, MaxFromBytes); err != nil {
		return nil, fmt.Errorf("%w: %s socket id %v", ErrBadHeader, HeaderSIO, err)
	}
	return r, nil
}

// ValidSIOHash reports whether h is a session key: SIOHashLen lowercase hex
// digits.
func ValidSIOHash(h string) bool {
	if len(h) != SIOHashLen {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
