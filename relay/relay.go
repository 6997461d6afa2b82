// Package relay is roomlog's edge process: an HTTP server whose /ws endpoint
// accepts WebSocket clients, appends every client event to the Kafka events
// topic (keyed by room), and fans the records its consumer reads back out to
// the local sockets of each room.
//
// Data flow: socket → conn.readLoop → Server.produce (franz-go, acks=all,
// idempotent) → log → consumer.Consumer → hub.Deliver → conn queue →
// conn.writeLoop → socket. A publish is acknowledged only when the log has
// it; a message is delivered only when read back from the log, so every
// relay delivers the same records in the same per-room order.
//
// Concurrency: per connection, one reader and one writer goroutine; the hub's
// rooms are sharded with a lock each; the consumer is one goroutine. See
// docs/DESIGN.md for the lock order. Server methods are safe for concurrent
// use.
package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/consumer"
	"github.com/roomlog/roomlog/record"
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
	DefaultMaxInflight       = 256
	DefaultMaxRoomsPerConn   = 1000
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
	ProduceLinger     time.Duration // franz-go linger; 0 sends at once, batching while requests are in flight
	MaxInflight       int           // unacknowledged records per connection
	MaxRoomsPerConn   int
	ClientOpts        []kgo.Opt // extra franz-go options (TLS, SASL)
	Logger            *slog.Logger
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
	Delivered     uint64 // message frames enqueued to sockets
	BadFrames     uint64 // frames refused as malformed, too big or binary
	ErrorFrames   uint64 // error frames sent
	SlowCloses    uint64 // sockets closed for not keeping up
	ProduceErrors uint64 // records the log did not take
	LogRecords    uint64 // records read back by the consumer
	LogSkipped    uint64 // records the consumer could not decode
}

type counters struct {
	publishes, badFrames, errorFrames, slowCloses, produceErrors atomic.Uint64
}

// Server is one relay. Create with New, then Start; stop with Shutdown.
type Server struct {
	cfg     Config
	relayID string
	epoch   uint64
	hub     *hub
	stats   counters

	prod *kgo.Client
	cons *consumer.Consumer
	ln   net.Listener
	http *http.Server
	up   websocket.Upgrader

	connsMu  sync.Mutex
	conns    map[*conn]struct{}
	nextConn atomic.Uint64
	draining atomic.Bool
	wg       sync.WaitGroup // conn goroutines
	serveErr chan error
}

// New validates cfg. Nothing is started until Start.
func New(cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:     cfg,
		relayID: newRelayID(),
		hub:     newHub(),
		conns:   make(map[*conn]struct{}),
	}
	s.up = websocket.Upgrader{
		ReadBufferSize:   1024,
		WriteBufferSize:  4096,
		WriteBufferPool:  &sync.Pool{},
		HandshakeTimeout: 10 * time.Second,
	}
	return s, nil
}

// ID is this relay process's id: the prefix of its connection ids.
func (s *Server) ID() string { return s.relayID }

// Addr is the address the relay listens on, once started.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Epoch is the events topic's epoch, stamped into every position.
func (s *Server) Epoch() uint64 { return s.epoch }

