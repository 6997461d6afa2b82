package consumer

import (
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/roomlog/roomlog/record"
)

const sioKey = "0123456789abcdef0123456789abcdef"

func sioJoinEv(room, conn, relay, session string, since int64) record.Event {
	ev := join(room, conn, relay, session)
	ev.User = "u1"
	ev.SIO = &record.SIORef{Hash: sioKey, SID: "a1-1", Since: since}
	return ev
}

func sioLeaveEv(room, conn string, gone bool) record.Event {
	return record.Event{Type: record.TypeLeave, Room: room, From: conn, SIO: &record.SIORef{Hash: sioKey, SID: "a1-1", Since: -1, Gone: gone}}
}

// TestFoldSIOSessions: a Socket.IO session's rooms and start positions,
// kept when its connection goes (a leave marked gone, or its relay's
// session ending), taken over by the connection that resumes it (the old
// connection's leaves no longer count), dropped room by room on leaves, and
// forgotten MaxSIODisconnectMillis after its connection went.
func TestFoldSIOSessions(t *testing.T) {
	f := newFolder(t, 0)
	f.apply(lease("a", "a1"))
	f.apply(lease("b", "b1"))
	joinAt := f.off
	f.apply(sioJoinEv("r1", "a1-1", "a", "a1", -1))
	f.apply(sioJoinEv("r2", "a1-1", "a", "a1", 0)) // a join with since 0
	s, ok := f.p.SIOSession(sioKey)
	if !ok || s.SID != "a1-1" || s.Conn != "a1-1" || s.User != "u1" || s.Gone != 0 || s.Rooms["r1"].Start != joinAt || s.Rooms["r2"].Start != 0 {
		t.Fatalf("after the joins: %+v, %v", s, ok)
	}

	// The relay dies: its expiry marks the session gone, and keeps it.
	f.ts = f.ts.Add(time.Second)
	f.apply(record.Event{Type: record.TypeExpire, Room: record.RelayKeyPrefix + "a", Relay: "a", Session: "a1", Version: 0})
	if s, _ = f.p.SIOSession(sioKey); s.Gone != f.ts.UnixMilli() || len(s.Rooms) != 2 {
		t.Fatalf("after the expiry: %+v", s)
	}

	// Resumed on relay b by connection b1-1.
	f.ts = f.ts.Add(time.Second)
	resumeAt := f.off
	f.apply(sioJoinEv("r1", "b1-1", "b", "b1", 5))
	if s, _ = f.p.SIOSession(sioKey); s.Gone != 0 || s.Conn != "b1-1" || s.Relay != "b" || s.Rooms["r1"].Start != 5 || s.SID != "a1-1" {
		t.Fatalf("after the resume (at %d): %+v", resumeAt, s)
	}
	// The old connection's leaves change nothing.
	f.apply(sioLeaveEv("r1", "a1-1", true))
	f.apply(sioLeaveEv("r2", "a1-1", false))
	if s, _ = f.p.SIOSession(sioKey); s.Gone != 0 || len(s.Rooms) != 2 {
		t.Fatalf("after the old connection's leaves: %+v", s)
	}
	// Its own leave drops a room; its going marks it gone.
	f.apply(sioLeaveEv("r2", "b1-1", false))
	f.ts = f.ts.Add(time.Second)
	gone := f.ts.UnixMilli()
	f.apply(sioLeaveEv("r1", "b1-1", true))
	if s, _ = f.p.SIOSession(sioKey); s.Gone != gone || len(s.Rooms) != 1 {
		t.Fatalf("after its leaves: %+v", s)
	}

	// Leases keep it until MaxSIODisconnectMillis after it went.
	f.ts = time.UnixMilli(gone + MaxSIODisconnectMillis)
	f.apply(lease("b", "b1"))
	if _, ok = f.p.SIOSession(sioKey); !ok {
		t.Fatal("forgotten before MaxSIODisconnectMillis")
	}
	f.ts = f.ts.Add(2 * time.Second)
	f.apply(lease("b", "b1"))
	if _, ok = f.p.SIOSession(sioKey); ok {
		t.Fatal("kept after MaxSIODisconnectMillis")
	}

	// A session whose last room is left is gone at once.
	f.apply(sioJoinEv("r3", "b1-2", "b", "b1", -1))
	f.apply(sioLeaveEv("r3", "b1-2", false))
	if _, ok = f.p.SIOSession(sioKey); ok {
		t.Fatal("a session in no room is kept")
	}
	// A relay's restart (a lease of a new session) marks its sessions gone.
	f.apply(sioJoinEv("r3", "b1-3", "b", "b1", -1))
	f.apply(lease("b", "b2"))
	if s, _ = f.p.SIOSession(sioKey); s.Gone == 0 {
		t.Fatalf("after the relay restarted: %+v", s)
	}
}

// TestSnapshotWhileFoldingSIO: a snapshot encodes the Socket.IO sessions
// after it has released the partition's lock, so what it encodes must be its
// own copy: under -race this fails if the fold can still write to it (it
// shared each session's rooms map until the sessions were kept compact).
func TestSnapshotWhileFoldingSIO(t *testing.T) {
	f := newFolder(t, 0)
	f.apply(lease("a", "a1"))
	f.apply(sioJoinEv("r0", "a1-1", "a", "a1", -1))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 300 {
			f.apply(sioJoinEv("r"+strconv.Itoa(i%7), "a1-1", "a", "a1", -1))
			if i%3 == 0 {
				f.apply(sioLeaveEv("r"+strconv.Itoa(i%5), "a1-1", false))
			}
		}
	}()
	for range 50 {
		data, _, err := f.p.EncodeSnapshot()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeSnapshot(data, 0); err != nil {
			t.Fatal(err)
		}
	}
	<-done
	// The session survives a snapshot whole.
	data, _, err := f.p.EncodeSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	q, err := DecodeSnapshot(data, 0)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := f.p.SIOSession(sioKey)
	got, ok := q.SIOSession(sioKey)
	if !ok || !reflect.DeepEqual(got, want) || len(got.Rooms) == 0 {
		t.Fatalf("after a snapshot: %+v, want %+v", got, want)
	}
}
