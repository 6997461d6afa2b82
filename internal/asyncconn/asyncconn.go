// Package asyncconn wraps an accepted net.Conn so that, once a WebSocket
// has taken it over, writing to it never blocks the caller: a Write is
// tried on the socket at once (one non-blocking write system call), and
// whatever the socket cannot take is kept and written by a flusher
// goroutine that runs only while bytes are pending.
//
// This is what lets the relay write a delivery from the goroutine that
// fans it out, instead of waking a writer goroutine per socket per
// delivery: a slow client costs the fan-out nothing but a copy of what it
// has not taken yet, bounded by Config.MaxPending, and it fails (closing
// the socket) when it takes nothing before its write deadline.
//
// Until Enable, a Conn is its inner connection (HTTP requests and
// responses are written as usual). Enable is meant for the hijacked
// connection of a WebSocket; it finds the Conn under a *tls.Conn too.
//
// Bytes go out in the order Writes are made, whole: a Write is accepted
// entirely or fails. Cork and Uncork gather several Writes into one
// system call (writev).
//
// A reader need not hold a goroutine while its client is silent either:
// WaitRead (wait.go) runs a function once the socket has bytes to read, or
// once the connection is closed, from one poller shared by every Conn. An
// idle WebSocket then costs no goroutine stack.
//
// Concurrency: Write, SetWriteDeadline, Cork, Uncork, WaitRead and Close are
// safe for concurrent use; one mutex orders them (it is held across the
// non-blocking write and WaitRead's arming, never across a blocking call).
// Reads and read deadlines go straight to the inner connection. The flusher is the only
// goroutine that blocks writing; it ends when nothing is pending, after
// closing the inner connection if a Close came while it ran.
package asyncconn

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"
)

// Defaults of Config.
const (
	DefaultMaxPending   = 4 << 20
	DefaultFlushTimeout = 10 * time.Second
)

// ErrOverflow is the error of a Write that would keep more than
// Config.MaxPending bytes for a client that does not read them; the
// connection is then failed.
var ErrOverflow = errors.New("asyncconn: client too slow: pending bytes over the limit")

// Config tunes a Conn. The zero value takes the defaults.
type Config struct {
	// MaxPending bounds the bytes kept for a client that has not taken
	// them (DefaultMaxPending).
	MaxPending int
	// FlushTimeout bounds a pending write when no write deadline was set
	// (DefaultFlushTimeout).
	FlushTimeout time.Duration
}

// Listener wraps every connection Accept returns.
type Listener struct {
	net.Listener
	Config Config
}

// Accept returns the next connection as a *Conn.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return New(c, l.Config), nil
}

// Conn is a net.Conn whose Writes, once Enabled, never block.
type Conn struct {
	net.Conn
	cfg Config
	raw syscall.RawConn // the socket, for non-blocking writes; nil: cannot be enabled

	mu       sync.Mutex
	async    bool
	deadline time.Time // the write deadline last set
	pending  []byte    // accepted, not yet written; nil when empty
	corked   int       // Cork depth: Writes are kept, not tried
	flushing bool      // the flusher runs
	closing  bool      // Close came while flushing: the flusher closes
	err      error     // the first failure: every later Write returns it
	failed   bool      // the fail callback (SetOnFail) has run
	onFail   func(error)

	// WaitRead's state (wait.go), under mu.
	wake       func() // armed: runs once the socket is readable or closed
	waitID     uint64 // the poller's key for this Conn; 0: not registered
	inPoller   bool   // the socket is in the poller's set (armed or not)
	readClosed bool   // the inner connection is closed: WaitRead wakes at once
}

// New wraps c. Enable works only if c has a file descriptor (a TCP or
// Unix socket).
func New(c net.Conn, cfg Config) *Conn {
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.FlushTimeout <= 0 {
		cfg.FlushTimeout = DefaultFlushTimeout
	}
	ac := &Conn{Conn: c, cfg: cfg}
	if sc, ok := c.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			ac.raw = raw
		}
	}
	return ac
}

// Find returns the Conn under c (c itself, or the connection under a
// *tls.Conn), or nil.
func Find(c net.Conn) *Conn {
	for range 4 {
		switch t := c.(type) {
		case *Conn:
			return t
		case *tls.Conn:
			c = t.NetConn()
		default:
			return nil
		}
	}
	return nil
}

// Enable makes c's Writes never block and reports whether it could
// (false: c is not over a Conn with a socket; it stays as it was).
func Enable(c net.Conn) bool {
	ac := Find(c)
	if ac == nil || ac.raw == nil {
		return false
	}
	ac.mu.Lock()
	defer ac.mu.Unlock()
	// A deadline left by the HTTP server or the handshake would fail the
	// non-blocking writes: deadlines now apply to pending bytes only.
	_ = ac.Conn.SetWriteDeadline(time.Time{})
	ac.async = true
	return true
}

// SetOnFail sets f to be called once, on the flusher's goroutine, when a
// pending write fails (its deadline passed, the peer is gone) or a Write
// overflows; the inner connection is closed right after.
func (c *Conn) SetOnFail(f func(error)) {
	c.mu.Lock()
	c.onFail = f
	c.mu.Unlock()
}

