// Package faulttest puts roomlog on a real three-broker Apache Kafka cluster
// (testenv/kafka/cluster-start.sh) and breaks things under publish load, with
// subscribers on two relay processes: the leader of the room's partition
// SIGKILLed, two brokers SIGKILLed (below min.insync.replicas), a relay
// SIGSTOPped for longer than its lease, and the embedded broker's data folder
// on a full filesystem. Every test checks with testenv/internal/traffic that
// each acknowledged publish reached every subscriber once and in log order.
//
// The tests run only with ROOMLOG_FAULT_TESTS=1 (testenv/faults.sh, make
// test-faults, which starts the cluster). The cluster tests need
// ROOMLOG_TEST_CLUSTER (the last line of cluster-start.sh); without it they
// skip, unless ROOMLOG_REQUIRE_CLUSTER=1 (set by faults.sh) makes them fail. The full-filesystem test needs to mount
// a tmpfs (root); ROOMLOG_REQUIRE_TMPFS=1 makes it fail rather than skip
// when it cannot.
package faulttest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/testenv/internal/traffic"
)

var root, bin string

func TestMain(m *testing.M) {
	if os.Getenv("ROOMLOG_FAULT_TESTS") != "1" {
		// Minutes of broker kills and full disks: only from make test-faults
		// (testenv/faults.sh), which CI runs after the main suite.
		fmt.Println("faulttest: skipped (ROOMLOG_FAULT_TESTS=1, set by testenv/faults.sh, runs it)")
		os.Exit(0)
	}
	wd, _ := os.Getwd()
	root = filepath.Join(wd, "..", "..")
	dir, err := os.MkdirTemp("", "roomlog-faulttest-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Its own binary: other test packages build bin/roomlog concurrently.
	bin = filepath.Join(dir, "roomlog")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/roomlog")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// ------------------------------------------------------------------ cluster

// cluster is the three-broker cluster of testenv/kafka/cluster-start.sh:
// node N (1..3) listens on addrs[N-1], and its java pid is in the per-port
// state folder of start.sh.
type cluster struct {
	addrs []string
	ports []int
}

func needCluster(t *testing.T) *cluster {
	t.Helper()
	v := os.Getenv("ROOMLOG_TEST_CLUSTER")
	if v == "" {
		if os.Getenv("ROOMLOG_REQUIRE_CLUSTER") == "1" {
			t.Fatal("ROOMLOG_REQUIRE_CLUSTER=1 but ROOMLOG_TEST_CLUSTER is not set (start one with testenv/kafka/cluster-start.sh)")
		}
		t.Skip("no Kafka cluster (ROOMLOG_TEST_CLUSTER); make test-faults starts one")
	}
	c := &cluster{addrs: strings.Split(v, ",")}
	for _, a := range c.addrs {
		_, p, err := net.SplitHostPort(a)
		port, err2 := strconv.Atoi(p)
		if err != nil || err2 != nil {
			t.Fatalf("ROOMLOG_TEST_CLUSTER=%q: bad address %q", v, a)
		}
		c.ports = append(c.ports, port)
	}
	if len(c.addrs) != 3 {
		t.Fatalf("ROOMLOG_TEST_CLUSTER=%q: want the three nodes of cluster-start.sh", v)
	}
	c.ensureAll(t)
	// Whatever a test killed comes back for the next one.
	t.Cleanup(func() { c.ensureAll(t) })
	return c
}

// pid is node n's java pid, 0 when it is not running.
func (c *cluster) pid(n int) int {
	tmp := os.Getenv("TMPDIR")
	if tmp == "" {
		tmp = "/tmp"
	}
	b, err := os.ReadFile(filepath.Join(tmp, fmt.Sprintf("roomlog-kafka-%d", c.ports[n-1]), "broker.pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || !alive(pid) {
		return 0
	}
	return pid
}

// kill SIGKILLs node n and waits until it is gone.
func (c *cluster) kill(t *testing.T, n int) {
	t.Helper()
	pid := c.pid(n)
	if pid == 0 {
		t.Fatalf("broker %d is not running", n)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL broker %d (pid %d): %v", n, pid, err)
	}
	for deadline := time.Now().Add(10 * time.Second); alive(pid); {
		if time.Now().After(deadline) {
			t.Fatalf("broker %d (pid %d) survived SIGKILL", n, pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("SIGKILLed broker %d (pid %d, %s)", n, pid, c.addrs[n-1])
}

// start starts node n again on its data and waits until it serves.
func (c *cluster) start(t *testing.T, n int) {
	t.Helper()
	cmd := exec.Command("bash", filepath.Join(root, "testenv/kafka/cluster-start.sh"), "--node", strconv.Itoa(n))
	cmd.Env = append(os.Environ(), "ROOMLOG_KAFKA_CLUSTER_PORT="+strconv.Itoa(c.ports[0]))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("restarting broker %d: %v\n%s", n, err, out)
	}
	t.Logf("broker %d is back (pid %d)", n, c.pid(n))
}

func (c *cluster) ensureAll(t *testing.T) {
	t.Helper()
	for n := 1; n <= len(c.addrs); n++ {
		if c.pid(n) == 0 {
			c.start(t, n)
		}
	}
}

// leader is the node leading partition p of topic.
func (c *cluster) leader(t *testing.T, topic string, p int32) int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	md, err := kadm.NewClient(cl).Metadata(ctx, topic)
	if err != nil {
		t.Fatalf("metadata of %s: %v", topic, err)
	}
	pd, ok := md.Topics[topic].Partitions[p]
	if !ok || pd.Leader < 1 || int(pd.Leader) > len(c.addrs) {
		t.Fatalf("no leader for %s/%d in %+v", topic, p, md.Topics[topic])
	}
	return int(pd.Leader)
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] != 'Z'
}

// ------------------------------------------------------------------ relays

// relayProc is a `roomlog relay` process.
type relayProc struct {
	name, addr string
	logPath    string
	cmd        *exec.Cmd
	exited     chan struct{}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startRelay starts `roomlog relay name` with args (its log goes to the
// test's temp folder, shown when the test fails) and waits until it is ready.
func startRelay(t *testing.T, name string, args ...string) *relayProc {
	t.Helper()
	r := &relayProc{name: name, addr: freeAddr(t), exited: make(chan struct{})}
	logPath := filepath.Join(t.TempDir(), name+".log")
	r.logPath = logPath
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	r.cmd = exec.Command(bin, append([]string{"relay", "--listen", r.addr, "--relay-name", name, "--demo=false", "--log-level", "info"}, args...)...)
	r.cmd.Stdout, r.cmd.Stderr = lf, lf
	r.cmd.Env = append(os.Environ(), "ROOMLOG_ANONYMOUS=true")
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = r.cmd.Wait(); lf.Close(); close(r.exited) }()
	t.Cleanup(func() {
		r.stop()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("log of %s:\n%s", name, tail(string(b), 60))
		}
	})
	r.waitReady(t, 90*time.Second)
	return r
}

// logText is what the relay has logged so far.
func (r *relayProc) logText(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(r.logPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (r *relayProc) url() string { return "ws://" + r.addr + "/ws" }

func (r *relayProc) waitReady(t *testing.T, timeout time.Duration) {
	t.Helper()
	cl := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(timeout); ; {
		select {
		case <-r.exited:
			t.Fatalf("relay %s exited while starting", r.name)
		default:
		}
		if resp, err := cl.Get("http://" + r.addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay %s not ready after %s", r.name, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (r *relayProc) running() bool {
	select {
	case <-r.exited:
		return false
	default:
		return true
	}
}

func (r *relayProc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := r.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s to relay %s: %v", sig, r.name, err)
	}
}

// stop drains the relay (SIGCONT first, in case it is stopped), SIGKILL
// after 20 s.
func (r *relayProc) stop() {
	_ = r.cmd.Process.Signal(syscall.SIGCONT)
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(20 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
}

// ------------------------------------------------------------------ traffic

// load is publishers and subscribers in one room.
type load struct {
	room       string
	pubs       []*traffic.Publisher
	subs       []*traffic.Subscriber
	stopPub    chan struct{}
	pubCtx     context.Context
	cancelPubs context.CancelFunc
	subCtx     context.Context
	stopSubs   context.CancelFunc
	pubWG      sync.WaitGroup
	subWG      sync.WaitGroup
}

// startLoad puts subsPer subscribers on each relay (their first connection;
// later ones go anywhere), waits until all have joined, then starts pubs
// publishers at rate per second each, spread over the relays.
func startLoad(t *testing.T, room string, relays []*relayProc, subsPer, pubs int, rate float64) *load {
	t.Helper()
	urls := make([]string, len(relays))
	for i, r := range relays {
		urls[i] = r.url()
	}
	l := &load{room: room, stopPub: make(chan struct{})}
	l.subCtx, l.stopSubs = context.WithCancel(context.Background())
	l.pubCtx, l.cancelPubs = context.WithCancel(context.Background())
	t.Cleanup(func() { l.cancelPubs(); l.stopSubs(); l.pubWG.Wait(); l.subWG.Wait() })
	for i, r := range relays {
		for j := 0; j < subsPer; j++ {
			s := traffic.NewSubscriber(fmt.Sprintf("sub-%s-%d", r.name, j+1), room, traffic.NewDialer(urls).Prefer(r.url()))
			l.subs = append(l.subs, s)
			l.subWG.Add(1)
			go func() { defer l.subWG.Done(); s.Run(l.subCtx) }()
		}
		_ = i
	}
	deadline := time.After(60 * time.Second)
	for _, s := range l.subs {
		select {
		case <-s.Joined():
		case <-deadline:
			t.Fatalf("%s did not join within 60s", s.Name)
		}
	}
	for i := 0; i < pubs; i++ {
		p := traffic.NewPublisher(fmt.Sprintf("pub-%d", i+1), room, traffic.NewDialer(urls).Prefer(urls[i%len(urls)]), rate, 32)
		l.pubs = append(l.pubs, p)
		l.pubWG.Add(1)
		go func() { defer l.pubWG.Done(); p.Run(l.pubCtx, l.stopPub) }()
	}
	return l
}

// acked is how many messages were acknowledged so far.
func (l *load) acked() int {
	n := 0
	for _, p := range l.pubs {
		n += p.Acked()
	}
	return n
}

// waitAcked waits until more than n messages are acknowledged.
func (l *load) waitAcked(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); l.acked() <= n; {
		if time.Now().After(deadline) {
			t.Fatalf("no publish acknowledged within %s (still %d)", timeout, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (l *load) logUnavailable() int64 {
	var n int64
	for _, p := range l.pubs {
		n += p.LogUnavailable()
	}
	return n
}

// finish stops the publishers (each finishes its publish in flight,
// retrying), waits up to settle for the subscribers to have every
// acknowledged message, stops them and checks. It fails the test on any loss,
// duplicate or reordering, and on any publish error other than
// log_unavailable (or shutting_down).
func (l *load) finish(t *testing.T, settle time.Duration) *traffic.Result {
	t.Helper()
	close(l.stopPub)
	done := make(chan struct{})
	go func() { l.pubWG.Wait(); close(done) }()
	deadline := time.Now().Add(settle)
	select {
	case <-done:
	case <-time.After(settle):
		t.Errorf("publishers still retrying their last publish after %s", settle)
		l.cancelPubs()
		<-done
	}
	want := traffic.Want(l.pubs)
	for traffic.Missing(l.subs, want) > 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second) // late duplicates show
	l.stopSubs()
	l.subWG.Wait()
	res := traffic.Check(l.pubs, l.subs, want)
	var b strings.Builder
	res.PrintTable(&b)
	t.Logf("traffic:\n%s", b.String())
	if !res.OK {
		t.Errorf("acknowledged messages lost, duplicated or out of order")
	}
	if res.Publish.OtherErrors != 0 {
		t.Errorf("publishers got %d errors other than log_unavailable", res.Publish.OtherErrors)
	}
	return res
}

// closeCodes sums the close codes relays sent the subscribers.
func (l *load) closeCodes() map[int]int {
	out := map[int]int{}
	for _, s := range l.subs {
		for c, n := range s.CloseCodes() {
			out[c] += n
		}
	}
	return out
}

// watcher is a member of a room on one relay that asks for its presence.
type watcher struct {
	r    *relayProc
	c    *websocket.Conn
	name string // the room
	next int
}

func newWatcher(t *testing.T, r *relayProc, room string) *watcher {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	c, _, err := d.Dial(r.url(), nil)
	if err != nil {
		t.Fatalf("watcher on %s: %v", r.name, err)
	}
	t.Cleanup(func() { c.Close() })
	w := &watcher{r: r, c: c, name: room}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	var f map[string]any
	if err := c.ReadJSON(&f); err != nil {
		t.Fatalf("watcher on %s: welcome: %v", r.name, err)
	}
	w.ask(t, map[string]any{"op": "join", "room": room})
	return w
}

// ask sends req with a fresh id and returns its ack.
func (w *watcher) ask(t *testing.T, req map[string]any) map[string]any {
	t.Helper()
	w.next++
	id := fmt.Sprint(w.next)
	req["id"] = id
	_ = w.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if err := w.c.WriteJSON(req); err != nil {
		t.Fatalf("watcher on %s: %v", w.r.name, err)
	}
	for {
		var f map[string]any
		if err := w.c.ReadJSON(&f); err != nil {
			t.Fatalf("watcher on %s: %v", w.r.name, err)
		}
		if f["id"] == id {
			if f["op"] != "ack" {
				t.Fatalf("watcher on %s: %v answered %v", w.r.name, req, f)
			}
			return f
		}
	}
}

// presence is the room's members as this relay sees them, as conn@relay in
// join order.
func (w *watcher) presence(t *testing.T) []string {
	t.Helper()
	a := w.ask(t, map[string]any{"op": "presence", "room": w.name})
	raw, _ := json.Marshal(a["members"])
	var members []struct {
		Conn  string `json:"conn"`
		Relay string `json:"relay"`
	}
	if err := json.Unmarshal(raw, &members); err != nil {
		t.Fatalf("presence on %s: %s: %v", w.r.name, raw, err)
	}
	var ids []string
	for _, m := range members {
		ids = append(ids, m.Conn+"@"+m.Relay)
	}
	return ids
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
