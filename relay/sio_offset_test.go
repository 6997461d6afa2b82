package relay

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/roomlog/roomlog/record"
)

func TestSIOOffset(t *testing.T) {
	good := []sioOffset{
		{epoch: 0},
		{epoch: 0xdeadbeef01020304, parts: []sioPartOffset{{0, 0}, {3, 1 << 40}}},
		{epoch: 1, parts: []sioPartOffset{{2, 9}}, rooms: []sioRoomOffset{{2, sioRoomHash("lobby"), 5}, {2, sioRoomHash("news"), 7}}},
	}
	for _, o := range good {
		s := string(appendSIOOffset(nil, &o))
		got, err := parseSIOOffset(s)
		if err != nil {
			t.Fatalf("parseSIOOffset(%q): %v", s, err)
		}
		if again := string(appendSIOOffset(nil, got)); again != s {
			t.Fatalf("round trip of %q gave %q", s, again)
		}
	}
	const ep = "00000000000000ff"
	bad := map[string]string{
		"empty":                 "",
		"other version":         "2-" + ep + "--",
		"short epoch":           "1-ff--",
		"three fields":          "1-" + ep + "-",
		"partition not ordered": "1-" + ep + "-3.1_2.1-",
		"partition twice":       "1-" + ep + "-2.1_2.5-",
		"negative offset":       "1-" + ep + "-2.-1-",
		"leading zero":          "1-" + ep + "-02.1-",
		"plus sign":             "1-" + ep + "-+2.1-",
		"no offset":             "1-" + ep + "-2-",
		"partition too big":     "1-" + ep + "-4294967296.1-",
		"room hash short":       "1-" + ep + "-2.1-2.abc.1",
		"room twice":            "1-" + ep + "-2.1-2.0000abcd.1_2.0000abcd.2",
		"room not hex":          "1-" + ep + "-2.1-2.0000abcx.1",
		"too long":              "1-" + ep + "-" + strings.Repeat("1", maxSIOOffsetBytes),
	}
	for name, s := range bad {
		if _, err := parseSIOOffset(s); !errors.Is(err, errBadSIOOffset) {
			t.Errorf("%s: parseSIOOffset(%q) err = %v, want errBadSIOOffset", name, s, err)
		}
	}
}

// FuzzParseSIOOffset: no offset a client sends back crashes the parser;
// what it accepts has one spelling.
func FuzzParseSIOOffset(f *testing.F) {
	f.Add("1-0ad142d4e309572f-0.12_3.9-")
	f.Add("1-0ad142d4e309572f-0.12-0.9a8b7c6d.3")
	f.Add("1-0000000000000000--")
	f.Fuzz(func(t *testing.T, s string) {
		o, err := parseSIOOffset(s)
		if err != nil {
			return
		}
		if again := string(appendSIOOffset(nil, o)); again != s {
			t.Fatalf("accepted %q, which formats as %q", s, again)
		}
	})
}

