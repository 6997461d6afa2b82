// Package embedded is roomlog's embedded Kafka-protocol broker: franz-go's
// kfake, single node, persisting to a data folder (DataDir) that a lock file
// keeps to one process at a time. `roomlog relay` starts one when given no
// --brokers and hands its address to the relay (relay.Config.Brokers), so the
// relay package never imports kfake; `roomlog broker`, the log tools and
// testenv/coldstart start it directly. It is for development and single-node
// use; production runs Apache Kafka, Redpanda or MSK.
//
// # Concurrency
//
// kfake serves on goroutines of its own (the listener, one per client
// connection, the cluster's control loop), all of them ended by Close. Its
// logger may be called from any of them (its rate limit has a mutex). Addrs
// may be called from any goroutine; Close once, after every client of the
// broker (a relay's Shutdown included) has finished, so that their last
// writes reach the log.
package embedded

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Config configures the in-process broker. Zero values take the defaults
// noted.
type Config struct {
	// Listen is the broker's host:port (default 127.0.0.1:0, a free port).
	Listen string
	// DataDir holds the log; it survives restarts. Required.
	DataDir string
	// SyncWrites fsyncs every batch before acknowledging it. Off by
	// default, as in Kafka: an acknowledged record survives a process crash
	// (it is in the page cache) but not a power loss.
	SyncWrites bool
	Logger     *slog.Logger
}

// Broker is a single-node Kafka-protocol broker (franz-go's kfake) running
// in this process, persisting to a data folder that only one process may use
// at a time.
type Broker struct {
	cluster *kfake.Cluster
	lock    *os.File
}

// Start starts the broker. It refuses a data folder another process is
// using.
func Start(cfg Config) (*Broker, error) {
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("embedded broker: no data dir")
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(cfg.DataDir, "roomlog.lock"), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("embedded broker: data dir %s is in use by another roomlog process "+
			"(run one `roomlog broker` and point relays at it with --brokers): %w", cfg.DataDir, err)
	}
	listen := cfg.Listen
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.DataDir(cfg.DataDir),
		kfake.ClusterID("roomlog-embedded"),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, listen) }),
		kfake.WithLogger(&kfakeLogger{l: cfg.Logger, dataDir: cfg.DataDir}),
	}
	if cfg.SyncWrites {
		opts = append(opts, kfake.SyncWrites())
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("embedded broker on %s, data dir %s: %w", cfg.Listen, cfg.DataDir, err)
	}
	return &Broker{cluster: c, lock: lock}, nil
}

// Addrs are the broker's addresses, for relay.Config.Brokers.
func (e *Broker) Addrs() []string { return e.cluster.ListenAddrs() }

// Close stops the broker, syncing its data to disk, and releases the folder.
func (e *Broker) Close() {
	e.cluster.Close()
	e.lock.Close()
}

// kfakeLogger forwards kfake's warnings and errors to slog. kfake reports a
// failure to write its data folder (a full disk, a read-only remount) as a
// warning, and the produce request as UNKNOWN_SERVER_ERROR, which tells a
// relay's operator nothing: those warnings are errors here, naming the
// folder, at most one per storageErrorEvery (with the count of the others).
type kfakeLogger struct {
	l       *slog.Logger
	dataDir string

	mu         sync.Mutex
	lastStore  time.Time
	suppressed int
}

// storageErrorEvery bounds how often a failing data folder is logged: every
// refused batch fails alike, and the log may live on the same full disk.
const storageErrorEvery = 5 * time.Second

func (k *kfakeLogger) Logf(level kfake.LogLevel, msg string, args ...any) {
	switch level {
	case kfake.LogLevelError:
		k.l.Error("embedded broker: " + fmt.Sprintf(msg, args...))
	case kfake.LogLevelWarn:
		if strings.HasPrefix(msg, "persist ") {
			k.storageError(fmt.Sprintf(msg, args...), time.Now())
			return
		}
		k.l.Debug("embedded broker: " + fmt.Sprintf(msg, args...))
	}
}

func (k *kfakeLogger) storageError(text string, now time.Time) {
	k.mu.Lock()
	if !k.lastStore.IsZero() && now.Sub(k.lastStore) < storageErrorEvery {
		k.suppressed++
		k.mu.Unlock()
		return
	}
	k.lastStore = now
	n := k.suppressed
	k.suppressed = 0
	k.mu.Unlock()
	k.l.Error("embedded broker: cannot write to its data folder; records are refused (clients get log_unavailable) until it can",
		"data_dir", k.dataDir, "err", text, "similar_since_last", n)
}
