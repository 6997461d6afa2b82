package relay_test

// Socket.IO on real relays: the official socket.io-client (testenv/socketio,
// driven by driver.mjs in a Node process) against relays on kfake and on
// real Kafka, beside native /ws clients.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/relay"
	socketiotest "github.com/roomlog/roomlog/testenv/socketio"
)

// sioReport is one line of driver.mjs.
type sioReport struct {
	Type      string            `json:"type"`
	ID        json.RawMessage   `json:"id"`
	Transport string            `json:"transport"`
	Message   string            `json:"message"`
	Data      json.RawMessage   `json:"data"`
	Reason    string            `json:"reason"`
	Name      string            `json:"name"`
	Args      []json.RawMessage `json:"args"`
	Room      string            `json:"room"`
	Ack       sioAck            `json:"ack"`
	Recovered bool              `json:"recovered"`
}

// sioAck is what the relay acks: {ok, pos, ...} or {ok:false, code, message}.
type sioAck struct {
	OK        bool   `json:"ok"`
	Pos       string `json:"pos"`
	Code      string `json:"code"`
	Message   string `json:"message"`
	Duplicate bool   `json:"duplicate"`
	Recovered *bool  `json:"recovered"`
}

// sioMeta is a delivered message's last argument.
type sioMeta struct {
	Room string `json:"room"`
	Pos  string `json:"pos"`
	From string `json:"from"`
	User string `json:"user"`
}

// sioClient is a socket.io-client in a Node process.
type sioClient struct {
	t      *testing.T
	in     io.WriteCloser
	mu     sync.Mutex
	got    []sioReport
	notify chan struct{}
	ended  chan struct{}
	nextID atomic.Int64
}

func newSIO(t *testing.T, u string, opts map[string]any) *sioClient {
	t.Helper()
	node, script := socketiotest.Script(t, "driver.mjs")
	o, _ := json.Marshal(opts)
	cmd := exec.Command(node, script, u, string(o))
	cmd.Dir = filepath.Dir(script)
	cmd.Stderr = os.Stderr
	in, _ := cmd.StdinPipe()
	outp, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &sioClient{t: t, in: in, notify: make(chan struct{}, 1), ended: make(chan struct{})}
	go func() {
		defer close(c.ended)
		sc := bufio.NewScanner(outp)
		sc.Buffer(nil, 4<<20)
		for sc.Scan() {
			var r sioReport
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				continue
			}
			c.mu.Lock()
			c.got = append(c.got, r)
			c.mu.Unlock()
			select {
			case c.notify <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return c
}

func (c *sioClient) command(v map[string]any) {
	c.t.Helper()
	b, _ := json.Marshal(v)
	if _, err := c.in.Write(append(b, '\n')); err != nil {
		c.t.Fatalf("driver: %v", err)
	}
}

// wait takes the first report (in arrival order) that match holds for.
func (c *sioClient) wait(what string, match func(*sioReport) bool) sioReport {
	c.t.Helper()
	deadline := time.After(waitLimit)
	for {
		c.mu.Lock()
		for i := range c.got {
			if match(&c.got[i]) {
				r := c.got[i]
				c.got = append(c.got[:i], c.got[i+1:]...)
				c.mu.Unlock()
				return r
			}
		}
		c.mu.Unlock()
		select {
		case <-c.notify:
		case <-c.ended:
			c.t.Fatalf("the client ended waiting for %s", what)
		case <-deadline:
			c.mu.Lock()
			got, _ := json.Marshal(c.got)
			c.mu.Unlock()
			c.t.Fatalf("no %s within %v; the client reported, unclaimed: %s", what, waitLimit, got)
		}
	}
}

func (c *sioClient) waitType(typ string) sioReport {
	c.t.Helper()
	return c.wait(typ, func(r *sioReport) bool { return r.Type == typ })
}

// connected waits for the connection and returns the socket id.
func (c *sioClient) connected() string {
	c.t.Helper()
	r := c.wait("connect", func(r *sioReport) bool { return r.Type == "connect" || r.Type == "connect_error" })
	if r.Type != "connect" {
		c.t.Fatalf("connect_error %q %s", r.Message, r.Data)
	}
	var id string
	_ = json.Unmarshal(r.ID, &id)
	return id
}

// emitAck emits event with args and waits for its ack.
func (c *sioClient) emitAck(event string, args ...any) sioAck {
	c.t.Helper()
	return c.emitWith("emit", event, args...)
}

func (c *sioClient) emitWith(op, event string, args ...any) sioAck {
	c.t.Helper()
	id := c.nextID.Add(1)
	c.command(map[string]any{"op": op, "event": event, "args": args, "id": id})
	r := c.wait(fmt.Sprintf("ack %d", id), func(r *sioReport) bool { return r.Type == "ack" && string(r.ID) == fmt.Sprint(id) })
	var a sioAck
	if len(r.Args) != 1 || json.Unmarshal(r.Args[0], &a) != nil {
		c.t.Fatalf("%s: ack arguments %s", event, r.Args)
	}
	return a
}

// event waits for the next event named name: its data and meta.
func (c *sioClient) event(name string) (json.RawMessage, sioMeta) {
	c.t.Helper()
	r := c.wait("event "+name, func(r *sioReport) bool { return r.Type == "event" && r.Name == name })
	data, m, _ := c.eventArgs(name, r)
	return data, m
}

// eventArgs checks a delivered event's arguments: data, meta and, with
// connection state recovery, the socket's offset (a string) last.
func (c *sioClient) eventArgs(name string, r sioReport) (json.RawMessage, sioMeta, string) {
	c.t.Helper()
	var m sioMeta
	var off string
	if len(r.Args) < 2 || len(r.Args) > 3 || json.Unmarshal(r.Args[1], &m) != nil ||
		(len(r.Args) == 3 && (json.Unmarshal(r.Args[2], &off) != nil || off == "")) {
		c.t.Fatalf("event %s: arguments %s", name, r.Args)
	}
	return r.Args[0], m, off
}

func httpURL(s *relay.Server) string { return "http://" + s.Addr().String() }

// roundRobin is a proxy that alternates every HTTP request (and WebSocket)
// between the relays: no sticky sessions.
func roundRobin(t *testing.T, relays ...*relay.Server) string {
	t.Helper()
	proxies := make([]*httputil.ReverseProxy, len(relays))
	for i, r := range relays {
		target, _ := url.Parse(httpURL(r))
		proxies[i] = &httputil.ReverseProxy{
			Rewrite:      func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
			ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) },
		}
	}
	var n atomic.Uint64
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxies[n.Add(1)%uint64(len(proxies))].ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	return front.URL
}

