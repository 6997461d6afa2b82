package engineio

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/roomlog/roomlog/internal/asyncconn"
)

// echoer is a Handler that sends every message back before it returns: by
// the time a POST is answered, its echo is queued.
type echoer struct{ s *Session }

func (e echoer) Message(m Message) bool { return e.s.Send(m) == nil }
func (e echoer) Closed()                {}

// echo is a script that sends every message back.
func echo(sess *Session) {
	for {
		m, err := next(sess)
		if err != nil {
			return
		}
		if sess.Send(m) != nil {
			return
		}
	}
}

// script makes an OnOpen that runs fn on a goroutine of its own per session:
// a session's side of a test, written in the blocking style that reads best,
// reading the client's messages with next.
func script(fn func(*Session)) func(*Session, *http.Request) Handler {
	return func(s *Session, _ *http.Request) Handler {
		in := &inbox{s: s, in: make(chan Message)}
		inboxes.Store(s, in)
		go fn(s)
		return in
	}
}

// inbox is a script's Handler: Message waits until the script takes the
// message (or the session closes).
type inbox struct {
	s  *Session
	in chan Message
}

var inboxes sync.Map // *Session → *inbox

func (b *inbox) Message(m Message) bool {
	select {
	case b.in <- m:
		return true
	case <-b.s.Done():
		return false
	}
}

func (b *inbox) Closed() { inboxes.Delete(b.s) }

// next returns the client's next message to a script, or the session's
// CloseError once it has closed.
func next(s *Session) (Message, error) {
	v, ok := inboxes.Load(s)
	if !ok { // Closed has run
		return Message{}, &CloseError{s.Reason()}
	}
	b := v.(*inbox)
	select {
	case m := <-b.in:
		return m, nil
	case <-s.Done():
		return Message{}, &CloseError{s.Reason()}
	}
}

// testServer is a Server on a real HTTP server, with the reasons its
// sessions ended.
type testServer struct {
	*Server
	http *httptest.Server
	url  string // .../socket.io/?EIO=4

	mu      sync.Mutex
	ended   map[string]CloseReason
	endedCh chan struct{}
}

// listenPlain makes newTestServer listen without asyncconn: WebSocket
// writes may block, and a writer goroutine writes (TestPlainListener).
var listenPlain bool

// TestPlainListener runs the WebSocket tests on a listener whose
// connections are not asyncconn.Conns (the writer goroutine's path).
func TestPlainListener(t *testing.T) {
	listenPlain = true
	defer func() { listenPlain = false }()
	for name, test := range map[string]func(*testing.T){
		"WebSocketOnly":         TestWebSocketOnly,
		"Upgrade":               TestUpgrade,
		"UpgradeUnderLoad":      TestUpgradeUnderLoad,
		"CloseFlushesWebSocket": TestCloseFlushesWebSocket,
		"TrySend":               TestTrySend,
		"SendTail":              TestSendTail,
		"SendWait":              TestSendWait,
		"Queue":                 TestQueue,
	} {
		t.Run(name, test)
	}
}

// recorder is a Handler that notes the reason its session ended, once its
// Closed has run.
type recorder struct {
	Handler
	ts *testServer
	s  *Session
}

func (r recorder) Closed() {
	r.Handler.Closed()
	r.ts.mu.Lock()
	r.ts.ended[r.s.ID()] = r.s.Reason()
	r.ts.mu.Unlock()
	r.ts.endedCh <- struct{}{}
}

func newTestServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	ts := &testServer{ended: map[string]CloseReason{}, endedCh: make(chan struct{}, 100)}
	open := cfg.OnOpen
	if open == nil {
		open = func(s *Session, _ *http.Request) Handler { return echoer{s} }
	}
	cfg.OnOpen = func(s *Session, r *http.Request) Handler {
		return recorder{open(s, r), ts, s}
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts.Server = srv
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", srv)
	ts.http = httptest.NewUnstartedServer(mux)
	if !listenPlain {
		// As the relay listens: WebSocket writes that never block, run by
		// the goroutine that sends.
		ts.http.Listener = &asyncconn.Listener{Listener: ts.http.Listener}
	}
	ts.http.Start()
	ts.url = ts.http.URL + "/socket.io/?EIO=4"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		ts.http.Close()
	})
	return ts
}

// endReason waits until session sid's handler has returned.
func (ts *testServer) endReason(t *testing.T, sid string) CloseReason {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		ts.mu.Lock()
		r, ok := ts.ended[sid]
		ts.mu.Unlock()
		if ok {
			return r
		}
		select {
		case <-ts.endedCh:
		case <-deadline:
			t.Fatalf("session %s did not end", sid)
		}
	}
}

func (ts *testServer) session(sid string) *Session { return ts.lookup(sid) }

type openPacket struct {
	SID          string   `json:"sid"`
	Upgrades     []string `json:"upgrades"`
	PingInterval int      `json:"pingInterval"`
	PingTimeout  int      `json:"pingTimeout"`
	MaxPayload   int      `json:"maxPayload"`
}

