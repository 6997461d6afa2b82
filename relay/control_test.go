package relay_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/roomlog/roomlog/record"
	"github.com/roomlog/roomlog/relay"
	"github.com/roomlog/roomlog/relay/auth"
)

// controlRelays are relays of one topic that take HS256 tokens and the
// backend API key.
func controlRelay(t *testing.T, b backend, topic string, k *testKeys, mod func(*relay.Config)) *relay.Server {
	t.Helper()
	return startRelay(t, b, topic, func(c *relay.Config) {
		c.Auth = auth.Config{HS256Secrets: [][]byte{k.hs}, APIKeys: [][]byte{[]byte(testAPIKey)}, Timeout: 5 * time.Second}
		if mod != nil {
			mod(c)
		}
	})
}

// userToken is an HS256 token for sub with id jti issued at iat, for rooms.
func userToken(t *testing.T, k *testKeys, sub, jti string, iat time.Time, rooms any) string {
	t.Helper()
	over := map[string]any{"iat": iat.Unix()}
	if jti != "" {
		over["jti"] = jti
	}
	return sign(t, jwt.SigningMethodHS256, k.hs, "", claims(sub, rooms, over))
}

// dialToken connects with a token on the URL, failing the test when refused.
func dialToken(t *testing.T, r *relay.Server, tok string) *client {
	t.Helper()
	c, resp, err := dialWith(t, nil, wsURL(r)+"?token="+tok, nil, true)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	return c
}

// refused checks that the handshake with tok is refused with 401.
func refused(t *testing.T, r *relay.Server, tok, what string) {
	t.Helper()
	_, resp, err := dialWith(t, nil, wsURL(r)+"?token="+tok, nil, false)
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("%s: %v %v, want 401", what, resp, err)
	}
}

// control posts a control request and checks its answer.
func control(t *testing.T, r *relay.Server, endpoint, body string) {
	t.Helper()
	if code, out := apiPost(t, r, "/api/"+endpoint, testAPIKey, body); code != http.StatusOK || out["pos"] == nil {
		t.Fatalf("%s %s: %d %v", endpoint, body, code, out)
	}
}

// TestRevocation: on two relays, a revoke by jti and one of a user's tokens
// issued before now close the matching connections on both relays (4010)
// and refuse the tokens everywhere, a relay started later included; newer
// tokens and other users are not touched.
func TestRevocation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		topic := newTopic(t)
		k := newTestKeys(t)
		ra := controlRelay(t, b, topic, k, nil)
		rb := controlRelay(t, b, topic, k, nil)
		old := time.Now().Add(-time.Minute)
		j1 := userToken(t, k, "alice", "j1", old, []string{"*"})
		j2 := userToken(t, k, "alice", "j2", old, []string{"*"})
		aliceA, aliceB := dialToken(t, ra, j1), dialToken(t, rb, j2)
		bob := dialToken(t, rb, userToken(t, k, "bob", "jb", old, []string{"*"}))
		aliceB.join("lobby")

		control(t, rb, "revoke", `{"jti":"j1"}`)
		if code := aliceA.closeCode(); code != relay.CloseRevoked {
			t.Fatalf("revoked jti: close %d, want %d", code, relay.CloseRevoked)
		}
		refused(t, ra, j1, "revoked jti on the relay it was connected to")
		refused(t, rb, j1, "revoked jti on the relay that took the request")
		aliceB.do(map[string]any{"op": "publish", "room": "lobby", "data": "j2 still works", "id": "p1"})

		control(t, ra, "revoke", `{"user":"alice"}`)
		if code := aliceB.closeCode(); code != relay.CloseRevoked {
			t.Fatalf("revoked user: close %d, want %d", code, relay.CloseRevoked)
		}
		refused(t, ra, j2, "alice's older token")
		// iat has a resolution of a second: a token issued in the next one.
		fresh := userToken(t, k, "alice", "j3", time.Now().Add(2*time.Second), []string{"*"})
		dialToken(t, rb, fresh).join("lobby")
		bob.join("lobby")

		// A relay that starts later folds the same list from the log.
		rc := controlRelay(t, b, topic, k, nil)
		refused(t, rc, j1, "revoked jti on a relay started later")
		refused(t, rc, j2, "alice's older token on a relay started later")
		dialToken(t, rc, fresh).join("lobby")

		// A token refresh cannot bring a revoked token back either.
		bob.send(map[string]any{"op": "auth", "token": userToken(t, k, "bob", "j1", time.Now(), []string{"*"}), "id": "re"})
		if f := bob.reply(); f.Code != "unauthorized" || !strings.Contains(f.Message, "revoked") {
			t.Fatalf("refresh with a revoked jti: %+v", f)
		}
		bob.do(map[string]any{"op": "publish", "room": "lobby", "data": "bob is untouched", "id": "p2"})
	})
}

