package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/consumer"
	"github.com/roomlog/roomlog/internal/engineio"
	"github.com/roomlog/roomlog/record"
	"github.com/roomlog/roomlog/relay/auth"
)

// Defaults for Config's zero values.
const (
	DefaultListen            = ":8080"
	DefaultTopic             = "roomlog.events"
	DefaultPartitions        = 16
	DefaultReplicationFactor = -1 // the broker's default.replication.factor
	DefaultMaxMessageBytes   = 64 << 10
	DefaultSendQueue         = 1024
	DefaultWriteTimeout      = 10 * time.Second
	DefaultPingInterval      = 25 * time.Second
	DefaultPongTimeout       = 20 * time.Second
	DefaultProduceTimeout    = 10 * time.Second
	// DefaultProduceLinger batches publishes across rooms into one produce
	// request: fan-out on the embedded broker (docs/benchmarks.md) costs
	// about a third less server CPU per delivery than sending each publish
	// alone, the p99 is no worse, and the median is ~2 ms later (Apache
	// Kafka's own producer default since 4.0 is 5 ms).
	DefaultProduceLinger   = 2 * time.Millisecond
	DefaultMaxInflight     = 256
	DefaultMaxRoomsPerConn = 1000
	DefaultLeaseTimeout    = 10 * time.Second
	DefaultReadTimeout     = 10 * time.Second
	// DefaultSIOMaxDisconnection is how long a Socket.IO session stays
	// recoverable after its connection went (Socket.IO's own default).
	DefaultSIOMaxDisconnection = 2 * time.Minute
)

// MaxMessageBytesLimit keeps a frame inside Kafka's default
// max.message.bytes (1 MiB) once headers and batch overhead are added.
const MaxMessageBytesLimit = 1000 << 10

