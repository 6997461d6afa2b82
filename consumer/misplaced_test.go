package consumer

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/roomlog/roomlog/record"
)

// roomIn returns a room name whose home, of n partitions, is p.
func roomIn(t *testing.T, p, n int32) string {
	for i := 0; i < 10_000; i++ {
		name := "room-" + strconv.Itoa(i)
		if record.PartitionOf(name, n) == p {
			return name
		}
	}
	t.Fatalf("no room in partition %d", p)
	return ""
}

func TestFoldMisplaced(t *testing.T) {
	const n = 16
	f := newFolder(t, 8)
	f.p.id = 3
	f.p.SetTopicPartitions(n)
	home, other := roomIn(t, 3, n), roomIn(t, 9, n)
	pub := func(room string, origin *record.Origin) record.Event {
		return record.Event{Type: record.TypePublish, Room: room, Event: "e", Data: json.RawMessage(`1`), Origin: origin}
	}
	o1, o2 := &record.Origin{Partition: 7, Offset: 40}, &record.Origin{Partition: 7, Offset: 41}
	steps := []struct {
		name      string
		ev        record.Event
		misplaced bool
		dup       bool
		original  int64
	}{
		{"in its home", pub(home, nil), false, false, 0},
		{"misplaced publish", pub(other, nil), true, false, 0},
		{"misplaced set", record.Event{Type: record.TypeSet, Room: other, Key: "k", Data: json.RawMessage(`1`)}, true, false, 0},
		{"lease has no home", lease("a", "s1"), false, false, 0},
		{"first copy", pub(home, o2), false, false, 0},
		{"late copy of an earlier origin", pub(home, o1), false, false, 0},
		{"repeat copy", pub(home, o2), false, true, 4},
		{"misplaced copy", pub(other, o1), true, false, 0},
	}
	for _, st := range steps {
		res := f.apply(st.ev)
		if res.Misplaced != st.misplaced || res.Duplicate != st.dup || (st.dup && res.Original != st.original) {
			t.Fatalf("%s: %+v; want misplaced %v, duplicate %v (original %d)", st.name, res, st.misplaced, st.dup, st.original)
		}
		if st.misplaced && res.Home != 9 {
			t.Fatalf("%s: home %d, want 9", st.name, res.Home)
		}
	}
	if r := f.p.rooms[other]; r != nil {
		t.Fatalf("a misplaced record changed its room here: %+v", r)
	}
	hist, _ := f.p.History(f.p.rooms[home])
	if len(hist) != 3 {
		t.Fatalf("history %+v: want the publish and two copies, not the repeat", hist)
	}
	for _, o := range []record.Origin{*o1, *o2, {Partition: 7, Offset: 12}} {
		if !f.p.Rehomed(o) {
			t.Fatalf("Rehomed(%v) = false", o)
		}
	}
	if f.p.Rehomed(record.Origin{Partition: 7, Offset: 42}) || f.p.Rehomed(record.Origin{Partition: 5, Offset: 1}) {
		t.Fatal("Rehomed true for an origin never copied")
	}
	if !f.p.IsDuplicate(&record.Event{Type: record.TypePublish, Room: home, Origin: o2}, 6) || f.p.IsDuplicate(&record.Event{Type: record.TypePublish, Room: home, Origin: o2}, 4) {
		t.Fatal("IsDuplicate: want the repeat at 6 a duplicate and the first copy at 4 not")
	}
}

// TestFoldRehomedWindow: the exact memory of origins expires with record
// time; the high offset per source partition stays.
func TestFoldRehomedWindow(t *testing.T) {
	f := newFolder(t, 0)
	o := &record.Origin{Partition: 2, Offset: 5}
	copyOf := record.Event{Type: record.TypePublish, Room: "r", Data: json.RawMessage(`1`), Origin: o}
	f.apply(copyOf)
	f.ts = f.ts.Add(RehomeWindowMillis * time.Millisecond)
	f.apply(record.Event{Type: record.TypePublish, Room: "r", Data: json.RawMessage(`2`), Origin: &record.Origin{Partition: 2, Offset: 6}})
	if _, ok := f.p.rehomed[*o]; ok {
		t.Fatal("origin remembered past the window")
	}
	if !f.p.Rehomed(*o) {
		t.Fatal("Rehomed forgot an origin below the high offset")
	}
}

// TestRehomedExactly: a late copy (its produce retried after a later one
// landed) is below the high offset but not remembered until it is folded.
func TestRehomedExactly(t *testing.T) {
	f := newFolder(t, 0)
	later, late := record.Origin{Partition: 2, Offset: 9}, record.Origin{Partition: 2, Offset: 8}
	f.apply(record.Event{Type: record.TypePublish, Room: "r", Data: json.RawMessage(`1`), Origin: &later})
	if !f.p.Rehomed(late) || f.p.RehomedExactly(late) {
		t.Fatal("before its copy: want Rehomed (high offset) but not RehomedExactly")
	}
	if res := f.apply(record.Event{Type: record.TypePublish, Room: "r", Data: json.RawMessage(`2`), Origin: &late}); res.Duplicate {
		t.Fatal("the late copy was taken for a repeat")
	}
	if !f.p.RehomedExactly(late) {
		t.Fatal("after its copy: RehomedExactly false")
	}
}
