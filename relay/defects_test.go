package relay_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/roomlog/roomlog/relay"
	"github.com/roomlog/roomlog/relay/auth"
)

// Regression tests for defects found in review, each failing before its fix.

// TestTokenThatNeverExpires: a token whose exp is 9999-12-31 (a common
// "never expires") keeps its connection; the expiry timer used to overflow
// to a negative wait and close it with 4003 at once.
func TestTokenThatNeverExpires(t *testing.T) {
	b := kfakeBackend(t)
	k := newTestKeys(t)
	r := authRelay(t, b, newTopic(t), k, nil)
	never := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC).Unix()
	tok := sign(t, jwt.SigningMethodHS256, k.hs, "", claims("alice", []string{"*"}, map[string]any{"exp": never}))
	c, _, err := dialWith(t, nil, wsURL(r)+"?token="+tok, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	c.join("forever")
	// The old timer fired at once: by now the close would have arrived.
	if f := c.do(map[string]any{"op": "publish", "room": "forever", "data": 1, "id": "p"}); f.Pos == "" {
		t.Fatalf("publish: %+v", f)
	}
	c2, _, err := dialWith(t, nil, wsURL(r), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if f := c2.do(map[string]any{"op": "auth", "token": tok, "id": "a"}); f.Op != "ack" {
		t.Fatalf("auth frame: %+v", f)
	}
	c2.join("forever")
}

// TestAPIIDsAreNotConnectionIDs: the backend API's records carry a `from`
// that no connection id can ever be (it used to be "<session>-api", the id
// of the session's 13,878th connection).
func TestAPIIDsAreNotConnectionIDs(t *testing.T) {
	r := startRelay(t, kfakeBackend(t), newTopic(t), func(c *relay.Config) {
		quietLeases(c)
		c.Auth.APIKeys = [][]byte{[]byte(testAPIKey)}
	})
	c := dial(t, r)
	c.join("news")
	if code, out := apiPost(t, r, "/api/publish", testAPIKey, `{"room":"news","data":1}`); code != 200 {
		t.Fatalf("publish: %d %v", code, out)
	}
	m := c.message()
	connID := regexp.MustCompile(`^` + regexp.QuoteMeta(r.ID()) + `-[0-9a-z]+$`)
	if m.From == "" || connID.MatchString(m.From) {
		t.Fatalf("API record from %q: shaped like a connection id of this relay", m.From)
	}
}

// TestMetricsDuringStart: /metrics scraped while the relay starts (it serves
// HTTP before the consumer exists) neither races with Start nor fails.
func TestMetricsDuringStart(t *testing.T) {
	b := kfakeBackend(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r, err := relay.New(relay.Config{Brokers: b.brokers, Topic: newTopic(t), Listen: addr, Logger: testLogger(t),
		Auth: auth.Config{Anonymous: true}, LeaseTimeout: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan error, 1)
	go func() { started <- r.Start(context.Background()) }()
	scrapes, afterStart := 0, false
	for !afterStart {
		select {
		case err := <-started:
			if err != nil {
				t.Fatal(err)
			}
			afterStart = true // one more scrape, after Start
		default:
		}
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			time.Sleep(time.Millisecond) // not listening yet
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("/metrics: %s", resp.Status)
		}
		scrapes++
	}
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	if scrapes < 2 {
		t.Logf("only %d scrapes overlapped the start", scrapes)
	}
	_ = r.Stats()
}

// TestShutdownWithoutStart: Shutdown and Stats on a relay whose Start failed
// (or never ran) report an error instead of panicking.
func TestShutdownWithoutStart(t *testing.T) {
	r, err := relay.New(relay.Config{Brokers: []string{"127.0.0.1:1"}, Auth: auth.Config{Anonymous: true}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := r.Start(ctx); err == nil {
		t.Fatal("Start succeeded with no broker")
	}
	if st := r.Stats(); st.Connections != 0 || st.LogRecords != 0 {
		t.Fatalf("stats of a relay that never started: %+v", st)
	}
	if err := r.Shutdown(context.Background()); err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown of a relay that never started: %v, want an error", err)
	}
}

// TestShutdownClosesSocketsFirst: a backend API request still running does
// not hold back the 1001 that tells clients to reconnect elsewhere (Shutdown
// used to wait for http.Server.Shutdown, which waits for such requests,
// before closing any socket).
func TestShutdownClosesSocketsFirst(t *testing.T) {
	r := startRelay(t, kfakeBackend(t), newTopic(t), func(c *relay.Config) {
		quietLeases(c)
		c.Auth.APIKeys = [][]byte{[]byte(testAPIKey)}
	})
	c := dial(t, r)
	c.join("a")
	// Half a request: its handler waits for the rest of the body.
	hold, err := net.Dial("tcp", r.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	if _, err := hold.Write([]byte("POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + testAPIKey + "\r\nContent-Length: 100\r\n\r\n{")); err != nil {
		t.Fatal(err)
	}
	// Past closeCode's own limit: the old order would close the socket only
	// when this ran out.
	ctx, cancel := context.WithTimeout(context.Background(), 3*waitLimit)
	defer cancel()
	stopped := make(chan struct{})
	go func() { _ = r.Shutdown(ctx); close(stopped) }()
	if code := c.closeCode(); code != relay.CloseGoingAway {
		t.Fatalf("close code %d, want %d", code, relay.CloseGoingAway)
	}
	hold.Close() // ends the held request, so Shutdown can finish
	<-stopped
}

// TestAuthFrameWithBadToken: an auth frame whose token is not a string is a
// refused first auth frame (error, then close 4004 at once); it used to be
// taken for another frame, leaving the connection open until the auth
// timeout.
func TestAuthFrameWithBadToken(t *testing.T) {
	b := kfakeBackend(t)
	k := newTestKeys(t)
	r := authRelay(t, b, newTopic(t), k, func(c *relay.Config) { c.Auth.Timeout = 10 * time.Minute })
	for _, tok := range []string{`5`, `{"a":1}`, `["x"]`, `true`} {
		c, _, err := dialWith(t, nil, wsURL(r), nil, true)
		if err != nil {
			t.Fatal(err)
		}
		c.sendRaw(websocket.TextMessage, []byte(`{"op":"auth","id":"a","token":`+tok+`}`))
		if f := c.reply(); f.Op != "error" || f.Code != "unauthorized" || string(f.ID) != `"a"` {
			t.Fatalf("token %s: got %+v, want error unauthorized", tok, f)
		}
		if code := c.closeCode(); code != relay.CloseUnauthorized {
			t.Fatalf("token %s: close %d, want %d", tok, code, relay.CloseUnauthorized)
		}
	}
}

// TestIdleHTTPConnectionsClosed: a keep-alive HTTP connection that sends
// nothing more is closed after HTTPIdleTimeout (they used to stay open
// forever), and plain HTTP connections beyond MaxHTTPConns are closed at
// once, so plain GETs cannot exhaust the relay's descriptors.
func TestIdleHTTPConnectionsClosed(t *testing.T) {
	// closedWithin reports whether the server closes conn within d.
	closedWithin := func(conn net.Conn, d time.Duration) bool {
		_ = conn.SetReadDeadline(time.Now().Add(d))
		buf := make([]byte, 4096)
		for {
			if _, err := conn.Read(buf); err != nil {
				var ne net.Error
				return !(errors.As(err, &ne) && ne.Timeout())
			}
		}
	}
	dial := func(addr string) net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	t.Run("idle", func(t *testing.T) {
		r := startRelay(t, kfakeBackend(t), newTopic(t), func(c *relay.Config) {
			quietLeases(c)
			c.Limits.HTTPIdleTimeout = 200 * time.Millisecond
		})
		idle := dial(r.Addr().String())
		if _, err := idle.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		if !closedWithin(idle, 30*time.Second) {
			t.Fatal("an idle keep-alive connection was not closed")
		}
	})
	t.Run("cap", func(t *testing.T) {
		r := startRelay(t, kfakeBackend(t), newTopic(t), func(c *relay.Config) {
			quietLeases(c)
			c.Limits.MaxHTTPConns = 2
		})
		addr := r.Addr().String()
		hold1, hold2 := dial(addr), dial(addr) // accepted in order: the first two
		over := dial(addr)
		// Under the 10 s ReadHeaderTimeout, which would close it anyway.
		if !closedWithin(over, 5*time.Second) {
			t.Fatal("a connection beyond MaxHTTPConns was kept")
		}
		hold1.Close()
		hold2.Close()
		// Once those are gone, the relay serves HTTP again.
		cl := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		for deadline := time.Now().Add(30 * time.Second); ; {
			resp, err := cl.Get("http://" + addr + "/healthz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("/healthz after the held connections closed: %v", err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// TestLeaseTablesForgetExpiredRelays: the relay's lease bookkeeping holds
// the live fleet, not every relay name it ever saw (pod churn used to grow
// it without bound).
func TestLeaseTablesForgetExpiredRelays(t *testing.T) {
	b := kfakeBackend(t)
	topic := newTopic(t)
	short := func(c *relay.Config) { c.LeaseTimeout = 600 * time.Millisecond }
	keeper := startRelay(t, b, topic, short)
	const churn = 5
	for i := 0; i < churn; i++ {
		// A relay that comes and goes (drained, or killed: either way its
		// lease ends in the log).
		r := startRelay(t, b, topic, func(c *relay.Config) { short(c); c.RelayName = fmt.Sprintf("pod-%d", i) })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = r.Shutdown(ctx)
		cancel()
	}
	// Every pod's lease expires within a few lease timeouts; then only the
	// keeper's own entries remain, one per partition (4).
	for deadline := time.Now().Add(waitLimit); keeper.LeaseTableSize() > 4; {
		if time.Now().After(deadline) {
			t.Fatalf("lease tables hold %d entries after %d relays left, want the keeper's 4", keeper.LeaseTableSize(), churn)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