// Config configures a relay. Zero values take the Default* constants.
type Config struct {
	Listen            string   // host:port for HTTP and WebSocket
	Brokers           []string // Kafka seed brokers; required
	Topic             string
	Partitions        int32 // used only when the relay creates the topic
	ReplicationFactor int16 // used only when the relay creates the topic
	MaxMessageBytes   int   // largest client frame accepted
	SendQueue         int   // frames queued per socket before it counts as slow
	WriteTimeout      time.Duration
	PingInterval      time.Duration
	PongTimeout       time.Duration // how long after a ping the pong may come
	ProduceTimeout    time.Duration // how long a record may wait for the log before the client gets log_unavailable
	ProduceLinger     time.Duration // how long a publish waits for others to share its produce request; negative: none
	// Compression is the codec of the record batches the relay appends:
	// "none" (the default: every Kafka client reads them; kafkajs, for
	// one, cannot read Snappy without a plugin), "gzip", "snappy", "lz4"
	// or "zstd" (see producer.go).
	Compression     string
	MaxInflight     int // unacknowledged records per connection
	MaxRoomsPerConn int
	// RelayName identifies this relay across restarts; it must be unique
	// in the fleet (default: host name and listen port). A relay that
	// starts under a name drops the members its previous run left.
	RelayName string
	// AdvertiseAddr is where other relays reach this relay's listener
	// (host:port), published in its leases: they forward requests for its
	// Socket.IO sessions there (default DefaultAdvertiseAddr, of
	// InternalListen when set).
	AdvertiseAddr string
	// InternalListen, when set, is a second listener (host:port, port 0
	// for any) serving the same endpoints, for other relays' forwarded
	// requests: the address of this process alone when several share
	// Listen (--procs).
	InternalListen string
	// LeaseTimeout is how long a relay may go without renewing its lease
	// before the others expire it and remove its members (default 10s).
	LeaseTimeout time.Duration
	// HistoryWindow is how many recent publishes per room stay in memory
	// for recovery and history (default consumer.DefaultHistoryWindow).
	HistoryWindow int
	// Follow is which partitions the relay folds: FollowAll (the default)
	// or FollowInterest, the ones its rooms and reads need, plus the
	// control partition and the partitions it keeps (follow.go,
	// docs/scaling.md). FollowIdle is how long a partition no local room is
	// in stays followed after its last use (default DefaultFollowIdle).
	Follow     string
	FollowIdle time.Duration
	// FetchMaxWait is how long the consumer's fetch waits for records
	// (default DefaultFetchMaxWait, DefaultFetchMaxWaitInterest with
	// FollowInterest): a partition the relay starts following joins the
	// fetch after the one in flight ends, so under FollowInterest the first
	// op on a room of a partition not followed yet waits for up to this
	// long; each idle relay sends 1/FetchMaxWait fetches a second.
	FetchMaxWait time.Duration
	// SIOMaxDisconnection is how long after its connection went (in record
	// time: the leave, or the end of its relay's session) a Socket.IO
	// session can be recovered on any relay (default 2m, at most
	// consumer.MaxSIODisconnectMillis; negative: no connection state
	// recovery, CONNECT carries no pid and events no offset).
	SIOMaxDisconnection time.Duration
	// ReadTimeout bounds reads of the log for recovery and history, and
	// waits for the fold to reach a position (default 10s).
	ReadTimeout time.Duration
	// SnapshotTopic holds partition snapshots (default roomlog.snapshots,
	// compacted). SnapshotInterval is how often the owner of a partition
	// writes one (default 1m; negative: no snapshots, not even loading),
	// if SnapshotMinRecords records were folded since the last.
	SnapshotTopic      string
	SnapshotInterval   time.Duration
	SnapshotMinRecords int
	// TLS, when set, serves HTTPS and wss:// on Listen (see internal/tlsconf).
	TLS *tls.Config
	// HS256SecretFiles each hold one HS256 secret, and APIKeyFiles backend
	// API keys one per line ('#' comments); both are reloaded when they
	// change (checked every SecretReloadInterval, default 5s) and on
	// ReloadSecrets (secrets.go). Their secrets are added to
	// Auth.HS256Secrets and Auth.APIKeys.
	HS256SecretFiles     []string
	APIKeyFiles          []string
	SecretReloadInterval time.Duration
	// RevocationTTL is how long a revocation (/api/revoke) lasts when the
	// request gives no until: the longest lifetime of your tokens
	// (default DefaultRevocationTTL).
	RevocationTTL time.Duration
	// Auth says who may connect and what tokens allow (package auth);
	// Limits bounds what a client may cost (limits.go).
	Auth   auth.Config
	Limits LimitsConfig
	// ReusePort sets SO_REUSEPORT on the listener, so several relay
	// processes can listen on the same port and the kernel spreads new
	// connections among them.
	ReusePort  bool
	ClientOpts []kgo.Opt // extra franz-go options (TLS, SASL)
	Logger     *slog.Logger

	// Pages, when set, serves every path the relay's own routes do not: the demo page at / (relay/demo).
	Pages http.Handler
	// PrivateMetrics leaves /metrics off the public listener; the caller
	// serves MetricsHandler elsewhere (cmd/roomlog: on --admin-listen).
	PrivateMetrics bool
	// AdminTokens enable the operator console's JSON API at /admin/api/ (admin.go) and Console at /admin/
	// (relay/console): requests must carry one of them as a bearer token. AdminOpen enables both without a
	// token for loopback clients only (local development).
	AdminTokens [][]byte
	AdminOpen   bool
	Console     http.Handler
}