// TestDisconnectAndRemove: /api/disconnect closes every connection of the
// user on every relay (4011; they may reconnect), /api/remove takes the
// user out of one room: it is told (removed), the others see it leave, and
// presence agrees on both relays.
func TestDisconnectAndRemove(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		topic := newTopic(t)
		k := newTestKeys(t)
		ra := controlRelay(t, b, topic, k, nil)
		rb := controlRelay(t, b, topic, k, nil)
		now := time.Now()
		carol := userToken(t, k, "carol", "", now, []string{"*"})
		c1, c2 := dialToken(t, ra, carol), dialToken(t, rb, carol)
		control(t, ra, "disconnect", `{"user":"carol"}`)
		for i, c := range []*client{c1, c2} {
			if code := c.closeCode(); code != relay.CloseByServer {
				t.Fatalf("carol's connection %d: close %d, want %d", i, code, relay.CloseByServer)
			}
		}
		dialToken(t, rb, carol).join("lobby") // not revoked: may come back

		dave := dialToken(t, ra, userToken(t, k, "dave", "", now, []string{"*"}))
		erin := dialToken(t, rb, userToken(t, k, "erin", "", now, []string{"*"}))
		dave.do(map[string]any{"op": "join", "room": "r", "presence": true, "id": "j"})
		erin.do(map[string]any{"op": "join", "room": "r", "presence": true, "id": "j"})
		control(t, rb, "remove", `{"room":"r","user":"dave"}`)
		if f := dave.reply(); f.Op != "removed" || f.Room != "r" || f.Reason != "removed" || f.Pos == "" {
			t.Fatalf("dave got %+v, want removed from r", f)
		}
		for {
			f := erin.message()
			if f.Op == "left" {
				if f.Member.Conn != dave.id || f.Reason != "removed" {
					t.Fatalf("erin got %+v, want dave removed", f)
				}
				break
			}
		}
		dave.send(map[string]any{"op": "set", "room": "r", "key": "k", "value": 1, "id": "s"})
		if f := dave.reply(); f.Code != "not_joined" {
			t.Fatalf("set after removal: %+v, want not_joined", f)
		}
		for _, r := range []*relay.Server{ra, rb} {
			c := dialToken(t, r, userToken(t, k, "watcher", "", now, []string{"*"}))
			c.join("r")
			f := c.do(map[string]any{"op": "presence", "room": "r", "id": "pr"})
			var users []string
			for _, m := range f.Members {
				users = append(users, m.User)
			}
			if got := strings.Join(users, ","); got != "erin,watcher" && got != "erin,watcher,watcher" {
				t.Fatalf("presence on %s: %s, want erin and the watchers, not dave", r.Name(), got)
			}
		}
	})
}

