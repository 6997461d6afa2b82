package relay_test

// Socket.IO connection state recovery (issue 11, tests 3 and 4): relays
// that hold sockets run as real `roomlog relay` processes and are killed
// with SIGKILL while messages are published; the official socket.io-client
// reconnects through a round-robin proxy and must come back recovered, with
// its socket id, every message once and in order.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/roomlog/roomlog/record"
	"github.com/roomlog/roomlog/relay"
)

// buildRoomlog builds cmd/roomlog into a temporary folder (the build cache
// makes it quick after the first time).
func buildRoomlog(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "roomlog")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/roomlog")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/roomlog: %v\n%s", err, out)
	}
	return bin
}

// relayProc is a `roomlog relay` process on a fixed address, which a test
// may kill and start again.
type relayProc struct {
	t    *testing.T
	bin  string
	addr string
	args []string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newRelayProc(t *testing.T, bin string, b backend, topic, name string, extra ...string) *relayProc {
	t.Helper()
	p := &relayProc{t: t, bin: bin, addr: freeAddr(t)}
	p.args = []string{"relay", "--listen", p.addr, "--brokers", strings.Join(b.brokers, ","), "--topic", topic,
		"--partitions", "4", "--relay-name", name, "--anonymous", "--rate", "-1", "--demo=false"}
	if b.name == "kafka" {
		p.args = append(p.args, "--replication-factor", "1")
	}
	p.args = append(p.args, extra...)
	t.Cleanup(func() {
		if p.running() {
			p.kill()
		}
		if t.Failed() {
			t.Logf("relay %s output:\n%s", name, p.out)
		}
	})
	p.start()
	return p
}

func (p *relayProc) url() string { return "http://" + p.addr }

func (p *relayProc) running() bool {
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// start runs the process and waits until it is ready.
func (p *relayProc) start() {
	p.t.Helper()
	if p.out == nil {
		p.out = &lockedBuffer{}
	}
	p.cmd = exec.Command(p.bin, p.args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(p.cmd, p.done)
	deadline := time.Now().Add(waitLimit)
	for {
		res, err := http.Get(p.url() + "/readyz")
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		if !p.running() || time.Now().After(deadline) {
			p.t.Fatalf("relay %s did not get ready:\n%s", p.addr, p.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill ends the process with SIGKILL: no drain, no leave records, no
// lease release; its sockets die with it.
func (p *relayProc) kill() { p.signal(syscall.SIGKILL) }

func (p *relayProc) signal(sig syscall.Signal) {
	p.t.Helper()
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(waitLimit):
		p.t.Fatalf("relay %s did not exit on %v", p.addr, sig)
	}
}

// connections reads roomlog_connections from the process's metrics.
func (p *relayProc) connections() int {
	p.t.Helper()
	return metricOf(p.t, p.url(), "roomlog_connections")
}

func metricOf(t *testing.T, base, name string) int {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return int(f)
		}
	}
	return 0
}

// lbProxy is a round-robin load balancer over relays, each of which the
// test takes in and out of rotation (as a health check would).
type lbProxy struct {
	url     string
	proxies []*httputil.ReverseProxy
	up      []atomic.Bool
	n       atomic.Uint64
}

func newLB(t *testing.T, targets ...string) *lbProxy {
	t.Helper()
	lb := &lbProxy{up: make([]atomic.Bool, len(targets))}
	for i, u := range targets {
		target, _ := url.Parse(u)
		lb.proxies = append(lb.proxies, &httputil.ReverseProxy{
			Rewrite:      func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
			ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) },
		})
		lb.up[i].Store(true)
	}
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for range len(lb.proxies) {
			i := lb.n.Add(1) % uint64(len(lb.proxies))
			if lb.up[i].Load() {
				lb.proxies[i].ServeHTTP(w, r)
				return
			}
		}
		w.WriteHeader(http.StatusBadGateway)
	}))
	t.Cleanup(front.Close)
	lb.url = front.URL
	return lb
}

// roomsOnPartitions returns n room names with prefix on n different
// partitions of 4.
func roomsOnPartitions(prefix string, n int) []string {
	var rooms []string
	seen := map[int32]bool{}
	for i := 0; len(rooms) < n; i++ {
		room := fmt.Sprintf("%s-%d", prefix, i)
		if p := record.PartitionOf(room, 4); !seen[p] {
			seen[p] = true
			rooms = append(rooms, room)
		}
	}
	return rooms
}

// recoveredAs waits for the client's next connect and checks it recovered
// the socket sid.
func (c *sioClient) recoveredAs(sid string) {
	c.t.Helper()
	r := c.waitType("connect")
	var id string
	_ = json.Unmarshal(r.ID, &id)
	if !r.Recovered || id != sid {
		c.t.Fatalf("reconnected as %q, recovered %v; want the recovered socket %q", id, r.Recovered, sid)
	}
}

