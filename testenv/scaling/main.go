// Command scaling measures what each relay of a fleet spends as relays are
// added for the same traffic: the numbers behind docs/scaling.md's cost
// model.
//
// For each fleet size in --relays it starts a broker (`roomlog broker`, or
// uses --brokers) and that many relays on 127.0.0.1, joins every room from
// WebSocket clients placed by --placement, produces --rate records per
// second straight to the log (a backend's way: any Kafka producer, key =
// room) over --rooms rooms, and after --warmup samples the CPU time and RSS
// of every process over --window. It prints one row per fleet size and, with
// --json, one JSON line each.
//
//	go build -o bin/roomlog ./cmd/roomlog
//	go run ./testenv/scaling --bin bin/roomlog --relays 1,2,4,8 --rate 4000 --placement one
//
// Placements:
//   - one: every room's member is on the first relay; the others serve no
//     socket, so their CPU is what reading the log costs a relay.
//   - share: room i's member is on relay i mod N, so each relay delivers 1/N
//     of the traffic, as behind a load balancer.
//   - keeper: room i's member is on the relay that keeps the room's
//     partition (relay.KeeperOf over the fleet's names): routing by room,
//     the placement under which relays run with `-- --follow interest`
//     read only their own share of the log (docs/scaling.md).
//   - none: no clients at all.
//
// Linux only: it reads /proc. CPU is utime+stime of each process (the
// load generator's own is reported apart); the machine has to be otherwise
// quiet for the figures to mean anything.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/internal/procstat"
	"github.com/roomlog/roomlog/record"
	"github.com/roomlog/roomlog/relay"
	"github.com/roomlog/roomlog/testenv/internal/fleet"
)

type options struct {
	bin        string
	relays     []int
	rate       int
	rooms      int
	partitions int
	placement  string
	warmup     time.Duration
	window     time.Duration
	brokers    string
	valueBytes int
	json       bool
	keep       bool
	relayArgs  []string
}

// row is one fleet size's measurement; CPU figures are cores (CPU-seconds
// per second).
type row struct {
	Relays        int       `json:"relays"`
	Placement     string    `json:"placement"`
	Partitions    int       `json:"partitions"`
	Rooms         int       `json:"rooms"`
	RecordsPerSec float64   `json:"records_per_sec"`
	DeliveredPerS float64   `json:"delivered_per_sec"`
	RelayCPU      []float64 `json:"relay_cpu"`
	RelayRSSMiB   []float64 `json:"relay_rss_mib"`
	BrokerCPU     float64   `json:"broker_cpu"`
	ToolCPU       float64   `json:"tool_cpu"`
	WindowSeconds float64   `json:"window_seconds"`
}