func seqOf(t *testing.T, data json.RawMessage) int {
	t.Helper()
	var d struct{ Seq int }
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("data %s: %v", data, err)
	}
	return d.Seq
}

// TestSocketIOCrossRelay: a Socket.IO client on relay A receives the
// publishes of a native client on relay B, in order, once, at the positions
// a native client in the room sees; its own publish is acked at the
// position the native client receives it.
func TestSocketIOCrossRelay(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		topic := newTopic(t)
		ra := startRelay(t, b, topic, nil)
		rb := startRelay(t, b, topic, nil)
		sc := newSIO(t, httpURL(ra), nil)
		sid := sc.connected()
		if a := sc.emitAck("join", "lobby"); !a.OK || a.Pos == "" {
			t.Fatalf("join ack %+v", a)
		}
		native := dial(t, ra)
		native.join("lobby")
		pub := dial(t, rb)

		const n = 300
		go func() {
			for i := range n {
				pub.send(map[string]any{"op": "publish", "room": "lobby", "event": "chat", "data": map[string]int{"seq": i}, "id": i})
			}
		}()
		for i := range n {
			if f := pub.reply(); f.Op != "ack" {
				t.Fatalf("publish %d: %+v", i, f)
			}
		}
		pos := make([]string, n)
		for i := range n {
			f := native.message()
			if seqOf(t, f.Data) != i {
				t.Fatalf("native message %d: %+v", i, f)
			}
			pos[i] = f.Pos
		}
		for i := range n {
			data, meta := sc.event("chat")
			if seqOf(t, data) != i || meta.Room != "lobby" || meta.Pos != pos[i] || meta.From != pub.id {
				t.Fatalf("socket.io message %d: %s %+v, want seq %d at %s from %s", i, data, meta, i, pos[i], pub.id)
			}
		}
		a := sc.emitAck("chat", "lobby", map[string]int{"seq": n}, map[string]string{"mid": "m-1"})
		f := native.message()
		if !a.OK || a.Pos != f.Pos || f.From != sid || seqOf(t, f.Data) != n {
			t.Fatalf("socket.io publish: ack %+v, native got %+v (socket %s)", a, f, sid)
		}
		if a2 := sc.emitAck("chat", "lobby", map[string]int{"seq": n}, map[string]string{"mid": "m-1"}); !a2.OK || !a2.Duplicate || a2.Pos != a.Pos {
			t.Fatalf("retry with the same mid: %+v, want a duplicate of %s", a2, a.Pos)
		}
		// Every message arrived once: the next is the client's own publish.
		if data, _ := sc.event("chat"); seqOf(t, data) != n {
			t.Fatalf("after %d messages got %s", n, data)
		}
	})
}

