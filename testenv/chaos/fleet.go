package main

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

// proc is one child process of the fleet (the broker or a relay), restarted
// under the same name, port and arguments after each kill.
type proc struct {
	name string
	addr string // 127.0.0.1:port it listens on
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

// fleet is a broker and N relays on 127.0.0.1, all children of this process.
type fleet struct {
	bin    string
	broker *proc
	relays []*proc
}

// freePort asks the kernel for a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func newFleet(o *options, logDir string) (*fleet, error) {
	f := &fleet{bin: o.bin}
	bport, err := freePort()
	if err != nil {
		return nil, err
	}
	baddr := "127.0.0.1:" + strconv.Itoa(bport)
	bargs := []string{"broker", "--listen", baddr, "--data-dir", filepath.Join(o.dataDir, "broker")}
	if o.killBroker || o.fsync {
		// kfake acknowledges from the page cache unless --fsync; a SIGKILL
		// then loses nothing the page cache had, but syncing keeps the
		// broker honest even if the kernel's view is all that survives.
		bargs = append(bargs, "--fsync")
	}
	f.broker = &proc{name: "broker", addr: baddr, args: bargs, log: filepath.Join(logDir, "broker.log")}
	used := map[int]bool{bport: true}
	for i := 1; i <= o.relays; i++ {
		var port int
		if o.basePort > 0 {
			port = o.basePort + i - 1
		} else {
			for {
				if port, err = freePort(); err != nil {
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
		args := []string{"relay", "--brokers", baddr, "--listen", addr, "--relay-name", name,
			"--lease-timeout", o.leaseTimeout.String(), "--partitions", strconv.Itoa(o.partitions)}
		f.relays = append(f.relays, &proc{name: name, addr: addr, args: args, log: filepath.Join(logDir, name+".log")})
	}
	return f, nil
}

// start launches p; it does not wait for readiness.
func (p *proc) start(bin string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("%s already running", p.name)
	}
	lf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(lf, "\n==== chaos: start #%d of %s at %s ====\n", p.starts+1, p.name, time.Now().Format(time.RFC3339Nano))
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
		return fmt.Errorf("start %s: %w", p.name, err)
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

func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil && !p.killing
}

// stop sends sig and waits up to wait for the process to exit, then SIGKILLs it.
func (p *proc) stop(sig syscall.Signal, wait time.Duration) {
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

// waitReady polls until p is ready: the broker when its port accepts TCP,
// a relay when /readyz answers 200.
func (p *proc) waitReady(ctx context.Context, timeout time.Duration, http bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		p.mu.Lock()
		exited := p.exited
		p.mu.Unlock()
		if exited != nil {
			select {
			case <-exited:
				return fmt.Errorf("%s exited while starting (see %s)", p.name, p.log)
			default:
			}
		}
		if ok := probe(p.addr, http); ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready on %s after %s (see %s)", p.name, p.addr, timeout, p.log)
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

// startAll starts the broker, then the relays, and waits for all of them.
func (f *fleet) startAll(ctx context.Context) error {
	if err := f.broker.start(f.bin); err != nil {
		return err
	}
	if err := f.broker.waitReady(ctx, 30*time.Second, false); err != nil {
		return err
	}
	for _, r := range f.relays {
		if err := r.start(f.bin); err != nil {
			return err
		}
	}
	for _, r := range f.relays {
		if err := r.waitReady(ctx, 60*time.Second, true); err != nil {
			return err
		}
	}
	return nil
}

// ensureUp restarts whatever is down and waits until all is ready.
func (f *fleet) ensureUp(ctx context.Context) error {
	if !f.broker.running() {
		if err := f.broker.start(f.bin); err != nil {
			return err
		}
	}
	if err := f.broker.waitReady(ctx, 30*time.Second, false); err != nil {
		return err
	}
	var errs []error
	for _, r := range f.relays {
		if !r.running() {
			if err := r.start(f.bin); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, r := range f.relays {
		if err := r.waitReady(ctx, 60*time.Second, true); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// stopAll drains the relays (SIGTERM), then stops the broker.
func (f *fleet) stopAll() {
	var wg sync.WaitGroup
	for _, r := range f.relays {
		wg.Add(1)
		go func() { defer wg.Done(); r.stop(syscall.SIGTERM, 20*time.Second) }()
	}
	wg.Wait()
	f.broker.stop(syscall.SIGTERM, 10*time.Second)
}

// relayURLs lists every relay's WebSocket URL, up or down.
func (f *fleet) relayURLs() []string {
	out := make([]string, len(f.relays))
	for i, r := range f.relays {
		out[i] = "ws://" + r.addr + "/ws"
	}
	return out
}

func (f *fleet) liveRelays() int {
	n := 0
	for _, r := range f.relays {
		if r.running() {
			n++
		}
	}
	return n
}

type chaosCounts struct {
	RelaySIGKILL  int `json:"relay_sigkill"`
	RelaySIGTERM  int `json:"relay_sigterm"`
	RelayStarts   int `json:"relay_starts"`
	BrokerSIGKILL int `json:"broker_sigkill"`
	BrokerStarts  int `json:"broker_starts"`
}

// chaosCounts snapshots how often each process was killed and started.
func (f *fleet) chaosCounts() chaosCounts {
	var c chaosCounts
	for _, r := range f.relays {
		r.mu.Lock()
		c.RelaySIGKILL += r.kills
		c.RelaySIGTERM += r.terms
		c.RelayStarts += r.starts
		r.mu.Unlock()
	}
	f.broker.mu.Lock()
	c.BrokerSIGKILL, c.BrokerStarts = f.broker.kills, f.broker.starts
	f.broker.mu.Unlock()
	return c
}
