package consumer

import (
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/record"
)

// folder applies events to one partition at increasing offsets.
type folder struct {
	t   testing.TB
	p   *Partition
	off int64
	ts  time.Time
}

func newFolder(t testing.TB, window int) *folder {
	return &folder{t: t, p: newPartition(0, window), ts: time.UnixMilli(1_700_000_000_000)}
}

func (f *folder) apply(ev record.Event) Result {
	r := record.Encode(&ev)
	r.Offset, r.Timestamp = f.off, f.ts
	f.off++
	var res Result
	if _, err := f.p.Apply(r, &res); err != nil {
		f.t.Fatalf("apply %+v: %v", ev, err)
	}
	return res
}

func lease(relay, session string) record.Event {
	return record.Event{Type: record.TypeLease, Room: record.RelayKeyPrefix + relay, Relay: relay, Session: session}
}

func join(room, conn, relay, session string) record.Event {
	return record.Event{Type: record.TypeJoin, Room: room, From: conn, Relay: relay, Session: session}
}

func members(p *Partition, room string) []string {
	var out []string
	if r := p.rooms[room]; r != nil {
		for _, m := range SortedMembers(r) {
			out = append(out, m.Conn)
		}
	}
	return out
}

func TestFoldPresenceAndLeases(t *testing.T) {
	f := newFolder(t, 0)
	if res := f.apply(join("r", "s1-1", "a", "s1")); res.Code != CodeStale {
		t.Fatalf("join before any lease: %+v, want stale", res)
	}
	f.apply(lease("a", "s1"))
	if res := f.apply(join("r", "s1-1", "a", "s1")); res.Joined == nil || res.Joined.Conn != "s1-1" {
		t.Fatalf("join: %+v", res)
	}
	f.apply(join("r", "s1-2", "a", "s1"))
	f.apply(join("q", "s1-2", "a", "s1")) // one conn in two rooms
	f.apply(lease("b", "t1"))
	f.apply(join("r", "t1-1", "b", "t1"))
	if got := members(f.p, "r"); fmt.Sprint(got) != "[s1-1 s1-2 t1-1]" {
		t.Fatalf("members %v", got)
	}

	// A stale expire (b renewed since) changes nothing.
	staleLease := f.p.relays["b"].LeaseOffset
	f.apply(lease("c", "u1")) // a relay with no members
	f.apply(lease("b", "t1"))
	if res := f.apply(record.Event{Type: record.TypeExpire, Room: "~relay/b", Relay: "b", Session: "t1", Version: staleLease}); res.Ended != "" || len(res.Left) != 0 {
		t.Fatalf("stale expire took effect: %+v", res)
	}
	// The matching one ends b's session.
	res := f.apply(record.Event{Type: record.TypeExpire, Room: "~relay/b", Relay: "b", Session: "t1", Version: f.p.relays["b"].LeaseOffset})
	if res.Ended != "t1" || len(res.Left) != 1 || res.Left[0].Reason != ReasonExpired || res.Left[0].Member.Conn != "t1-1" {
		t.Fatalf("expire: %+v", res)
	}
	if res := f.apply(join("r", "t1-9", "b", "t1")); res.Code != CodeStale {
		t.Fatalf("join from an expired session: %+v", res)
	}
	if _, ok := f.p.relays["b"]; ok {
		t.Fatal("an expired relay's lease entry stays forever")
	}
	f.apply(record.Event{Type: record.TypeExpire, Room: "~relay/c", Relay: "c", Session: "u1", Version: f.p.relays["c"].LeaseOffset})
	if _, ok := f.p.relays["c"]; ok {
		t.Fatal("a memberless relay was not expired")
	}
	// a restarts with a new session: its old members leave, in join order.
	res = f.apply(lease("a", "s2"))
	if res.Ended != "s1" || len(res.Left) != 3 || res.Left[0].Member.Conn != "s1-1" || res.Left[0].Reason != ReasonRestarted {
		t.Fatalf("restart: %+v", res)
	}
	if len(f.p.rooms) != 0 || len(f.p.sessions) != 0 {
		t.Fatalf("rooms %v sessions %v left behind", f.p.rooms, f.p.sessions)
	}
}

