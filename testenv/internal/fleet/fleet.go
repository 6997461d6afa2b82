// Package fleet runs a local roomlog fleet for the test tools (chaos,
// scaling): a broker (`roomlog broker`, or an external one) and N relays on
// 127.0.0.1, all children of the calling process, each restartable under the
// same name, port and arguments, with its output appended to a log file.
//
// Concurrency: a Proc's methods may be called from any goroutine; its state
// and counters are guarded by its mutex. A Fleet's slices are set by New and
// never change.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Proc is one child process of the fleet (the broker or a relay), restarted
// under the same name, port and arguments after each kill.
type Proc struct {
	Name string
	Addr string // 127.0.0.1:port it listens on
	args []string
	log  string // log file, appended to across restarts

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has been waited for
	starts  int
	kills   int // SIGKILL
	terms   int // SIGTERM
	killing bool
}

// Fleet is a broker and N relays on 127.0.0.1, all children of this process.
// Broker is nil when the relays use an external broker (Config.Brokers).
type Fleet struct {
	Bin     string
	Broker  *Proc
	Brokers string // the relays' --brokers
	Relays  []*Proc
}

// Config describes a fleet.
type Config struct {
	Bin     string // the roomlog binary
	DataDir string // the broker's data folder goes under it
	LogDir  string // one log file per process
	Relays  int
	// BasePort, when set, gives relay i (from 1) port BasePort+i-1; else
	// each relay gets a free port.
	BasePort     int
	Partitions   int           // zero: the relay's default
	LeaseTimeout time.Duration // zero: the relay's default
	Fsync        bool          // roomlog broker --fsync
	// Brokers, when set, is an external broker list: no broker process.
	Brokers string
	// RelayArgs are appended to every relay's arguments.
	RelayArgs []string
}

// FreePort asks the kernel for a free TCP port on 127.0.0.1.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// New lays out a fleet; StartAll starts it.
func New(c Config) (*Fleet, error) {
	f := &Fleet{Bin: c.Bin, Brokers: c.Brokers}
	used := map[int]bool{}
	if c.Brokers == "" {
		bport, err := FreePort()
		if err != nil {
			return nil, err
		}
		used[bport] = true
		baddr := "127.0.0.1:" + strconv.Itoa(bport)
		bargs := []string{"broker", "--listen", baddr, "--data-dir", filepath.Join(c.DataDir, "broker")}
		if c.Fsync {
			bargs = append(bargs, "--fsync")
		}
		f.Broker = &Proc{Name: "broker", Addr: baddr, args: bargs, log: filepath.Join(c.LogDir, "broker.log")}
		f.Brokers = baddr
	}
	for i := 1; i <= c.Relays; i++ {
		var port int
		if c.BasePort > 0 {
			port = c.BasePort + i - 1
		} else {
			for {
				var err error
				if port, err = FreePort(); err != nil {
					return nil, err
				}
				if !used[port] {
					break
				}
			}
		}
		used[port] = true
		name := fmt.Sprintf("relay-%d", i)
		addr := "127.0.0.1:" + strconv.Itoa(port)
		args := []string{"relay", "--brokers", f.Brokers, "--listen", addr, "--relay-name", name}
		if c.LeaseTimeout > 0 {
			args = append(args, "--lease-timeout", c.LeaseTimeout.String())
		}
		if c.Partitions > 0 {
			args = append(args, "--partitions", strconv.Itoa(c.Partitions))
		}
		args = append(args, c.RelayArgs...)
		f.Relays = append(f.Relays, &Proc{Name: name, Addr: addr, args: args, log: filepath.Join(c.LogDir, name+".log")})
	}
	return f, nil
}

// Pid is the running process's id, 0 when it is down.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Log is the path of p's log file.
func (p *Proc) Log() string { return p.log }

// Start launches p; it does not wait for readiness.
func (p *Proc) Start(bin string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("%s already running", p.Name)
	}
	lf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(lf, "\n==== fleet: start #%d of %s at %s ====\n", p.starts+1, p.Name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(bin, p.args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	// Local test clients carry no token: relays that require authentication
	// accept them with --anonymous, given through the environment so that
	// relays from before authentication (which ignore it) start too.
	cmd.Env = append(os.Environ(), "ROOMLOG_ANONYMOUS=true")
	// Own process group (a ^C in the terminal reaches only us; we stop the
	// children ourselves), and SIGKILL if this process dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	p.cmd, p.exited = cmd, make(chan struct{})
	p.starts++
	exited := p.exited
	go func() {
		_ = cmd.Wait()
		lf.Close()
		p.mu.Lock()
		if p.cmd == cmd {
			p.cmd = nil
		}
		p.mu.Unlock()
		close(exited)
	}()
	return nil
}

// Running reports whether p runs and is not being stopped.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil && !p.killing
}

