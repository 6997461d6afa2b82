package relay_test

import (
	"context"
	"crypto"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/relay"
	"github.com/roomlog/roomlog/relay/auth"
)

// authRelay is a relay that requires tokens: HS256, an RSA and an Ed25519
// public key, and a JWKS with the EC key; issuer and audience checked.
func authRelay(t *testing.T, b backend, topic string, k *testKeys, mod func(*relay.Config)) *relay.Server {
	t.Helper()
	jwksURL, _ := serveJWKS(t, &k.ec.PublicKey)
	return startRelay(t, b, topic, func(c *relay.Config) {
		quietLeases(c)
		c.Auth = auth.Config{
			HS256Secrets:    [][]byte{k.hs},
			PublicKeys:      []crypto.PublicKey{&k.rsa.PublicKey, k.ed.Public()},
			JWKSURL:         jwksURL,
			JWKSMinInterval: time.Millisecond,
			Issuer:          "roomlog-test",
			Audience:        "relays",
			Leeway:          time.Second,
			Timeout:         2 * time.Second,
		}
		if mod != nil {
			mod(c)
		}
	})
}

func wsURL(s *relay.Server) string { return "ws://" + s.Addr().String() + "/ws" }

// TestBadTokensRefused: every kind of bad token is refused, on the URL (401
// before the upgrade) and in the auth frame (error unauthorized, close 4004);
// nothing reaches the log. Good tokens of each algorithm are accepted.
func TestBadTokensRefused(t *testing.T) {
	b := kfakeBackend(t)
	topic := newTopic(t)
	k := newTestKeys(t)
	r := authRelay(t, b, topic, k, nil)
	all := []string{"*"}
	past := time.Now().Add(-time.Hour).Unix()

	bad := []struct{ name, token string }{
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", claims("mallory", all, nil))},
		{"HS256 signed with the RSA public key", sign(t, jwt.SigningMethodHS256, k.rsaPEM, "", claims("mallory", all, nil))},
		{"HS256 signed with the RSA public key (DER-less PEM text)", sign(t, jwt.SigningMethodHS256, []byte(strings.TrimSpace(string(k.rsaPEM))), "", claims("mallory", all, nil))},
		{"expired", sign(t, jwt.SigningMethodHS256, k.hs, "", claims("alice", all, map[string]any{"exp": past}))},
		{"not yet valid", sign(t, jwt.SigningMethodHS256, k.hs, "", claims("alice", all, map[string]any{"nbf": time.Now().Add(time.Hour).Unix()}))},
		{"no exp", sign(t, jwt.SigningMethodHS256, k.hs, "", claims("alice", all, map[string]any{"exp": nil}))},
		{"wrong issuer", sign(t, jwt.SigningMethodRS256, k.rsa, "", claims("alice", all, map[string]any{"iss": "someone-else"}))},
		{"wrong audience", sign(t, jwt.SigningMethodRS256, k.rsa, "", claims("alice", all, map[string]any{"aud": "other-service"}))},
		{"bad signature (another RSA key)", sign(t, jwt.SigningMethodRS256, k.another, "", claims("alice", all, nil))},
		{"bad signature (wrong HS256 secret)", sign(t, jwt.SigningMethodHS256, []byte("not-the-secret-not-the-secret-xx"), "", claims("alice", all, nil))},
		{"unknown kid", sign(t, jwt.SigningMethodES256, k.ec, "no-such-kid", claims("alice", all, nil))},
		{"RS384 (algorithm not allowed)", sign(t, jwt.SigningMethodRS384, k.rsa, "", claims("alice", all, nil))},
		{"no sub", sign(t, jwt.SigningMethodHS256, k.hs, "", claims("alice", all, map[string]any{"sub": nil}))},
		{"bad rooms claim", sign(t, jwt.SigningMethodHS256, k.hs, "", claims("alice", 42, nil))},
		{"garbage", "not.a.token"},
		{"garbage base64", "eyJhbGciOiJIUzI1NiJ9.%%%.%%%"},
	}
	before := endOffsets(t, b, topic)
	for _, tt := range bad {
		t.Run("url/"+tt.name, func(t *testing.T) {
			_, resp, err := dialWith(t, nil, wsURL(r)+"?token="+url.QueryEscape(tt.token), nil, false)
			if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("got %v, %v; want HTTP 401", resp, err)
			}
			if code := errorBody(resp); code != "unauthorized" {
				t.Fatalf("error code %q, want unauthorized", code)
			}
		})
		t.Run("header/"+tt.name, func(t *testing.T) {
			_, resp, err := dialWith(t, nil, wsURL(r), http.Header{"Authorization": {"Bearer " + tt.token}}, false)
			if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("got %v, %v; want HTTP 401", resp, err)
			}
		})
		t.Run("frame/"+tt.name, func(t *testing.T) {
			c, _, err := dialWith(t, nil, wsURL(r), nil, true)
			if err != nil {
				t.Fatal(err)
			}
			c.send(map[string]any{"op": "auth", "token": tt.token, "id": 1})
			if f := c.reply(); f.Op != "error" || f.Code != "unauthorized" || string(f.ID) != "1" {
				t.Fatalf("got %+v, want error unauthorized", f)
			}
			if code := c.closeCode(); code != relay.CloseUnauthorized {
				t.Fatalf("close code %d, want %d", code, relay.CloseUnauthorized)
			}
		})
	}
	if got := endOffsets(t, b, topic) - before; got != 0 {
		t.Fatalf("refused tokens appended %d records", got)
	}

	good := []struct{ name, token string }{
		{"HS256", sign(t, jwt.SigningMethodHS256, k.hs, "", claims("alice", all, nil))},
		{"RS256", sign(t, jwt.SigningMethodRS256, k.rsa, "", claims("alice", all, nil))},
		{"ES256 from the JWKS", sign(t, jwt.SigningMethodES256, k.ec, "ec-1", claims("alice", all, nil))},
		{"EdDSA", sign(t, jwt.SigningMethodEdDSA, k.ed, "", claims("alice", all, nil))},
	}
	for _, tt := range good {
		t.Run("good/"+tt.name, func(t *testing.T) {
			c, _, err := dialWith(t, nil, wsURL(r)+"?token="+url.QueryEscape(tt.token), nil, true)
			if err != nil {
				t.Fatal(err)
			}
			c.join("lobby")
			c2, _, err := dialWith(t, nil, wsURL(r), nil, true)
			if err != nil {
				t.Fatal(err)
			}
			if f := c2.do(map[string]any{"op": "auth", "token": tt.token, "id": "a"}); f.Op != "ack" {
				t.Fatalf("auth frame: %+v", f)
			}
			c2.join("lobby")
			pres := c2.do(map[string]any{"op": "presence", "room": "lobby", "id": "p"})
			for _, m := range pres.Members {
				if m.User != "alice" {
					t.Fatalf("member %+v has no user alice", m)
				}
			}
		})
	}
}

