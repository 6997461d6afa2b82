package relay_test

import (
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/roomlog/roomlog/relay"
)

// TestFloodIsThrottledThenClosed: a client publishing at ten times its rate
// limit gets rate_limited errors and is then closed with 4008, while a
// well-behaved client in the same room keeps its latency. Timings are
// logged, asserted only against generous sanity bounds.
func TestFloodIsThrottledThenClosed(t *testing.T) {
	b := kfakeBackend(t)
	topic := newTopic(t)
	const rate = 50
	r := startRelay(t, b, topic, func(c *relay.Config) {
		quietLeases(c)
		c.Limits = relay.LimitsConfig{Rate: rate, Burst: rate, AbuseWindow: 2 * time.Second, AbuseFactor: 3}
	})
	good := dial(t, r)
	good.join("arena")
	flooder := dial(t, r)
	flooder.join("arena")

	latency := func(n int) []time.Duration {
		var out []time.Duration
		for i := 0; i < n; i++ {
			start := time.Now()
			good.do(map[string]any{"op": "publish", "room": "arena", "data": i, "id": i})
			out = append(out, time.Since(start))
			time.Sleep(50 * time.Millisecond) // 20/s: within the limit
		}
		sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
		return out
	}
	quiet := latency(20)

	// Flood at 10× the rate until the relay closes the connection.
	var sent, stop atomic.Int64
	go func() {
		tick := time.NewTicker(time.Second / (10 * rate))
		defer tick.Stop()
		for i := 0; stop.Load() == 0; i++ {
			<-tick.C
			flooder.wmu.Lock()
			err := flooder.ws.WriteMessage(websocket.TextMessage, []byte(`{"op":"publish","room":"arena","data":"spam"}`))
			flooder.wmu.Unlock()
			if err != nil {
				return
			}
			sent.Add(1)
		}
	}()
	floodStart := time.Now()
	busy := latency(20)
	var limited int
	var closeCode int
wait:
	for {
		select {
		case f := <-flooder.acks:
			if f.Code == "rate_limited" {
				limited++
			}
		case err := <-flooder.err:
			var ce *websocket.CloseError
			if ok := asCloseError(err, &ce); ok {
				closeCode = ce.Code
			}
			for len(flooder.acks) > 0 {
				if f := <-flooder.acks; f.Code == "rate_limited" {
					limited++
				}
			}
			break wait
		case <-time.After(waitLimit):
			t.Fatal("flooder never closed")
		}
	}
	closedAfter := time.Since(floodStart)
	stop.Store(1)
	if closeCode != relay.CloseRateLimited {
		t.Fatalf("flooder closed with %d, want %d", closeCode, relay.CloseRateLimited)
	}
	if limited == 0 {
		t.Fatal("flooder got no rate_limited error before the close")
	}
	t.Logf("flooder: %d frames sent, %d rate_limited errors, closed with 4008 after %v", sent.Load(), limited, closedAfter.Round(time.Millisecond))
	t.Logf("well-behaved publish→ack latency: quiet p50 %v max %v; during the flood p50 %v max %v",
		quiet[len(quiet)/2], quiet[len(quiet)-1], busy[len(busy)/2], busy[len(busy)-1])
	if busy[len(busy)/2] > 2*time.Second {
		t.Fatalf("the well-behaved client's median latency rose to %v during the flood", busy[len(busy)/2])
	}
	if n := r.LimitCounts(); n["rate_limited"] == 0 || n["close_rate_limited"] != 1 {
		t.Fatalf("limit counts %v", n)
	}
	// The good client is still served.
	good.do(map[string]any{"op": "publish", "room": "arena", "data": "after", "id": "after"})
}

func asCloseError(err error, ce **websocket.CloseError) bool {
	c, ok := err.(*websocket.CloseError)
	if ok {
		*ce = c
	}
	return ok
}

// TestConnectionLimits: connections beyond --max-conns-per-ip get 429, beyond
// --max-conns 503, before the upgrade; a closed connection frees its slot.
func TestConnectionLimits(t *testing.T) {
	b := kfakeBackend(t)
	r := startRelay(t, b, newTopic(t), func(c *relay.Config) {
		c.Limits.MaxConnsPerIP = 2
		c.Limits.ClientIPHeader = "X-Forwarded-For"
		c.Limits.MaxConns = 4
	})
	from := func(ip string) http.Header { return http.Header{"X-Forwarded-For": {"10.0.0.9, " + ip}} }
	a1, _, err := dialWith(t, nil, wsURL(r), from("192.0.2.1"), true)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := dialWith(t, nil, wsURL(r), from("192.0.2.1"), true); err != nil {
		t.Fatal(err)
	}
	_, resp, err := dialWith(t, nil, wsURL(r), from("192.0.2.1"), false)
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests || errorBody(resp) != "max_conns_per_ip" {
		t.Fatalf("third connection from one address: %v %v, want 429 max_conns_per_ip", resp, err)
	}
	for _, ip := range []string{"192.0.2.2", "192.0.2.3"} {
		if _, _, err := dialWith(t, nil, wsURL(r), from(ip), true); err != nil {
			t.Fatal(err)
		}
	}
	_, resp, err = dialWith(t, nil, wsURL(r), from("192.0.2.4"), false)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable || errorBody(resp) != "max_conns" {
		t.Fatalf("fifth connection: %v %v, want 503 max_conns", resp, err)
	}
	a1.ws.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, _, err := dialWith(t, nil, wsURL(r), from("192.0.2.1"), true)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot not freed after a close: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	n := r.LimitCounts()
	if n["max_conns_per_ip"] != 1 || n["max_conns"] < 1 {
		t.Fatalf("limit counts %v", n)
	}
}

