// Package secretfile keeps secrets read from files current without a
// restart, as internal/tlsconf does for certificate files: a Watcher loads
// its files at New, then reloads them when their modification time or size
// changes (checked every Interval) or when Reload is called (the relay calls
// it on SIGHUP). A set that does not load or does not pass Check (a
// half-written file, an empty one, a secret too short) keeps the previous
// secrets in service and is logged as an error; the next change is tried
// again.
//
// # Concurrency
//
// Keys is safe for concurrent use and never blocks on a reload (the set is
// swapped atomically). Reload may be called from any goroutine; reloads are
// serialised. Start runs one polling goroutine until Stop (or its context)
// ends it; Stop returns once it has.
package secretfile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultInterval is how often the files' stamps are checked.
const DefaultInterval = 5 * time.Second

// Config says which files hold the secrets and how to read them.
type Config struct {
	// Name names the secrets in errors and logs (a flag name).
	Name  string
	Files []string
	// Parse reads one file's secrets (Whole or Lines).
	Parse func(path string, b []byte) ([][]byte, error)
	// Check validates the whole set (all files' secrets), if set.
	Check    func(keys [][]byte) error
	Interval time.Duration // default DefaultInterval
	Logger   *slog.Logger  // default slog.Default()
	// OnReload, if set, is called with each new set after it is in
	// service, on the reloading goroutine.
	OnReload func(keys [][]byte)
}

// Watcher serves the current secrets of its files.
type Watcher struct {
	cfg  Config
	keys atomic.Pointer[[][]byte]

	mu    sync.Mutex // serialises reloads; guards stamp
	stamp string

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New loads the files; an error here is fatal to the caller (there is no
// previous set to keep).
func New(cfg Config) (*Watcher, error) {
	if len(cfg.Files) == 0 {
		return nil, errors.New("secretfile: no files")
	}
	if cfg.Parse == nil {
		return nil, errors.New("secretfile: no Parse")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	w := &Watcher{cfg: cfg}
	stamp := w.fileStamp()
	keys, err := w.load()
	if err != nil {
		return nil, err
	}
	w.keys.Store(&keys)
	w.stamp = stamp
	return w, nil
}

// Keys returns the secrets in service. The caller must not change them.
func (w *Watcher) Keys() [][]byte { return *w.keys.Load() }

// Start polls the files every Interval until Stop or ctx ends.
func (w *Watcher) Start(ctx context.Context) {
	ctx, w.cancel = context.WithCancel(ctx)
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		t := time.NewTicker(w.cfg.Interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				w.reload(false)
			}
		}
	}()
}

// Stop ends the polling goroutine and waits for it.
func (w *Watcher) Stop() {
	if w.cancel != nil {
		w.cancel()
	}
	w.wg.Wait()
}

// Reload reads the files now, whether or not they changed, and reports
// why the new set was not taken (the previous one stays in service).
func (w *Watcher) Reload() error { return w.reload(true) }

func (w *Watcher) reload(force bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	stamp := w.fileStamp()
	if !force && stamp == w.stamp {
		return nil
	}
	// The stamp is taken before the read: a write that lands during the
	// read changes the stamp again, and the next check reloads.
	w.stamp = stamp
	keys, err := w.load()
	if err != nil {
		w.cfg.Logger.Error("secret files changed but do not load; still using the previous secrets", "secrets", w.cfg.Name, "err", err)
		return err
	}
	w.keys.Store(&keys)
	w.cfg.Logger.Info("secrets reloaded", "secrets", w.cfg.Name, "files", len(w.cfg.Files), "keys", len(keys))
	if w.cfg.OnReload != nil {
		w.cfg.OnReload(keys)
	}
	return nil
}

func (w *Watcher) load() ([][]byte, error) {
	var keys [][]byte
	for _, p := range w.cfg.Files {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", w.cfg.Name, err)
		}
		ks, err := w.cfg.Parse(p, b)
		if err != nil {
			return nil, fmt.Errorf("--%s %s: %w", w.cfg.Name, p, err)
		}
		keys = append(keys, ks...)
	}
	if w.cfg.Check != nil {
		if err := w.cfg.Check(keys); err != nil {
			return nil, fmt.Errorf("--%s: %w", w.cfg.Name, err)
		}
	}
	return keys, nil
}

func (w *Watcher) fileStamp() string {
	var b strings.Builder
	for _, p := range w.cfg.Files {
		st, err := os.Stat(p)
		if err != nil {
			b.WriteString("missing;")
			continue
		}
		fmt.Fprintf(&b, "%d-%d;", st.ModTime().UnixNano(), st.Size())
	}
	return b.String()
}

// Whole reads a file as one secret, surrounding white space removed.
func Whole(_ string, b []byte) ([][]byte, error) {
	s := bytes.TrimSpace(b)
	if len(s) == 0 {
		return nil, errors.New("the file is empty")
	}
	return [][]byte{s}, nil
}

// Lines reads a file of secrets, one per line; blank lines and lines
// starting with # are skipped. A file with no secret is an error: it would
// silently turn off what its secrets enable.
func Lines(_ string, b []byte) ([][]byte, error) {
	var keys [][]byte
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			keys = append(keys, []byte(line))
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("holds no key (only blank lines and comments)")
	}
	return keys, nil
}
