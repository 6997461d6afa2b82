// Command idlemem measures the memory a roomlog relay holds per idle
// WebSocket connection.
//
// It starts `roomlog relay` (embedded broker, temp data dir) as a child
// process, waits until /healthz answers, reads the child's VmRSS, opens N
// idle WebSocket connections to /ws (each reads its welcome frame, then only
// answers pings), waits for the relay to settle, reads VmRSS again and prints
// the growth per connection, as a line of text and as one line of JSON. Then
// it closes the connections and stops the relay with SIGTERM. With --rooms
// each connection also joins one of that many rooms (room-0 ...) and waits
// for the join's ack, so the growth includes the room's membership: the
// hub's subscription and the fold's presence member.
//
//	go build -o bin/roomlog ./cmd/roomlog
//	go run ./testenv/idlemem --relay-bin bin/roomlog --conns 10000
//
// Arguments after `--` are passed to `roomlog relay`, e.g. `-- --partitions 4`.
// Linux only: it reads /proc.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/roomlog/roomlog/internal/procstat"
)

// fdMargin is what each process needs besides the connections: listeners,
// the broker's connections and files, pipes, the runtime's own descriptors.
const fdMargin = 256

type options struct {
	relayBin string
	conns    int
	srcIPs   int
	workers  int
	rooms    int
	publish  bool
	settle   time.Duration
	keep     bool
	extra    []string
}

// result is the JSON line.
type result struct {
	Conns           int     `json:"conns"`
	Rooms           int     `json:"rooms,omitempty"`
	SourceIPs       int     `json:"source_ips"`
	RSSBeforeBytes  int64   `json:"rss_before_bytes"`
	RSSAfterBytes   int64   `json:"rss_after_bytes"`
	RSSGrowthBytes  int64   `json:"rss_growth_bytes"`
	BytesPerConn    float64 `json:"bytes_per_conn"`
	KiBPerConn      float64 `json:"kib_per_conn"`
	RelayFDs        int     `json:"relay_fds"`
	RelayThreads    int     `json:"relay_threads"`
	DialSeconds     float64 `json:"dial_seconds"`
	SettleSeconds   float64 `json:"settle_seconds"`
	RelayListenAddr string  `json:"relay_listen"`
}

func main() {
	var o options
	flag.StringVar(&o.relayBin, "relay-bin", "", "path of the roomlog binary (go build -o bin/roomlog ./cmd/roomlog); required")
	flag.IntVar(&o.conns, "conns", 10000, "idle WebSocket connections to open")
	flag.IntVar(&o.srcIPs, "src-ips", 8, "spread the connections' source addresses over 127.0.0.2 .. 127.0.0.(1+n) (one address has about 28k ephemeral ports)")
	flag.IntVar(&o.workers, "dial-workers", 32, "connections opened concurrently")
	flag.IntVar(&o.rooms, "rooms", 0, "each connection joins room-(i mod rooms) and waits for the ack (0: no join)")
	flag.BoolVar(&o.publish, "publish", false, "with --rooms, each connection also publishes one message to its room and waits for the ack")
	flag.DurationVar(&o.settle, "settle", 5*time.Second, "wait before each RSS reading, so the relay settles")
	flag.BoolVar(&o.keep, "keep", false, "keep the temp folder (relay log and data dir)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: go run ./testenv/idlemem --relay-bin PATH [--conns N] [flags] [-- roomlog relay flags]\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	o.extra = flag.Args()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "idlemem:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "idlemem: "+format+"\n", args...)
}