// TestOversizedFramesAndTooManyRooms: a frame over --max-message-bytes
// closes with 1009, a join beyond --max-rooms is too_many_rooms; neither
// appends, both are counted.
func TestOversizedFramesAndTooManyRooms(t *testing.T) {
	b := kfakeBackend(t)
	topic := newTopic(t)
	r := startRelay(t, b, topic, func(c *relay.Config) {
		quietLeases(c)
		c.MaxMessageBytes = 1024
		c.MaxRoomsPerConn = 2
	})
	c := dial(t, r)
	c.join("a")
	c.join("b")
	before := endOffsets(t, b, topic)
	c.send(map[string]any{"op": "join", "room": "c", "id": "c"})
	if f := c.reply(); f.Code != "too_many_rooms" {
		t.Fatalf("third room: %+v", f)
	}
	c.sendRaw(websocket.TextMessage, []byte(`{"op":"publish","room":"a","data":"`+strings.Repeat("x", 2000)+`"}`))
	if code := c.closeCode(); code != websocket.CloseMessageTooBig {
		t.Fatalf("oversized frame: close %d, want 1009", code)
	}
	time.Sleep(100 * time.Millisecond)
	// The two leave records of the closed connection are expected.
	if got := endOffsets(t, b, topic) - before; got != 2 {
		t.Fatalf("appended %d records, want only the 2 leaves of the closed connection", got)
	}
	n := r.LimitCounts()
	if n["too_many_rooms"] != 1 || n["frame_too_big"] != 1 {
		t.Fatalf("limit counts %v", n)
	}
}

// TestOriginAllowList: cross-origin browsers are refused (403) unless the
// origin matches --allowed-origins; same-origin and non-browser clients are
// accepted.
func TestOriginAllowList(t *testing.T) {
	b := kfakeBackend(t)
	r := startRelay(t, b, newTopic(t), func(c *relay.Config) {
		c.Limits.AllowedOrigins = []string{"https://*.example.com", "http://localhost:3000"}
	})
	for _, tt := range []struct {
		origin string
		ok     bool
	}{
		{"", true},
		{"http://" + r.Addr().String(), true},
		{"https://app.example.com", true},
		{"http://localhost:3000", true},
		{"https://example.com.evil.net", false},
		{"https://evil.net", false},
		{"http://app.example.com", false},
	} {
		hdr := http.Header{}
		if tt.origin != "" {
			hdr.Set("Origin", tt.origin)
		}
		_, resp, err := dialWith(t, nil, wsURL(r), hdr, false)
		if tt.ok && err != nil {
			t.Errorf("origin %q refused: %v", tt.origin, err)
		}
		if !tt.ok && (err == nil || resp == nil || resp.StatusCode != http.StatusForbidden) {
			t.Errorf("origin %q: %v %v, want 403", tt.origin, resp, err)
		}
	}
	if n := r.LimitCounts()["origin"]; n != 3 {
		t.Fatalf("origin refusals counted %d, want 3", n)
	}
}

// TestIdleTimeout: a client that sends nothing for --idle-timeout is closed
// with 4009; one that keeps sending stays.
func TestIdleTimeout(t *testing.T) {
	b := kfakeBackend(t)
	r := startRelay(t, b, newTopic(t), func(c *relay.Config) { c.Limits.IdleTimeout = 700 * time.Millisecond })
	idle := dial(t, r)
	busy := dial(t, r)
	busy.join("x")
	stopAt := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(stopAt) {
		busy.do(map[string]any{"op": "get", "room": "x", "id": "g"})
		time.Sleep(200 * time.Millisecond)
	}
	if code := idle.closeCode(); code != relay.CloseIdle {
		t.Fatalf("idle client: close %d, want %d", code, relay.CloseIdle)
	}
	busy.do(map[string]any{"op": "get", "room": "x", "id": "still"})
}
