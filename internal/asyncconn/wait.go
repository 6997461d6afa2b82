package asyncconn

import "sync"

// WaitRead: a reader that parks without a goroutine. The poller (an epoll
// set on Linux, wait_linux.go) holds each waiting socket armed for one
// readiness event; the event, or the connection's close, runs the reader's
// wake function on a new goroutine. Elsewhere WaitRead reports false and
// readers block in Read as before.

// WaitRead arranges for wake to run once, on a new goroutine, when c's
// socket has bytes to read (or the peer hung up or failed), or when c's
// inner connection is closed; the caller's goroutine can then end instead
// of blocking in Read. Only bytes in the socket count: a reader that
// buffers what it reads must read its buffer empty before waiting.
//
// It reports false, arming nothing, when it cannot wait that way (c has no
// socket, the system has no poller, or the poller refused the socket); the
// caller then reads as usual, blocking. One wait at a time: calling it
// again before wake has run is a bug and panics.
//
// A Conn that has waited must be closed (Close, or a failed write) for the
// poller to forget it.
func (c *Conn) WaitRead(wake func()) bool {
	if c.raw == nil {
		return false
	}
	p := sharedPoller()
	if p == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wake != nil {
		panic("asyncconn: WaitRead while a wait is armed")
	}
	if c.readClosed {
		go wake()
		return true
	}
	if c.waitID == 0 {
		c.waitID = p.register(c)
	}
	if err := p.arm(c.raw, c.waitID, !c.inPoller); err != nil {
		return false
	}
	c.inPoller = true
	c.wake = wake
	return true
}

// ready runs the armed wake function, if any, on a new goroutine. The
// poller calls it for a readiness event; closeInner for a close.
func (c *Conn) ready() {
	c.mu.Lock()
	wake := c.wake
	c.wake = nil
	c.mu.Unlock()
	if wake != nil {
		go wake()
	}
}

// closeInner closes the inner connection and then wakes a reader waiting
// in WaitRead, so that it reads and finds the connection closed. Every
// close of the inner connection goes through it.
func (c *Conn) closeInner() error {
	err := c.Conn.Close()
	c.mu.Lock()
	c.readClosed = true
	id := c.waitID
	c.waitID = 0
	c.mu.Unlock()
	if id != 0 {
		sharedPoller().forget(id)
	}
	c.ready()
	return err
}

// registry maps the poller's event keys to their Conns. A key is never
// reused, so an event that comes after its Conn was closed finds nothing.
type registry struct {
	mu    sync.Mutex
	next  uint64
	conns map[uint64]*Conn
}

func (r *registry) register(c *Conn) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conns == nil {
		r.conns = make(map[uint64]*Conn)
	}
	r.next++
	r.conns[r.next] = c
	return r.next
}

func (r *registry) forget(id uint64) {
	r.mu.Lock()
	delete(r.conns, id)
	r.mu.Unlock()
}

func (r *registry) lookup(id uint64) *Conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conns[id]
}