func run(o options) error {
	switch {
	case o.relayBin == "":
		return errors.New("--relay-bin is required (go build -o bin/roomlog ./cmd/roomlog)")
	case o.conns < 1:
		return fmt.Errorf("--conns %d: want 1 or more", o.conns)
	case o.srcIPs < 1 || o.srcIPs > 253:
		return fmt.Errorf("--src-ips %d: want 1 to 253", o.srcIPs)
	case o.rooms < 0:
		return fmt.Errorf("--rooms %d: want 0 or more", o.rooms)
	case o.workers < 1:
		return fmt.Errorf("--dial-workers %d: want 1 or more", o.workers)
	}
	if per := (o.conns + o.srcIPs - 1) / o.srcIPs; per > 28000 {
		return fmt.Errorf("%d connections over %d source addresses is %d per address, more than the ~28k ephemeral ports of one; raise --src-ips", o.conns, o.srcIPs, per)
	}
	bin, err := filepath.Abs(o.relayBin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("--relay-bin: %w (build it with go build -o bin/roomlog ./cmd/roomlog)", err)
	}
	if err := raiseNoFile(uint64(o.conns + fdMargin)); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	dir, err := os.MkdirTemp("", "roomlog-idlemem-")
	if err != nil {
		return err
	}
	if o.keep {
		logf("temp folder %s is kept", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	child, err := startRelay(bin, addr, dir, o.extra)
	if err != nil {
		return err
	}
	defer child.stop()

	if err := child.waitHealthy(ctx, addr, 60*time.Second); err != nil {
		return err
	}
	if lim, err := childNoFile(child.pid()); err != nil {
		return err
	} else if lim < uint64(o.conns+fdMargin) {
		return fmt.Errorf("the relay's soft RLIMIT_NOFILE is %d, it needs %d for %d connections", lim, o.conns+fdMargin, o.conns)
	}
	logf("relay pid %d serving on %s; settling %v", child.pid(), addr, o.settle)
	if err := sleep(ctx, o.settle); err != nil {
		return err
	}
	before, err := procstat.ReadStatus(child.pid())
	if err != nil {
		return err
	}
	logf("relay VmRSS before: %s", mib(before.RSS))

	start := time.Now()
	conns, err := dialAll(ctx, o, "ws://"+addr+"/ws")
	defer closeAll(conns)
	if err != nil {
		return err
	}
	dialTime := time.Since(start)
	logf("%d connections open in %v; settling %v", len(conns.ws), dialTime.Round(time.Millisecond), o.settle)
	if err := sleep(ctx, o.settle); err != nil {
		return err
	}
	if err := child.alive(); err != nil {
		return err
	}
	after, err := procstat.ReadStatus(child.pid())
	if err != nil {
		return err
	}
	if n := conns.lost.Load(); n > 0 {
		return fmt.Errorf("%d of the connections were closed before the measurement; see %s", n, child.logPath)
	}
	fds, _ := countFDs(child.pid())

	growth := after.RSS - before.RSS
	per := float64(growth) / float64(o.conns)
	res := result{
		Conns:           o.conns,
		Rooms:           o.rooms,
		SourceIPs:       min(o.srcIPs, o.conns),
		RSSBeforeBytes:  before.RSS,
		RSSAfterBytes:   after.RSS,
		RSSGrowthBytes:  growth,
		BytesPerConn:    per,
		KiBPerConn:      per / 1024,
		RelayFDs:        fds,
		RelayThreads:    after.Threads,
		DialSeconds:     dialTime.Seconds(),
		SettleSeconds:   o.settle.Seconds(),
		RelayListenAddr: addr,
	}
	fmt.Printf("relay VmRSS %s -> %s with %d idle connections: %.0f bytes (%.2f KiB) per connection\n",
		mib(before.RSS), mib(after.RSS), o.conns, per, per/1024)
	js, _ := json.Marshal(res)
	fmt.Println(string(js))

	closeAll(conns)
	conns = nil
	return child.stop()
}

// raiseNoFile sets this process's soft RLIMIT_NOFILE to need, failing clearly
// when the hard limit is lower.
func raiseNoFile(need uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("getrlimit: %w", err)
	}
	if need > lim.Max {
		return fmt.Errorf("%d connections need %d file descriptors in this process and in the relay, but the hard RLIMIT_NOFILE here is %d: "+
			"at most %d connections on this machine (raise the hard limit as root, e.g. ulimit -Hn, or run with fewer --conns)",
			need-fdMargin, need, lim.Max, lim.Max-fdMargin)
	}
	if lim.Cur < need {
		lim.Cur = need
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return fmt.Errorf("setrlimit NOFILE to %d: %w", need, err)
		}
	}
	return nil
}

// freeAddr picks a free loopback port for the relay.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr, nil
}

type relayProc struct {
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	err     error // set before exited is closed
	once    sync.Once
	stopErr error
}

