// Command chaos checks roomlog's delivery guarantees while relays (and
// optionally the broker) are killed and restarted.
//
// It starts a local fleet on 127.0.0.1 (an embedded broker from
// `roomlog broker` and N relays, all children of this process), puts M
// subscribers in rooms and runs P publishers that send sequence-numbered
// messages with a client message id (mid), retrying every unacknowledged
// publish, on another relay after a disconnect, until it is acknowledged.
// Meanwhile a chaos loop kills relays with SIGKILL (and some with SIGTERM)
// and restarts them. Subscribers resume with since=<last position> after
// every disconnect. At the end every acknowledged message must have reached
// every subscriber of its room exactly once and in log order.
//
//	go run ./testenv/chaos --duration 60s
//
// Exit status: 0 all good, 1 an acknowledged message was lost, duplicated or
// delivered out of order, 2 the run could not be set up.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/roomlog/roomlog/testenv/internal/fleet"
	"github.com/roomlog/roomlog/testenv/internal/traffic"
)

type options struct {
	bin          string
	build        bool
	relays       int
	basePort     int
	publishers   int
	subscribers  int
	rooms        int
	rate         float64
	size         int
	duration     time.Duration
	killMin      time.Duration
	killMax      time.Duration
	downMin      time.Duration
	downMax      time.Duration
	termRatio    float64
	killBroker   bool
	fsync        bool
	settle       time.Duration
	leaseTimeout time.Duration
	partitions   int
	seed         uint64
	dataDir      string
	jsonOut      string
	keep         bool
	verbose      bool
	dropEvery    int
	churn        time.Duration
}

func main() {
	os.Exit(run())
}

