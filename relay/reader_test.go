package relay_test

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/roomlog/roomlog/relay"
)

// maskedText is a client text frame as it goes on the wire (masked, one
// frame, payload under 126 bytes).
func maskedText(payload string) []byte { return masked(0x81, payload) }

// maskedPong is a client pong frame (as a client sends to answer a ping, or
// unsolicited, as a heartbeat).
func maskedPong(payload string) []byte { return masked(0x8A, payload) }

func masked(op byte, payload string) []byte {
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	b := []byte{op, 0x80 | byte(len(payload)), key[0], key[1], key[2], key[3]}
	for i := range len(payload) {
		b = append(b, payload[i]^key[i%4])
	}
	return b
}

func pingOp(id string) string { return fmt.Sprintf(`{"op":"ping","id":%q}`, id) }

// readPong reads the next frame of a client without a reader goroutine and
// checks it is the pong of id.
func readPong(t *testing.T, ws *websocket.Conn, id string) {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(waitLimit))
	var f frame
	if err := ws.ReadJSON(&f); err != nil {
		t.Fatalf("waiting for the pong of %s: %v", id, err)
	}
	if f.Op != "pong" || string(f.ID) != strconv.Quote(id) {
		t.Fatalf("got %+v, want the pong of %s", f, id)
	}
}

// extraGoroutines waits up to waitLimit for the goroutines beyond base to
// fall under limit, and returns how many there are then.
func extraGoroutines(base, limit int) int {
	deadline := time.Now().Add(waitLimit)
	for {
		extra := runtime.NumGoroutine() - base
		if extra < limit || time.Now().After(deadline) {
			return extra
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReaderParks: a connection's reader holds no goroutine while its
// client is silent or sends only pongs, and parking loses nothing: frames
// that arrive in one segment (several in gorilla's buffer at once, pongs
// among them), a frame split over two segments, and frames after a silence
// are all read and answered.
func TestReaderParks(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("readers park on Linux only")
	}
	b := kfakeBackend(t)
	// No pings: a pong would wake a reader that parked too early, and hide
	// it.
	r := startRelay(t, b, newTopic(t), func(c *relay.Config) { c.PingInterval = time.Hour })
	url := "ws://" + r.Addr().String() + "/ws"

	t.Run("frames in one segment", func(t *testing.T) {
		c := dialURL(t, url, false)
		var seg []byte
		for i := range 5 {
			seg = append(seg, maskedText(pingOp(fmt.Sprint("s", i)))...)
		}
		if _, err := c.ws.NetConn().Write(seg); err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			readPong(t, c.ws, fmt.Sprint("s", i))
		}
	})

	t.Run("pongs then frames in one segment", func(t *testing.T) {
		c := dialURL(t, url, false)
		seg := append(maskedPong(""), maskedPong("hb")...)
		seg = append(seg, maskedText(pingOp("after-pongs"))...)
		seg = append(seg, maskedPong("x")...)
		seg = append(seg, maskedText(pingOp("between-pongs"))...)
		if _, err := c.ws.NetConn().Write(seg); err != nil {
			t.Fatal(err)
		}
		readPong(t, c.ws, "after-pongs")
		readPong(t, c.ws, "between-pongs")
	})

	t.Run("a frame split over two segments", func(t *testing.T) {
		c := dialURL(t, url, false)
		f := maskedText(pingOp("split"))
		if _, err := c.ws.NetConn().Write(f[:7]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // the reader wakes on the first part
		if _, err := c.ws.NetConn().Write(f[7:]); err != nil {
			t.Fatal(err)
		}
		readPong(t, c.ws, "split")
	})

	t.Run("idle connections hold no goroutine", func(t *testing.T) {
		const n = 100
		base := runtime.NumGoroutine()
		clients := make([]*client, n)
		for i := range clients {
			clients[i] = dialURL(t, url, false) // no reader goroutine of its own
		}
		settled := func() int { return extraGoroutines(base, n/2) }
		if extra := settled(); extra >= n/2 {
			t.Fatalf("%d idle connections: %d more goroutines, want fewer than %d", n, extra, n/2)
		}
		// Pongs wake each reader, which takes them and parks again.
		for _, c := range clients {
			if _, err := c.ws.NetConn().Write(maskedPong("")); err != nil {
				t.Fatal(err)
			}
		}
		if extra := settled(); extra >= n/2 {
			t.Fatalf("after pongs, %d idle connections: %d more goroutines, want fewer than %d", n, extra, n/2)
		}
		// Each wakes, answers, and parks again.
		for round := range 3 {
			for i, c := range clients {
				c.send(json.RawMessage(pingOp(fmt.Sprint("r", round, "-", i))))
			}
			for i, c := range clients {
				readPong(t, c.ws, fmt.Sprint("r", round, "-", i))
			}
		}
		if extra := settled(); extra >= n/2 {
			t.Fatalf("after traffic, %d idle connections: %d more goroutines, want fewer than %d", n, extra, n/2)
		}
	})
}

// TestSocketIOReaderParks: Socket.IO sessions on a WebSocket hold no
// goroutine while their clients are silent either (engineio's reader parks
// the same way), and answer once they send.
func TestSocketIOReaderParks(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("readers park on Linux only")
	}
	b := kfakeBackend(t)
	r := startRelay(t, b, newTopic(t), func(c *relay.Config) { c.PingInterval = time.Hour })
	url := "ws://" + r.Addr().String() + "/socket.io/?EIO=4&transport=websocket"
	read := func(ws *websocket.Conn) string {
		t.Helper()
		_ = ws.SetReadDeadline(time.Now().Add(waitLimit))
		_, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("reading: %v", err)
		}
		return string(b)
	}
	const n = 100
	base := runtime.NumGoroutine()
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		ws, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ws.Close() })
		if got := read(ws); !strings.HasPrefix(got, "0{") {
			t.Fatalf("open packet %q", got)
		}
		if err := ws.WriteMessage(websocket.TextMessage, []byte("40")); err != nil { // CONNECT, anonymous
			t.Fatal(err)
		}
		if got := read(ws); !strings.HasPrefix(got, "40{") {
			t.Fatalf("CONNECT answered %q", got)
		}
		conns[i] = ws
	}
	if extra := extraGoroutines(base, n/2); extra >= n/2 {
		t.Fatalf("%d idle Socket.IO sessions: %d more goroutines, want fewer than %d", n, extra, n/2)
	}
	for i, ws := range conns {
		if err := ws.WriteMessage(websocket.TextMessage, []byte("40")); err != nil { // CONNECT again: answered again
			t.Fatal(err)
		}
		if got := read(ws); !strings.HasPrefix(got, "40{") {
			t.Fatalf("session %d: CONNECT answered %q", i, got)
		}
	}
}