func TestFoldState(t *testing.T) {
	set := func(k, v string) record.Event {
		return record.Event{Type: record.TypeSet, Room: "r", Key: k, Data: json.RawMessage(v)}
	}
	f := newFolder(t, 0)
	tests := []struct {
		name    string
		ev      record.Event
		code    string
		value   string
		version int64 // -1: don't check
	}{
		{"incr absent", record.Event{Type: record.TypeIncr, Room: "r", Key: "n", Delta: 5}, "", "5", 0},
		{"incr", record.Event{Type: record.TypeIncr, Room: "r", Key: "n", Delta: -7}, "", "-2", 1},
		{"cas create conflict", record.Event{Type: record.TypeCAS, Room: "r", Key: "n", Data: json.RawMessage("1"), Version: 0}, CodeConflict, "-2", 1},
		{"cas ok", record.Event{Type: record.TypeCAS, Room: "r", Key: "n", Data: json.RawMessage(`"x"`), Version: 1}, "", `"x"`, 3},
		{"incr string", record.Event{Type: record.TypeIncr, Room: "r", Key: "n", Delta: 1}, CodeNotInteger, `"x"`, 3},
		{"set max", set("m", strconv.FormatInt(1<<62, 10)+"1"), "", "46116860184273879041", 5},
		{"set big", set("m", "9223372036854775807"), "", "9223372036854775807", 6},
		{"incr overflow", record.Event{Type: record.TypeIncr, Room: "r", Key: "m", Delta: 1}, CodeOverflow, "9223372036854775807", 6},
		{"del", record.Event{Type: record.TypeDel, Room: "r", Key: "m"}, "", "", 0},
		{"del absent", record.Event{Type: record.TypeDel, Room: "r", Key: "m"}, "", "", 0},
		{"cas create", record.Event{Type: record.TypeCAS, Room: "r", Key: "m", Data: json.RawMessage("true"), Version: 0}, "", "true", 10},
	}
	for _, tt := range tests {
		res := f.apply(tt.ev)
		if res.Code != tt.code || string(res.Entry.Value) != tt.value || (tt.version >= 0 && res.Entry.Version != tt.version) {
			t.Errorf("%s: got code %q value %s version %d; want %q %s %d", tt.name, res.Code, res.Entry.Value, res.Entry.Version, tt.code, tt.value, tt.version)
		}
	}
	for i := len(f.p.rooms["r"].KV); i < MaxKeysPerRoom; i++ {
		f.apply(set("k"+strconv.Itoa(i), "1"))
	}
	if res := f.apply(set("one-too-many", "1")); res.Code != CodeStateFull {
		t.Fatalf("key %d: %+v", MaxKeysPerRoom+1, res)
	}
	if res := f.apply(set("k5", "2")); res.Code != "" {
		t.Fatalf("overwrite in a full room: %+v", res)
	}
}

func TestFoldDedupeWindow(t *testing.T) {
	f := newFolder(t, 8)
	pub := func(mid string) record.Event {
		return record.Event{Type: record.TypePublish, Room: "r", Event: "e", Data: json.RawMessage("1"), MID: mid}
	}
	f.apply(pub("a"))
	if res := f.apply(pub("a")); !res.Duplicate || res.Original != 0 {
		t.Fatalf("retry: %+v", res)
	}
	if res := f.apply(pub("")); res.Duplicate {
		t.Fatal("a publish without mid is never a duplicate")
	}
	f.ts = f.ts.Add(DedupeWindowMillis*time.Millisecond + time.Second)
	if res := f.apply(pub("a")); res.Duplicate {
		t.Fatal("a retry after the window is delivered again")
	}
	hist, dropped := f.p.History(f.p.rooms["r"])
	if len(hist) != 3 || dropped != -1 {
		t.Fatalf("history %d dropped %d; duplicates must not enter it", len(hist), dropped)
	}
	for i := 0; i < 10; i++ {
		f.apply(pub(""))
	}
	hist, dropped = f.p.History(f.p.rooms["r"])
	if len(hist) != 8 || dropped != hist[0].Offset-1 {
		t.Fatalf("window of %d, dropped %d, oldest %d", len(hist), dropped, hist[0].Offset)
	}
}

func TestApplyUndecodable(t *testing.T) {
	p := newPartition(0, 0)
	var res Result
	r := &kgo.Record{Key: []byte("r"), Offset: 7, Headers: []kgo.RecordHeader{{Key: record.HeaderType, Value: []byte("warp")}}}
	if _, err := p.Apply(r, &res); err == nil {
		t.Fatal("unknown type applied")
	}
	if p.Next() != 8 {
		t.Fatalf("next = %d: an undecodable record must still advance the fold", p.Next())
	}
}

// BenchmarkFoldMixed folds a stream of every record kind over 10k rooms:
// publishes (half with mids), joins and leaves, state ops and leases.
func BenchmarkFoldMixed(b *testing.B) {
	const rooms = 10000
	recs := make([]*kgo.Record, 0, 4096)
	for i := 0; len(recs) < cap(recs); i++ {
		room := "room-" + strconv.Itoa(i%rooms)
		var ev record.Event
		switch i % 10 {
		case 0, 1, 2, 3:
			ev = record.Event{Type: record.TypePublish, Room: room, Event: "chat", Data: json.RawMessage(`{"text":"hello there","n":42}`), From: "s1-" + strconv.Itoa(i)}
			if i%2 == 0 {
				ev.MID = "m" + strconv.Itoa(i)
			}
		case 4:
			ev = join(room, "s1-"+strconv.Itoa(i), "a", "s1")
		case 5:
			ev = record.Event{Type: record.TypeLeave, Room: room, From: "s1-" + strconv.Itoa(i-1)}
		case 6:
			ev = record.Event{Type: record.TypeIncr, Room: room, Key: "n", Delta: 1}
		case 7:
			ev = record.Event{Type: record.TypeSet, Room: room, Key: "k" + strconv.Itoa(i%7), Data: json.RawMessage(`"v"`)}
		case 8:
			ev = record.Event{Type: record.TypeCAS, Room: room, Key: "c", Data: json.RawMessage(`1`), Version: 0}
		case 9:
			ev = lease("a", "s1")
		}
		recs = append(recs, record.Encode(&ev))
	}
	p := newPartition(0, DefaultHistoryWindow)
	base := time.UnixMilli(1_700_000_000_000)
	var res Result
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := recs[i%len(recs)]
		r.Offset, r.Timestamp = int64(i), base.Add(time.Duration(i)*time.Microsecond)
		if _, err := p.Apply(r, &res); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