func main() {
	var o options
	var relays string
	flag.StringVar(&o.bin, "bin", "bin/roomlog", "the roomlog binary (go build -o bin/roomlog ./cmd/roomlog)")
	flag.StringVar(&relays, "relays", "1,2,4,8", "fleet sizes to measure, comma-separated")
	flag.IntVar(&o.rate, "rate", 4000, "records produced per second")
	flag.IntVar(&o.rooms, "rooms", 1024, "rooms the records are spread over (keys room-0 ...)")
	flag.IntVar(&o.partitions, "partitions", 16, "the topic's partitions (roomlog relay --partitions)")
	flag.StringVar(&o.placement, "placement", "one", "where the rooms' members connect: one, share, keeper or none (see the package comment)")
	flag.DurationVar(&o.warmup, "warmup", 10*time.Second, "traffic before the measurement")
	flag.DurationVar(&o.window, "window", 20*time.Second, "the measurement window")
	flag.StringVar(&o.brokers, "brokers", "", "an external Kafka (host:port,...) instead of a roomlog broker process; each run uses a topic of its own")
	flag.IntVar(&o.valueBytes, "value-bytes", 100, "bytes of each record's value")
	flag.BoolVar(&o.json, "json", false, "also print one JSON line per fleet size")
	flag.BoolVar(&o.keep, "keep", false, "keep the temp folder (logs, data)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: go run ./testenv/scaling [flags] [-- roomlog relay flags]\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	o.relayArgs = flag.Args()
	for _, f := range strings.Split(relays, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "scaling: --relays %q: want positive integers\n", relays)
			os.Exit(2)
		}
		o.relays = append(o.relays, n)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "scaling:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "scaling %s: "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func run(o options) error {
	switch {
	case o.rate < 1 || o.rooms < 1 || o.partitions < 1 || o.valueBytes < 10:
		return errors.New("--rate, --rooms and --partitions must be positive, --value-bytes at least 10")
	case o.placement != "one" && o.placement != "share" && o.placement != "keeper" && o.placement != "none":
		return fmt.Errorf("--placement %q: want one, share, keeper or none", o.placement)
	case o.window < time.Second:
		return errors.New("--window: at least 1s")
	}
	if _, err := os.Stat(o.bin); err != nil {
		return fmt.Errorf("--bin: %w (go build -o bin/roomlog ./cmd/roomlog)", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "roomlog-scaling-")
	if err != nil {
		return err
	}
	if o.keep {
		logf("temp folder %s is kept", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	fmt.Printf("roomlog scaling: %d records/s over %d rooms, %d partitions, placement %s, window %v\n",
		o.rate, o.rooms, o.partitions, o.placement, o.window)
	fmt.Printf("%6s %10s %10s %26s %9s %9s %9s %9s\n", "relays", "records/s", "deliv/s", "relay CPU (mean min-max)", "relays", "broker", "tool", "RSS MiB")
	for i, n := range o.relays {
		r, err := measure(ctx, o, n, filepath.Join(dir, strconv.Itoa(i)))
		if err != nil {
			return fmt.Errorf("%d relays: %w", n, err)
		}
		mean, lo, hi, sum := stats(r.RelayCPU)
		rss, _, _, _ := stats(r.RelayRSSMiB)
		fmt.Printf("%6d %10.0f %10.0f %11.1f%% %5.1f-%5.1f%% %8.1f%% %8.1f%% %8.1f%% %9.0f\n",
			n, r.RecordsPerSec, r.DeliveredPerS, 100*mean, 100*lo, 100*hi, 100*sum, 100*r.BrokerCPU, 100*r.ToolCPU, rss)
		if o.json {
			js, _ := json.Marshal(r)
			fmt.Println(string(js))
		}
	}
	return nil
}

func stats(v []float64) (mean, lo, hi, sum float64) {
	if len(v) == 0 {
		return
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	for _, x := range s {
		sum += x
	}
	return sum / float64(len(s)), s[0], s[len(s)-1], sum
}

// measure runs one fleet of n relays through warmup and window.
func measure(ctx context.Context, o options, n int, dir string) (*row, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	topic := fmt.Sprintf("scaling-%d-%d", time.Now().UnixNano(), n)
	// Joining hundreds of rooms at once is past a client's default frame
	// rate; the measurement is not about it.
	args := append([]string{"--topic", topic, "--snapshot-topic", topic + ".snapshots", "--rate", "-1"}, o.relayArgs...)
	fl, err := fleet.New(fleet.Config{Bin: o.bin, DataDir: dir, LogDir: dir, Relays: n, Partitions: o.partitions,
		Brokers: o.brokers, RelayArgs: args})
	if err != nil {
		return nil, err
	}
	defer fl.StopAll()
	logf("%d relays: starting (logs in %s)", n, dir)
	if err := fl.StartAll(ctx); err != nil {
		return nil, err
	}

	var delivered atomic.Int64
	subs, err := joinAll(ctx, o, fl, &delivered)
	defer func() {
		for _, c := range subs {
			c.Close()
		}
	}()
	if err != nil {
		return nil, err
	}
	prod, err := startProducer(ctx, o, fl.Brokers, topic)
	if err != nil {
		return nil, err
	}
	defer prod.stop()
	logf("%d relays: %d clients joined %d rooms; warming up %v", n, len(subs), o.rooms, o.warmup)
	if err := sleep(ctx, o.warmup); err != nil {
		return nil, err
	}
	if err := prod.failed(); err != nil {
		return nil, err
	}

	procs := []*fleet.Proc{}
	if fl.Broker != nil {
		procs = append(procs, fl.Broker)
	}
	procs = append(procs, fl.Relays...)
	before, err := cpuOf(procs)
	if err != nil {
		return nil, err
	}
	selfBefore, _ := procstat.CPUSeconds(os.Getpid())
	acked0, deliv0, t0 := prod.acked.Load(), delivered.Load(), time.Now()
	if err := sleep(ctx, o.window); err != nil {
		return nil, err
	}
	after, err := cpuOf(procs)
	if err != nil {
		return nil, err
	}
	selfAfter, _ := procstat.CPUSeconds(os.Getpid())
	secs := time.Since(t0).Seconds()
	r := &row{Relays: n, Placement: o.placement, Partitions: o.partitions, Rooms: o.rooms, WindowSeconds: secs,
		RecordsPerSec: float64(prod.acked.Load()-acked0) / secs,
		DeliveredPerS: float64(delivered.Load()-deliv0) / secs,
		ToolCPU:       (selfAfter - selfBefore) / secs}
	for i, p := range procs {
		c := (after[i] - before[i]) / secs
		if p == fl.Broker {
			r.BrokerCPU = c
			continue
		}
		r.RelayCPU = append(r.RelayCPU, c)
		st, err := procstat.ReadStatus(p.Pid())
		if err != nil {
			return nil, err
		}
		r.RelayRSSMiB = append(r.RelayRSSMiB, float64(st.RSS)/(1<<20))
	}
	if err := prod.failed(); err != nil {
		return nil, err
	}
	if lag := float64(o.rate) - r.RecordsPerSec; lag > 0.05*float64(o.rate) {
		logf("warning: %d relays: produced %.0f records/s of the %d asked for (the machine is saturated)", n, r.RecordsPerSec, o.rate)
	}
	return r, nil
}

// joinAll connects the rooms' members as --placement says: a client per
// relay that has rooms, up to 500 rooms each, and counts the messages they
// receive.
func joinAll(ctx context.Context, o options, fl *fleet.Fleet, delivered *atomic.Int64) ([]*websocket.Conn, error) {
	if o.placement == "none" {
		return nil, nil
	}
	const roomsPerConn = 500
	byRelay := make([][]string, len(fl.Relays))
	names := make([]string, len(fl.Relays))
	index := map[string]int{}
	for i, r := range fl.Relays {
		names[i], index[r.Name] = r.Name, i
	}
	for i := 0; i < o.rooms; i++ {
		r := 0
		switch o.placement {
		case "share":
			r = i % len(fl.Relays)
		case "keeper":
			r = index[relay.KeeperOf(record.PartitionOf(roomName(i), int32(o.partitions)), names)]
		}
		byRelay[r] = append(byRelay[r], roomName(i))
	}
	var conns []*websocket.Conn
	for ri, rooms := range byRelay {
		for len(rooms) > 0 {
			batch := rooms[:min(roomsPerConn, len(rooms))]
			rooms = rooms[len(batch):]
			c, err := joinOne(ctx, "ws://"+fl.Relays[ri].Addr+"/ws", batch)
			if err != nil {
				return conns, fmt.Errorf("%s: %w", fl.Relays[ri].Name, err)
			}
			conns = append(conns, c)
			go func() {
				for {
					_, b, err := c.ReadMessage()
					if err != nil {
						return
					}
					if strings.HasPrefix(string(b[:min(len(b), 16)]), `{"op":"message"`) {
						delivered.Add(1)
					}
				}
			}()
		}
	}
	return conns, nil
}

// joinOne opens a connection, joins rooms and waits for every ack.
func joinOne(ctx context.Context, url string, rooms []string) (*websocket.Conn, error) {
	c, _, err := websocket.DefaultDialer.DialContext(ctx, url, nil)
	if err != nil {
		return nil, err
	}
	for i, room := range rooms {
		if err := c.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"op":"join","room":%q,"id":"%d"}`, room, i)); err != nil {
			c.Close()
			return nil, err
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	for acks := 0; acks < len(rooms); {
		_, b, err := c.ReadMessage()
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("joining %d rooms: %d acks, then %w", len(rooms), acks, err)
		}
		var f struct{ Op, Code, Message string }
		_ = json.Unmarshal(b, &f)
		switch f.Op {
		case "ack":
			acks++
		case "error":
			c.Close()
			return nil, fmt.Errorf("join refused: %s %s", f.Code, f.Message)
		}
	}
	_ = c.SetReadDeadline(time.Time{})
	return c, nil
}

func roomName(i int) string { return "room-" + strconv.Itoa(i) }

// producer appends rate records per second, round-robin over the rooms, in
// ticks of 10 ms.
type producer struct {
	cl     *kgo.Client
	acked  atomic.Int64
	mu     sync.Mutex
	err    error
	cancel context.CancelFunc
	done   chan struct{}
}

func startProducer(ctx context.Context, o options, brokers, topic string) (*producer, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...), kgo.DefaultProduceTopic(topic),
		kgo.ProducerLinger(5*time.Millisecond), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &producer{cl: cl, cancel: cancel, done: make(chan struct{})}
	value := []byte(`{"text":"` + strings.Repeat("x", o.valueBytes-11) + `"}`)
	go func() {
		defer close(p.done)
		const tick = 10 * time.Millisecond
		t := time.NewTicker(tick)
		defer t.Stop()
		start, sent, room := time.Now(), 0, 0
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				due := int(now.Sub(start).Seconds() * float64(o.rate))
				for ; sent < due; sent++ {
					key := []byte(roomName(room))
					room = (room + 1) % o.rooms
					cl.Produce(ctx, &kgo.Record{Key: key, Value: value}, func(_ *kgo.Record, err error) {
						if err == nil {
							p.acked.Add(1)
							return
						}
						if ctx.Err() == nil {
							p.mu.Lock()
							p.err = errors.Join(p.err, err)
							p.mu.Unlock()
						}
					})
				}
			}
		}
	}()
	return p, nil
}

func (p *producer) failed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return fmt.Errorf("producing: %w", p.err)
	}
	return nil
}

func (p *producer) stop() {
	p.cancel()
	<-p.done
	p.cl.Close()
}

// cpuOf reads the CPU-seconds of each process.
func cpuOf(procs []*fleet.Proc) ([]float64, error) {
	out := make([]float64, len(procs))
	for i, p := range procs {
		pid := p.Pid()
		if pid == 0 {
			return nil, fmt.Errorf("%s is down (see %s)", p.Name, p.Log())
		}
		c, err := procstat.CPUSeconds(pid)
		if err != nil {
			return nil, err
		}
		out[i] = c
	}
	return out, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