// chatReceiver checks a client's chat events: per room, the sequence
// numbers it expects next, in order, each once.
type chatReceiver struct {
	c    *sioClient
	next map[string]int // room → next seq expected
	step int
}

// receive takes n chat events, failing on any gap, duplicate or reordering.
func (r *chatReceiver) receive(n int) {
	r.c.t.Helper()
	for range n {
		ev := r.c.wait("event chat", func(rep *sioReport) bool { return rep.Type == "event" && rep.Name == "chat" })
		data, meta, off := r.c.eventArgs("chat", ev)
		if off == "" {
			r.c.t.Fatalf("event without the recovery offset: %s", ev.Args)
		}
		want, ok := r.next[meta.Room]
		if !ok {
			r.c.t.Fatalf("message for room %q the client is not in", meta.Room)
		}
		if got := seqOf(r.c.t, data); got != want {
			r.c.t.Fatalf("room %s: message %d, want %d (a gap, duplicate or reordering)", meta.Room, got, want)
		}
		r.next[meta.Room] = want + r.step
	}
}

// TestSocketIOCrashRecovery (issue 11, test 3): the relay process holding
// Socket.IO sockets is SIGKILLed while 1000 messages are published to two
// rooms on different partitions; the clients reconnect through the
// round-robin proxy to another relay process with socket.recovered, the
// same socket id, and every message exactly once and in order. The second
// relay is killed in turn while 1000 more are published (two recoveries in
// a row, the second onto the first relay, restarted; the first recovery
// from the log, the second from the history window). A client that had
// received nothing before the kill recovers too.
func TestSocketIOCrashRecovery(t *testing.T) {
	bin := buildRoomlog(t)
	forEachBackend(t, func(t *testing.T, b backend) {
		topic := newTopic(t)
		hub := startRelay(t, b, topic, nil) // publishes; never killed
		pa := newRelayProc(t, bin, b, topic, "sio-a")
		// C keeps a short history window and send queue: the first
		// recovery reads what was missed from the log, in more events than
		// the queue holds (the backlog waits for room).
		pc := newRelayProc(t, bin, b, topic, "sio-c", "--history-window", "16", "--send-queue", "256")
		lb := newLB(t, pa.url(), pc.url())
		lb.up[1].Store(false) // every socket starts on A

		rooms := roomsOnPartitions("crash", 2)
		sc := newSIO(t, lb.url, map[string]any{"rejoin": "unrecovered"}) // default transports: polling, then the upgrade
		sid := sc.connected()
		for _, room := range rooms {
			if a := sc.emitAck("join", room); !a.OK {
				t.Fatalf("join %s: %+v", room, a)
			}
		}
		quiet := newSIO(t, lb.url, map[string]any{"rejoin": "unrecovered", "transports": []string{"websocket"}})
		qsid := quiet.connected()
		if a := quiet.emitAck("join", "quiet"); !a.OK {
			t.Fatalf("join quiet: %+v", a)
		}
		if n := pa.connections(); n != 2 {
			t.Fatalf("relay A holds %d connections, want the 2 sockets", n)
		}

		pub := dial(t, hub)
		recv := &chatReceiver{c: sc, next: map[string]int{rooms[0]: 0, rooms[1]: 1}, step: 2}
		publish := func(from, to int) {
			for i := from; i < to; i++ {
				pub.do(map[string]any{"op": "publish", "room": rooms[i%2], "event": "chat", "data": map[string]int{"seq": i}, "id": i})
			}
		}

		// First kill: A, while the first 1000 are published.
		publish(0, 300)
		recv.receive(100) // some delivered before the kill, more in flight
		pa.kill()
		lb.up[0].Store(false) // C joins the rotation once the 1000 are out: the clients miss hundreds meanwhile
		pub.do(map[string]any{"op": "publish", "room": "quiet", "event": "chat", "data": map[string]int{"seq": 0}, "id": "q0"})
		publish(300, 1000)
		lb.up[1].Store(true)
		sc.recoveredAs(sid)
		recv.receive(900)
		if n := metricOf(t, pc.url(), `roomlog_recoveries_total{source="log"}`); n < 2 {
			t.Fatalf("relay C recovered %d rooms from the log, want both of the socket's", n)
		}
		quiet.recoveredAs(qsid)
		qr := &chatReceiver{c: quiet, next: map[string]int{"quiet": 0}, step: 1}
		qr.receive(1)

		// Second kill: C, with A restarted and back in rotation, while
		// 1000 more are published.
		pa.start()
		lb.up[0].Store(true)
		publish(1000, 1300)
		recv.receive(200)
		pc.kill()
		lb.up[1].Store(false)
		publish(1300, 2000)
		sc.recoveredAs(sid)
		recv.receive(500)
		quiet.recoveredAs(qsid)
		pub.do(map[string]any{"op": "publish", "room": "quiet", "event": "chat", "data": map[string]int{"seq": 1}, "id": "q1"})
		qr.receive(1)

		// Nothing more is pending: the next messages are the next ones.
		publish(2000, 2002)
		recv.receive(2)
		if n := pa.connections(); n != 2 {
			t.Fatalf("relay A holds %d connections after the second recovery, want 2", n)
		}
	})
}

