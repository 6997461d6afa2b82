package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/roomlog/roomlog/internal/cliflag"
)

// config is one load test. The coordinator and its workers parse the same
// flags; a worker also gets --shard and --of.
type config struct {
	System   string // label of the system under test (roomlog-embedded, centrifugo, ...)
	Scenario string // label of the scenario (fanout, bigroom, idle, churn, failure, sweep)
	Proto    string // roomlog, centrifugo, socketio
	URLs     []string

	Conns      int
	Rooms      int
	Publishers int
	Rate       float64 // total publishes per second, all publishers together
	Size       int     // bytes of each message's data
	Warmup     time.Duration
	Duration   time.Duration
	Drain      time.Duration

	SrcIPs      int     // source addresses 127.0.0.2 ... 127.0.0.(1+SrcIPs); 0: let the kernel choose
	ConnectConc int     // concurrent dials per worker
	ConnectRate float64 // dials per second over all workers (0: as fast as ConnectConc allows)

	Churn     float64       // churn connects (and disconnects) per second, over all workers
	ChurnHold time.Duration // how long a churn connection stays

	Procs      int
	ServerPIDs string // name=pid,name=pid
	PIDFile    string // lines "name pid"
	KillName   string // server process (by name in the pid list) killed at KillAt into the measured window
	KillAt     time.Duration
	Timeout    time.Duration // hard bound on the whole run

	CentrifugoSecret string // HMAC secret: connect with a HS256 token (empty: no token)
	Out              string // result JSON file (empty: stdout only)
	Quiet            bool

	// worker only
	Shard, Of int
	RunID     string // prefix of the room names, unique per run
}

func parseConfig(name string, args []string, worker bool) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	var urls cliflag.List
	fs.StringVar(&c.System, "system", "", "label of the system under test")
	fs.StringVar(&c.Scenario, "scenario", "custom", "label of the scenario")
	fs.StringVar(&c.Proto, "proto", "roomlog", "protocol: roomlog, centrifugo or socketio")
	fs.Var(&urls, "url", "server endpoint(s), comma-separated or repeated (connections go round robin): ws://host:port/ws, ws://host:port/connection/websocket, ws://host:port (socketio: the Socket.IO peer; ws://host:port/ws or /socket.io/ for a relay's Socket.IO endpoint)")
	fs.IntVar(&c.Conns, "conns", 1000, "connections (N)")
	fs.IntVar(&c.Rooms, "rooms", 100, "rooms (M); connection i joins room i*M/N")
	fs.IntVar(&c.Publishers, "publishers", -1, "publishing connections (P); -1: one per room; each publishes to its own room")
	fs.Float64Var(&c.Rate, "rate", 100, "total publishes per second (R), spread evenly over the publishers")
	fs.IntVar(&c.Size, "size", 100, "bytes of each message's data (S)")
	fs.DurationVar(&c.Warmup, "warmup", 5*time.Second, "warm-up after all connections joined: publishing, not measured")
	fs.DurationVar(&c.Duration, "duration", 30*time.Second, "measured duration (T)")
	fs.DurationVar(&c.Drain, "drain", 3*time.Second, "wait after the last publish before counting losses")
	fs.IntVar(&c.SrcIPs, "src-ips", 32, "source addresses 127.0.0.2..127.0.0.(1+n), round robin (0: kernel's choice)")
	fs.IntVar(&c.ConnectConc, "connect-concurrency", 64, "concurrent dials per worker process")
	fs.Float64Var(&c.ConnectRate, "connect-rate", 0, "dials per second over all workers (0: unlimited)")
	fs.Float64Var(&c.Churn, "churn", 0, "extra connections opened (and as many closed) per second while traffic flows, over all workers")
	fs.DurationVar(&c.ChurnHold, "churn-hold", 2*time.Second, "how long a churn connection stays joined")
	fs.IntVar(&c.Procs, "procs", 1, "worker processes (each under the 20,000 descriptors limit); rooms are split between them")
	fs.StringVar(&c.ServerPIDs, "server-pids", "", "server processes to measure: name=pid,name=pid")
	fs.StringVar(&c.PIDFile, "pid-file", "", "file of server processes to measure, one \"name pid\" a line")
	fs.StringVar(&c.KillName, "kill", "", "name (from the pid list) of a server process to SIGKILL during the measured window")
	fs.DurationVar(&c.KillAt, "kill-at", 0, "when to kill it, from the start of the measured window (default: half of --duration)")
	fs.DurationVar(&c.Timeout, "timeout", 0, "hard bound on the whole run (default: connect time allowance + warm-up + duration + drain + 2m)")
	fs.StringVar(&c.CentrifugoSecret, "centrifugo-secret", "", "centrifugo: HMAC secret to sign a connection token with (empty: connect without token)")
	fs.StringVar(&c.Out, "out", "", "write the result JSON here")
	fs.BoolVar(&c.Quiet, "quiet", false, "less progress output")
	if worker {
		fs.IntVar(&c.Shard, "shard", 0, "worker: shard index")
		fs.IntVar(&c.Of, "of", 1, "worker: shard count")
		fs.StringVar(&c.RunID, "run-id", "x", "worker: prefix of room names")
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	c.URLs = urls
	if len(c.URLs) == 0 {
		return nil, errors.New("--url is required")
	}
	switch c.Proto {
	case "roomlog", "centrifugo", "socketio":
	default:
		return nil, fmt.Errorf("unknown --proto %q", c.Proto)
	}
	if c.Conns < 1 || c.Rooms < 1 || c.Rooms > c.Conns {
		return nil, errors.New("need 1 <= --rooms <= --conns")
	}
	if c.Publishers < 0 {
		c.Publishers = c.Rooms
	}
	if c.Rate <= 0 {
		c.Publishers = 0
	}
	if c.Publishers > 0 && (c.Publishers+c.Rooms-1)/c.Rooms > c.Conns/c.Rooms {
		return nil, errors.New("more publishers per room than members")
	}
	if c.Procs < 1 {
		c.Procs = 1
	}
	if c.Procs > c.Rooms {
		return nil, errors.New("--procs must not exceed --rooms: rooms are split between worker processes (so that each latency is timed inside one process)")
	}
	if c.KillName != "" && c.KillAt == 0 {
		c.KillAt = c.Duration / 2
	}
	if c.Size < 40 {
		c.Size = 40
	}
	if c.Timeout == 0 {
		c.Timeout = 2*time.Minute + c.Warmup + c.Duration + c.Drain + time.Duration(float64(c.Conns)/200*float64(time.Second))
	}
	return c, nil
}