// Start creates the topic when missing, starts the producer and the consumer,
// and begins serving. The relay accepts sockets only once its consumer is
// positioned, so every publish it acknowledges is delivered.
func (s *Server) Start(ctx context.Context) error {
	base := append([]kgo.Opt{kgo.SeedBrokers(s.cfg.Brokers...)}, s.cfg.ClientOpts...)
	prod, err := kgo.NewClient(append([]kgo.Opt{
		kgo.ClientID("roomlog-relay"),
		kgo.DefaultProduceTopic(s.cfg.Topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(s.cfg.ProduceLinger),
		kgo.RecordDeliveryTimeout(s.cfg.ProduceTimeout),
		kgo.ProducerBatchMaxBytes(int32(MaxMessageBytesLimit + 16<<10)),
	}, base...)...)
	if err != nil {
		return fmt.Errorf("relay: producer: %w", err)
	}
	s.prod = prod
	info, err := EnsureTopic(ctx, kadm.NewClient(prod), s.cfg.Topic, s.cfg.Partitions, s.cfg.ReplicationFactor)
	if err != nil {
		prod.Close()
		return fmt.Errorf("relay: %w", err)
	}
	s.epoch = info.Epoch
	if info.Partitions != s.cfg.Partitions {
		s.cfg.Logger.Info("events topic exists with another partition count; using it", "topic", s.cfg.Topic, "partitions", info.Partitions)
	}
	s.cons, err = consumer.New(consumer.Config{
		ClientOpts: base,
		Topic:      s.cfg.Topic,
		Epoch:      s.epoch,
		Sink:       s.hub,
		Logger:     s.cfg.Logger,
	})
	if err == nil {
		err = s.cons.Start(ctx)
	}
	if err != nil {
		prod.Close()
		return fmt.Errorf("relay: %w", err)
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		s.cons.Stop()
		prod.Close()
		return fmt.Errorf("relay: listen on %s: %w", s.cfg.Listen, err)
	}
	s.ln = ln
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", s.serveWS)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	s.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelDebug),
	}
	s.serveErr = make(chan error, 1)
	go func() { s.serveErr <- s.http.Serve(ln) }()
	s.cfg.Logger.Info("relay started", "relay", s.relayID, "listen", ln.Addr().String(), "topic", s.cfg.Topic,
		"partitions", info.Partitions, "epoch", fmt.Sprintf("%016x", s.epoch))
	return nil
}

// Shutdown drains the relay: it stops accepting, closes every socket with
// 1001 (going away) so clients reconnect elsewhere, flushes the producer, and
// stops the consumer. It returns when all of that is done or ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	if !s.draining.CompareAndSwap(false, true) {
		return errors.New("relay: already shut down")
	}
	herr := s.http.Shutdown(ctx)
	s.connsMu.Lock()
	for c := range s.conns {
		c.shutdown(CloseGoingAway, "relay shutting down; reconnect")
	}
	s.connsMu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	ferr := s.prod.Flush(ctx)
	s.cons.Stop()
	s.prod.Close()
	s.cfg.Logger.Info("relay stopped", "relay", s.relayID)
	return errors.Join(herr, ferr)
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.connsMu.Lock()
	n := len(s.conns)
	s.connsMu.Unlock()
	cs := s.cons.Stats()
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
	}
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		http.Error(w, "relay is shutting down", http.StatusServiceUnavailable)
		return
	}
	ws, err := s.up.Upgrade(w, r, nil) // writes the HTTP error itself
	if err != nil {
		return
	}
	c := newConn(s, ws, s.relayID+"-"+strconv.FormatUint(s.nextConn.Add(1), 36))
	s.connsMu.Lock()
	if s.draining.Load() {
		s.connsMu.Unlock()
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(CloseGoingAway, "relay shutting down"), time.Now().Add(time.Second))
		ws.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(2)
	s.connsMu.Unlock()
	c.send(appendWelcome(nil, c.id, s.relayID))
	go c.writeLoop()
	go c.readLoop()
}

func (s *Server) removeConn(c *conn) {
	s.connsMu.Lock()
	delete(s.conns, c)
	s.connsMu.Unlock()
}

// produce appends ev to the events topic; done (if not nil) runs on a
// franz-go goroutine with the record's position or the error.
func (s *Server) produce(ev *record.Event, done func(record.Pos, error)) {
	r := record.Encode(ev)
	s.prod.Produce(context.Background(), r, func(r *kgo.Record, err error) {
		if err != nil {
			s.cfg.Logger.Warn("append failed", "room", ev.Room, "type", ev.Type, "err", err)
		}
		if done != nil {
			done(record.Pos{Epoch: s.epoch, Partition: r.Partition, Offset: r.Offset}, err)
		}
	})
}