// TestSocketIOForeignRecords: a record from a plain Kafka producer (key =
// room) reaches a Socket.IO client; a Socket.IO publish reaches a native
// client, data unchanged.
func TestSocketIOForeignRecords(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		topic := newTopic(t)
		r := startRelay(t, b, topic, nil)
		sc := newSIO(t, httpURL(r), map[string]any{"transports": []string{"websocket"}})
		sid := sc.connected()
		if a := sc.emitAck("join", "lobby"); !a.OK {
			t.Fatalf("join %+v", a)
		}
		native := dial(t, r)
		native.join("lobby")

		cl, err := kgo.NewClient(kgo.SeedBrokers(b.brokers...), kgo.DefaultProduceTopic(topic))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("lobby"), Value: []byte(`{"text":"from kafka"}`)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		data, meta := sc.event("message")
		if string(data) != `{"text":"from kafka"}` || meta.Room != "lobby" || meta.From != "" || meta.Pos == "" {
			t.Fatalf("kafka record: %s %+v", data, meta)
		}
		if f := native.message(); f.Pos != meta.Pos {
			t.Fatalf("native got %+v, socket.io %+v", f, meta)
		}
		a := sc.emitAck("chat", "lobby", map[string]any{"text": "from socket.io", "n": []int{1, 2}})
		f := native.message()
		if !a.OK || f.Event != "chat" || string(f.Data) != `{"n":[1,2],"text":"from socket.io"}` || f.From != sid || f.Pos != a.Pos {
			t.Fatalf("socket.io publish: ack %+v, native %+v", a, f)
		}
	})
}