// TestPongTimeout: a client that answers no ping is closed after
// PingInterval + PongTimeout of silence, though its reader is parked; one
// that answers stays.
func TestPongTimeout(t *testing.T) {
	b := kfakeBackend(t)
	r := startRelay(t, b, newTopic(t), func(c *relay.Config) {
		c.PingInterval = 100 * time.Millisecond
		c.PongTimeout = 200 * time.Millisecond
	})
	url := "ws://" + r.Addr().String() + "/ws"
	live := dial(t, r) // its reader answers pings
	dead := dialURL(t, url, false)
	dead.ws.SetPingHandler(func(string) error { return nil }) // reads, never answers
	_ = dead.ws.SetReadDeadline(time.Now().Add(waitLimit))
	var err error
	for err == nil {
		_, _, err = dead.ws.ReadMessage()
	}
	ce, ok := err.(*websocket.CloseError)
	if !ok || ce.Code != websocket.CloseGoingAway || ce.Text != "no pong within the pong timeout" {
		t.Fatalf("the silent client's connection ended with %v, want close 1001 \"no pong within the pong timeout\"", err)
	}
	// The live client has seen at least as many pings go by, and stays.
	time.Sleep(500 * time.Millisecond)
	live.send(map[string]any{"op": "ping", "id": "still"})
	if f := live.reply(); f.Op != "pong" {
		t.Fatalf("the answering client: %+v, want its pong", f)
	}
}
