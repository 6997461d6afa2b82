package consumer

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"

	"github.com/klauspost/compress/zstd"

	"github.com/roomlog/roomlog/record"
)

// Snapshots: a partition's folded state at an offset, so a starting relay
// loads it and replays only the tail of the log. The encoding is versioned
// JSON, zstd-compressed; DecodeSnapshot refuses an unknown version or a
// corrupt body, and the loader then falls back to an older snapshot or the
// full log.

// SnapshotVersion is the format version written by this code. Version 2
// added the revocation list; version 1 snapshots (none) are read too.
const SnapshotVersion = 2

// ErrSnapshotVersion is wrapped by DecodeSnapshot for a version this code
// cannot read.
var ErrSnapshotVersion = errors.New("unknown snapshot version")

type snapshotBody struct {
	Version   int                     `json:"v"`
	Partition int32                   `json:"partition"`
	Next      int64                   `json:"next"`
	Rooms     map[string]snapshotRoom `json:"rooms"`
	Relays    map[string]relayLease   `json:"relays"`
	// Dedupe is the dedupe window in a compact binary form (see
	// encodeDedupe): it can hold hundreds of thousands of ids.
	Dedupe []byte `json:"dedupe"`
	// Revoked is the revocation list (version 2; revoke.go).
	Revoked *revocations `json:"revoked,omitempty"`
	// Rehomed is the memory of re-homed copies (misplaced.go); absent
	// when the partition has none, so older snapshots read the same.
	Rehomed *snapshotRehomed `json:"rehomed,omitempty"`
	// SIO holds the Socket.IO sessions (siosession.go); absent in
	// snapshots of relays before connection state recovery.
	SIO       map[string]SIOSession `json:"sio,omitempty"`
	SIOPruned int64                 `json:"sio_pruned,omitempty"`
}

type snapshotRoom struct {
	Members []snapshotMember `json:"m,omitempty"`
	KV      map[string]Entry `json:"kv,omitempty"`
}

type snapshotMember struct {
	Member
	Session string `json:"session"`
	Offset  int64  `json:"offset"`
}

// encodeDedupe writes the dedupe queue (oldest first): a table of the rooms
// it names, then per entry the room's index, the user, the mid, the first
// publish's offset and the record time as a delta from the previous entry.
func encodeDedupe(q []dedupeEntry, first map[dedupeKey]int64) []byte {
	rooms := map[string]uint64{}
	var table []string
	for _, e := range q {
		if _, ok := rooms[e.key.room]; !ok {
			rooms[e.key.room] = uint64(len(table))
			table = append(table, e.key.room)
		}
	}
	b := binary.AppendUvarint(nil, uint64(len(table)))
	for _, r := range table {
		b = binary.AppendUvarint(b, uint64(len(r)))
		b = append(b, r...)
	}
	b = binary.AppendUvarint(b, uint64(len(q)))
	var ts int64
	for _, e := range q {
		b = binary.AppendUvarint(b, rooms[e.key.room])
		b = binary.AppendUvarint(b, uint64(len(e.key.user)))
		b = append(b, e.key.user...)
		b = binary.AppendUvarint(b, uint64(len(e.key.mid)))
		b = append(b, e.key.mid...)
		b = binary.AppendVarint(b, first[e.key])
		b = binary.AppendVarint(b, e.ts-ts)
		ts = e.ts
	}
	return b
}

var errDedupe = errors.New("snapshot: corrupt dedupe section")