// TestSocketIOBadInput: each bad input gets a clear error or a close,
// nothing reaches the log, and the socket that got an error ack stays
// usable.
func TestSocketIOBadInput(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		topic := newTopic(t)
		k := newTestKeys(t)
		r := authRelay(t, b, topic, k, func(c *relay.Config) { c.MaxMessageBytes = 4096 })
		u := httpURL(r)
		good := map[string]any{"token": sign(t, jwt.SigningMethodHS256, k.hs, "", claims("alice", []string{"public-*"}, nil))}
		once := map[string]any{"reconnection": false}

		sc := newSIO(t, u, map[string]any{"auth": good})
		sc.connected()
		if a := sc.emitAck("join", "public-1"); !a.OK {
			t.Fatalf("join %+v", a)
		}
		before := endOffsets(t, b, topic)

		connectError := func(name string, c *sioClient, message, code string) {
			t.Helper()
			r := c.waitType("connect_error")
			var data struct{ Code string }
			_ = json.Unmarshal(r.Data, &data)
			if (message != "" && r.Message != message) || data.Code != code {
				t.Fatalf("%s: connect_error %q %s, want %q code %q", name, r.Message, r.Data, message, code)
			}
		}
		connectError("no token", newSIO(t, u, once), "", "unauthorized")
		connectError("bad token", newSIO(t, u, map[string]any{"reconnection": false, "auth": map[string]any{"token": "not.a.token"}}), "", "unauthorized")
		connectError("namespace", newSIO(t, u+"/admin", map[string]any{"reconnection": false, "auth": good}), "Invalid namespace", "")

		for _, tt := range []struct {
			name, op, event string
			args            []any
			code            string
		}{
			{"forbidden room", "emit", "join", []any{"secret"}, "forbidden"},
			{"binary attachment", "emitBinary", "chat", []any{"public-1"}, "bad_request"},
			{"reserved prefix", "emit", "rl:nope", []any{"public-1"}, "unknown_op"},
			{"room not a string", "emit", "chat", []any{42, "x"}, "invalid_room"},
			{"not joined", "emit", "rl:set", []any{"public-2", "k", 1}, "not_joined"},
		} {
			if a := sc.emitWith(tt.op, tt.event, tt.args...); a.OK || a.Code != tt.code || a.Message == "" {
				t.Fatalf("%s: ack %+v, want code %s", tt.name, a, tt.code)
			}
		}
		if a := sc.emitAck("rl:get", "public-1"); !a.OK {
			t.Fatalf("after the errors the socket is unusable: %+v", a)
		}

		malformed := newSIO(t, u, map[string]any{"reconnection": false, "auth": good, "transports": []string{"websocket"}})
		malformed.connected()
		malformed.command(map[string]any{"op": "raw", "data": `2["chat",`})
		malformed.waitType("disconnect")

		big := newSIO(t, u, map[string]any{"reconnection": false, "auth": good, "transports": []string{"websocket"}})
		big.connected()
		big.command(map[string]any{"op": "emit", "event": "chat", "args": []any{"public-1", strings.Repeat("x", 5000)}})
		big.waitType("disconnect")

		if a := sc.emitAck("rl:get", "public-1"); !a.OK {
			t.Fatalf("the relay no longer serves: %+v", a)
		}
		if got := endOffsets(t, b, topic) - before; got != 0 {
			t.Fatalf("bad input appended %d records", got)
		}
	})
}

// TestSocketIORoundRobin: the client's default transports (polling, then
// the upgrade) through a proxy that alternates every request between two
// relays: it connects, upgrades and exchanges messages, nothing lost; the
// relays forwarded requests to the session's owner.
func TestSocketIORoundRobin(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		topic := newTopic(t)
		ra := startRelay(t, b, topic, nil)
		rb := startRelay(t, b, topic, nil)
		leasesKnown(t, ra, rb)
		sc := newSIO(t, roundRobin(t, ra, rb), nil)
		sid := sc.connected()
		if a := sc.emitAck("join", "lobby"); !a.OK {
			t.Fatalf("join %+v", a)
		}
		if up := sc.waitType("upgrade"); up.Transport != "websocket" {
			t.Fatalf("upgrade to %q", up.Transport)
		}
		native := dial(t, rb)
		native.join("lobby")
		const n = 100
		for i := range n {
			native.send(map[string]any{"op": "publish", "room": "lobby", "event": "chat", "data": map[string]int{"seq": i}})
		}
		for i := range n {
			if data, _ := sc.event("chat"); seqOf(t, data) != i {
				t.Fatalf("message %d: %s", i, data)
			}
		}
		for i := range n {
			if a := sc.emitAck("chat", "lobby", map[string]int{"seq": n + i}); !a.OK {
				t.Fatalf("publish %d: %+v", i, a)
			}
		}
		for i := range 2 * n {
			f := native.message()
			if seqOf(t, f.Data) != i {
				t.Fatalf("native message %d: %+v", i, f)
			}
			if i >= n && f.From != sid {
				t.Fatalf("message %d from %s, want %s", i, f.From, sid)
			}
		}
		if fw := forwarded(t, ra) + forwarded(t, rb); fw == 0 {
			t.Fatal("no request was forwarded to its session's owner")
		}
	})
}

// leasesKnown returns once each relay has folded the other's first lease
// (and so knows its address): a relay writes its leases before it is ready,
// and a record published after that lands behind it in its partition.
func leasesKnown(t *testing.T, ra, rb *relay.Server) {
	t.Helper()
	for _, pair := range [][2]*relay.Server{{ra, rb}, {rb, ra}} {
		sub, pub := dial(t, pair[0]), dial(t, pair[1])
		sub.join("barrier")
		pub.do(map[string]any{"op": "publish", "room": "barrier", "id": 1})
		sub.message()
	}
}