// TestControlAPIRefusals: bad control requests are refused (400, 401)
// and append nothing.
func TestControlAPIRefusals(t *testing.T) {
	b := kfakeBackend(t)
	topic := newTopic(t)
	k := newTestKeys(t)
	r := controlRelay(t, b, topic, k, quietLeases)
	before := endOffsets(t, b, topic)
	future := time.Now().Add(time.Hour).Unix()
	for _, tt := range []struct {
		endpoint, key, body string
		status              int
		code                string
	}{
		{"revoke", "wrong-key-0123456789", `{"jti":"a"}`, 401, "unauthorized"},
		{"revoke", testAPIKey, `{}`, 400, "bad_request"},
		{"revoke", testAPIKey, `{"jti":""}`, 400, "bad_request"},
		{"revoke", testAPIKey, `{"jti":"a","room":"r"}`, 400, "bad_request"},
		{"revoke", testAPIKey, `{"jti":"a","until":1}`, 400, "bad_request"},
		{"revoke", testAPIKey, `{"jti":"a","until":` + fmt.Sprint(future+400*86400) + `}`, 400, "bad_request"},
		{"revoke", testAPIKey, `{"jti":"a","until":-5}`, 400, "bad_request"},
		{"revoke", testAPIKey, `{"jti":"` + strings.Repeat("x", record.MaxJTIBytes+1) + `"}`, 400, "bad_request"},
		{"revoke", testAPIKey, `{"user":"a\u0000"}`, 400, "bad_request"},
		{"revoke", testAPIKey, `{"jti":"a","extra":1}`, 400, "bad_request"},
		{"revoke", testAPIKey, `{"jti":"a"} {}`, 400, "bad_request"},
		{"disconnect", testAPIKey, `{}`, 400, "bad_request"},
		{"disconnect", testAPIKey, `{"user":"a","jti":"b"}`, 400, "bad_request"},
		{"remove", testAPIKey, `{"user":"a"}`, 400, "invalid_room"},
		{"remove", testAPIKey, `{"room":"~control","user":"a"}`, 400, "invalid_room"},
		{"remove", testAPIKey, `{"room":"r"}`, 400, "bad_request"},
	} {
		code, out := apiPost(t, r, "/api/"+tt.endpoint, tt.key, tt.body)
		if code != tt.status || out["error"] != tt.code {
			t.Errorf("%s %s: %d %v, want %d %s", tt.endpoint, tt.body, code, out, tt.status, tt.code)
		}
	}
	if got := endOffsets(t, b, topic) - before; got != 0 {
		t.Fatalf("refused requests appended %d records", got)
	}
}

// TestRefreshWithFewerRooms: a refreshed token that no longer allows a room
// the connection is in takes it out of the room: it is told (removed,
// reason forbidden), and its leave is in the log, so presence drops it.
func TestRefreshWithFewerRooms(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		topic := newTopic(t)
		k := newTestKeys(t)
		r := controlRelay(t, b, topic, k, nil)
		now := time.Now()
		all := []string{"a", "b"}
		alice := dialToken(t, r, userToken(t, k, "alice", "", now, map[string][]string{"join": all, "presence": all, "state": all}))
		watcher := dialToken(t, r, userToken(t, k, "watcher", "", now, []string{"*"}))
		alice.do(map[string]any{"op": "join", "room": "a", "presence": true, "id": "ja"})
		alice.do(map[string]any{"op": "join", "room": "b", "id": "jb"})
		watcher.do(map[string]any{"op": "join", "room": "b", "presence": true, "id": "jb"})

		// The new token: room a without presence, no room b.
		alice.send(map[string]any{"op": "auth", "token": userToken(t, k, "alice", "", now, map[string][]string{"join": {"a"}, "state": {"a"}}), "id": "re"})
		if f := alice.reply(); f.Op != "removed" || f.Room != "b" || f.Reason != "forbidden" {
			t.Fatalf("after the refresh: %+v, want removed from b", f)
		}
		if f := alice.reply(); f.Op != "ack" || string(f.ID) != `"re"` {
			t.Fatalf("refresh: %+v", f)
		}
		if f := watcher.message(); f.Op != "left" || f.Member.Conn != alice.id {
			t.Fatalf("watcher got %+v, want alice's leave", f)
		}
		f := watcher.do(map[string]any{"op": "presence", "room": "b", "id": "p"})
		if len(f.Members) != 1 || f.Members[0].Conn != watcher.id {
			t.Fatalf("presence of b: %+v", f.Members)
		}
		// Still in a, without joined/left: the watcher's join and the
		// state change share a's partition, so a joined event would come
		// first.
		watcher.do(map[string]any{"op": "join", "room": "a", "id": "ja"})
		alice.do(map[string]any{"op": "set", "room": "a", "key": "k", "value": 1, "id": "s"})
		if f := alice.message(); f.Op != "state" || f.Key != "k" {
			t.Fatalf("alice got %+v, want the state change and no presence event", f)
		}
	})
}