func (c *Config) setDefaults() error {
	if len(c.Brokers) == 0 {
		return errors.New("relay: no brokers")
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.Partitions <= 0 {
		c.Partitions = DefaultPartitions
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = DefaultReplicationFactor
	}
	def(&c.MaxMessageBytes, DefaultMaxMessageBytes)
	def(&c.SendQueue, DefaultSendQueue)
	def(&c.MaxInflight, DefaultMaxInflight)
	def(&c.MaxRoomsPerConn, DefaultMaxRoomsPerConn)
	defDur(&c.WriteTimeout, DefaultWriteTimeout)
	defDur(&c.PingInterval, DefaultPingInterval)
	defDur(&c.PongTimeout, DefaultPongTimeout)
	defDur(&c.ProduceTimeout, DefaultProduceTimeout)
	if c.ProduceLinger == 0 {
		c.ProduceLinger = DefaultProduceLinger
	}
	defDur(&c.LeaseTimeout, DefaultLeaseTimeout)
	defDur(&c.ReadTimeout, DefaultReadTimeout)
	defDur(&c.FollowIdle, DefaultFollowIdle)
	if c.Compression == "" {
		c.Compression = "none"
	}
	if _, err := compressionCodec(c.Compression); err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	if c.FetchMaxWait <= 0 {
		c.FetchMaxWait = DefaultFetchMaxWait
		if c.Follow == FollowInterest {
			c.FetchMaxWait = DefaultFetchMaxWaitInterest
		}
	}
	switch c.Follow {
	case "":
		c.Follow = FollowAll
	case FollowAll, FollowInterest:
	default:
		return fmt.Errorf("relay: follow %q: want %q or %q", c.Follow, FollowAll, FollowInterest)
	}
	defDur(&c.RevocationTTL, DefaultRevocationTTL)
	if c.RevocationTTL > maxRevocationTTL {
		return fmt.Errorf("relay: revocation TTL %v is over the most, %v", c.RevocationTTL, maxRevocationTTL)
	}
	if c.SIOMaxDisconnection == 0 {
		c.SIOMaxDisconnection = DefaultSIOMaxDisconnection
	}
	if c.SIOMaxDisconnection > consumer.MaxSIODisconnectMillis*time.Millisecond {
		return fmt.Errorf("relay: Socket.IO max disconnection %v is over the %v the log keeps sessions", c.SIOMaxDisconnection, consumer.MaxSIODisconnectMillis*time.Millisecond)
	}
	if c.SnapshotTopic == "" {
		c.SnapshotTopic = DefaultSnapshotTopic
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = DefaultSnapshotInterval
	}
	def(&c.SnapshotMinRecords, DefaultSnapshotMinRecords)
	if err := c.Auth.Validate(); err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	c.Limits.setDefaults()
	if c.LeaseTimeout < 300*time.Millisecond {
		return fmt.Errorf("relay: lease timeout %v is too short", c.LeaseTimeout)
	}
	if c.RelayName != "" {
		if err := record.ValidName(record.RelayKeyPrefix+c.RelayName, record.MaxRoomBytes); err != nil || strings.ContainsAny(c.RelayName, "/") {
			return fmt.Errorf("relay: relay name %q: want printable characters without '/'", c.RelayName)
		}
	}
	if c.AdvertiseAddr != "" {
		if err := validAdvertiseAddr(c.AdvertiseAddr); err != nil {
			return err
		}
	}
	if c.MaxMessageBytes > MaxMessageBytesLimit {
		return fmt.Errorf("relay: max message bytes %d is over the limit of %d", c.MaxMessageBytes, MaxMessageBytesLimit)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Stats are the relay's counters, read with Server.Stats.
type Stats struct {
	Connections   int    // open sockets
	Rooms         int    // rooms with a local member
	Publishes     uint64 // publish frames accepted
	Delivered     uint64 // frames fanned out to sockets: messages, state changes, joined and left
	BadFrames     uint64 // frames refused as malformed, too big or binary
	ErrorFrames   uint64 // error frames sent
	SlowCloses    uint64 // sockets closed for not keeping up
	ProduceErrors uint64 // records the log did not take
	LogRecords    uint64 // records read back by the consumer
	LogSkipped    uint64 // records the consumer could not decode
	Misplaced     uint64 // records folded that were written to another partition than their room's
	Rehomed       uint64 // copies of misplaced records this relay appended to their room's partition
	RehomePending int    // misplaced records whose copy this relay has not folded yet
	Duplicates    uint64 // publishes not delivered: retries of a message id already seen
	Recoveries    uint64 // joins with since
	LogRecoveries uint64 // of those, read from the log (older than the window)
}

type counters struct {
	publishes, badFrames, errorFrames, slowCloses, produceErrors atomic.Uint64
	duplicates, recoveries, logRecoveries                        atomic.Uint64
}

// Server is one relay. Create with New, then Start; stop with Shutdown.
type Server struct {
	cfg        Config
	session    atomic.Pointer[string] // this run's session: prefix of connection ids
	epoch      uint64
	partitions int32
	hub        *hub
	stats      counters
	sec        *security
	secrets    *secretFiles
	metrics    *metrics
	leases     *leases
	peers      peers                   // relay sessions' addresses, for Socket.IO forwarding
	snaps      *consumer.SnapshotStore // nil when snapshots are off
	rehome     *rehomer                // misplaced records to re-home (rehome.go)
	admin      adminFleetMemory

	prod *kgo.Client
	cons *consumer.Consumer
	fol  *follower // nil unless Config.Follow is FollowInterest (follow.go)
	// started holds the consumer once Start has started it: what HTTP
	// handlers (metrics) and Stats read, so a scrape during Start never
	// touches the consumer while Start still builds it. Nil until then,
	// and if Start failed.
	started atomic.Pointer[consumer.Consumer]
	ln      net.Listener
	http    *http.Server
	up      websocket.Upgrader
	sio     *engineio.Server // /socket.io/ (handler_socketio.go)
	fwd     *http.Transport  // forwards Socket.IO requests to their owner (peers.go)

	connsMu  sync.Mutex
	conns    map[string]*conn
	nextConn atomic.Uint64
	ready    atomic.Bool
	draining atomic.Bool
	wg       sync.WaitGroup // conn goroutines
	bg       sync.WaitGroup // lease loop, recoveries
	bgCancel context.CancelFunc
}

// New validates cfg. Nothing is started until Start.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	var s *Server // the reloads below apply to it once it exists (they run after Start)
	secrets, err := loadSecretFiles(&cfg,
		func(keys [][]byte) {
			if err := s.sec.verifier.v.SetHS256Secrets(keys); err != nil {
				s.cfg.Logger.Error("reloaded HS256 secrets refused", "err", err)
			}
		},
		func(keys [][]byte) { s.setAPIKeys(keys) })
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	s = &Server{
		cfg:     cfg,
		hub:     newHub(),
		leases:  newLeases(cfg.LeaseTimeout),
		rehome:  newRehomer(),
		conns:   make(map[string]*conn),
		secrets: secrets,
	}
	s.newSession()
	s.metrics = newMetrics(s)
	s.up = websocket.Upgrader{
		// 0: the read buffer is the hijacked one, which serveWS's
		// wsread.Hijacker makes (wsread.BufferSize bytes) so that the
		// reader sees it.
		ReadBufferSize:   0,
		WriteBufferSize:  4096,
		WriteBufferPool:  &sync.Pool{},
		HandshakeTimeout: 10 * time.Second,
	}
	s.initSecurity()
	sio, err := s.newSIOServer()
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	s.sio = sio
	s.fwd = http.DefaultTransport.(*http.Transport).Clone()
	return s, nil
}

// ID is this relay's current session: the prefix of its connection ids. It
// is new at every start (and if the relay ever loses its lease).
func (s *Server) ID() string { return s.currentSession() }

// Name is the relay's name (Config.RelayName).
func (s *Server) Name() string { return s.cfg.RelayName }

func (s *Server) currentSession() string { return *s.session.Load() }

func (s *Server) newSession() {
	id := newRelayID()
	s.session.Store(&id)
}

// Ready reports whether the relay has replayed the log and serves clients.
func (s *Server) Ready() bool { return s.ready.Load() && !s.draining.Load() }

// Consumer is the relay's consumer: its folded state, for tests and tools.
func (s *Server) Consumer() *consumer.Consumer { return s.cons }

// clientOpts are the options of every franz-go client the relay makes;
// role names the client in roomlog_kafka_requests_total (kafkaClient*).
func (s *Server) clientOpts(role string) []kgo.Opt {
	opts := []kgo.Opt{kgo.SeedBrokers(s.cfg.Brokers...), kgo.WithHooks(kafkaHook{role: role, m: s.metrics})}
	return append(opts, s.cfg.ClientOpts...)
}

// Addr is the address the relay listens on, once started.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Epoch is the events topic's epoch, stamped into every position.
func (s *Server) Epoch() uint64 { return s.epoch }

// Start creates the topic when missing, starts the producer, begins serving
// HTTP (/ws answers 503 until ready), replays the log into the shared state,
// takes this relay's lease, and then accepts WebSocket clients. It returns
// once the relay is ready, or with the error that stopped it.
func (s *Server) Start(ctx context.Context) (err error) {
	if err := s.startProducer(); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			if s.http != nil {
				_ = s.http.Close()
			}
			if s.cons != nil {
				s.cons.Stop()
			}
			s.prod.Close()
			err = fmt.Errorf("relay: %w", err)
		}
	}()
	info, err := ensureTopic(ctx, s.prod, s.cfg.Topic, s.cfg.Partitions, s.cfg.ReplicationFactor, s.cfg.Logger)
	if err != nil {
		return err
	}
	s.epoch, s.partitions = info.Epoch, info.Partitions
	if s.cfg.Follow == FollowInterest {
		s.fol = newFollower(s.partitions)
	}
	if info.Partitions != s.cfg.Partitions {
		s.cfg.Logger.Info("events topic exists with another partition count; using it", "topic", s.cfg.Topic, "partitions", info.Partitions)
	}
	if err := s.startHTTP(ctx); err != nil {
		return err
	}
	began := time.Now()
	restored, err := s.startConsumer(ctx)
	if err != nil {
		return err
	}
	if err := s.ensure(ctx, s.controlPartitionID()); err != nil {
		return fmt.Errorf("following the control partition: %w", err)
	}
	if err := s.writeLeases(ctx); err != nil {
		return fmt.Errorf("taking the relay lease: %w", err)
	}
	s.startBackground(ctx)
	if s.fol != nil {
		s.leases.kick() // the first keeper pass now, not a lease period later
	}
	s.started.Store(s.cons)
	s.ready.Store(true)
	s.cfg.Logger.Info("relay started", "relay", s.cfg.RelayName, "session", s.currentSession(), "listen", s.ln.Addr().String(),
		"topic", s.cfg.Topic, "partitions", info.Partitions, "epoch", fmt.Sprintf("%016x", s.epoch),
		"replayed", s.cons.Stats().Records, "snapshots", restored, "replay_time", time.Since(began).Round(time.Millisecond))
	return nil
}