func decodeDedupe(b []byte, p *Partition) error {
	uv := func() (uint64, bool) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	str := func() (string, bool) {
		n, ok := uv()
		if !ok || n > uint64(len(b)) {
			return "", false
		}
		s := string(b[:n])
		b = b[n:]
		return s, true
	}
	vv := func() (int64, bool) {
		v, n := binary.Varint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	nt, ok := uv()
	if !ok || nt > uint64(len(b)) {
		return errDedupe
	}
	table := make([]string, nt)
	for i := range table {
		if table[i], ok = str(); !ok {
			return errDedupe
		}
	}
	n, ok := uv()
	if !ok || n > uint64(len(b)) {
		return errDedupe
	}
	p.dedupe = make(map[dedupeKey]int64, n)
	p.dedupeQ = make([]dedupeEntry, 0, n)
	var ts int64
	for i := uint64(0); i < n; i++ {
		ri, ok1 := uv()
		user, ok2 := str()
		mid, ok3 := str()
		off, ok4 := vv()
		dt, ok5 := vv()
		if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || ri >= nt {
			return errDedupe
		}
		ts += dt
		k := dedupeKey{room: table[ri], user: user, mid: mid}
		p.dedupe[k] = off
		p.dedupeQ = append(p.dedupeQ, dedupeEntry{key: k, ts: ts})
	}
	return nil
}

// EncodeSnapshot serialises the partition's state (not its history window,
// a cache) as of Next. It takes the read lock.
func (p *Partition) EncodeSnapshot() ([]byte, int64, error) {
	p.mu.RLock()
	b := snapshotBody{Version: SnapshotVersion, Partition: p.id, Next: p.next, Rooms: make(map[string]snapshotRoom), Relays: make(map[string]relayLease)}
	for name, r := range p.rooms {
		if len(r.Members) == 0 && len(r.KV) == 0 {
			continue
		}
		sr := snapshotRoom{KV: make(map[string]Entry, len(r.KV))}
		for _, m := range SortedMembers(r) {
			sr.Members = append(sr.Members, snapshotMember{Member: m, Session: m.Session, Offset: m.Offset})
		}
		for k, e := range r.KV {
			sr.KV[k] = *e
		}
		b.Rooms[name] = sr
	}
	for name, l := range p.relays {
		b.Relays[name] = *l
	}
	b.Dedupe = encodeDedupe(p.dedupeQ[p.dedupeHead:], p.dedupe)
	if p.revoked != nil {
		rv := *p.revoked
		rv.JTI, rv.Users = maps.Clone(rv.JTI), maps.Clone(rv.Users)
		b.Revoked = &rv
	}
	b.Rehomed = p.encodeRehomed()
	b.SIO, b.SIOPruned = p.sioDump(), p.sioPruned
	next := p.next
	p.mu.RUnlock()

	raw, err := json.Marshal(&b)
	if err != nil {
		return nil, 0, fmt.Errorf("snapshot of partition %d: %w", p.id, err)
	}
	var out bytes.Buffer
	zw, err := zstd.NewWriter(&out, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		return nil, 0, err
	}
	if _, err := zw.Write(raw); err != nil {
		return nil, 0, err
	}
	if err := zw.Close(); err != nil {
		return nil, 0, err
	}
	return out.Bytes(), next, nil
}

// maxSnapshotBytes bounds a decompressed snapshot, against a corrupt or
// hostile length.
const maxSnapshotBytes = 2 << 30

// DecodeSnapshot rebuilds a partition from EncodeSnapshot's output. window
// is the history window of the new partition (which starts empty: its
// floor is the snapshot's offset).
func DecodeSnapshot(data []byte, window int) (*Partition, error) {
	zr, err := zstd.NewReader(bytes.NewReader(data), zstd.WithDecoderMaxMemory(maxSnapshotBytes))
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	defer zr.Close()
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("snapshot: decompress: %w", err)
	}
	var b snapshotBody
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, fmt.Errorf("snapshot: decode: %w", err)
	}
	if b.Version != SnapshotVersion && b.Version != 1 {
		return nil, fmt.Errorf("%w %d (this relay reads %d)", ErrSnapshotVersion, b.Version, SnapshotVersion)
	}
	if b.Next < 0 || b.Partition < 0 {
		return nil, fmt.Errorf("snapshot: partition %d at offset %d is invalid", b.Partition, b.Next)
	}
	p := newPartition(b.Partition, window)
	p.next, p.floor = b.Next, b.Next
	p.hwm.Store(b.Next)
	for name, l := range b.Relays {
		l := l
		l.name = name
		p.relays[name] = &l
	}
	for name, sr := range b.Rooms {
		r := p.room(name)
		for _, sm := range sr.Members {
			m := sm.Member
			m.Session, m.Offset = sm.Session, sm.Offset
			if m.Conn == "" {
				return nil, fmt.Errorf("snapshot: room %q has a member without a connection id", name)
			}
			if l := p.relays[m.Relay]; l != nil { // one copy of the relay's name and session
				m.Relay = l.name
				if m.Session == l.Session {
					m.Session = l.Session
				}
			}
			r.Members[m.Conn] = &m
			conns := p.sessions[m.Session]
			if conns == nil {
				conns = make(map[memberKey]struct{})
				p.sessions[m.Session] = conns
			}
			conns[memberKey{conn: m.Conn, room: name}] = struct{}{}
		}
		for k, e := range sr.KV {
			e := e
			r.KV[k] = &e
		}
	}
	if err := decodeDedupe(b.Dedupe, p); err != nil {
		return nil, err
	}
	if b.Revoked != nil {
		if err := b.Revoked.restore(); err != nil {
			return nil, err
		}
		if !b.Revoked.empty() {
			p.revoked = b.Revoked
		}
	}
	p.decodeRehomed(b.Rehomed)
	for h, ss := range b.SIO {
		if !record.ValidSIOHash(h) || ss.SID == "" {
			return nil, fmt.Errorf("snapshot: Socket.IO session %q is invalid", h)
		}
		p.sio[h] = importSIO(ss)
	}
	p.sioPruned = b.SIOPruned
	return p, nil
}

// Checksum is the hex SHA-256 of a snapshot's bytes, kept in its manifest.
func Checksum(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