// Stop sends sig and waits up to wait for the process to exit, then SIGKILLs it.
func (p *Proc) Stop(sig syscall.Signal, wait time.Duration) {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	if cmd == nil {
		p.mu.Unlock()
		return
	}
	p.killing = true
	switch sig {
	case syscall.SIGKILL:
		p.kills++
	case syscall.SIGTERM:
		p.terms++
	}
	p.mu.Unlock()
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(wait):
		_ = cmd.Process.Kill()
		<-exited
	}
	p.mu.Lock()
	p.killing = false
	p.mu.Unlock()
}

// WaitReady polls until p is ready: the broker when its port accepts TCP,
// a relay when /readyz answers 200.
func (p *Proc) WaitReady(ctx context.Context, timeout time.Duration, http bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		p.mu.Lock()
		exited := p.exited
		p.mu.Unlock()
		if exited != nil {
			select {
			case <-exited:
				return fmt.Errorf("%s exited while starting (see %s)", p.Name, p.log)
			default:
			}
		}
		if ok := probe(p.Addr, http); ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready on %s after %s (see %s)", p.Name, p.Addr, timeout, p.log)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

var probeClient = &http.Client{Timeout: time.Second}

func probe(addr string, useHTTP bool) bool {
	if !useHTTP {
		c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	resp, err := probeClient.Get("http://" + addr + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// StartAll starts the broker, then the relays, and waits for all of them.
func (f *Fleet) StartAll(ctx context.Context) error {
	if f.Broker != nil {
		if err := f.Broker.Start(f.Bin); err != nil {
			return err
		}
		if err := f.Broker.WaitReady(ctx, 30*time.Second, false); err != nil {
			return err
		}
	}
	for _, r := range f.Relays {
		if err := r.Start(f.Bin); err != nil {
			return err
		}
	}
	for _, r := range f.Relays {
		if err := r.WaitReady(ctx, 60*time.Second, true); err != nil {
			return err
		}
	}
	return nil
}

// EnsureUp restarts whatever is down and waits until all is ready.
func (f *Fleet) EnsureUp(ctx context.Context) error {
	if f.Broker != nil {
		if !f.Broker.Running() {
			if err := f.Broker.Start(f.Bin); err != nil {
				return err
			}
		}
		if err := f.Broker.WaitReady(ctx, 30*time.Second, false); err != nil {
			return err
		}
	}
	var errs []error
	for _, r := range f.Relays {
		if !r.Running() {
			if err := r.Start(f.Bin); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, r := range f.Relays {
		if err := r.WaitReady(ctx, 60*time.Second, true); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// StopAll drains the relays (SIGTERM), then stops the broker.
func (f *Fleet) StopAll() {
	var wg sync.WaitGroup
	for _, r := range f.Relays {
		wg.Add(1)
		go func() { defer wg.Done(); r.Stop(syscall.SIGTERM, 20*time.Second) }()
	}
	wg.Wait()
	if f.Broker != nil {
		f.Broker.Stop(syscall.SIGTERM, 10*time.Second)
	}
}

// RelayURLs lists every relay's WebSocket URL, up or down.
func (f *Fleet) RelayURLs() []string {
	out := make([]string, len(f.Relays))
	for i, r := range f.Relays {
		out[i] = "ws://" + r.Addr + "/ws"
	}
	return out
}

// LiveRelays counts the relays running.
func (f *Fleet) LiveRelays() int {
	n := 0
	for _, r := range f.Relays {
		if r.Running() {
			n++
		}
	}
	return n
}

// Counts are how often the fleet's processes were killed and started.
type Counts struct {
	RelaySIGKILL  int `json:"relay_sigkill"`
	RelaySIGTERM  int `json:"relay_sigterm"`
	RelayStarts   int `json:"relay_starts"`
	BrokerSIGKILL int `json:"broker_sigkill"`
	BrokerStarts  int `json:"broker_starts"`
}

// Counts snapshots how often each process was killed and started.
func (f *Fleet) Counts() Counts {
	var c Counts
	for _, r := range f.Relays {
		r.mu.Lock()
		c.RelaySIGKILL += r.kills
		c.RelaySIGTERM += r.terms
		c.RelayStarts += r.starts
		r.mu.Unlock()
	}
	if f.Broker != nil {
		f.Broker.mu.Lock()
		c.BrokerSIGKILL, c.BrokerStarts = f.Broker.kills, f.Broker.starts
		f.Broker.mu.Unlock()
	}
	return c
}
