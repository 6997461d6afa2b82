package relay_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/roomlog/roomlog/relay"
)

// TestPerUserLimits: a user holds at most --max-conns-per-user sockets on a
// relay (429 at the handshake, 4012 after an auth frame), and its
// connections share one publish bucket; other users are not affected.
func TestPerUserLimits(t *testing.T) {
	b := kfakeBackend(t)
	k := newTestKeys(t)
	r := controlRelay(t, b, newTopic(t), k, func(c *relay.Config) {
		quietLeases(c)
		c.Limits.MaxConnsPerUser = 2
		c.Limits.UserPublishRate = 0.001 // no refill within the test: the burst is all
		c.Limits.UserPublishBurst = 4
	})
	now := time.Now()
	alice := userToken(t, k, "alice", "", now, []string{"*"})
	a1, a2 := dialToken(t, r, alice), dialToken(t, r, alice)
	_, resp, err := dialWith(t, nil, wsURL(r)+"?token="+alice, nil, false)
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests || errorBody(resp) != "max_conns_per_user" {
		t.Fatalf("third connection of a user: %v %v, want 429 max_conns_per_user", resp, err)
	}
	late, _, err := dialWith(t, nil, wsURL(r), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	late.send(map[string]any{"op": "auth", "token": alice, "id": "a"})
	if f := late.reply(); f.Code != "rate_limited" {
		t.Fatalf("auth frame over the user's cap: %+v", f)
	}
	if code := late.closeCode(); code != relay.CloseUserLimit {
		t.Fatalf("auth frame over the user's cap: close %d, want %d", code, relay.CloseUserLimit)
	}
	bob := dialToken(t, r, userToken(t, k, "bob", "", now, []string{"*"}))

	acked, limited := 0, 0
	for i := range 10 {
		c := []*client{a1, a2}[i%2]
		c.send(map[string]any{"op": "publish", "room": "lobby", "data": i, "id": i})
		switch f := c.reply(); {
		case f.Op == "ack":
			acked++
		case f.Code == "rate_limited":
			limited++
		default:
			t.Fatalf("publish %d: %+v", i, f)
		}
	}
	if acked != 4 || limited != 6 {
		t.Fatalf("alice's two connections: %d acked, %d refused; want 4 and 6 (the user's burst)", acked, limited)
	}
	for i := range 4 {
		bob.do(map[string]any{"op": "publish", "room": "lobby", "data": i, "id": i})
	}
	if n := r.LimitCounts(); n["max_conns_per_user"] != 2 || n["user_rate_limited"] != 6 {
		t.Fatalf("limit counts %v", n)
	}

	// A closed connection frees its user's slot (the handshakes refused
	// while the close is on its way count too).
	a1.ws.Close()
	deadline := time.Now().Add(waitLimit)
	for {
		c, _, err := dialWith(t, nil, wsURL(r)+"?token="+alice, nil, false)
		if err == nil {
			c.ws.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the user's slot was not freed after a close: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPerIPCapsIPv6: an IPv6 /64 counts as one client address; an
// IPv4-mapped address counts as its IPv4 address.
func TestPerIPCapsIPv6(t *testing.T) {
	b := kfakeBackend(t)
	r := startRelay(t, b, newTopic(t), func(c *relay.Config) {
		c.Limits.MaxConnsPerIP = 1
		c.Limits.ClientIPHeader = "X-Forwarded-For"
	})
	for _, tt := range []struct {
		ip string
		ok bool
	}{
		{"2001:db8:1:2::1", true},
		{"2001:db8:1:2:ffff:ffff:ffff:9", false}, // the same /64
		{"2001:db8:1:3::1", true},                // the next /64
		{"192.0.2.1", true},
		{"::ffff:192.0.2.1", false},
		{"192.0.2.2", true},
	} {
		_, resp, err := dialWith(t, nil, wsURL(r), http.Header{"X-Forwarded-For": {tt.ip}}, false)
		if tt.ok && err != nil {
			t.Fatalf("%s: refused: %v", tt.ip, err)
		}
		if !tt.ok && (err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests) {
			t.Fatalf("%s: %v %v, want 429", tt.ip, resp, err)
		}
	}
}

// TestOriginScheme: the relay's own host under another scheme is another
// origin (an http page cannot open a socket to an https relay's host, nor
// the reverse); behind a trusted proxy, X-Forwarded-Proto is the scheme.
func TestOriginScheme(t *testing.T) {
	b := kfakeBackend(t)
	plain := startRelay(t, b, newTopic(t), nil)
	proxied := startRelay(t, b, newTopic(t), func(c *relay.Config) { c.Limits.ClientIPHeader = "X-Forwarded-For" })
	for _, tt := range []struct {
		name   string
		r      *relay.Server
		origin string
		proto  string
		ok     bool
	}{
		{"same scheme", plain, "http://", "", true},
		{"https page, http relay", plain, "https://", "", false},
		{"ws is not a page scheme", plain, "ws://", "", false},
		{"forwarded proto ignored without a trusted proxy", plain, "https://", "https", false},
		{"forwarded https", proxied, "https://", "https", true},
		{"forwarded https, http page", proxied, "http://", "https", false},
		{"no forwarded proto", proxied, "http://", "", true},
	} {
		hdr := http.Header{"Origin": {tt.origin + tt.r.Addr().String()}}
		if tt.proto != "" {
			hdr.Set("X-Forwarded-Proto", tt.proto)
		}
		c, resp, err := dialWith(t, &websocket.Dialer{}, wsURL(tt.r), hdr, false)
		if tt.ok && err != nil {
			t.Errorf("%s: refused: %v", tt.name, err)
		}
		if !tt.ok && (err == nil || resp == nil || resp.StatusCode != http.StatusForbidden) {
			t.Errorf("%s: %v %v, want 403", tt.name, resp, err)
		}
		if c != nil {
			c.ws.Close()
		}
	}
}
