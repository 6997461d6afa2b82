//go:build !linux

package asyncconn

import (
	"errors"
	"syscall"
)

// poller: no readiness poller outside Linux; WaitRead reports false and
// readers block in Read.
type poller struct{ registry }

func sharedPoller() *poller { return nil }

func (p *poller) arm(syscall.RawConn, uint64, bool) error {
	return errors.New("asyncconn: no poller on this system")
}