func startRelay(bin, addr, dir string, extra []string) (*relayProc, error) {
	logPath := filepath.Join(dir, "relay.log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	args := append([]string{"relay", "--listen", addr, "--data-dir", filepath.Join(dir, "data")}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	// The relay dies with this process, even if it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	logf("started %s %s (log: %s)", bin, strings.Join(args, " "), logPath)
	p := &relayProc{cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		lf.Close()
		close(p.exited)
	}()
	return p, nil
}

func (p *relayProc) pid() int { return p.cmd.Process.Pid }

// alive reports an error, with the tail of the relay's log, once it exited.
func (p *relayProc) alive() error {
	select {
	case <-p.exited:
		return fmt.Errorf("the relay exited (%v); its log:\n%s", p.err, tail(p.logPath, 20))
	default:
		return nil
	}
}

func (p *relayProc) waitHealthy(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	hc := &http.Client{Timeout: time.Second}
	for {
		if err := p.alive(); err != nil {
			return err
		}
		resp, err := hc.Get("http://" + addr + "/healthz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the relay did not answer /healthz within %v; its log:\n%s", timeout, tail(p.logPath, 20))
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// stop sends SIGTERM and waits for a graceful exit, killing the relay after
// 30s. Later calls return the first result.
func (p *relayProc) stop() error {
	p.once.Do(func() {
		select {
		case <-p.exited:
			p.stopErr = p.alive()
			return
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
			if p.err != nil {
				p.stopErr = fmt.Errorf("the relay exited with %v after SIGTERM; its log:\n%s", p.err, tail(p.logPath, 20))
			} else {
				logf("relay stopped")
			}
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
			p.stopErr = errors.New("the relay did not stop within 30s of SIGTERM; killed")
		}
	})
	return p.stopErr
}

type clientConns struct {
	mu   sync.Mutex
	ws   []*websocket.Conn
	lost atomic.Int64 // connections closed by the relay before the end
	done atomic.Bool  // closing on purpose
	wg   sync.WaitGroup
}

// dialAll opens o.conns connections with o.workers dialers. Each reads its
// welcome frame, then gets a reader goroutine that only answers pings, so
// the relay never closes it for a missing pong however long the settle.
func dialAll(ctx context.Context, o options, url string) (*clientConns, error) {
	cs := &clientConns{ws: make([]*websocket.Conn, 0, o.conns)}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	progress := max(o.conns/10, 1)
	for range min(o.workers, o.conns) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= o.conns {
					return
				}
				room := ""
				if o.rooms > 0 {
					room = "room-" + strconv.Itoa(i%o.rooms)
				}
				ws, err := dialOne(ctx, url, net.IPv4(127, 0, 0, byte(2+i%o.srcIPs)), room, o.publish)
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("connection %d: %w", i+1, err); cancel() })
					return
				}
				cs.mu.Lock()
				cs.ws = append(cs.ws, ws)
				n := len(cs.ws)
				cs.mu.Unlock()
				cs.wg.Add(1)
				go cs.read(ws)
				if n%progress == 0 {
					logf("%d/%d connections open", n, o.conns)
				}
			}
		}()
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return cs, firstErr
}

// dialOne opens a connection, reads its welcome and, unless room is empty,
// joins room and waits for the ack, then, with publish, publishes a message
// to it and waits for that ack.
func dialOne(ctx context.Context, url string, src net.IP, room string, publish bool) (*websocket.Conn, error) {
	nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 10 * time.Second}
	d := websocket.Dialer{
		NetDialContext:   nd.DialContext,
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   512,
		WriteBufferSize:  512,
	}
	ws, _, err := d.DialContext(ctx, url, nil)
	if err != nil {
		return nil, fmt.Errorf("dial from %s: %w", src, err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, msg, err := ws.ReadMessage()
	if err != nil || !bytes.Contains(msg, []byte(`"op":"welcome"`)) {
		ws.Close()
		return nil, fmt.Errorf("welcome frame: got %q, %v", msg, err)
	}
	if room == "" {
		_ = ws.SetReadDeadline(time.Time{})
		return ws, nil
	}
	ops := []string{`{"op":"join","room":"` + room + `","id":"j"}`}
	if publish {
		ops = append(ops, `{"op":"publish","room":"`+room+`","data":{"text":"hello"},"id":"p"}`)
	}
	for _, op := range ops {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(op)); err != nil {
			ws.Close()
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		for {
			_, msg, err := ws.ReadMessage()
			if err != nil {
				ws.Close()
				return nil, fmt.Errorf("%s: %w", op, err)
			}
			if bytes.Contains(msg, []byte(`"op":"error"`)) {
				ws.Close()
				return nil, fmt.Errorf("%s: %s", op, msg)
			}
			if bytes.Contains(msg, []byte(`"op":"ack"`)) {
				break
			}
		}
	}
	_ = ws.SetReadDeadline(time.Time{})
	return ws, nil
}

// read discards frames; gorilla answers pings while it reads.
func (cs *clientConns) read(ws *websocket.Conn) {
	defer cs.wg.Done()
	for {
		if _, _, err := ws.NextReader(); err != nil {
			if !cs.done.Load() {
				cs.lost.Add(1)
			}
			return
		}
	}
}

func closeAll(cs *clientConns) {
	if cs == nil {
		return
	}
	cs.done.Store(true)
	cs.mu.Lock()
	for _, ws := range cs.ws {
		ws.Close()
	}
	cs.ws = nil
	cs.mu.Unlock()
	cs.wg.Wait()
}

// childNoFile reads the soft "Max open files" limit of pid.
func childNoFile(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				if f[0] == "unlimited" {
					return 1 << 62, nil
				}
				return strconv.ParseUint(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no Max open files in /proc/%d/limits", pid)
}

func countFDs(pid int) (int, error) {
	es, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(es), err
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