// workerArgs are the flags a worker is started with.
func (c *config) workerArgs(shard int) []string {
	a := []string{
		"-system", c.System, "-scenario", c.Scenario, "-proto", c.Proto,
		"-url", strings.Join(c.URLs, ","),
		"-conns", fmt.Sprint(c.Conns), "-rooms", fmt.Sprint(c.Rooms), "-publishers", fmt.Sprint(c.Publishers),
		"-rate", fmt.Sprint(c.Rate), "-size", fmt.Sprint(c.Size),
		"-warmup", c.Warmup.String(), "-duration", c.Duration.String(), "-drain", c.Drain.String(),
		"-src-ips", fmt.Sprint(c.SrcIPs), "-connect-concurrency", fmt.Sprint(c.ConnectConc),
		"-connect-rate", fmt.Sprint(c.ConnectRate / float64(c.Procs)),
		"-churn", fmt.Sprint(c.Churn / float64(c.Procs)), "-churn-hold", c.ChurnHold.String(),
		"-procs", fmt.Sprint(c.Procs), "-timeout", c.Timeout.String(),
		"-centrifugo-secret", c.CentrifugoSecret,
		"-shard", fmt.Sprint(shard), "-of", fmt.Sprint(c.Procs), "-run-id", c.RunID,
	}
	if c.Quiet {
		a = append(a, "-quiet")
	}
	return a
}

// roomOf is the room of connection i.
func (c *config) roomOf(i int) int { return int(int64(i) * int64(c.Rooms) / int64(c.Conns)) }

// firstConn is the first connection of room r.
func (c *config) firstConn(r int) int {
	// smallest i with i*M/N >= r
	return int((int64(r)*int64(c.Conns) + int64(c.Rooms) - 1) / int64(c.Rooms))
}

// shardOf is the worker of room r: rooms are split in contiguous ranges.
func (c *config) shardOf(r int) int { return int(int64(r) * int64(c.Procs) / int64(c.Rooms)) }

// publisherConn is the connection of publisher p: the k-th member of room p%M.
func (c *config) publisherConn(p int) int { return c.firstConn(p%c.Rooms) + p/c.Rooms }

func (c *config) roomName(r int) string { return fmt.Sprintf("b%s-%d", c.RunID, r) }
