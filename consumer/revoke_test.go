package consumer

import (
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/roomlog/roomlog/record"
)

func revoke(user, jti string, before, until int64) record.Event {
	return record.Event{Type: record.TypeRevoke, Room: record.ControlKey, User: user,
		Revoke: record.Revocation{JTI: jti, IssuedBefore: before, Until: until}}
}

// TestFoldRevocations: the list refuses by jti, by issue time per user and
// for everyone, forgets each entry at its until (record time), survives a
// snapshot, and is capped.
func TestFoldRevocations(t *testing.T) {
	f := newFolder(t, 0)
	t0 := f.ts.UnixMilli()
	hour := time.Hour.Milliseconds()
	f.apply(revoke("", "tok-1", 0, t0+hour))
	f.apply(revoke("alice", "", t0, t0+2*hour))
	f.apply(revoke("", "", t0-hour, t0+3*hour))
	f.apply(revoke("", "tok-old", 0, t0-1)) // already over: not kept

	tests := []struct {
		name string
		tok  Token
		now  int64
		want bool
	}{
		{"revoked jti", Token{User: "bob", JTI: "tok-1", IssuedAt: t0}, t0, true},
		{"revoked jti after until", Token{User: "bob", JTI: "tok-1", IssuedAt: t0}, t0 + hour, false},
		{"other jti", Token{User: "bob", JTI: "tok-2", IssuedAt: t0}, t0, false},
		{"alice before the cut", Token{User: "alice", IssuedAt: t0 - 1}, t0, true},
		{"alice after the cut", Token{User: "alice", IssuedAt: t0}, t0, false},
		{"alice without iat", Token{User: "alice"}, t0, true},
		{"bob before the global cut", Token{User: "bob", IssuedAt: t0 - hour - 1}, t0, true},
		{"bob after the global cut", Token{User: "bob", IssuedAt: t0 - hour}, t0, false},
		{"old jti never kept", Token{User: "bob", JTI: "tok-old", IssuedAt: t0}, t0 - 2, false},
	}
	for _, tt := range tests {
		if got := f.p.Revoked(tt.tok, tt.now); got != tt.want {
			t.Errorf("%s: revoked %v, want %v", tt.name, got, tt.want)
		}
	}

	// A snapshot holds the list; its fold goes on identically.
	data, _, err := f.p.EncodeSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	restored, err := DecodeSnapshot(data, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(restored.Dump(), f.p.Dump()) {
		t.Fatalf("restored %+v, want %+v", restored.Dump().Revoked, f.p.Dump().Revoked)
	}

	// Any record of the partition past an until forgets what is due.
	f.ts = f.ts.Add(90 * time.Minute)
	f.apply(record.Event{Type: record.TypePublish, Room: "lobby", Data: []byte("1")})
	if d := f.p.Dump().Revoked; d == nil || len(d.JTI) != 0 || len(d.Users) != 1 || d.All.Until == 0 {
		t.Fatalf("after the jti's until: %+v", d)
	}
	f.ts = f.ts.Add(3 * time.Hour)
	f.apply(record.Event{Type: record.TypePublish, Room: "lobby", Data: []byte("1")})
	if d := f.p.Dump().Revoked; d != nil || f.p.revoked != nil {
		t.Fatalf("after every until: %+v", d)
	}

	// The cap: new entries beyond it are refused, existing ones extended.
	until := f.ts.UnixMilli() + hour
	f.p.revoked = &revocations{JTI: map[string]int64{}, next: until}
	for i := range MaxRevocations {
		f.p.revoked.JTI["t"+strconv.Itoa(i)] = until
	}
	if res := f.apply(revoke("", "one-more", 0, until)); res.Code != CodeRevocationsFull {
		t.Fatalf("beyond the cap: %+v, want %s", res, CodeRevocationsFull)
	}
	if res := f.apply(revoke("", "t0", 0, until+hour)); res.Code != "" || f.p.revoked.JTI["t0"] != until+hour {
		t.Fatalf("extending an entry at the cap: %+v", res)
	}
}

// TestFoldRemove: a remove record takes every connection of the user out
// of the room, and only them, in join order, with reason removed.
func TestFoldRemove(t *testing.T) {
	f := newFolder(t, 0)
	f.apply(lease("a", "s1"))
	for _, j := range []struct{ conn, user string }{{"s1-1", "alice"}, {"s1-2", "bob"}, {"s1-3", "alice"}} {
		ev := join("r", j.conn, "a", "s1")
		ev.User = j.user
		f.apply(ev)
	}
	res := f.apply(record.Event{Type: record.TypeRemove, Room: "r", User: "alice"})
	if len(res.Left) != 2 || res.Left[0].Member.Conn != "s1-1" || res.Left[1].Member.Conn != "s1-3" || res.Left[0].Reason != ReasonRemoved {
		t.Fatalf("left %+v", res.Left)
	}
	if got := members(f.p, "r"); !reflect.DeepEqual(got, []string{"s1-2"}) {
		t.Fatalf("members %v", got)
	}
	if res := f.apply(record.Event{Type: record.TypeRemove, Room: "nowhere", User: "alice"}); len(res.Left) != 0 {
		t.Fatalf("remove from an empty room: %+v", res)
	}
}
