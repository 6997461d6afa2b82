package relay

import (
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
)

// A Socket.IO client's recovery offset (docs/socketio.md): with connection
// state recovery, every event the relay sends a socket has this string as its
// last argument, and the client sends the last one back when it reconnects.
// It is a log position of the whole socket, opaque to the client:
//
//	1-<epoch>-<partitions>-<rooms>
//
// epoch is the topic's (16 hex digits, as in record.Pos); partitions lists,
// for each partition the socket's rooms use, the offset of the newest record
// of that partition delivered to it ("<partition>.<offset>", joined by "_",
// ascending); rooms lists the rooms whose backlog (a join with since, or a
// resumed join) was still being delivered, with the offset of the newest of
// their records delivered ("<partition>.<room hash>.<offset>", the room hash
// 8 hex digits of FNV-1a). Records of the other rooms of a partition are
// delivered in offset order, so a partition's offset covers them; a room
// with a backlog under way is behind its partition and is named alone.

// sioOffsetVersion starts every offset this relay writes.
const sioOffsetVersion = "1"

// Bounds against hostile offsets.
const (
	maxSIOOffsetBytes   = 16 << 10
	maxSIOOffsetEntries = 1024
)

var errBadSIOOffset = errors.New("malformed Socket.IO offset")

// sioOffset is a parsed offset.
type sioOffset struct {
	epoch uint64
	parts []sioPartOffset // ascending by partition
	rooms []sioRoomOffset
}

type sioPartOffset struct {
	part int32
	off  int64
}

type sioRoomOffset struct {
	part int32
	room uint32 // sioRoomHash
	off  int64
}

// sioRoomHash names a room inside an offset.
func sioRoomHash(room string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(room))
	return h.Sum32()
}

// appendSIOOffset appends the offset's string form.
func appendSIOOffset(b []byte, o *sioOffset) []byte {
	b = appendSIOHead(b, o.epoch)
	for i, p := range o.parts {
		b = appendSIOPart(b, i, p)
	}
	b = append(b, '-')
	for i, r := range o.rooms {
		b = appendSIORoom(b, i, r)
	}
	return b
}

// appendSIOHead appends the offset's version and epoch: "1-<epoch>-".
func appendSIOHead(b []byte, epoch uint64) []byte {
	b = append(b, sioOffsetVersion...)
	b = append(b, '-')
	b = appendHex(b, epoch, 16)
	return append(b, '-')
}

// appendSIOPart appends the i-th partition entry, "<partition>.<offset>"
// ("_" before all but the first).
func appendSIOPart(b []byte, i int, p sioPartOffset) []byte {
	if i > 0 {
		b = append(b, '_')
	}
	b = strconv.AppendInt(b, int64(p.part), 10)
	b = append(b, '.')
	return strconv.AppendInt(b, p.off, 10)
}

// appendSIORoom appends the i-th room entry,
// "<partition>.<room hash>.<offset>" ("_" before all but the first).
func appendSIORoom(b []byte, i int, r sioRoomOffset) []byte {
	if i > 0 {
		b = append(b, '_')
	}
	b = strconv.AppendInt(b, int64(r.part), 10)
	b = append(b, '.')
	b = appendHex(b, uint64(r.room), 8)
	b = append(b, '.')
	return strconv.AppendInt(b, r.off, 10)
}

func appendHex(b []byte, v uint64, digits int) []byte {
	const hex = "0123456789abcdef"
	for i := (digits - 1) * 4; i >= 0; i -= 4 {
		b = append(b, hex[(v>>uint(i))&0xf])
	}
	return b
}

// parseSIOOffset parses an offset made by appendSIOOffset.
func parseSIOOffset(s string) (*sioOffset, error) {
	if len(s) > maxSIOOffsetBytes {
		return nil, fmt.Errorf("%w: %d bytes", errBadSIOOffset, len(s))
	}
	f := strings.Split(s, "-")
	if len(f) != 4 || f[0] != sioOffsetVersion || len(f[1]) != 16 || !lowerHex(f[1]) {
		return nil, fmt.Errorf("%w: not version %s", errBadSIOOffset, sioOffsetVersion)
	}
	o := &sioOffset{}
	ep, err := strconv.ParseUint(f[1], 16, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: epoch", errBadSIOOffset)
	}
	o.epoch = ep
	if f[2] != "" {
		for _, e := range strings.Split(f[2], "_") {
			part, rest, ok := strings.Cut(e, ".")
			if !ok || len(o.parts) == maxSIOOffsetEntries {
				return nil, fmt.Errorf("%w: partition entry", errBadSIOOffset)
			}
			p, err1 := parsePart(part)
			off, err2 := parseOff(rest)
			if err1 != nil || err2 != nil || (len(o.parts) > 0 && p <= o.parts[len(o.parts)-1].part) {
				return nil, fmt.Errorf("%w: partition entry %q", errBadSIOOffset, e)
			}
			o.parts = append(o.parts, sioPartOffset{part: p, off: off})
		}
	}
	if f[3] != "" {
		for _, e := range strings.Split(f[3], "_") {
			fs := strings.Split(e, ".")
			if len(fs) != 3 || len(fs[1]) != 8 || !lowerHex(fs[1]) || len(o.rooms) == maxSIOOffsetEntries {
				return nil, fmt.Errorf("%w: room entry", errBadSIOOffset)
			}
			p, err1 := parsePart(fs[0])
			h, err2 := strconv.ParseUint(fs[1], 16, 32)
			off, err3 := parseOff(fs[2])
			if err1 != nil || err2 != nil || err3 != nil {
				return nil, fmt.Errorf("%w: room entry %q", errBadSIOOffset, e)
			}
			r := sioRoomOffset{part: p, room: uint32(h), off: off}
			if slices.ContainsFunc(o.rooms, func(x sioRoomOffset) bool { return x.part == r.part && x.room == r.room }) {
				return nil, fmt.Errorf("%w: room entry %q twice", errBadSIOOffset, e)
			}
			o.rooms = append(o.rooms, r)
		}
	}
	return o, nil
}

// parsePart and parseOff accept plain decimal numbers only (no sign, no
// leading zeros), so an offset has one spelling.
func parsePart(s string) (int32, error) {
	n, err := parseDecimal(s, 31)
	return int32(n), err
}

func parseOff(s string) (int64, error) { return parseDecimal(s, 63) }

func parseDecimal(s string, bits int) (int64, error) {
	if s == "" || (len(s) > 1 && s[0] == '0') || s[0] < '0' || s[0] > '9' {
		return 0, errBadSIOOffset
	}
	n, err := strconv.ParseInt(s, 10, bits+1)
	if err != nil || n < 0 {
		return 0, errBadSIOOffset
	}
	return n, nil
}

// lowerHex reports whether s is lowercase hex digits only, as written.
func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// partOffset returns the offset's entry for part.
func (o *sioOffset) partOffset(part int32) (int64, bool) {
	i, ok := slices.BinarySearchFunc(o.parts, part, func(p sioPartOffset, t int32) int { return int(p.part - t) })
	if !ok {
		return 0, false
	}
	return o.parts[i].off, true
}

// roomOffset returns the offset's entry for a room with a backlog under way.
func (o *sioOffset) roomOffset(part int32, room string) (int64, bool) {
	h := sioRoomHash(room)
	for _, r := range o.rooms {
		if r.part == part && r.room == h {
			return r.off, true
		}
	}
	return 0, false
}