// samePartition returns a room other than room in room's partition (of n).
func samePartition(t *testing.T, room string, n int32) string {
	t.Helper()
	want := record.PartitionOf(room, n)
	for i := range 1000 {
		if other := fmt.Sprintf("other-%d", i); record.PartitionOf(other, n) == want {
			return other
		}
	}
	t.Fatal("no room in the same partition")
	return ""
}

// TestControlSocketIO: a Socket.IO socket removed from a room is told
// (rl:removed) and gets no more of its messages; a disconnect ends the
// socket with a DISCONNECT packet, so the client does not reconnect.
func TestControlSocketIO(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		topic := newTopic(t)
		k := newTestKeys(t)
		ra := controlRelay(t, b, topic, k, nil)
		rb := controlRelay(t, b, topic, k, nil)
		now := time.Now()
		sc := newSIO(t, httpURL(ra), map[string]any{"auth": map[string]string{"token": userToken(t, k, "sam", "", now, []string{"*"})}, "transports": []string{"websocket"}})
		sc.connected()
		other := samePartition(t, "r", 4)
		for _, room := range []string{"r", other} {
			if a := sc.emitAck("join", room); !a.OK {
				t.Fatalf("join %s: %+v", room, a)
			}
		}
		control(t, rb, "remove", `{"room":"r","user":"sam"}`)
		ev := sc.wait("rl:removed", func(r *sioReport) bool { return r.Type == "event" && r.Name == "rl:removed" })
		var removed struct{ Room, Reason, Pos string }
		if len(ev.Args) != 1 || json.Unmarshal(ev.Args[0], &removed) != nil || removed.Room != "r" || removed.Reason != "removed" || removed.Pos == "" {
			t.Fatalf("rl:removed %s", ev.Args)
		}
		pub := dialToken(t, rb, userToken(t, k, "pub", "", now, []string{"*"}))
		pub.do(map[string]any{"op": "publish", "room": "r", "event": "chat", "data": 1, "id": 1})
		pub.do(map[string]any{"op": "publish", "room": other, "event": "chat", "data": 2, "id": 2})
		// One partition, one order: had r's message been delivered, it
		// would have come first.
		if data, meta := sc.event("chat"); meta.Room != other || string(data) != "2" {
			t.Fatalf("after removal got %s in %s, want only %s's message", data, meta.Room, other)
		}

		control(t, ra, "disconnect", `{"user":"sam"}`)
		if r := sc.waitType("disconnect"); r.Reason != "io server disconnect" {
			t.Fatalf("disconnect reason %q, want io server disconnect", r.Reason)
		}

		// A revoked token ends its socket the same way, and cannot connect
		// again, on either relay.
		tok := userToken(t, k, "tess", "sio-1", now, []string{"*"})
		opts := map[string]any{"auth": map[string]string{"token": tok}, "transports": []string{"websocket"}}
		revoked := newSIO(t, httpURL(rb), opts)
		revoked.connected()
		control(t, ra, "revoke", `{"jti":"sio-1"}`)
		if r := revoked.waitType("disconnect"); r.Reason != "io server disconnect" {
			t.Fatalf("revoked: disconnect reason %q, want io server disconnect", r.Reason)
		}
		for _, r := range []*relay.Server{ra, rb} {
			again := newSIO(t, httpURL(r), opts)
			if rep := again.waitType("connect_error"); !strings.Contains(rep.Message, "revoked") {
				t.Fatalf("revoked token on %s: connect_error %q", r.Name(), rep.Message)
			}
		}
	})
}