// TestSocketIORecoveryExpired (issue 11, test 4): a session whose
// connection has been gone for longer than --sio-max-disconnection is not
// recovered: the client gets recovered === false and a new socket id, in no
// room, and its rejoin with since works. A pid the relays never issued is
// not recovered either, nor is a socket the client disconnected itself.
func TestSocketIORecoveryExpired(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		topic := newTopic(t)
		short := func(c *relay.Config) { c.SIOMaxDisconnection = 500 * time.Millisecond }
		ra := startRelay(t, b, topic, short)
		rb := startRelay(t, b, topic, short)
		leasesKnown(t, ra, rb)
		// The client waits 2s before it reconnects: past the 500ms.
		sc := newSIO(t, roundRobin(t, ra, rb), map[string]any{"transports": []string{"websocket"}, "rejoin": "unrecovered",
			"reconnectionDelay": 2000, "reconnectionDelayMax": 2000, "randomizationFactor": 0})
		sid := sc.connected()
		if a := sc.emitAck("join", "lobby"); !a.OK {
			t.Fatalf("join %+v", a)
		}
		pub := dial(t, ra)
		pub.do(map[string]any{"op": "publish", "room": "lobby", "event": "chat", "data": map[string]int{"seq": 0}, "id": 0})
		if data, _ := sc.event("chat"); seqOf(t, data) != 0 {
			t.Fatalf("first message %s", data)
		}
		sc.command(map[string]any{"op": "drop"})
		sc.waitType("disconnect")
		pub.do(map[string]any{"op": "publish", "room": "lobby", "event": "chat", "data": map[string]int{"seq": 1}, "id": 1})
		c := sc.waitType("connect")
		var sid2 string
		_ = json.Unmarshal(c.ID, &sid2)
		if c.Recovered || sid2 == sid {
			t.Fatalf("reconnected as %s (recovered %v) after the session expired, want a new socket", sid2, c.Recovered)
		}
		rj := sc.waitType("rejoined")
		if !rj.Ack.OK || rj.Ack.Recovered == nil || !*rj.Ack.Recovered {
			t.Fatalf("rejoin with since: %+v", rj.Ack)
		}
		if data, _ := sc.event("chat"); seqOf(t, data) != 1 {
			t.Fatalf("after the rejoin: %s", data)
		}
		pub.do(map[string]any{"op": "publish", "room": "lobby", "event": "chat", "data": map[string]int{"seq": 2}, "id": 2})
		if data, _ := sc.event("chat"); seqOf(t, data) != 2 {
			t.Fatalf("live after the rejoin: %s", data)
		}
		expired := metricOf(t, httpURL(ra), `roomlog_socketio_recoveries_total{outcome="expired"}`) +
			metricOf(t, httpURL(rb), `roomlog_socketio_recoveries_total{outcome="expired"}`)
		if expired != 1 {
			t.Fatalf("roomlog_socketio_recoveries_total{outcome=\"expired\"} = %d, want 1", expired)
		}

		// A socket the client disconnected itself is not recoverable, as
		// with the reference server. (It reconnects once both relays have
		// folded its leave.)
		var watchers []*client
		for _, r := range []*relay.Server{ra, rb} {
			w := dial(t, r)
			w.do(map[string]any{"op": "join", "room": "lobby", "presence": true, "id": "w"})
			watchers = append(watchers, w)
		}
		sc.command(map[string]any{"op": "disconnect"})
		sc.waitType("disconnect")
		for _, w := range watchers {
			for f := w.message(); f.Op != "left" || f.Member.Conn != sid2; f = w.message() {
			}
		}
		sc.command(map[string]any{"op": "connect"})
		c = sc.waitType("connect")
		var sid3 string
		_ = json.Unmarshal(c.ID, &sid3)
		if c.Recovered || sid3 == sid2 {
			t.Fatalf("reconnected as %s (recovered %v) after socket.disconnect(), want a new socket", sid3, c.Recovered)
		}

		// A pid no relay issued starts a new session.
		forged := newSIO(t, httpURL(ra), map[string]any{"transports": []string{"websocket"},
			"auth": map[string]any{"pid": "AAAAAAAAAAAAAAAAAAAAAA"}})
		if id := forged.connected(); !strings.HasPrefix(id, ra.ID()+"-") {
			t.Fatalf("a forged pid connected as %s, want a new connection of the relay", id)
		}
		unknown := metricOf(t, httpURL(ra), `roomlog_socketio_recoveries_total{outcome="unknown"}`) +
			metricOf(t, httpURL(rb), `roomlog_socketio_recoveries_total{outcome="unknown"}`)
		if unknown != 2 { // the disconnected socket's and the forged pid
			t.Fatalf("roomlog_socketio_recoveries_total{outcome=\"unknown\"} = %d, want 2", unknown)
		}
	})
}