func run() int {
	var o options
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.StringVar(&o.bin, "bin", "bin/roomlog", "roomlog binary (built first unless --build=false)")
	fs.BoolVar(&o.build, "build", true, "go build -o <bin> ./cmd/roomlog before starting (run from the repository root)")
	fs.IntVar(&o.relays, "relays", 3, "relays in the fleet")
	fs.IntVar(&o.basePort, "base-port", 0, "first relay port (relay N on base+N-1); 0: free ports")
	fs.IntVar(&o.publishers, "publishers", 6, "publishers (publisher i writes to room i mod --rooms)")
	fs.IntVar(&o.subscribers, "subscribers", 9, "subscribers (subscriber i reads room i mod --rooms)")
	fs.IntVar(&o.rooms, "rooms", 3, "rooms")
	fs.Float64Var(&o.rate, "rate", 20, "publishes per second per publisher (each waits for its ack)")
	fs.IntVar(&o.size, "size", 64, "padding bytes per message")
	fs.DurationVar(&o.duration, "duration", 60*time.Second, "how long publishers publish and the chaos loop runs")
	fs.DurationVar(&o.killMin, "kill-min", 2*time.Second, "shortest pause between two kills")
	fs.DurationVar(&o.killMax, "kill-max", 6*time.Second, "longest pause between two kills")
	fs.DurationVar(&o.downMin, "down-min", 500*time.Millisecond, "shortest time a killed process stays down")
	fs.DurationVar(&o.downMax, "down-max", 4*time.Second, "longest time a killed process stays down")
	fs.Float64Var(&o.termRatio, "term-ratio", 0.25, "share of relay kills that are SIGTERM (graceful drain) rather than SIGKILL")
	fs.BoolVar(&o.killBroker, "kill-broker", false, "also SIGKILL and restart the embedded broker (it then runs with --fsync)")
	fs.BoolVar(&o.fsync, "fsync", false, "run the broker with --fsync even without --kill-broker")
	fs.DurationVar(&o.settle, "settle", 45*time.Second, "after the chaos, how long to wait for in-flight publishes and for subscribers to catch up")
	fs.DurationVar(&o.leaseTimeout, "lease-timeout", 5*time.Second, "relays' --lease-timeout")
	fs.IntVar(&o.partitions, "partitions", 8, "relays' --partitions")
	fs.Uint64Var(&o.seed, "seed", 0, "random seed for the chaos schedule (0: from the clock)")
	fs.StringVar(&o.dataDir, "data-dir", "", "folder for the broker's data and the logs (default: a new temp folder)")
	fs.StringVar(&o.jsonOut, "json", "", "write the JSON report here ('-': standard output; default <data-dir>/report.json)")
	fs.BoolVar(&o.keep, "keep", true, "keep the data folder and logs at the end (--keep=false removes them after a passing run; a failing one keeps them)")
	fs.BoolVar(&o.verbose, "v", false, "log every kill and restart")
	fs.DurationVar(&o.churn, "churn", 0, "clients churn: each subscriber and publisher leaves its relay about this often and resumes through another (0: only when a relay fails)")
	fs.IntVar(&o.dropEvery, "self-test-drop", 0, "self-test of the checker: subscribers ignore every Nth message, so the run must FAIL with losses (0: off)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: go run ./testenv/chaos [flags] [-- roomlog relay flags]\n\nKills and restarts relays of a local roomlog fleet while publishers and subscribers run,\nthen reports acked messages lost, duplicated or out of order.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if o.relays < 1 || o.publishers < 1 || o.subscribers < 1 || o.rooms < 1 || o.rate <= 0 ||
		o.killMin <= 0 || o.killMax < o.killMin || o.downMax < o.downMin || o.duration <= 0 ||
		o.duration > 24*time.Hour || o.publishers > 1000 || o.subscribers > 10000 {
		fmt.Fprintln(os.Stderr, "chaos: bad flags (counts must be positive and bounded, kill-max >= kill-min, down-max >= down-min)")
		return 2
	}
	if o.subscribers < o.rooms {
		fmt.Fprintln(os.Stderr, "chaos: --subscribers must be at least --rooms, so every room is watched")
		return 2
	}
	if o.seed == 0 {
		o.seed = uint64(time.Now().UnixNano())
	}
	rng := rand.New(rand.NewPCG(o.seed, o.seed^0x9e3779b97f4a7c15))

	if o.dataDir == "" {
		d, err := os.MkdirTemp("", "roomlog-chaos-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			return 2
		}
		o.dataDir = d
	} else if err := os.MkdirAll(o.dataDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	logDir := filepath.Join(o.dataDir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	if o.jsonOut == "" {
		o.jsonOut = filepath.Join(o.dataDir, "report.json")
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "chaos %s: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
	}

	if o.build {
		logf("building %s", o.bin)
		cmd := exec.Command("go", "build", "-o", o.bin, "./cmd/roomlog")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "chaos: build failed (run from the repository root, or --build=false --bin PATH):", err)
			return 2
		}
	}
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	o.bin = bin

	// ^C / SIGTERM end the run early (it still reports and cleans up).
	ctx, stopSignals := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stopSignals()

	fl, err := fleet.New(fleet.Config{Bin: o.bin, DataDir: o.dataDir, LogDir: logDir, Relays: o.relays, BasePort: o.basePort,
		Partitions: o.partitions, LeaseTimeout: o.leaseTimeout,
		// kfake acknowledges from the page cache unless --fsync; a SIGKILL
		// then loses nothing the page cache had, but syncing keeps the
		// broker honest even if the kernel's view is all that survives.
		Fsync: o.killBroker || o.fsync, RelayArgs: fs.Args()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	defer fl.StopAll() // also on early returns; stopAll is idempotent
	logf("data and logs in %s (seed %d)", o.dataDir, o.seed)
	if err := fl.StartAll(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	logf("fleet up: broker %s, relays %s", fl.Broker.Addr, strings.Join(fl.RelayURLs(), " "))

	urls := fl.RelayURLs()
	// Subscribers first, all joined before anything is published.
	clientCtx, stopClients := context.WithCancel(context.Background())
	defer stopClients()
	var subWG sync.WaitGroup
	subs := make([]*traffic.Subscriber, o.subscribers)
	for i := range subs {
		subs[i] = traffic.NewSubscriber(fmt.Sprintf("sub-%d", i+1), fmt.Sprintf("chaos-room-%d", i%o.rooms), traffic.NewDialer(urls))
		subs[i].DropEvery = o.dropEvery
		subs[i].Churn = o.churn
		subWG.Add(1)
		go func(s *traffic.Subscriber) { defer subWG.Done(); s.Run(clientCtx) }(subs[i])
	}
	joinDeadline := time.After(60 * time.Second)
	for _, s := range subs {
		select {
		case <-s.Joined():
		case <-joinDeadline:
			fmt.Fprintf(os.Stderr, "chaos: %s did not join within 60s\n", s.Name)
			return 2
		case <-ctx.Done():
			return 2
		}
	}
	logf("%d subscribers joined %d rooms; %d publishers start for %s", len(subs), o.rooms, o.publishers, o.duration)

	pubs := make([]*traffic.Publisher, o.publishers)
	stopPub := make(chan struct{})
	var pubWG sync.WaitGroup
	pubCtx, cancelPubs := context.WithCancel(clientCtx)
	defer cancelPubs()
	for i := range pubs {
		pubs[i] = traffic.NewPublisher(fmt.Sprintf("pub-%d", i+1), fmt.Sprintf("chaos-room-%d", i%o.rooms),
			traffic.NewDialer(urls), o.rate, o.size)
		pubs[i].Churn = o.churn
		pubWG.Add(1)
		go func(p *traffic.Publisher) { defer pubWG.Done(); p.Run(pubCtx, stopPub) }(pubs[i])
	}

	// The chaos loop.
	start := time.Now()
	chaosCtx, stopChaos := context.WithTimeout(ctx, o.duration)
	var chaosWG sync.WaitGroup
	var eventsMu sync.Mutex
	var events []string
	event := func(format string, args ...any) {
		s := fmt.Sprintf("%6.2fs ", time.Since(start).Seconds()) + fmt.Sprintf(format, args...)
		eventsMu.Lock()
		events = append(events, s)
		eventsMu.Unlock()
		if o.verbose {
			logf("%s", s)
		}
	}
	var rngMu sync.Mutex
	randDur := func(lo, hi time.Duration) time.Duration {
		rngMu.Lock()
		defer rngMu.Unlock()
		if hi <= lo {
			return lo
		}
		return lo + time.Duration(rng.Int64N(int64(hi-lo)))
	}
	restartAfter := func(p *fleet.Proc, down time.Duration, http bool) {
		defer chaosWG.Done()
		select {
		case <-time.After(down):
		case <-chaosCtx.Done():
			return // ensureUp restarts it
		}
		// A relay started while the broker is down exits at once (it cannot
		// create or describe the topic); like a supervisor, try again.
		for try := 1; ; try++ {
			if err := p.Start(o.bin); err != nil {
				event("restart %s failed: %v", p.Name, err)
				return
			}
			t0 := time.Now()
			err := p.WaitReady(ctx, 60*time.Second, http)
			if err == nil {
				event("%s back (ready in %s)", p.Name, time.Since(t0).Round(time.Millisecond))
				return
			}
			event("%s: %v", p.Name, err)
			if try == 10 || p.Running() {
				return
			}
			select {
			case <-time.After(time.Second):
			case <-chaosCtx.Done():
				return // ensureUp restarts it
			}
		}
	}
	chaosWG.Add(1)
	go func() {
		defer chaosWG.Done()
		for {
			select {
			case <-chaosCtx.Done():
				return
			case <-time.After(randDur(o.killMin, o.killMax)):
			}
			rngMu.Lock()
			brokerTurn := o.killBroker && rng.IntN(4) == 0
			term := rng.Float64() < o.termRatio
			order := rng.Perm(len(fl.Relays))
			rngMu.Unlock()
			if brokerTurn && fl.Broker.Running() {
				fl.Broker.Stop(syscall.SIGKILL, 5*time.Second)
				down := randDur(o.downMin, o.downMax)
				event("SIGKILL broker, down for %s", down.Round(time.Millisecond))
				chaosWG.Add(1)
				go restartAfter(fl.Broker, down, false)
				continue
			}
			if fl.LiveRelays() < 2 {
				continue // keep one relay serving
			}
			for _, i := range order {
				r := fl.Relays[i]
				if !r.Running() {
					continue
				}
				down := randDur(o.downMin, o.downMax)
				if term {
					event("SIGTERM %s (drain), down for %s", r.Name, down.Round(time.Millisecond))
					chaosWG.Add(1)
					go func() {
						r.Stop(syscall.SIGTERM, 20*time.Second)
						restartAfter(r, down, true)
					}()
				} else {
					r.Stop(syscall.SIGKILL, 5*time.Second)
					event("SIGKILL %s, down for %s", r.Name, down.Round(time.Millisecond))
					chaosWG.Add(1)
					go restartAfter(r, down, true)
				}
				break
			}
		}
	}()

	<-chaosCtx.Done()
	interrupted := ctx.Err() != nil
	stopChaos()
	close(stopPub)
	chaosWG.Wait()
	chaosEnd := time.Since(start)
	counts := fl.Counts()
	logf("chaos over after %s; restarting anything down, then settling (up to %s)", chaosEnd.Round(time.Millisecond), o.settle)
	if err := fl.EnsureUp(context.Background()); err != nil {
		logf("fleet did not come back up: %v", err)
	}

	// Publishers finish the publish in flight (retrying), bounded by settle.
	settleDeadline := time.Now().Add(o.settle)
	pubDone := make(chan struct{})
	go func() { pubWG.Wait(); close(pubDone) }()
	select {
	case <-pubDone:
	case <-time.After(time.Until(settleDeadline)):
		logf("publishers still retrying at the settle deadline; giving up on their last publish")
		cancelPubs()
		<-pubDone
	}

	// What every room must have delivered.
	want := traffic.Want(pubs)
	for {
		missing := traffic.Missing(subs, want)
		if missing == 0 || time.Now().After(settleDeadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	// A little longer, so late duplicates show.
	time.Sleep(time.Second)
	stopClients()
	subWG.Wait()
	fl.StopAll()

	rep := buildReport(&o, pubs, subs, want, chaosEnd, interrupted)
	rep.Chaos = counts
	eventsMu.Lock()
	rep.Events = events
	eventsMu.Unlock()
	rep.printText(os.Stdout)
	js, _ := json.MarshalIndent(rep, "", "  ")
	if o.jsonOut == "-" {
		fmt.Println(string(js))
	} else if err := os.WriteFile(o.jsonOut, append(js, '\n'), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "chaos: writing the JSON report:", err)
	} else {
		fmt.Printf("JSON report: %s\nlogs: %s\n", o.jsonOut, logDir)
	}
	if !o.keep && rep.OK && !interrupted {
		_ = os.RemoveAll(o.dataDir)
	}
	if !rep.OK {
		return 1
	}
	if interrupted {
		return 2
	}
	return 0
}

// ------------------------------------------------------------------ report

type report struct {
	traffic.Result
	Interrupted bool         `json:"interrupted,omitempty"`
	Seed        uint64       `json:"seed"`
	Duration    string       `json:"chaos_duration"`
	Relays      int          `json:"relays"`
	Publishers  int          `json:"publishers"`
	Subscribers int          `json:"subscribers"`
	Chaos       fleet.Counts `json:"chaos"`
	Events      []string     `json:"events"`
}

func buildReport(o *options, pubs []*traffic.Publisher, subs []*traffic.Subscriber, want map[string]map[traffic.MsgKey]string, d time.Duration, interrupted bool) *report {
	return &report{Result: *traffic.Check(pubs, subs, want), Seed: o.seed, Duration: d.Round(time.Millisecond).String(),
		Relays: o.relays, Publishers: len(pubs), Subscribers: len(subs), Interrupted: interrupted}
}

func (rep *report) printText(w io.Writer) {
	fmt.Fprintf(w, "\nroomlog chaos: %d relays, %d publishers, %d subscribers, chaos for %s (seed %d)\n",
		rep.Relays, rep.Publishers, rep.Subscribers, rep.Duration, rep.Seed)
	fmt.Fprintf(w, "kills: relay SIGKILL %d, relay SIGTERM %d, broker SIGKILL %d; starts: relays %d, broker %d\n",
		rep.Chaos.RelaySIGKILL, rep.Chaos.RelaySIGTERM, rep.Chaos.BrokerSIGKILL, rep.Chaos.RelayStarts, rep.Chaos.BrokerStarts)
	rep.PrintTable(w)
}