// forwarded reads roomlog_socketio_forwarded_total from a relay's metrics.
func forwarded(t *testing.T, s *relay.Server) int {
	t.Helper()
	res, err := http.Get(httpURL(s) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(body), "\n") {
		var v float64
		if _, err := fmt.Sscanf(line, "roomlog_socketio_forwarded_total %g", &v); err == nil {
			return int(v)
		}
	}
	return 0
}

// TestSocketIODrain (issue 11, test 7): the relay holding a socket drains
// (SIGTERM's Server.Shutdown); the client sees a transport close (no
// DISCONNECT) and reconnects by itself through the proxy to the other relay.
// With connection state recovery (the default) it comes back recovered,
// with the same socket id and every message published meanwhile, without
// rejoining; with recovery off it rejoins with since, missing nothing.
func TestSocketIODrain(t *testing.T) {
	for _, tc := range []struct {
		name     string
		recovery bool
	}{{"recovery", true}, {"rejoin", false}} {
		t.Run(tc.name, func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, b backend) {
				topic := newTopic(t)
				mod := func(c *relay.Config) {
					if !tc.recovery {
						c.SIOMaxDisconnection = -1
					}
				}
				ra := startRelay(t, b, topic, mod)
				rb := startRelay(t, b, topic, mod)
				leasesKnown(t, ra, rb)
				sc := newSIO(t, roundRobin(t, ra, rb), map[string]any{"transports": []string{"websocket"}, "rejoin": "unrecovered"})
				sid := sc.connected()
				if a := sc.emitAck("join", "lobby"); !a.OK {
					t.Fatalf("join %+v", a)
				}
				owner, other := ra, rb
				if strings.HasPrefix(sid, rb.ID()+"-") {
					owner, other = rb, ra
				}
				pub := dial(t, other)
				pub.do(map[string]any{"op": "publish", "room": "lobby", "event": "chat", "data": map[string]int{"seq": 0}, "id": 0})
				r := sc.wait("event chat", func(r *sioReport) bool { return r.Type == "event" && r.Name == "chat" })
				if data, _, off := sc.eventArgs("chat", r); seqOf(t, data) != 0 || (off != "") != tc.recovery {
					t.Fatalf("first message %s, offset %q (recovery %v)", data, off, tc.recovery)
				}

				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				if err := owner.Shutdown(ctx); err != nil {
					t.Fatalf("Shutdown: %v", err)
				}
				if r := sc.waitType("disconnect"); r.Reason != "transport close" {
					t.Fatalf("disconnect reason %q, want transport close (no DISCONNECT packet on drain)", r.Reason)
				}
				const n = 20
				for i := 1; i <= n; i++ {
					pub.do(map[string]any{"op": "publish", "room": "lobby", "event": "chat", "data": map[string]int{"seq": i}, "id": i})
				}
				c := sc.waitType("connect")
				var sid2 string
				_ = json.Unmarshal(c.ID, &sid2)
				if tc.recovery {
					if !c.Recovered || sid2 != sid {
						t.Fatalf("reconnected as %s (recovered %v), want the recovered socket %s", sid2, c.Recovered, sid)
					}
				} else {
					if c.Recovered || !strings.HasPrefix(sid2, other.ID()+"-") {
						t.Fatalf("reconnected as %s (recovered %v), want a new connection of the other relay (%s)", sid2, c.Recovered, other.ID())
					}
					rj := sc.waitType("rejoined")
					if !rj.Ack.OK || rj.Ack.Recovered == nil || !*rj.Ack.Recovered {
						t.Fatalf("rejoin ack %+v", rj.Ack)
					}
				}
				for i := 1; i <= n; i++ {
					if data, _ := sc.event("chat"); seqOf(t, data) != i {
						t.Fatalf("after the drain, message %d: %s", i, data)
					}
				}
				// Live delivery goes on, once.
				pub.do(map[string]any{"op": "publish", "room": "lobby", "event": "chat", "data": map[string]int{"seq": n + 1}, "id": n + 1})
				if data, _ := sc.event("chat"); seqOf(t, data) != n+1 {
					t.Fatalf("live after the recovery: %s", data)
				}
			})
		})
	}
}