// FuzzDecodeSIOAuth: any CONNECT payload decodes without panicking.
func FuzzDecodeSIOAuth(f *testing.F) {
	f.Add([]byte(`{"token":"t","pid":"AAAAAAAAAAAAAAAAAAAAAA","offset":"1-0000000000000000--"}`))
	f.Add([]byte(`{"pid":1,"offset":{}}`))
	f.Add([]byte(`{"token":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, ferr := decodeSIOAuth(b)
		if ferr != nil {
			return
		}
		if len(b) > 0 && !json.Valid(b) {
			t.Fatalf("accepted invalid JSON %q as %+v", b, a)
		}
		if a.PID != "" {
			_, _ = sioHash(a.PID)
		}
		if a.Offset != "" {
			_, _ = parseSIOOffset(a.Offset)
		}
	})
}

func TestSIOHash(t *testing.T) {
	pid, err := newSIOPid()
	if err != nil {
		t.Fatal(err)
	}
	h, ok := sioHash(pid)
	if !ok || !record.ValidSIOHash(h) {
		t.Fatalf("sioHash(%q) = %q, %v", pid, h, ok)
	}
	if strings.Contains(h, pid) {
		t.Fatal("the hash shows the pid")
	}
	for _, bad := range []string{"", "short", pid + "A", "!!!!!!!!!!!!!!!!!!!!!!"} {
		if _, ok := sioHash(bad); ok {
			t.Errorf("sioHash(%q) accepted", bad)
		}
	}
}

// TestSIOStamp: a partition's entry covers the records delivered in order;
// a room whose backlog is under way is named with its own newest record,
// behind its partition's, until its backlog is queued.
func TestSIOStamp(t *testing.T) {
	const epoch = 0xabc
	st := newSIOStamp(epoch)
	at := func(room string, part int32, off int64) *frameAt {
		return &frameAt{room: room, pos: record.Pos{Epoch: epoch, Partition: part, Offset: off}}
	}
	offsetOf := func(f *frameAt) *sioOffset {
		t.Helper()
		st.note(f)
		m := st.stamp([]byte(`2["chat",1,{}]`))
		packet := append(slices.Clip(m.Data), m.Tail...)
		var args []json.RawMessage
		if err := json.Unmarshal(packet[1:], &args); err != nil || len(args) != 4 {
			t.Fatalf("stamped packet %s", packet)
		}
		var s string
		_ = json.Unmarshal(args[3], &s)
		o, err := parseSIOOffset(s)
		if err != nil {
			t.Fatalf("stamped offset %q: %v", s, err)
		}
		return o
	}
	check := func(o *sioOffset, part int32, want int64, room string, roomWant int64) {
		t.Helper()
		if got, ok := o.partOffset(part); !ok || got != want {
			t.Fatalf("partition %d: %d, %v; want %d", part, got, ok, want)
		}
		got, ok := o.roomOffset(part, room)
		if roomWant < 0 && ok {
			t.Fatalf("room %s named (%d) without a backlog under way", room, got)
		}
		if roomWant >= 0 && (!ok || got != roomWant) {
			t.Fatalf("room %s: %d, %v; want %d", room, got, ok, roomWant)
		}
	}
	check(offsetOf(at("a", 0, 450)), 0, 450, "b", -1)
	st.beginBacklog("b", 0, 300)
	check(offsetOf(at("b", 0, 320)), 0, 450, "b", 320) // b's backlog, behind a's live records
	check(offsetOf(at("a", 0, 800)), 0, 800, "b", 320)
	check(offsetOf(at("b", 0, 330)), 0, 800, "b", 330)
	o := offsetOf(at("c", 1, 5)) // other partitions go on
	check(o, 1, 5, "c", -1)
	check(o, 0, 800, "b", 330)
	st.endBacklog("b")
	check(offsetOf(at("a", 0, 801)), 0, 801, "b", -1)

	// A frame that could not be queued is taken back.
	st.undo(st.note(at("d", 2, 9)))
	n := st.note(at("a", 0, 900))
	st.undo(n)
	if off, _ := st.off.partOffset(0); off != 801 {
		t.Fatalf("undo left partition 0 at %d, want 801", off)
	}
	if _, ok := st.off.partOffset(2); ok {
		t.Fatal("undo left partition 2")
	}
}

// TestSIOTail: the cached tail always equals the offset encoded afresh,
// through every kind of change (a partition's entry moves, a partition is
// added or taken back, a backlog begins, moves and ends), and a tail once
// handed out never changes. The event's frame is shared, not copied.
func TestSIOTail(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 42, 1 << 40} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			const epoch = 0x1234567890abcdef
			rng := rand.New(rand.NewPCG(seed, seed))
			st := newSIOStamp(epoch)
			rooms := []string{"a", "b", "c", "d", "e"}
			part := func(room string) int32 { return int32(room[0]-'a') % 3 } // b and e share partition 1
			next := map[int32]int64{}
			frame := []byte(`2["chat",{"x":1},{"room":"a"}]`)
			type handed struct {
				tail []byte
				want string
			}
			var kept []handed
			for step := range 2000 {
				room := rooms[rng.IntN(len(rooms))]
				p := part(room)
				switch op := rng.IntN(10); {
				case op < 6: // deliver the room's next record
					next[p] += 1 + rng.Int64N(5)
					st.note(&frameAt{room: room, pos: record.Pos{Epoch: epoch, Partition: p, Offset: next[p]}})
				case op < 7: // a record that could not be queued
					st.undo(st.note(&frameAt{room: room, pos: record.Pos{Epoch: epoch, Partition: p + int32(rng.IntN(2))*3, Offset: next[p] + 1}}))
				case op < 8: // a backlog record, behind the partition
					st.note(&frameAt{room: room, pos: record.Pos{Epoch: epoch, Partition: p, Offset: max(0, next[p]-rng.Int64N(10))}})
				case op < 9:
					st.beginBacklog(room, p, max(0, next[p]-rng.Int64N(100)))
				default:
					st.endBacklog(room)
				}
				m := st.stamp(frame)
				if &m.Data[0] != &frame[0] || len(m.Data) != len(frame)-1 || cap(m.Data) != len(m.Data) {
					t.Fatalf("step %d: the frame was copied or left appendable", step)
				}
				ref := sioOffset{epoch: epoch, parts: st.off.parts}
				for _, b := range st.backlog {
					ref.rooms = append(ref.rooms, *b)
				}
				slices.SortFunc(ref.rooms, func(a, b sioRoomOffset) int {
					if a.part != b.part {
						return int(a.part - b.part)
					}
					return int(int64(a.room) - int64(b.room))
				})
				want := `,"` + string(appendSIOOffset(nil, &ref)) + `"]`
				if string(m.Tail) != want {
					t.Fatalf("step %d: tail %s, want %s", step, m.Tail, want)
				}
				if cap(m.Tail) != len(m.Tail) {
					t.Fatalf("step %d: the tail is appendable", step)
				}
				kept = append(kept, handed{m.Tail, want})
			}
			for i, h := range kept {
				if string(h.tail) != h.want {
					t.Fatalf("tail %d changed after it was handed out: %s, was %s", i, h.tail, h.want)
				}
			}
			if m := st.stamp([]byte(`2`)); m.Tail != nil || string(m.Data) != "2" {
				t.Fatalf("a packet that is no array got %q + %q", m.Data, m.Tail)
			}
		})
	}
}
