//go:build linux

package asyncconn

import (
	"sync"
	"syscall"
	"time"
)

// poller is one epoll set for every waiting socket of the process, and one
// goroutine (blocked in epoll_wait, on its own thread) that hands each
// event to its Conn. Sockets are armed one-shot and level-triggered: a
// socket with bytes already unread when it is armed reports at once, and
// each arming reports at most once. Go's own network poller keeps its
// registration of the same sockets; the two do not interfere.
type poller struct {
	registry
	epfd int
}

var (
	pollerOnce sync.Once
	thePoller  *poller
)

// sharedPoller returns the process's poller, started on first use, or nil
// if epoll is not available.
func sharedPoller() *poller {
	pollerOnce.Do(func() {
		fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			return
		}
		thePoller = &poller{epfd: fd}
		go thePoller.run()
	})
	return thePoller
}

// arm asks for one event when the socket is readable; add: the socket is
// not in the set yet.
func (p *poller) arm(raw syscall.RawConn, id uint64, add bool) error {
	ev := syscall.EpollEvent{
		Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT,
		Fd:     int32(uint32(id)),
		Pad:    int32(uint32(id >> 32)),
	}
	op := syscall.EPOLL_CTL_MOD
	if add {
		op = syscall.EPOLL_CTL_ADD
	}
	var cerr error
	if err := raw.Control(func(fd uintptr) { cerr = syscall.EpollCtl(p.epfd, op, int(fd), &ev) }); err != nil {
		return err
	}
	return cerr
}

func (p *poller) run() {
	evs := make([]syscall.EpollEvent, 256)
	for {
		n, err := syscall.EpollWait(p.epfd, evs, -1)
		if err != nil {
			if err != syscall.EINTR {
				time.Sleep(10 * time.Millisecond) // cannot happen on a valid set; never spin
			}
			continue
		}
		for _, ev := range evs[:n] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if c := p.lookup(id); c != nil {
				c.ready()
			}
		}
	}
}