// Pending returns the number of bytes accepted and not yet written.
func (c *Conn) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// Write writes p. Enabled, it never blocks: it writes what the socket
// takes now and keeps the rest for the flusher, reporting len(p); it
// fails with the connection's first error, or ErrOverflow.
func (c *Conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if !c.async {
		c.mu.Unlock()
		return c.Conn.Write(p)
	}
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if len(c.pending) > 0 || c.flushing || c.corked > 0 {
		if len(c.pending)+len(p) > c.cfg.MaxPending {
			c.failLocked(ErrOverflow)
			return 0, ErrOverflow
		}
		c.pending = append(c.pending, p...)
		return len(p), nil
	}
	n, err := c.tryWriteLocked(p)
	if err != nil {
		c.failLocked(fmt.Errorf("asyncconn: write: %w", err))
		return n, c.err
	}
	if n < len(p) {
		if len(p)-n > c.cfg.MaxPending {
			c.failLocked(ErrOverflow)
			return n, ErrOverflow
		}
		c.pending = append(c.pending, p[n:]...)
		c.startFlushLocked()
	}
	return len(p), nil
}

// tryWriteLocked makes one non-blocking write of p and returns how much
// the socket took; EAGAIN is no error.
func (c *Conn) tryWriteLocked(p []byte) (int, error) {
	var n int
	var werr error
	err := c.raw.Write(func(fd uintptr) bool {
		for {
			n, werr = syscall.Write(int(fd), p)
			if werr != syscall.EINTR {
				break
			}
		}
		return true // one attempt: never wait for the socket
	})
	if n < 0 {
		n = 0
	}
	if werr == syscall.EAGAIN {
		werr = nil
	}
	if err != nil {
		return n, err
	}
	return n, werr
}

// Cork keeps Writes (for Uncork to write at once) until the matching
// Uncork. Without Enable it does nothing.
func (c *Conn) Cork() {
	c.mu.Lock()
	if c.async {
		c.corked++
	}
	c.mu.Unlock()
}

// Uncork ends a Cork; the last one writes what was kept in one system
// call (and hands the rest to the flusher).
func (c *Conn) Uncork() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corked == 0 {
		return
	}
	c.corked--
	if c.corked > 0 || c.flushing || len(c.pending) == 0 || c.err != nil {
		return
	}
	n, err := c.tryWriteLocked(c.pending)
	if err != nil {
		c.failLocked(fmt.Errorf("asyncconn: write: %w", err))
		return
	}
	if n == len(c.pending) {
		c.pending = nil
		return
	}
	c.pending = c.pending[:copy(c.pending, c.pending[n:])]
	c.startFlushLocked()
}

// SetWriteDeadline sets the deadline of pending bytes (and, before
// Enable, of the inner connection's writes). A flush under way takes the
// new deadline at once.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	if !c.async {
		c.mu.Unlock()
		return c.Conn.SetWriteDeadline(t)
	}
	defer c.mu.Unlock()
	c.deadline = t
	if c.flushing && c.err == nil {
		return c.Conn.SetWriteDeadline(t)
	}
	return nil
}

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// Close closes the connection; enabled, with bytes still pending, the
// flusher closes it once they are written (or their deadline passes).
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.flushing || (len(c.pending) > 0 && c.err == nil) {
		c.closing = true
		c.startFlushLocked()
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	return c.closeInner()
}

// CloseWrite shuts down the writing side, if the inner connection can
// (net/http uses it before closing a connection).
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// failLocked records the connection's first error and has the flusher
// (started if need be) report it and close the inner connection.
func (c *Conn) failLocked(err error) {
	if c.err == nil {
		c.err = err
	}
	c.pending = nil
	if c.flushing {
		// Unblock the flusher's write (a past deadline, so the reader
		// does not see a closed socket before OnFail has run); it
		// reports the failure and closes.
		_ = c.Conn.SetWriteDeadline(time.Unix(1, 0))
		return
	}
	c.startFlushLocked()
}

func (c *Conn) startFlushLocked() {
	if c.flushing {
		return
	}
	c.flushing = true
	go c.flush()
}

// flush writes pending bytes, blocking, until none are left or a write
// fails.
func (c *Conn) flush() {
	var buf []byte
	for {
		c.mu.Lock()
		if c.err != nil {
			err, report, onFail := c.err, !c.failed, c.onFail
			c.failed = true
			c.flushing = false
			c.pending = nil
			c.mu.Unlock()
			if report && onFail != nil {
				onFail(err)
			}
			_ = c.closeInner()
			return
		}
		if len(c.pending) == 0 {
			c.flushing = false
			c.pending = nil
			closing := c.closing
			// The non-blocking writes honour the socket's deadline too:
			// clear the flush's.
			_ = c.Conn.SetWriteDeadline(time.Time{})
			c.mu.Unlock()
			if closing {
				_ = c.closeInner()
			}
			return
		}
		buf, c.pending = c.pending, buf[:0]
		if cap(c.pending) > 64<<10 {
			c.pending = nil // a burst's buffer is not kept for good
		}
		deadline := c.deadline
		if deadline.IsZero() {
			deadline = time.Now().Add(c.cfg.FlushTimeout)
		}
		_ = c.Conn.SetWriteDeadline(deadline) // under mu: failLocked's past deadline wins
		c.mu.Unlock()
		_, err := c.Conn.Write(buf)
		if err != nil {
			c.mu.Lock()
			if c.err == nil {
				c.err = fmt.Errorf("asyncconn: flush: %w", err)
			}
			c.mu.Unlock()
		}
	}
}