// startHTTP listens and serves the HTTP endpoints (http.go); /ws and the
// API answer 503 until the relay is ready. It names the relay after its
// host and port when no name was given.
func (s *Server) startHTTP(ctx context.Context) error {
	ln, err := s.listen(ctx, s.cfg.Listen, s.cfg.ReusePort)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Listen, err)
	}
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.cfg.TLS)
	}
	s.ln = ln
	var internal net.Listener
	if s.cfg.InternalListen != "" {
		if internal, err = s.listen(ctx, s.cfg.InternalListen, false); err != nil {
			ln.Close()
			return fmt.Errorf("internal listen on %s: %w", s.cfg.InternalListen, err)
		}
		if s.cfg.TLS != nil {
			internal = tls.NewListener(internal, s.cfg.TLS)
		}
	}
	if s.cfg.RelayName == "" {
		s.cfg.RelayName = DefaultName(ln.Addr().String())
	}
	s.leases.setSelf(s.cfg.RelayName)
	switch {
	case s.cfg.AdvertiseAddr != "":
	case internal != nil:
		s.cfg.AdvertiseAddr = DefaultAdvertiseAddr(s.cfg.InternalListen, internal.Addr())
	default:
		s.cfg.AdvertiseAddr = DefaultAdvertiseAddr(s.cfg.Listen, ln.Addr())
	}
	s.http = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       s.cfg.Limits.HTTPIdleTimeout,
		ConnState:         s.httpConnState,
		ErrorLog:          slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelDebug),
	}
	go func() { _ = s.http.Serve(ln) }()
	if internal != nil {
		go func() { _ = s.http.Serve(internal) }() // Shutdown and Close end both
	}
	return nil
}