func do(t *testing.T, method, u, body string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

// handshake opens a polling session and returns its sid and URL.
func handshake(t *testing.T, ts *testServer) (openPacket, string) {
	t.Helper()
	res, body := do(t, "GET", ts.url+"&transport=polling", "", nil)
	if res.StatusCode != 200 || !strings.HasPrefix(body, "0") {
		t.Fatalf("handshake: %d %q", res.StatusCode, body)
	}
	if ct := res.Header.Get("Content-Type"); ct != "text/plain; charset=UTF-8" {
		t.Fatalf("handshake Content-Type %q", ct)
	}
	var op openPacket
	if err := json.Unmarshal([]byte(body[1:]), &op); err != nil {
		t.Fatalf("open packet %q: %v", body, err)
	}
	return op, ts.url + "&transport=polling&sid=" + url.QueryEscape(op.SID)
}

func poll(t *testing.T, u string) string {
	t.Helper()
	res, body := do(t, "GET", u, "", nil)
	if res.StatusCode != 200 {
		t.Fatalf("poll: %d %q", res.StatusCode, body)
	}
	return body
}

func send(t *testing.T, u, payload string) {
	t.Helper()
	res, body := do(t, "POST", u, payload, nil)
	if res.StatusCode != 200 || body != "ok" {
		t.Fatalf("POST %q: %d %q", payload, res.StatusCode, body)
	}
}

// waitFor polls cond until it holds, for state the protocol gives no
// signal of (a poll parked on the server).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func (s *Session) pollPending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.polling
}

func TestHandshakePolling(t *testing.T) {
	ts := newTestServer(t, Config{PingInterval: time.Minute, PingTimeout: 30 * time.Second, MaxPayload: 5000})
	op, _ := handshake(t, ts)
	want := openPacket{SID: op.SID, Upgrades: []string{"websocket"}, PingInterval: 60000, PingTimeout: 30000, MaxPayload: 5000}
	if len(op.SID) != 20 || op.Upgrades[0] != want.Upgrades[0] || op.PingInterval != want.PingInterval ||
		op.PingTimeout != want.PingTimeout || op.MaxPayload != want.MaxPayload {
		t.Fatalf("open packet %+v, want %+v", op, want)
	}
	if ts.Len() != 1 {
		t.Fatalf("Len = %d, want 1", ts.Len())
	}
}

func TestRefusals(t *testing.T) {
	ts := newTestServer(t, Config{AllowedOrigins: []string{"https://*.example.com"}})
	op, _ := handshake(t, ts)
	tests := []struct {
		name   string
		method string
		query  string
		header http.Header
		status int
		code   ErrorCode
	}{
		{"no transport", "GET", "", nil, 400, CodeUnknownTransport},
		{"unknown transport", "GET", "&transport=flash", nil, 400, CodeUnknownTransport},
		{"EIO 3", "GET", "&transport=polling&EIO=3", nil, 400, CodeUnsupportedProtocol},
		{"POST handshake", "POST", "&transport=polling", nil, 400, CodeBadHandshakeMethod},
		{"unknown sid", "GET", "&transport=polling&sid=nope", nil, 400, CodeUnknownSID},
		{"websocket without upgrade", "GET", "&transport=websocket", nil, 400, CodeBadRequest},
		{"jsonp", "GET", "&transport=polling&j=0", nil, 400, CodeBadRequest},
		{"PUT on a session", "PUT", "&transport=polling&sid=" + op.SID, nil, 400, CodeBadRequest},
		{"foreign origin", "GET", "&transport=polling", http.Header{"Origin": {"https://evil.com"}}, 403, CodeForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := ts.url + tt.query
			if strings.Contains(tt.query, "EIO=3") {
				u = ts.http.URL + "/socket.io/?" + strings.TrimPrefix(tt.query, "&")
			}
			res, body := do(t, tt.method, u, "", tt.header)
			var got struct {
				Code    ErrorCode `json:"code"`
				Message string    `json:"message"`
			}
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if res.StatusCode != tt.status || got.Code != tt.code || got.Message != tt.code.String() {
				t.Fatalf("got %d %+v, want %d code %d", res.StatusCode, got, tt.status, tt.code)
			}
		})
	}
}

func TestCORS(t *testing.T) {
	ts := newTestServer(t, Config{AllowedOrigins: []string{"https://*.example.com"}})
	origin := http.Header{"Origin": {"https://app.example.com"}}
	res, _ := do(t, "GET", ts.url+"&transport=polling", "", origin)
	if res.StatusCode != 200 || res.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		res.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("allowed origin: %d %v", res.StatusCode, res.Header)
	}
	pre := http.Header{"Origin": {"https://app.example.com"}, "Access-Control-Request-Method": {"POST"},
		"Access-Control-Request-Headers": {"content-type"}}
	res, _ = do(t, "OPTIONS", ts.url+"&transport=polling", "", pre)
	if res.StatusCode != 204 || res.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		res.Header.Get("Access-Control-Allow-Headers") != "content-type" || !strings.Contains(res.Header.Get("Access-Control-Allow-Methods"), "POST") {
		t.Fatalf("preflight: %d %v", res.StatusCode, res.Header)
	}
	pre.Set("Origin", "https://example.org")
	if res, _ = do(t, "OPTIONS", ts.url+"&transport=polling", "", pre); res.StatusCode != 403 {
		t.Fatalf("preflight from a foreign origin: %d, want 403", res.StatusCode)
	}
	// The server's own host is always allowed.
	if res, _ = do(t, "GET", ts.url+"&transport=polling", "", http.Header{"Origin": {ts.http.URL}}); res.StatusCode != 200 {
		t.Fatalf("same origin: %d", res.StatusCode)
	}
}

