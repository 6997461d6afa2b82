package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// The --procs supervisor: N relay processes share one port (SO_REUSEPORT),
// the kernel spreading new connections among them. A child that exits is
// restarted; SIGHUP replaces the children one at a time (each drains: it
// stops accepting, closes its clients with 1001 so they reconnect to the
// others and resume with their positions, flushes, exits), so a binary
// upgrade drops no message. The supervisor itself serves nothing. The
// children share the cores out through GOMAXPROCS (childProcs).

// childProcs is the GOMAXPROCS of child i of procs when the supervisor's
// environment sets none: the cores the supervisor may use (its own
// GOMAXPROCS, which follows CPU affinity and cgroup limits) shared out, so
// that the children together run as many threads as there are cores (the
// first cores%procs children get one more), and each at least one. Every
// child sized to all the cores oversubscribes them: on a lightly loaded host
// each goroutine woken wakes another thread, which costs CPU in the
// scheduler and the kernel (docs/operations.md has the measurement).
func childProcs(cores, procs, i int) int {
	n := cores / procs
	if i < cores%procs {
		n++
	}
	return max(n, 1)
}

// readyFDEnv tells a child relay which inherited file descriptor to write
// "ready\n" to once it serves.
const readyFDEnv = "ROOMLOG_READY_FD"

// signalReady tells a supervising parent that this relay serves.
func signalReady() {
	fd, err := strconv.Atoi(os.Getenv(readyFDEnv))
	if err != nil {
		return
	}
	f := os.NewFile(uintptr(fd), "ready")
	_, _ = f.WriteString("ready\n")
	_ = f.Close()
}

type supervisor struct {
	args    []string // the child's command line, after "roomlog"
	name    string   // relay name base; child i is name-i
	procs   int      // the children's count
	cores   int      // the cores shared among the children; 0: GOMAXPROCS is set, children inherit it
	log     *slog.Logger
	stderr  io.Writer
	slots   []*slot
	stopped chan struct{}
}

type slot struct {
	i         int
	mu        sync.Mutex
	cmd       *exec.Cmd
	ready     chan struct{} // closed when the current child serves
	replacing bool          // the current child is being replaced: restart at once
}

// runSupervisor runs procs children with args (plus per-child overrides)
// until ctx ends, then stops them all.
func runSupervisor(ctx context.Context, args []string, procs int, name string, log *slog.Logger, stderr io.Writer) error {
	sv := &supervisor{args: args, name: name, procs: procs, log: log, stderr: stderr, stopped: make(chan struct{})}
	if os.Getenv("GOMAXPROCS") == "" {
		sv.cores = runtime.GOMAXPROCS(0)
	}
	var wg sync.WaitGroup
	for i := 0; i < procs; i++ {
		sl := &slot{i: i, ready: make(chan struct{})}
		sv.slots = append(sv.slots, sl)
		wg.Add(1)
		go func() { defer wg.Done(); sv.run(ctx, sl) }()
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	log.Info("supervisor started", "procs", procs, "relay_name", name, "cores", sv.cores)
	for {
		select {
		case <-ctx.Done():
			log.Info("supervisor stopping children")
			close(sv.stopped)
			sv.signalAll(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				log.Warn("children did not stop in 30s; killing them")
				sv.signalAll(syscall.SIGKILL)
				wg.Wait()
			}
			return nil
		case <-hup:
			sv.rollingRestart(ctx)
		}
	}
}

// run keeps slot sl's child alive until ctx ends.
func (sv *supervisor) run(ctx context.Context, sl *slot) {
	backoff := time.Second
	for ctx.Err() == nil {
		began := time.Now()
		cmd, err := sv.start(sl)
		if err != nil {
			sv.log.Error("starting relay child", "slot", sl.i, "err", err)
		} else {
			err = cmd.Wait()
			sl.mu.Lock()
			replacing := sl.replacing
			sl.replacing = false
			sl.mu.Unlock()
			select {
			case <-sv.stopped:
				return
			default:
			}
			if replacing {
				backoff = time.Second
				continue
			}
			sv.log.Warn("relay child exited; restarting", "slot", sl.i, "pid", cmd.Process.Pid, "err", err, "ran", time.Since(began).Round(time.Millisecond))
		}
		if time.Since(began) > time.Minute {
			backoff = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// start launches slot sl's child and watches for its ready line.
func (sv *supervisor) start(sl *slot) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	args := append(append([]string{}, sv.args...), "--procs", "1", "--reuse-port", "--relay-name", sv.name+"-"+strconv.Itoa(sl.i))
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = sv.stderr, sv.stderr
	cmd.ExtraFiles = []*os.File{w}
	cmd.Env = append(os.Environ(), readyFDEnv+"=3")
	if sv.cores > 0 {
		cmd.Env = append(cmd.Env, "GOMAXPROCS="+strconv.Itoa(childProcs(sv.cores, sv.procs, sl.i)))
	}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	w.Close()
	ready := make(chan struct{})
	sl.mu.Lock()
	sl.cmd, sl.ready = cmd, ready
	sl.mu.Unlock()
	sv.log.Info("relay child started", "slot", sl.i, "pid", cmd.Process.Pid)
	go func() {
		defer r.Close()
		if line, err := bufio.NewReader(r).ReadString('\n'); err == nil && line == "ready\n" {
			close(ready)
		}
	}()
	return cmd, nil
}

func (sv *supervisor) signalAll(sig syscall.Signal) {
	for _, sl := range sv.slots {
		sl.mu.Lock()
		if sl.cmd != nil && sl.cmd.ProcessState == nil {
			_ = sl.cmd.Process.Signal(sig)
		}
		sl.mu.Unlock()
	}
}

// rollingRestart replaces each child in turn: SIGTERM (drain), then wait for
// its successor to serve before touching the next.
func (sv *supervisor) rollingRestart(ctx context.Context) {
	sv.log.Info("SIGHUP: replacing relay children one at a time")
	for _, sl := range sv.slots {
		sl.mu.Lock()
		old := sl.cmd
		sl.replacing = true
		sl.mu.Unlock()
		if old == nil {
			continue
		}
		if err := old.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			sv.log.Warn("signalling relay child", "slot", sl.i, "err", err)
		}
		// Wait for a new child in this slot to serve.
		deadline := time.After(2 * time.Minute)
		for {
			sl.mu.Lock()
			cur, ready := sl.cmd, sl.ready
			sl.mu.Unlock()
			if cur != old {
				select {
				case <-ready:
				case <-deadline:
					sv.log.Error("replacement child not ready in 2m; continuing", "slot", sl.i)
				case <-ctx.Done():
					return
				}
				break
			}
			select {
			case <-time.After(50 * time.Millisecond):
			case <-deadline:
				sv.log.Error("relay child did not exit in 2m", "slot", sl.i)
				return
			case <-ctx.Done():
				return
			}
		}
		sv.log.Info("relay child replaced", "slot", sl.i)
	}
	sv.log.Info("rolling restart done")
}