// TestAuthFrameTimeoutAndGate: a connection without a token can do nothing
// but authenticate, and is closed with 4004 after the auth timeout.
func TestAuthFrameTimeoutAndGate(t *testing.T) {
	b := kfakeBackend(t)
	topic := newTopic(t)
	k := newTestKeys(t)
	r := authRelay(t, b, topic, k, func(c *relay.Config) { c.Auth.Timeout = 500 * time.Millisecond })
	before := endOffsets(t, b, topic)
	c, _, err := dialWith(t, nil, wsURL(r), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	c.send(map[string]any{"op": "publish", "room": "lobby", "data": "sneaky", "id": 1})
	if f := c.reply(); f.Code != "unauthorized" || string(f.ID) != "1" {
		t.Fatalf("publish before auth: %+v, want unauthorized", f)
	}
	if code := c.closeCode(); code != relay.CloseUnauthorized {
		t.Fatalf("close code %d, want %d", code, relay.CloseUnauthorized)
	}
	if got := endOffsets(t, b, topic) - before; got != 0 {
		t.Fatalf("unauthenticated frames appended %d records", got)
	}
	if n := r.LimitCounts()["close_auth_timeout"]; n != 1 {
		t.Fatalf("close_auth_timeout counted %d, want 1", n)
	}
}

// TestTokenRefreshAndExpiry: a client refreshes its token before expiry
// without reconnecting; one that does not is closed with 4003. A refresh for
// another user is refused.
func TestTokenRefreshAndExpiry(t *testing.T) {
	b := kfakeBackend(t)
	topic := newTopic(t)
	k := newTestKeys(t)
	r := authRelay(t, b, topic, k, func(c *relay.Config) { c.Auth.Leeway = -1 })
	short := func(sub string, d time.Duration) string {
		return sign(t, jwt.SigningMethodHS256, k.hs, "", claims(sub, []string{"*"}, map[string]any{"exp": time.Now().Add(d).Unix()}))
	}
	// exp has a one-second resolution: 2s tokens expire within 1 to 2s. The
	// refresher's first token lives longer so that dialing, joining and
	// refreshing fit before it lapses even on a loaded machine; the test then
	// waits past that expiry.
	firstExp := time.Now().Add(6 * time.Second)
	refresher, _, err := dialWith(t, nil, wsURL(r)+"?token="+short("alice", 6*time.Second), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	lapser, _, err := dialWith(t, nil, wsURL(r)+"?token="+short("bob", 2*time.Second), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	refresher.join("lobby")
	if f := refresher.do(map[string]any{"op": "auth", "token": short("alice", time.Hour), "id": "r"}); f.Op != "ack" {
		t.Fatalf("refresh: %+v", f)
	}
	refresher.send(map[string]any{"op": "auth", "token": short("mallory", time.Hour), "id": "x"})
	if f := refresher.reply(); f.Code != "unauthorized" {
		t.Fatalf("refresh as another user: %+v, want unauthorized", f)
	}
	if code := lapser.closeCode(); code != relay.CloseTokenExpired {
		t.Fatalf("lapsed token: close code %d, want %d", code, relay.CloseTokenExpired)
	}
	time.Sleep(time.Until(firstExp) + time.Second) // past the first token's expiry
	refresher.do(map[string]any{"op": "publish", "room": "lobby", "data": "still here", "id": "p"})
	if m := refresher.message(); m.From != refresher.id {
		t.Fatalf("got %+v", m)
	}
}

// TestRoomPermissions: a client allowed only room:a* cannot join, publish
// to, change the state of, or read the presence of room:b, and nothing it
// tried is in the log; in room:a1 it can. Its records carry its user id.
func TestRoomPermissions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		topic := newTopic(t)
		k := newTestKeys(t)
		r := authRelay(t, b, topic, k, nil)
		tok := sign(t, jwt.SigningMethodHS256, k.hs, "", claims("alice", []string{"room:a*"}, nil))
		c, _, err := dialWith(t, nil, wsURL(r)+"?token="+tok, nil, true)
		if err != nil {
			t.Fatal(err)
		}
		// A reader of presence only: may see who is in room:b, not join it.
		watcherTok := sign(t, jwt.SigningMethodHS256, k.hs, "", claims("watcher", map[string]any{"presence": []string{"room:*"}, "join": []string{"room:a*"}}, nil))
		w, _, err := dialWith(t, nil, wsURL(r)+"?token="+watcherTok, nil, true)
		if err != nil {
			t.Fatal(err)
		}
		before := endOffsets(t, b, topic)
		for _, m := range []map[string]any{
			{"op": "join", "room": "room:b"},
			{"op": "join", "room": "room:b", "presence": true},
			{"op": "publish", "room": "room:b", "data": "x"},
			{"op": "presence", "room": "room:b"},
			{"op": "set", "room": "room:b", "key": "k", "value": 1},
			{"op": "publish", "room": "other", "data": "x"},
		} {
			m["id"] = "f"
			c.send(m)
			if f := c.reply(); f.Op != "error" || (f.Code != "forbidden" && f.Code != "not_joined") {
				t.Fatalf("%v: got %+v, want forbidden", m, f)
			}
		}
		w.send(map[string]any{"op": "join", "room": "room:b", "id": "w"})
		if f := w.reply(); f.Code != "forbidden" {
			t.Fatalf("watcher joining room:b: %+v, want forbidden", f)
		}
		if got := endOffsets(t, b, topic) - before; got != 0 {
			t.Fatalf("forbidden ops appended %d records", got)
		}
		// Allowed: room:a1.
		c.do(map[string]any{"op": "join", "room": "room:a1", "presence": true, "id": "j"})
		c.do(map[string]any{"op": "publish", "room": "room:a1", "data": "hi", "id": "p", "mid": "m1"})
		if m := c.message(); m.From != c.id {
			t.Fatalf("message %+v", m)
		}
		c.do(map[string]any{"op": "set", "room": "room:a1", "key": "k", "value": 1, "id": "s"})
		pres := c.do(map[string]any{"op": "presence", "room": "room:a1", "id": "pr"})
		if len(pres.Members) != 1 || pres.Members[0].User != "alice" {
			t.Fatalf("presence %+v, want alice", pres.Members)
		}
		// The records it produced carry the user.
		hist := c.do(map[string]any{"op": "history", "room": "room:a1", "id": "h"})
		if len(hist.Messages) != 1 {
			t.Fatalf("history %+v", hist.Messages)
		}
		if n := r.LimitCounts()["forbidden"]; n < 6 {
			t.Fatalf("forbidden counted %d times, want 7", n)
		}
		users := recordUsers(t, b, topic, "room:a1")
		for _, typ := range []string{"join", "publish", "set"} {
			if users[typ] != "alice" {
				t.Fatalf("%s record has rl-user %q, want alice (all: %v)", typ, users[typ], users)
			}
		}
	})
}

// recordUsers reads the topic and returns, per rl-type, the rl-user of the
// room's records.
func recordUsers(t *testing.T, b backend, topic, room string) map[string]string {
	t.Helper()
	ends := partitionEnds(t, b, topic)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := map[string]string{}
	seen := map[int32]int64{}
	done := func() bool {
		for p, end := range ends {
			if seen[p] < end {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("reading the topic: %v", err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			seen[r.Partition] = r.Offset + 1
			if string(r.Key) != room {
				return
			}
			var typ, user string
			for _, h := range r.Headers {
				switch h.Key {
				case "rl-type":
					typ = string(h.Value)
				case "rl-user":
					user = string(h.Value)
				}
			}
			out[typ] = user
		})
	}
	return out
}