func TestPollingEcho(t *testing.T) {
	ts := newTestServer(t, Config{})
	_, u := handshake(t, ts)
	send(t, u, "4hello €\x1ebAQID\x1e4")
	var got []Packet
	for len(got) < 3 {
		if err := DecodePayload([]byte(poll(t, u)), func(p Packet) error {
			got = append(got, p)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	want := []Packet{
		{Type: PacketMessage, Data: []byte("hello €")},
		{Type: PacketMessage, Data: []byte{1, 2, 3}, Binary: true},
		{Type: PacketMessage, Data: []byte{}},
	}
	for i := range want {
		if got[i].Type != want[i].Type || got[i].Binary != want[i].Binary || string(got[i].Data) != string(want[i].Data) {
			t.Fatalf("packet %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	// The client closes.
	op := strings.TrimPrefix(u[strings.Index(u, "sid=")+4:], "")
	send(t, u, "1")
	if r := ts.endReason(t, op); r != ReasonClientClose {
		t.Fatalf("reason %v, want %v", r, ReasonClientClose)
	}
	if res, _ := do(t, "GET", u, "", nil); res.StatusCode != 400 {
		t.Fatalf("poll after close: %d, want 400", res.StatusCode)
	}
}

func TestPollingOverlap(t *testing.T) {
	ts := newTestServer(t, Config{})
	op, u := handshake(t, ts)
	first := make(chan string, 1)
	go func() {
		res, err := http.Get(u)
		if err != nil {
			first <- err.Error()
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		first <- string(b)
	}()
	sess := ts.session(op.SID)
	waitFor(t, "the first poll to park", sess.pollPending)
	res, body := do(t, "GET", u, "", nil)
	if res.StatusCode != 400 {
		t.Fatalf("second poll: %d %q, want 400", res.StatusCode, body)
	}
	if r := ts.endReason(t, op.SID); r != ReasonTransportError {
		t.Fatalf("reason %v, want %v", r, ReasonTransportError)
	}
	if got := <-first; got != "1" {
		t.Fatalf("first poll got %q, want the close packet", got)
	}
}

func TestPollingTooLarge(t *testing.T) {
	ts := newTestServer(t, Config{MaxPayload: 100})
	op, u := handshake(t, ts)
	res, _ := do(t, "POST", u, "4"+strings.Repeat("x", 100), nil)
	if res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", res.StatusCode)
	}
	if r := ts.endReason(t, op.SID); r != ReasonTooBig {
		t.Fatalf("reason %v, want %v", r, ReasonTooBig)
	}
}

func TestPollingMalformed(t *testing.T) {
	for _, payload := range []string{"9", "4a\x1e\x1e", "b!!", "2"} {
		ts := newTestServer(t, Config{})
		op, u := handshake(t, ts)
		res, _ := do(t, "POST", u, payload, nil)
		if res.StatusCode != 400 {
			t.Fatalf("POST %q: %d, want 400", payload, res.StatusCode)
		}
		if r := ts.endReason(t, op.SID); r != ReasonParseError {
			t.Fatalf("POST %q: reason %v, want %v", payload, r, ReasonParseError)
		}
	}
}

func TestHeartbeatPolling(t *testing.T) {
	ts := newTestServer(t, Config{PingInterval: 20 * time.Millisecond, PingTimeout: 200 * time.Millisecond})
	op, u := handshake(t, ts)
	for range 3 {
		if got := poll(t, u); got != "2" {
			t.Fatalf("poll = %q, want a ping", got)
		}
		send(t, u, "3")
	}
	// No pong: the session ends.
	if got := poll(t, u); got != "2" {
		t.Fatalf("poll = %q, want a ping", got)
	}
	if r := ts.endReason(t, op.SID); r != ReasonPingTimeout {
		t.Fatalf("reason %v, want %v", r, ReasonPingTimeout)
	}
}

func TestSendQueueOverflow(t *testing.T) {
	errs := make(chan error, 1)
	ts := newTestServer(t, Config{SendQueue: 2, OnOpen: script(func(s *Session) {
		for range 3 {
			if err := s.Send(Message{Data: []byte("x")}); err != nil {
				errs <- err
				return
			}
		}
		errs <- nil
	})})
	op, _ := handshake(t, ts)
	err := <-errs
	var ce *CloseError
	if !errors.Is(err, ErrClosed) || !errors.As(err, &ce) || ce.Reason != ReasonSlowClient {
		t.Fatalf("third Send = %v, want a CloseError with ReasonSlowClient", err)
	}
	if r := ts.endReason(t, op.SID); r != ReasonSlowClient {
		t.Fatalf("reason %v", r)
	}
}

func TestCloseFlushesPolling(t *testing.T) {
	ts := newTestServer(t, Config{OnOpen: script(func(s *Session) {
		m, err := next(s)
		if err == nil {
			s.Send(Message{Data: append([]byte("bye "), m.Data...)})
			s.Close(ReasonServerClose)
		}
	})})
	op, u := handshake(t, ts)
	send(t, u, "4alice")
	if got := poll(t, u); got != "4bye alice\x1e1" {
		t.Fatalf("poll = %q, want the message then the close packet", got)
	}
	if r := ts.endReason(t, op.SID); r != ReasonServerClose {
		t.Fatalf("reason %v", r)
	}
}

// TestCloseFlushesLatePoll: a polling session closed while no poll was
// pending keeps what was queued for a poll that comes later than
// CloseFlush (a slow client), up to PingTimeout: the client still learns
// why it was closed.
func TestCloseFlushesLatePoll(t *testing.T) {
	closed := make(chan struct{})
	ts := newTestServer(t, Config{CloseFlush: 50 * time.Millisecond, PingTimeout: 5 * time.Second, OnOpen: script(func(s *Session) {
		m, err := next(s)
		if err == nil {
			s.Send(Message{Data: append([]byte("refused "), m.Data...)})
			s.Close(ReasonServerClose)
			close(closed)
		}
	})})
	op, u := handshake(t, ts)
	send(t, u, "4alice")
	<-closed
	time.Sleep(300 * time.Millisecond) // well past CloseFlush, no poll pending
	if got := poll(t, u); got != "4refused alice\x1e1" {
		t.Fatalf("late poll = %q, want the message then the close packet", got)
	}
	if r := ts.endReason(t, op.SID); r != ReasonServerClose {
		t.Fatalf("reason %v", r)
	}
}

func wsURL(u string) string { return "ws" + strings.TrimPrefix(u, "http") }

func readText(t *testing.T, ws *websocket.Conn) string {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	typ, b, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if typ != websocket.TextMessage {
		t.Fatalf("got a binary frame %q", b)
	}
	return string(b)
}

func TestWebSocketOnly(t *testing.T) {
	ts := newTestServer(t, Config{PingInterval: 30 * time.Millisecond, PingTimeout: time.Second})
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(ts.url)+"&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	open := readText(t, ws)
	var op openPacket
	if !strings.HasPrefix(open, "0") || json.Unmarshal([]byte(open[1:]), &op) != nil || len(op.Upgrades) != 0 || op.SID == "" {
		t.Fatalf("open = %q", open)
	}
	ws.WriteMessage(websocket.TextMessage, []byte("4hi"))
	ws.WriteMessage(websocket.BinaryMessage, []byte{0, 1})
	gotText, gotBinary, pings := false, false, 0
	for !gotText || !gotBinary || pings < 2 {
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		typ, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case typ == websocket.BinaryMessage && string(b) == "\x00\x01":
			gotBinary = true
		case string(b) == "4hi":
			gotText = true
		case string(b) == "2":
			pings++
			ws.WriteMessage(websocket.TextMessage, []byte("3"))
		default:
			t.Fatalf("unexpected frame %d %q", typ, b)
		}
	}
	// Polling on a WebSocket session is a transport mismatch.
	if res, _ := do(t, "GET", ts.url+"&transport=polling&sid="+op.SID, "", nil); res.StatusCode != 400 {
		t.Fatalf("poll on a WebSocket session: %d", res.StatusCode)
	}
	ws.WriteMessage(websocket.TextMessage, []byte("1"))
	if r := ts.endReason(t, op.SID); r != ReasonClientClose {
		t.Fatalf("reason %v", r)
	}
}

func TestWebSocketTooBig(t *testing.T) {
	ts := newTestServer(t, Config{MaxPayload: 10})
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(ts.url)+"&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	var op openPacket
	json.Unmarshal([]byte(readText(t, ws)[1:]), &op)
	ws.WriteMessage(websocket.TextMessage, []byte("4"+strings.Repeat("x", 10)))
	if r := ts.endReason(t, op.SID); r != ReasonTooBig {
		t.Fatalf("reason %v, want %v", r, ReasonTooBig)
	}
}

func TestUpgrade(t *testing.T) {
	ts := newTestServer(t, Config{})
	op, u := handshake(t, ts)
	// A poll parks, as the client's does while it probes.
	parked := make(chan string, 1)
	go func() {
		res, err := http.Get(u)
		if err != nil {
			parked <- err.Error()
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		parked <- string(b)
	}()
	waitFor(t, "the poll to park", ts.session(op.SID).pollPending)
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(ts.url)+"&transport=websocket&sid="+op.SID, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	// A second upgrade is refused.
	if _, res, err := websocket.DefaultDialer.Dial(wsURL(ts.url)+"&transport=websocket&sid="+op.SID, nil); err == nil || res.StatusCode != 400 {
		t.Fatalf("second upgrade: %v", err)
	}
	ws.WriteMessage(websocket.TextMessage, []byte("2probe"))
	if got := readText(t, ws); got != "3probe" {
		t.Fatalf("probe answer %q", got)
	}
	if got := <-parked; got != "6" {
		t.Fatalf("parked poll got %q, want a noop", got)
	}
	// Messages sent while the client pauses go out on polling or, once
	// upgraded, on the WebSocket; here, on polling.
	send(t, u, "4during")
	if got := poll(t, u); got != "4during" {
		t.Fatalf("poll while upgrading = %q", got)
	}
	ws.WriteMessage(websocket.TextMessage, []byte("5"))
	ws.WriteMessage(websocket.TextMessage, []byte("4after"))
	if got := readText(t, ws); got != "4after" {
		t.Fatalf("echo on the WebSocket = %q", got)
	}
	waitFor(t, "the transport to switch", func() bool { return ts.session(op.SID).Transport() == TransportWebSocket })
	if res, _ := do(t, "GET", u, "", nil); res.StatusCode != 400 {
		t.Fatalf("poll after the upgrade: %d, want 400", res.StatusCode)
	}
}

func TestUpgradeBadProbe(t *testing.T) {
	ts := newTestServer(t, Config{})
	op, u := handshake(t, ts)
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(ts.url)+"&transport=websocket&sid="+op.SID, nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.WriteMessage(websocket.TextMessage, []byte("4not a probe"))
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := ws.ReadMessage(); err == nil {
		t.Fatal("the probe WebSocket stayed open")
	}
	ws.Close()
	// The session goes on polling.
	send(t, u, "4still")
	if got := poll(t, u); got != "4still" {
		t.Fatalf("poll = %q", got)
	}
}

func TestShutdown(t *testing.T) {
	ts := newTestServer(t, Config{})
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(ts.url)+"&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	readText(t, ws)
	op, u := handshake(t, ts)
	parked := make(chan string, 1)
	go func() {
		res, err := http.Get(u)
		if err != nil {
			parked <- err.Error()
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		parked <- string(b)
	}()
	waitFor(t, "the poll to park", ts.session(op.SID).pollPending)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// Nothing but the transport's close: the WebSocket gets close 1001,
	// the poll Engine.IO's close packet.
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, b, err := ws.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Fatalf("WebSocket read after Shutdown = %q, %v; want close 1001", b, err)
	}
	if got := <-parked; got != "1" {
		t.Fatalf("parked poll got %q, want the close packet", got)
	}
	if res, _ := do(t, "GET", ts.url+"&transport=polling", "", nil); res.StatusCode != 503 {
		t.Fatalf("handshake after Shutdown: %d, want 503", res.StatusCode)
	}
	if ts.Len() != 0 {
		t.Fatalf("%d sessions left", ts.Len())
	}
}

// TestForward: two servers, no sticky sessions. Every request after the
// handshake goes to the server that does not hold the session, which
// forwards it to the owner named by the sid's prefix.
func TestForward(t *testing.T) {
	var owners sync.Map // prefix → *httptest.Server
	forward := func(sid string, r *http.Request) http.Handler {
		if r.Header.Get("X-Forwarded-By-Test") != "" {
			return nil // never twice
		}
		prefix, _, ok := strings.Cut(sid, ".")
		v, found := owners.Load(prefix)
		if !ok || !found {
			return nil
		}
		target, _ := url.Parse(v.(*httptest.Server).URL)
		return &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.Out.Header.Set("X-Forwarded-By-Test", "1")
		}}
	}
	newOwner := func(name string) *testServer {
		return newTestServer(t, Config{
			NewSID:  func() (string, error) { return RandomSID(name + ".") },
			Forward: forward,
		})
	}
	a, b := newOwner("a"), newOwner("b")
	owners.Store("a", a.http)
	owners.Store("b", b.http)

	op, _ := handshake(t, a)
	if !strings.HasPrefix(op.SID, "a.") {
		t.Fatalf("sid %q does not name its owner", op.SID)
	}
	viaB := b.url + "&transport=polling&sid=" + op.SID
	send(t, viaB, "4via b")
	if got := poll(t, viaB); got != "4via b" {
		t.Fatalf("poll via b = %q", got)
	}
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(b.url)+"&transport=websocket&sid="+op.SID, nil)
	if err != nil {
		t.Fatalf("upgrade via b: %v", err)
	}
	defer ws.Close()
	ws.WriteMessage(websocket.TextMessage, []byte("2probe"))
	if got := readText(t, ws); got != "3probe" {
		t.Fatalf("probe via b = %q", got)
	}
	ws.WriteMessage(websocket.TextMessage, []byte("5"))
	ws.WriteMessage(websocket.TextMessage, []byte("4upgraded"))
	if got := readText(t, ws); got != "4upgraded" {
		t.Fatalf("echo via b = %q", got)
	}
	if a.Len() != 1 || b.Len() != 0 {
		t.Fatalf("sessions: a %d, b %d; want 1, 0", a.Len(), b.Len())
	}
	// A sid whose owner is unknown is refused.
	if res, _ := do(t, "GET", b.url+"&transport=polling&sid=zz.abc", "", nil); res.StatusCode != 400 {
		t.Fatalf("unknown owner: %d", res.StatusCode)
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := NewServer(Config{}); err == nil {
		t.Fatal("no OnOpen: no error")
	}
	if _, err := NewServer(Config{OnOpen: script(echo), DisablePolling: true, DisableWebSocket: true}); err == nil {
		t.Fatal("no transport: no error")
	}
	if _, err := NewServer(Config{OnOpen: script(echo), PingInterval: -1}); err == nil {
		t.Fatal("negative interval: no error")
	}
}

// TestUpgradeUnderLoad: the server sends while the client upgrades; every
// message arrives once and in order, on polling before the switch and on the
// WebSocket after.
func TestUpgradeUnderLoad(t *testing.T) {
	const n = 2000
	ts := newTestServer(t, Config{SendQueue: n, OnOpen: script(func(s *Session) {
		go func() {
			for i := range n {
				if s.Send(Message{Data: []byte(strconv.Itoa(i))}) != nil {
					return
				}
				// Spread the sends over the upgrade (load shape, not
				// synchronisation: any interleaving must pass).
				time.Sleep(20 * time.Microsecond)
			}
		}()
		echo(s)
	})})
	op, u := handshake(t, ts)
	next := 0
	take := func(data string) {
		t.Helper()
		if data != strconv.Itoa(next) {
			t.Fatalf("got message %q, want %d", data, next)
		}
		next++
	}
	takePayload := func(body string) {
		t.Helper()
		if err := DecodePayload([]byte(body), func(p Packet) error {
			if p.Type == PacketMessage {
				take(string(p.Data))
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	takePayload(poll(t, u))
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(ts.url)+"&transport=websocket&sid="+op.SID, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	takePayload(poll(t, u))
	ws.WriteMessage(websocket.TextMessage, []byte("2probe"))
	if got := readText(t, ws); got != "3probe" {
		t.Fatalf("probe answer %q", got)
	}
	takePayload(poll(t, u)) // answered at once: what is queued, or a noop
	ws.WriteMessage(websocket.TextMessage, []byte("5"))
	onPolling := next
	defer func() { t.Logf("%d messages on polling, %d on the WebSocket", onPolling, n-onPolling) }()
	for next < n {
		got := readText(t, ws)
		if got == "2" {
			continue
		}
		if !strings.HasPrefix(got, "4") {
			t.Fatalf("unexpected frame %q", got)
		}
		take(got[1:])
	}
}

func TestCloseFlushesWebSocket(t *testing.T) {
	reqs := make(chan *http.Request, 1)
	ts := newTestServer(t, Config{OnOpen: func(s *Session, r *http.Request) Handler {
		reqs <- r
		return script(func(s *Session) {
			s.Send(Message{Data: []byte("a")}, Message{Binary: true, Data: []byte{7}})
			s.Close(ReasonServerClose)
		})(s, r)
	}})
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(ts.url)+"&transport=websocket&token=x", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	readText(t, ws) // open
	if got := readText(t, ws); got != "4a" {
		t.Fatalf("first frame %q", got)
	}
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if typ, b, err := ws.ReadMessage(); err != nil || typ != websocket.BinaryMessage || string(b) != "\x07" {
		t.Fatalf("second frame %d %q %v", typ, b, err)
	}
	if _, _, err := ws.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Fatalf("after the queue: %v, want close 1000", err)
	}
	r := <-reqs
	if r.URL.Query().Get("token") != "x" || r.RemoteAddr == "" {
		t.Fatalf("OnOpen's request: %v %q", r.URL, r.RemoteAddr)
	}
}

// TestCloseDuringProbe: a session closed after its probe was answered
// (the client has paused polling and polls no more, as socket.io-client
// does while it upgrades) writes what was queued, then the close, on the
// probe once the upgrade packet comes: a CONNECT_ERROR sent as the client
// upgrades reaches it. A probe that was not answered yet, or whose upgrade
// packet never comes, is closed.
func TestCloseDuringProbe(t *testing.T) {
	refuse := func(s *Session) {
		if m, err := next(s); err == nil {
			s.Send(Message{Data: append([]byte("refused "), m.Data...)})
			s.Close(ReasonServerClose)
		}
	}
	probe := func(t *testing.T, ts *testServer, sid string, answer bool) *websocket.Conn {
		t.Helper()
		ws, _, err := websocket.DefaultDialer.Dial(wsURL(ts.url)+"&transport=websocket&sid="+sid, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ws.Close() })
		if answer {
			ws.WriteMessage(websocket.TextMessage, []byte("2probe"))
			if got := readText(t, ws); got != "3probe" {
				t.Fatalf("probe answer %q", got)
			}
		}
		return ws
	}
	closedAfter := func(t *testing.T, ws *websocket.Conn, limit time.Duration) {
		t.Helper()
		ws.SetReadDeadline(time.Now().Add(limit))
		if _, b, err := ws.ReadMessage(); err == nil {
			t.Fatalf("the probe got %q, want it closed", b)
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("the probe WebSocket outlived its session")
		}
	}

	t.Run("upgrade after the close", func(t *testing.T) {
		ts := newTestServer(t, Config{CloseFlush: 50 * time.Millisecond, PingTimeout: 100 * time.Millisecond, OnOpen: script(refuse)})
		op, u := handshake(t, ts)
		ws := probe(t, ts, op.SID, true)
		send(t, u, "4alice")
		if r := ts.endReason(t, op.SID); r != ReasonServerClose {
			t.Fatalf("reason %v", r)
		}
		time.Sleep(300 * time.Millisecond) // past CloseFlush and PingTimeout: the upgrade is late
		ws.WriteMessage(websocket.TextMessage, []byte("5"))
		if got := readText(t, ws); got != "4refused alice" {
			t.Fatalf("after the upgrade %q, want the queued message", got)
		}
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := ws.ReadMessage(); !websocket.IsCloseError(err, ReasonServerClose.Code) {
			t.Fatalf("after the queue: %v, want close %d", err, ReasonServerClose.Code)
		}
	})
	t.Run("a poll took the queue", func(t *testing.T) {
		ts := newTestServer(t, Config{OnOpen: script(refuse)})
		op, u := handshake(t, ts)
		ws := probe(t, ts, op.SID, true)
		send(t, u, "4bob")
		if got := poll(t, u); got != "4refused bob\x1e1" {
			t.Fatalf("poll = %q, want the message then the close packet", got)
		}
		ws.WriteMessage(websocket.TextMessage, []byte("5"))
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, b, err := ws.ReadMessage(); !websocket.IsCloseError(err, ReasonServerClose.Code) {
			t.Fatalf("probe after the poll: %q %v, want only the close", b, err)
		}
	})
	t.Run("no upgrade packet", func(t *testing.T) {
		ts := newTestServer(t, Config{UpgradeTimeout: 200 * time.Millisecond, OnOpen: script(refuse)})
		op, u := handshake(t, ts)
		ws := probe(t, ts, op.SID, true)
		send(t, u, "4carol")
		closedAfter(t, ws, 5*time.Second)
		if r := ts.endReason(t, op.SID); r != ReasonServerClose {
			t.Fatalf("reason %v", r)
		}
	})
	t.Run("probe not answered", func(t *testing.T) {
		ts := newTestServer(t, Config{})
		op, _ := handshake(t, ts)
		ws := probe(t, ts, op.SID, false)
		ts.session(op.SID).Close(ReasonShutdown)
		closedAfter(t, ws, 5*time.Second)
		if r := ts.endReason(t, op.SID); r != ReasonShutdown {
			t.Fatalf("reason %v", r)
		}
	})
}

// TestSendWait: a backlog longer than the send queue waits for the polls
// to take it, in order, and the session stays open; once the session
// closes SendWait returns its CloseError, and a closed done makes it give
// up.
func TestSendWait(t *testing.T) {
	const n = 20
	errs := make(chan error, 2)
	ts := newTestServer(t, Config{SendQueue: 4, OnOpen: script(func(s *Session) {
		msgs := make([]Message, n)
		for i := range msgs {
			msgs[i] = Message{Data: []byte(strconv.Itoa(i))}
		}
		errs <- s.SendWait(nil, msgs...)
		// The queue is full and nobody polls: a closed done gives up.
		done := make(chan struct{})
		close(done)
		full := make([]Message, 9)
		for i := range full {
			full[i] = Message{Data: []byte("x")}
		}
		errs <- s.SendWait(done, full...)
		echo(s)
	})})
	op, u := handshake(t, ts)
	var got []string
	for len(got) < n {
		for _, p := range strings.Split(poll(t, u), "\x1e") {
			if p == "2" {
				continue // a ping
			}
			if !strings.HasPrefix(p, "4") {
				t.Fatalf("packet %q, want a message", p)
			}
			got = append(got, p[1:])
		}
	}
	for i, m := range got {
		if m != strconv.Itoa(i) {
			t.Fatalf("message %d = %q; all: %q", i, m, got)
		}
	}
	if err := <-errs; err != nil {
		t.Fatalf("SendWait = %v", err)
	}
	if err := <-errs; err != nil {
		t.Fatalf("SendWait with a closed done = %v", err)
	}
	sess := ts.session(op.SID)
	if sess == nil {
		t.Fatal("the session closed")
	}
	sess.Close(ReasonServerClose)
	var ce *CloseError
	if err := sess.SendWait(nil, Message{Data: []byte("late")}); !errors.As(err, &ce) || ce.Reason != ReasonServerClose {
		t.Fatalf("SendWait on a closed session = %v", err)
	}
}

// TestRequestKeepsContextValues: OnOpen sees the handshake request's
// context values (a caller's admission state).
func TestRequestKeepsContextValues(t *testing.T) {
	type key struct{}
	got := make(chan any, 1)
	srv, err := NewServer(Config{OnOpen: func(s *Session, r *http.Request) Handler {
		got <- r.Context().Value(key{})
		return echoer{s}
	}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		srv.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), key{}, "admitted")))
	}))
	defer hs.Close()
	defer srv.Shutdown(context.Background())
	res, _ := do(t, "GET", hs.URL+"/socket.io/?EIO=4&transport=polling", "", nil)
	if res.StatusCode != 200 {
		t.Fatalf("handshake: %d", res.StatusCode)
	}
	if v := <-got; v != "admitted" {
		t.Fatalf("context value %v", v)
	}
}

// TestTrySend: messages that do not all fit in the queue are refused whole
// and the session stays open; WaitSpace returns once a poll takes the queue,
// after which they fit; on a closed session TrySend returns its CloseError.
func TestTrySend(t *testing.T) {
	type result struct {
		ok  bool
		err error
	}
	results := make(chan result, 3)
	ts := newTestServer(t, Config{SendQueue: 2, OnOpen: script(func(s *Session) {
		ok, err := s.TrySend(Message{Data: []byte("a")}, Message{Data: []byte("b")})
		results <- result{ok, err}
		ok, err = s.TrySend(Message{Data: []byte("c")})
		results <- result{ok, err} // full: refused, the session stays open
		for {
			s.WaitSpace(nil, 10*time.Second)
			if ok, err = s.TrySend(Message{Data: []byte("c")}); ok || err != nil {
				break
			}
		}
		results <- result{ok, err}
		echo(s)
	})})
	op, u := handshake(t, ts)
	for i, want := range []result{{true, nil}, {false, nil}} {
		if got := <-results; got != want {
			t.Fatalf("TrySend %d = %v, %v; want %v", i, got.ok, got.err, want.ok)
		}
	}
	var got []string
	for len(got) < 3 {
		for _, p := range strings.Split(poll(t, u), "\x1e") {
			if p != "2" {
				got = append(got, p)
			}
		}
	}
	if strings.Join(got, ",") != "4a,4b,4c" {
		t.Fatalf("polled %q", got)
	}
	if r := <-results; !r.ok || r.err != nil {
		t.Fatalf("TrySend after WaitSpace = %v, %v", r.ok, r.err)
	}
	sess := ts.session(op.SID)
	sess.Close(ReasonServerClose)
	var ce *CloseError
	if _, err := sess.TrySend(Message{Data: []byte("late")}); !errors.As(err, &ce) {
		t.Fatalf("TrySend on a closed session = %v", err)
	}
}

// TestSendTail: a message's Data and Tail reach the client as one message
// on both transports, Data shared between messages untouched.
func TestSendTail(t *testing.T) {
	shared := []byte(`2["chat",1`)
	msgs := []Message{
		{Data: shared, Tail: []byte(`,"a"]`)},
		{Data: shared, Tail: []byte(`,"b"]`)},
		{Data: []byte("plain")},
		{Data: []byte{1, 2}, Tail: []byte{3}, Binary: true},
		{Data: []byte{9}, Binary: true},
	}
	want := []Packet{
		{Type: PacketMessage, Data: []byte(`2["chat",1,"a"]`)},
		{Type: PacketMessage, Data: []byte(`2["chat",1,"b"]`)},
		{Type: PacketMessage, Data: []byte("plain")},
		{Type: PacketMessage, Data: []byte{1, 2, 3}, Binary: true},
		{Type: PacketMessage, Data: []byte{9}, Binary: true},
	}
	check := func(t *testing.T, got []Packet) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("got %d messages, want %d", len(got), len(want))
		}
		for i := range want {
			if got[i].Binary != want[i].Binary || string(got[i].Data) != string(want[i].Data) {
				t.Fatalf("message %d = %q (binary %v), want %q (binary %v)", i, got[i].Data, got[i].Binary, want[i].Data, want[i].Binary)
			}
		}
		if string(shared) != `2["chat",1` {
			t.Fatalf("the shared Data changed: %q", shared)
		}
	}
	sendAll := func(s *Session) {
		if err := s.Send(msgs...); err != nil {
			t.Errorf("Send: %v", err)
		}
		<-s.Done()
	}
	t.Run("polling", func(t *testing.T) {
		ts := newTestServer(t, Config{OnOpen: script(sendAll)})
		_, u := handshake(t, ts)
		var got []Packet
		for len(got) < len(want) {
			if err := DecodePayload([]byte(poll(t, u)), func(p Packet) error {
				got = append(got, p)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		check(t, got)
	})
	t.Run("websocket", func(t *testing.T) {
		ts := newTestServer(t, Config{OnOpen: script(sendAll)})
		ws, _, err := websocket.DefaultDialer.Dial(wsURL(ts.url)+"&transport=websocket", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		readText(t, ws) // open
		var got []Packet
		for len(got) < len(want) {
			ws.SetReadDeadline(time.Now().Add(5 * time.Second))
			typ, b, err := ws.ReadMessage()
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			p, err := DecodePacket(b, typ == websocket.BinaryMessage)
			if err != nil {
				t.Fatalf("frame %q: %v", b, err)
			}
			got = append(got, p)
		}
		check(t, got)
	})
}

// TestQueue: messages handed to Queue (written by a writer goroutine, never
// the caller's) arrive whole and in order, mixed with Send's.
func TestQueue(t *testing.T) {
	const n = 200
	ts := newTestServer(t, Config{OnOpen: script(func(s *Session) {
		for i := range n {
			m := Message{Data: []byte(strconv.Itoa(i)), Tail: []byte("!")}
			var err error
			if i%2 == 0 {
				err = s.Queue(m)
			} else {
				err = s.Send(m)
			}
			if err != nil {
				t.Errorf("message %d: %v", i, err)
				return
			}
		}
	})})
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(ts.url)+"&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	readText(t, ws) // open
	for i := range n {
		if got, want := readText(t, ws), "4"+strconv.Itoa(i)+"!"; got != want {
			t.Fatalf("message %d: %q, want %q", i, got, want)
		}
	}
}

// stopper is a Handler that answers "bye <message>" to the message "stop"
// and ends the session (Message returns false), echoes every other one, and
// checks that its calls never overlap and that none follows Closed.
type stopper struct {
	s       *Session
	t       *testing.T
	running atomic.Bool
	closed  atomic.Bool
	got     chan string
	ended   chan struct{}
}

func (h *stopper) Message(m Message) bool {
	if !h.running.CompareAndSwap(false, true) {
		h.t.Error("two Message calls at once")
	}
	defer h.running.Store(false)
	if h.closed.Load() {
		h.t.Error("Message after Closed")
	}
	h.got <- string(m.Data)
	if string(m.Data) == "stop" {
		h.s.Send(Message{Data: []byte("bye")})
		return false
	}
	h.s.Send(m)
	return true
}

func (h *stopper) Closed() {
	if h.running.Load() {
		h.t.Error("Closed while Message runs")
	}
	h.closed.Store(true)
	close(h.ended)
}

// TestHandlerEndsSession: a Handler's Message that returns false closes the
// session (ReasonServerClose) after what it sent: on polling the POST that
// carried the message is answered ok, the rest of its payload is dropped,
// and the next poll gets the reply and the close; on a WebSocket the reply
// comes, then the close. Closed runs once, after the last Message.
func TestHandlerEndsSession(t *testing.T) {
	var h *stopper
	newStopper := func(t *testing.T) *testServer {
		return newTestServer(t, Config{OnOpen: func(s *Session, _ *http.Request) Handler {
			h = &stopper{s: s, t: t, got: make(chan string, 10), ended: make(chan struct{})}
			return h
		}})
	}
	t.Run("polling", func(t *testing.T) {
		ts := newStopper(t)
		op, u := handshake(t, ts)
		send(t, u, "4a\x1e4stop\x1e4dropped")
		if got := poll(t, u); got != "4a\x1e4bye\x1e1" {
			t.Fatalf("poll = %q, want the echo, the reply and the close", got)
		}
		if r := ts.endReason(t, op.SID); r != ReasonServerClose {
			t.Fatalf("reason %v", r)
		}
		<-h.ended
		if n := len(h.got); n != 2 {
			t.Fatalf("the handler got %d messages, want 2 (none after stop)", n)
		}
	})
	t.Run("websocket", func(t *testing.T) {
		ts := newStopper(t)
		ws, _, err := websocket.DefaultDialer.Dial(wsURL(ts.url)+"&transport=websocket", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		readText(t, ws) // open
		for _, m := range []string{"4a", "4stop", "4dropped"} {
			if err := ws.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
				t.Fatal(err)
			}
		}
		for _, want := range []string{"4a", "4bye"} {
			if got := readText(t, ws); got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
		}
		if _, _, err := ws.ReadMessage(); !websocket.IsCloseError(err, ReasonServerClose.Code) {
			t.Fatalf("after the reply: %v, want close %d", err, ReasonServerClose.Code)
		}
		<-h.ended
		if n := len(h.got); n != 2 {
			t.Fatalf("the handler got %d messages, want 2 (none after stop)", n)
		}
	})
}

// TestIdleWebSocketHoldsNoGoroutine: WebSocket sessions that are open but
// silent hold no goroutine (their readers park: internal/wsread), and still
// answer at once when their client sends. On a listener without asyncconn
// (TLS, say) each holds a reader goroutine instead.
func TestIdleWebSocketHoldsNoGoroutine(t *testing.T) {
	if listenPlain {
		t.Skip("readers park only on asyncconn connections")
	}
	const n = 50
	ts := newTestServer(t, Config{OnOpen: func(s *Session, _ *http.Request) Handler {
		return &stopper{s: s, t: t, got: make(chan string, 10), ended: make(chan struct{})}
	}})
	base := runtime.NumGoroutine()
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		ws, _, err := websocket.DefaultDialer.Dial(wsURL(ts.url)+"&transport=websocket", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		readText(t, ws) // open
		conns[i] = ws
	}
	// The client side holds n goroutines of its own at most (none: the
	// dialer's connections are read here); the server none per session. A
	// few may still be ending.
	waitFor(t, "idle sessions to hold no goroutine", func() bool { return runtime.NumGoroutine()-base < n/2 })
	for i, ws := range conns {
		if err := ws.WriteMessage(websocket.TextMessage, []byte("4hi")); err != nil {
			t.Fatal(err)
		}
		if got := readText(t, ws); got != "4hi" {
			t.Fatalf("session %d answered %q", i, got)
		}
	}
}
