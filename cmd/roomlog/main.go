// Command roomlog runs roomlog: a WebSocket relay whose rooms live in a Kafka
// log (roomlog relay), or the embedded broker alone (roomlog broker).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/roomlog/roomlog/consumer"
	"github.com/roomlog/roomlog/internal/cliflag"
	"github.com/roomlog/roomlog/internal/embedded"
	"github.com/roomlog/roomlog/relay"
	"github.com/roomlog/roomlog/relay/console"
	"github.com/roomlog/roomlog/relay/demo"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `roomlog: scale realtime apps on a log.

Usage:
  roomlog relay [flags]    run a relay (embedded broker unless --brokers is set)
  roomlog broker [flags]   run the embedded broker alone, for several local relays
  roomlog client [flags]   join a room, print what arrives, publish lines from stdin
  roomlog replay [flags]   print the log's records (filters, JSON lines or a table, --follow)
  roomlog state [flags]    a room's state at a position or time, with the relays' fold; --diff
  roomlog export [flags]   write a slice of the log to a file
  roomlog redrive FILE     re-publish an export into a (sandbox) topic, in order, with its timing
  roomlog version          print the version

Run "roomlog <command> --help" for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "relay":
		err = runRelay(ctx, args[1:], stderr)
	case "broker":
		err = runBroker(ctx, args[1:], stdout, stderr)
	case "client":
		err = runClient(ctx, args[1:], stdin, stdout, stderr)
	case "replay":
		err = runReplay(ctx, args[1:], stdout, stderr)
	case "state":
		err = runState(ctx, args[1:], stdout, stderr)
	case "export":
		err = runExport(ctx, args[1:], stdout, stderr)
	case "redrive":
		err = runRedrive(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "roomlog", version)
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "roomlog: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(stderr, "roomlog %s: %v\n", args[0], err)
		return 1
	}
}

var errUsage = errors.New("usage")

type logFlags struct{ level, format string }

func (l *logFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&l.level, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&l.format, "log-format", "text", "log format: text or json")
}

func (l *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(l.level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", l.level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(l.format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", l.format)
}

func runRelay(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlagSet("relay", "Runs a relay: WebSocket clients at ws://<listen>/ws, Socket.IO clients at /socket.io/, every event appended to the log.\n"+
		"With no --brokers it starts an embedded broker persisting to --data-dir.", stderr)
	var (
		cfg            relay.Config
		brokers        cliflag.List
		lf             logFlags
		dataDir        string
		embListen      string
		fsync          bool
		partitions     int
		rf             int
		shutdownT      time.Duration
		produceLinger  time.Duration
		startT         time.Duration
		procs          int
		adminAddr      string
		privateMetrics bool
		demoPage       bool
		sioMaxDisc     time.Duration
	)
	fs.StringVar(&cfg.Listen, "listen", relay.DefaultListen, "HTTP/WebSocket listen address")
	fs.Var(&brokers, "brokers", "Kafka seed brokers, host:port,... (empty: embedded broker)")
	fs.StringVar(&cfg.Topic, "topic", relay.DefaultTopic, "events topic, created when missing")
	fs.IntVar(&partitions, "partitions", relay.DefaultPartitions, "partitions of the events topic when the relay creates it")
	fs.IntVar(&rf, "replication-factor", relay.DefaultReplicationFactor, "replication factor when the relay creates the topic (-1: broker default)")
	fs.StringVar(&dataDir, "data-dir", "./roomlog-data", "embedded broker: data folder")
	fs.StringVar(&embListen, "embedded-listen", "127.0.0.1:0", "embedded broker: Kafka listen address (port 0: any free port)")
	fs.BoolVar(&fsync, "fsync", false, "embedded broker: fsync every batch before acknowledging it")
	fs.IntVar(&cfg.MaxMessageBytes, "max-message-bytes", relay.DefaultMaxMessageBytes, "largest client frame accepted, in bytes (larger: close 1009)")
	fs.IntVar(&cfg.SendQueue, "send-queue", relay.DefaultSendQueue, "frames queued per socket before it is closed as slow (4001)")
	fs.DurationVar(&cfg.WriteTimeout, "write-timeout", relay.DefaultWriteTimeout, "deadline for one socket write")
	fs.DurationVar(&cfg.PingInterval, "ping-interval", relay.DefaultPingInterval, "interval between WebSocket pings")
	fs.DurationVar(&cfg.PongTimeout, "pong-timeout", relay.DefaultPongTimeout, "how long a client may take to answer a ping")
	fs.DurationVar(&cfg.ProduceTimeout, "produce-timeout", relay.DefaultProduceTimeout, "how long a record may wait for the log before the client gets log_unavailable")
	fs.DurationVar(&produceLinger, "produce-linger", relay.DefaultProduceLinger, "how long a publish waits for others to share its produce request (0: send at once: lowest median latency, more CPU)")
	fs.IntVar(&cfg.MaxInflight, "max-inflight", relay.DefaultMaxInflight, "unacknowledged records per connection before its reads pause")
	fs.IntVar(&cfg.MaxRoomsPerConn, "max-rooms", relay.DefaultMaxRoomsPerConn, "rooms one connection may be in")
	fs.StringVar(&cfg.RelayName, "relay-name", "", "this relay's name, unique in the fleet and stable across restarts (default: host name and listen port)")
	fs.StringVar(&cfg.AdvertiseAddr, "advertise-addr", "", "host:port where other relays reach this one, published in its leases: they forward requests for its Socket.IO sessions there (default: the listen address when it names a host, else the host name and the port)")
	fs.StringVar(&cfg.InternalListen, "internal-listen", "", "a second listen address (host:port, port 0 for any) for requests other relays forward to this one, advertised in its leases; under --procs each process gets its own (default 127.0.0.1:0: forwarding between the processes of this host; give a host other relays reach, with port 0, for a fleet)")
	fs.DurationVar(&cfg.LeaseTimeout, "lease-timeout", relay.DefaultLeaseTimeout, "how long a relay may go silent before the others remove its members")
	fs.StringVar(&cfg.Compression, "compression", "none", "codec of the record batches the relay appends: none (every Kafka client reads them), gzip, snappy, lz4 or zstd (the backends' clients must read it; kafkajs needs a plugin for all but gzip)")
	fs.StringVar(&cfg.Follow, "follow", relay.FollowAll, "which partitions this relay folds: all, or interest (the control partition, the ones it keeps, and the ones its rooms and reads need; see docs/scaling.md)")
	fs.DurationVar(&cfg.FetchMaxWait, "fetch-max-wait", 0, "how long the relay's fetch of the log waits for records (default 250ms, 100ms with --follow interest: the first op on a room of a partition not followed yet waits for the fetch in flight)")
	fs.DurationVar(&cfg.FollowIdle, "follow-idle", relay.DefaultFollowIdle, "with --follow interest: how long a partition no local room is in stays followed after its last use")
	fs.IntVar(&cfg.HistoryWindow, "history-window", consumer.DefaultHistoryWindow, "recent messages per room kept in memory for recovery and history (older ones are read from the log)")
	fs.DurationVar(&sioMaxDisc, "sio-max-disconnection", relay.DefaultSIOMaxDisconnection, "how long after its connection went a Socket.IO session can be recovered on any relay (connection state recovery: socket.recovered); at most 15m, 0 turns recovery off")
	fs.DurationVar(&cfg.ReadTimeout, "read-timeout", relay.DefaultReadTimeout, "bound on log reads for recovery and history, and on waits for a position")
	fs.DurationVar(&shutdownT, "shutdown-timeout", 15*time.Second, "how long a graceful shutdown may take")
	fs.DurationVar(&startT, "start-timeout", 10*time.Minute, "how long the start (topic, replay of the log, lease) may take")
	fs.IntVar(&procs, "procs", 1, "run this many relay processes on one port (SO_REUSEPORT) under a supervisor that restarts them; SIGHUP replaces them one at a time")
	fs.StringVar(&cfg.SnapshotTopic, "snapshot-topic", relay.DefaultSnapshotTopic, "compacted topic of partition snapshots (created when missing)")
	fs.DurationVar(&cfg.SnapshotInterval, "snapshot-interval", relay.DefaultSnapshotInterval, "how often a partition's owner relay writes its snapshot (negative: no snapshots; starts replay the whole log)")
	fs.IntVar(&cfg.SnapshotMinRecords, "snapshot-min-records", relay.DefaultSnapshotMinRecords, "records folded since the last snapshot before another is written")
	fs.BoolVar(&cfg.ReusePort, "reuse-port", false, "set SO_REUSEPORT so several relay processes can listen on the same port")
	fs.BoolVar(&demoPage, "demo", true, "serve the demo page at / (with JWT auth it asks for a token; --demo=false: no page)")
	fs.StringVar(&adminAddr, "admin-listen", "", "serve pprof on this address (e.g. 127.0.0.1:6060); off when empty")
	fs.BoolVar(&privateMetrics, "private-metrics", false, "serve /metrics on --admin-listen only, not on the public listener")
	lf.register(fs)
	var kf kafkaFlags
	kf.register(fs)
	sec := registerSecurityFlags(fs)
	if err := parse(fs, args); err != nil {
		return usageErr(err, stderr)
	}
	log, err := lf.logger(stderr)
	if err != nil {
		return err
	}
	if partitions < 1 || partitions > 1<<20 {
		return fmt.Errorf("--partitions %d: want 1 or more", partitions)
	}
	if rf == 0 || rf < -1 || rf > 1<<14 {
		return fmt.Errorf("--replication-factor %d: want -1 or a positive number", rf)
	}
	cfg.Partitions, cfg.ReplicationFactor, cfg.Logger = int32(partitions), int16(rf), log
	switch {
	case produceLinger < 0:
		return fmt.Errorf("--produce-linger %v: want 0 (send at once) or a duration", produceLinger)
	case produceLinger == 0:
		cfg.ProduceLinger = -1 // at once
	default:
		cfg.ProduceLinger = produceLinger
	}
	switch {
	case sioMaxDisc < 0:
		return fmt.Errorf("--sio-max-disconnection %v: want 0 (off) or a duration", sioMaxDisc)
	case sioMaxDisc == 0:
		cfg.SIOMaxDisconnection = -1 // off
	default:
		cfg.SIOMaxDisconnection = sioMaxDisc
	}
	cfg.Brokers = brokers
	if cfg.ClientOpts, err = kf.opts(); err != nil {
		return err
	}
	tlsm, err := sec.configure(fs, &cfg, log) // auth, limits, TLS, plaintext policy
	if err != nil {
		return err
	}
	defer tlsm.close()
	if demoPage {
		cfg.Pages = demo.Handler(demo.Config{TokenRequired: !cfg.Auth.Anonymous})
	}
	cfg.Console = console.Handler(console.Config{Open: cfg.AdminOpen})
	if procs < 1 || procs > 256 {
		return fmt.Errorf("--procs %d: want 1 to 256", procs)
	}
	if privateMetrics && (adminAddr == "" || procs > 1) {
		return errors.New("--private-metrics needs --admin-listen, and a single process (not --procs)")
	}
	cfg.PrivateMetrics = privateMetrics
	var metrics atomic.Pointer[relay.Server] // the admin listener's /metrics, once the relay exists
	if adminAddr != "" {
		stop, err := serveAdmin(adminAddr, log, func() http.Handler {
			if srv := metrics.Load(); privateMetrics && srv != nil {
				return srv.MetricsHandler()
			}
			return nil
		})
		if err != nil {
			return err
		}
		defer stop()
	}
	if procs > 1 {
		// The children share --listen: each advertises an internal
		// address of its own, where Socket.IO requests for its sessions
		// are forwarded.
		internal := cfg.InternalListen
		if internal == "" {
			internal = "127.0.0.1:0"
		}
		if _, port, err := net.SplitHostPort(internal); err != nil || port != "0" {
			return fmt.Errorf("--internal-listen %q: under --procs, want host:0 (each process listens on a port of its own)", internal)
		}
		if cfg.AdvertiseAddr != "" {
			return errors.New("--advertise-addr: under --procs each process advertises its own --internal-listen address")
		}
		childArgs := append([]string{"relay"}, args...)
		childArgs = append(childArgs, "--internal-listen", internal)
		if len(brokers) == 0 {
			emb, err := embedded.Start(embedded.Config{Listen: embListen, DataDir: dataDir, SyncWrites: fsync, Logger: log})
			if err != nil {
				return err
			}
			defer emb.Close()
			childArgs = append(childArgs, "--brokers", strings.Join(emb.Addrs(), ","))
			log.Info("embedded broker started for the relay children", "addr", strings.Join(emb.Addrs(), ","), "data_dir", dataDir)
		}
		childArgs = append(childArgs, "--admin-listen", "")
		name := cfg.RelayName
		if name == "" {
			name = relay.DefaultName(cfg.Listen)
		}
		return runSupervisor(ctx, childArgs, procs, name, log, stderr)
	}
	if len(brokers) == 0 {
		emb, err := embedded.Start(embedded.Config{Listen: embListen, DataDir: dataDir, SyncWrites: fsync, Logger: log})
		if err != nil {
			return err
		}
		defer emb.Close()
		cfg.Brokers = emb.Addrs()
		log.Info("embedded broker started", "addr", strings.Join(cfg.Brokers, ","), "data_dir", dataDir)
	}
	srv, err := relay.New(cfg)
	if err != nil {
		return err
	}
	metrics.Store(srv)
	// SIGHUP reloads the secret files now (they are also polled).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := srv.ReloadSecrets(); err != nil {
					log.Error("SIGHUP: secrets not reloaded; the previous ones stay in service", "err", err)
				} else {
					log.Info("SIGHUP: secrets reloaded")
				}
			}
		}
	}()
	startCtx, cancel := context.WithTimeout(ctx, startT)
	err = srv.Start(startCtx)
	cancel()
	if err != nil {
		return err
	}
	if err := tlsm.start(ctx, srv); err != nil {
		// The relay is serving: drain it before returning, which closes
		// the embedded broker (deferred) only after the relay is done.
		sctx, cancel := context.WithTimeout(context.Background(), shutdownT)
		defer cancel()
		return errors.Join(fmt.Errorf("tls: %w", err), srv.Shutdown(sctx))
	}
	signalReady()
	log.Info("serving", "ws", fmt.Sprintf("%s://%s/ws", tlsm.wsScheme(), srv.Addr()), "version", version)
	<-ctx.Done()
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownT)
	defer cancel()
	return srv.Shutdown(sctx)
}

func runBroker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("broker", "Runs the embedded Kafka-protocol broker alone, so several relays on one machine can share it\n"+
		"(roomlog relay --brokers <listen>). For production, use Apache Kafka, Redpanda or MSK.", stderr)
	var (
		listen, dataDir string
		fsync           bool
		lf              logFlags
	)
	fs.StringVar(&listen, "listen", "127.0.0.1:9092", "Kafka listen address")
	fs.StringVar(&dataDir, "data-dir", "./roomlog-data", "data folder")
	fs.BoolVar(&fsync, "fsync", false, "fsync every batch before acknowledging it")
	lf.register(fs)
	if err := parse(fs, args); err != nil {
		return usageErr(err, stderr)
	}
	log, err := lf.logger(stderr)
	if err != nil {
		return err
	}
	emb, err := embedded.Start(embedded.Config{Listen: listen, DataDir: dataDir, SyncWrites: fsync, Logger: log})
	if err != nil {
		return err
	}
	log.Info("broker started", "addr", strings.Join(emb.Addrs(), ","), "data_dir", dataDir)
	fmt.Fprintln(stdout, strings.Join(emb.Addrs(), ","))
	<-ctx.Done()
	log.Info("broker stopping")
	emb.Close()
	return nil
}

// serveAdmin serves pprof on addr, on its own listener and mux so that it is
// never exposed on the public port; and /metrics when metrics returns a
// handler (--private-metrics).
func serveAdmin(addr string, log *slog.Logger, metrics func() http.Handler) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--admin-listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		if h := metrics(); h != nil {
			h.ServeHTTP(w, r)
			return
		}
		http.Error(w, "metrics are served on the public listener (see --private-metrics)", http.StatusNotFound)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: relay.DefaultHTTPIdle}
	go func() { _ = srv.Serve(ln) }()
	log.Info("admin listener (pprof) started", "addr", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}