// startConsumer loads the partitions' snapshots, starts the consumer and
// waits until it has replayed the log. It returns how many snapshots it
// restored.
func (s *Server) startConsumer(ctx context.Context) (int, error) {
	restore, err := s.loadSnapshots(ctx)
	if err != nil {
		return 0, err
	}
	cc := consumer.Config{
		ClientOpts:    s.clientOpts(kafkaClientConsumer),
		Topic:         s.cfg.Topic,
		Epoch:         s.epoch,
		Sink:          s,
		HistoryWindow: s.cfg.HistoryWindow,
		Restore:       restore,
		Logger:        s.cfg.Logger,
		FetchMaxWait:  s.cfg.FetchMaxWait,
	}
	if s.fol != nil {
		cc.Partitions = []int32{s.controlPartitionID()}
		if s.snaps != nil {
			cc.LoadSnapshot = s.loadSnapshot
		}
	}
	s.cons, err = consumer.New(cc)
	if err == nil {
		err = s.cons.Start(ctx)
	}
	if err != nil {
		s.cons = nil
		return 0, err
	}
	select {
	case <-s.cons.Ready():
		return len(restore), nil
	case <-ctx.Done():
		return 0, fmt.Errorf("replaying the log: %w", ctx.Err())
	}
}

// startBackground starts the lease loop, the re-home loop and the snapshot loop, which run
// until Shutdown.
func (s *Server) startBackground(ctx context.Context) {
	bgCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.bgCancel = cancel
	s.secrets.start(bgCtx)
	s.bg.Add(2)
	go s.leaseLoop(bgCtx)
	go s.rehomeLoop(bgCtx)
	if s.snaps != nil {
		s.bg.Add(1)
		go s.snapshotLoop(bgCtx)
	}
}

