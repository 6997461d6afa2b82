package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Pos names one record's place in the log: its partition, its offset, and the
// epoch of the topic it was read from. The epoch is the first 8 bytes of the
// topic's Kafka topic ID, so a position taken before a topic was deleted and
// recreated is recognisably stale.
//
// Clients treat the string form as opaque. It is "P-O-E": partition and offset
// in decimal, epoch in 16 hex digits.
type Pos struct {
	Epoch     uint64
	Partition int32
	Offset    int64
}

// ErrBadPos is wrapped by ParsePos for any malformed position.
var ErrBadPos = errors.New("malformed position")

// EpochOf derives the epoch from a Kafka topic ID.
func EpochOf(topicID [16]byte) uint64 { return binary.BigEndian.Uint64(topicID[:8]) }

// String formats p as its opaque token.
func (p Pos) String() string {
	b := make([]byte, 0, 40)
	b = p.Append(b)
	return string(b)
}

// Append appends p's token to b.
func (p Pos) Append(b []byte) []byte {
	b = strconv.AppendInt(b, int64(p.Partition), 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, p.Offset, 10)
	b = append(b, '-')
	const hex = "0123456789abcdef"
	for i := 60; i >= 0; i -= 4 {
		b = append(b, hex[(p.Epoch>>uint(i))&0xf])
	}
	return b
}

// ParsePos parses a token made by Pos.String.
func ParsePos(s string) (Pos, error) {
	var p Pos
	parts := strings.Split(s, "-")
	if len(s) > 64 || len(parts) != 3 || len(parts[2]) != 16 {
		return p, fmt.Errorf("%w %q", ErrBadPos, s)
	}
	part, err := strconv.ParseInt(parts[0], 10, 32)
	if err != nil || part < 0 {
		return p, fmt.Errorf("%w %q: partition", ErrBadPos, s)
	}
	off, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || off < 0 {
		return p, fmt.Errorf("%w %q: offset", ErrBadPos, s)
	}
	ep, err := strconv.ParseUint(parts[2], 16, 64)
	if err != nil {
		return p, fmt.Errorf("%w %q: epoch", ErrBadPos, s)
	}
	return Pos{Epoch: ep, Partition: int32(part), Offset: off}, nil
}