// Shutdown drains the relay: it stops accepting, closes every socket with
// 1001 (going away) so clients reconnect elsewhere, flushes the producer, and
// stops the consumer. It returns when all of that is done or ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.started.Load() == nil {
		return errors.New("relay: not started")
	}
	if !s.draining.CompareAndSwap(false, true) {
		return errors.New("relay: already shut down")
	}
	// Sockets get their 1001 at once; http.Server.Shutdown, which stops
	// accepting and waits for API requests (up to --read-timeout), runs
	// beside it, after the Socket.IO sessions are closed (transport only,
	// no DISCONNECT: clients reconnect elsewhere by themselves), which
	// answers their pending polls.
	herrc := make(chan error, 1)
	go func() {
		serr := s.sio.Shutdown(ctx)
		herrc <- errors.Join(serr, s.http.Shutdown(ctx))
	}()
	s.connsMu.Lock()
	for _, c := range s.conns {
		c.shutdown(DisconnectShutdown)
	}
	s.connsMu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); s.bgCancel(); s.bg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	herr := <-herrc
	s.secrets.stop()
	ferr := s.prod.Flush(ctx)
	s.cons.Stop()
	s.prod.Close()
	s.cfg.Logger.Info("relay stopped", "relay", s.cfg.RelayName, "session", s.currentSession())
	return errors.Join(herr, ferr)
}

// MetricsHandler serves the relay's Prometheus metrics (what /metrics
// serves on the public listener unless Config.PrivateMetrics).
func (s *Server) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn)})
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.connsMu.Lock()
	n := len(s.conns)
	s.connsMu.Unlock()
	var cs consumer.Stats
	if cons := s.started.Load(); cons != nil {
		cs = cons.Stats()
	}
	return Stats{
		Connections:   n,
		Rooms:         s.hub.rooms(),
		Publishes:     s.stats.publishes.Load(),
		Delivered:     s.hub.delivered.Load(),
		BadFrames:     s.stats.badFrames.Load(),
		ErrorFrames:   s.stats.errorFrames.Load(),
		SlowCloses:    s.stats.slowCloses.Load(),
		ProduceErrors: s.stats.produceErrors.Load(),
		LogRecords:    cs.Records,
		LogSkipped:    cs.Skipped,
		Misplaced:     cs.Misplaced,
		Rehomed:       s.rehome.appended.Load(),
		RehomePending: s.rehome.len(),
		Duplicates:    s.stats.duplicates.Load(),
		Recoveries:    s.stats.recoveries.Load(),
		LogRecoveries: s.stats.logRecoveries.Load(),
	}
}

func (s *Server) removeConn(c *conn) {
	s.connsMu.Lock()
	delete(s.conns, c.id)
	s.connsMu.Unlock()
}
