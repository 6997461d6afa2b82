package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// childrenOf lists the pids whose parent is pid.
func childrenOf(pid int) []int {
	var out []int
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, st := range stats {
		b, err := os.ReadFile(st)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces; split after ')'.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			c, _ := strconv.Atoi(filepath.Base(filepath.Dir(st)))
			out = append(out, c)
		}
	}
	sort.Ints(out)
	return out
}

// waitChildren waits until pid has n children, none of them in old.
func waitChildren(t *testing.T, pid, n int, old []int) []int {
	t.Helper()
	for deadline := time.Now().Add(90 * time.Second); ; {
		cs := childrenOf(pid)
		fresh := len(cs) == n
		for _, c := range cs {
			for _, o := range old {
				if c == o {
					fresh = false
				}
			}
		}
		if fresh {
			return cs
		}
		if time.Now().After(deadline) {
			t.Fatalf("supervisor %d has children %v, want %d new ones (old %v)", pid, cs, n, old)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// resumingSub is a subscriber that reconnects (to the same port, so the
// kernel picks a live relay) and resumes from its last position.
type resumingSub struct {
	addr, room string
	mu         sync.Mutex
	got        []int
	resumes    int
	err        error
}

func (s *resumingSub) run(t *testing.T, want int, done chan<- struct{}) {
	defer close(done)
	last := ""
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); {
		ws, _, err := websocket.DefaultDialer.Dial("ws://"+s.addr+"/ws", nil)
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		join := map[string]any{"op": "join", "room": s.room, "id": "j"}
		if last != "" {
			join["since"] = last
			s.mu.Lock()
			s.resumes++
			s.mu.Unlock()
		}
		if err := ws.WriteJSON(join); err != nil {
			ws.Close()
			continue
		}
		for {
			_ = ws.SetReadDeadline(time.Now().Add(60 * time.Second))
			var f wsFrame
			if err := ws.ReadJSON(&f); err != nil {
				break
			}
			switch f.Op {
			case "message":
				var v int
				_ = json.Unmarshal(f.Data, &v)
				s.mu.Lock()
				s.got = append(s.got, v)
				n := len(s.got)
				s.mu.Unlock()
				last = f.Pos
				if n == want {
					ws.Close()
					return
				}
			case "ack":
				if f.Recovered != nil && !*f.Recovered {
					s.mu.Lock()
					s.err = fmt.Errorf("resume was not complete: %+v", f)
					s.mu.Unlock()
				}
			case "error":
				s.mu.Lock()
				s.err = fmt.Errorf("error frame %+v", f)
				s.mu.Unlock()
			}
		}
		ws.Close()
	}
}

// publishResuming publishes 0..n-1 with message ids, one at a time, each
// retried on a new connection until acknowledged; during() runs once after
// n/4 messages.
func publishResuming(t *testing.T, addr, room string, n int, during func()) {
	t.Helper()
	var ws *websocket.Conn
	connect := func() {
		for deadline := time.Now().Add(60 * time.Second); ; {
			var err error
			if ws, _, err = websocket.DefaultDialer.Dial("ws://"+addr+"/ws", nil); err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("publisher cannot reconnect: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	connect()
	for i := 0; i < n; i++ {
		if i == n/4 {
			go during()
		}
		for {
			err := ws.WriteJSON(map[string]any{"op": "publish", "room": room, "data": i, "mid": "pub-" + strconv.Itoa(i), "id": i})
			acked := false
			for err == nil && !acked {
				_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
				var f wsFrame
				if err = ws.ReadJSON(&f); err == nil && string(f.ID) == strconv.Itoa(i) {
					if f.Op != "ack" {
						err = fmt.Errorf("publish %d: %+v", i, f)
						break
					}
					acked = true
				}
			}
			if acked {
				break
			}
			ws.Close()
			connect()
		}
		time.Sleep(2 * time.Millisecond)
	}
	ws.Close()
}

func checkExactlyOnce(t *testing.T, subs []*resumingSub, n int) {
	t.Helper()
	for i, s := range subs {
		s.mu.Lock()
		if s.err != nil {
			t.Errorf("subscriber %d: %v", i, s.err)
		}
		if len(s.got) != n {
			t.Errorf("subscriber %d got %d messages, want %d", i, len(s.got), n)
		}
		for j, v := range s.got {
			if v != j {
				t.Errorf("subscriber %d: message %d is %d (lost, duplicated or out of order)", i, j, v)
				break
			}
		}
		s.mu.Unlock()
	}
}

// checkChildProcs: the children share the cores out through GOMAXPROCS
// (each at least 1, none more than one above another, together the cores
// or one each), or all inherit the GOMAXPROCS the supervisor was given.
func checkChildProcs(t *testing.T, kids []int) {
	t.Helper()
	var got []int
	for _, k := range kids {
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", k))
		if err != nil {
			t.Fatal(err)
		}
		var vals []string
		for _, kv := range strings.Split(string(env), "\x00") {
			if v, ok := strings.CutPrefix(kv, "GOMAXPROCS="); ok {
				vals = append(vals, v)
			}
		}
		if len(vals) == 0 {
			t.Fatalf("child %d has no GOMAXPROCS in its environment", k)
		}
		v := vals[len(vals)-1] // the last one is the one Go reads
		if set := os.Getenv("GOMAXPROCS"); set != "" {
			if v != set {
				t.Errorf("child %d: GOMAXPROCS=%s, want the supervisor's %s", k, v, set)
			}
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("child %d: GOMAXPROCS=%q", k, v)
		}
		got = append(got, n)
	}
	if len(got) == 0 {
		return
	}
	sum := 0
	for _, n := range got {
		sum += n
	}
	if lo, hi := slices.Min(got), slices.Max(got); hi-lo > 1 || sum > max(runtime.NumCPU(), len(got)) {
		t.Errorf("children's GOMAXPROCS %v: want the %d cores shared out evenly", got, runtime.NumCPU())
	}
}

func TestChildProcs(t *testing.T) {
	for _, tc := range []struct {
		cores, procs int
		want         []int
	}{
		{2, 1, []int{2}},
		{2, 2, []int{1, 1}},
		{2, 7, []int{1, 1, 1, 1, 1, 1, 1}},
		{8, 3, []int{3, 3, 2}},
		{16, 4, []int{4, 4, 4, 4}},
		{1, 3, []int{1, 1, 1}},
	} {
		var got []int
		for i := 0; i < tc.procs; i++ {
			got = append(got, childProcs(tc.cores, tc.procs, i))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%d cores, %d procs: %v, want %v", tc.cores, tc.procs, got, tc.want)
		}
	}
}

// runProcsScenario starts `roomlog relay --procs 3`, subscribers and a
// publisher, applies disrupt(supervisor pid, children) a quarter of the way
// through, and checks that every subscriber got every message exactly once.
func runProcsScenario(t *testing.T, b procBackend, disrupt func(t *testing.T, sup int, kids []int)) {
	addr := freePort(t)
	args := []string{"relay", "--procs", "3", "--listen", addr, "--brokers", b.brokers, "--topic", topicName(t), "--partitions", "4", "--lease-timeout", "3s"}
	if b.name == "kafka" {
		args = append(args, "--replication-factor", "1")
	}
	sup := exec.Command(bin, args...)
	sup.Stderr = os.Stderr
	if os.Getenv("ROOMLOG_TEST_LOG") == "" {
		sup.Stderr = nil
	}
	if err := sup.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = sup.Process.Signal(syscall.SIGTERM)
		_ = sup.Wait()
	})
	kids := waitChildren(t, sup.Process.Pid, 3, nil)
	checkChildProcs(t, kids)
	for deadline := time.Now().Add(60 * time.Second); ; {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the relays never became ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
	const n = 1500
	subs := make([]*resumingSub, 9)
	dones := make([]chan struct{}, len(subs))
	for i := range subs {
		subs[i] = &resumingSub{addr: addr, room: "procs"}
		dones[i] = make(chan struct{})
		go subs[i].run(t, n, dones[i])
	}
	time.Sleep(500 * time.Millisecond) // let them join
	publishResuming(t, addr, "procs", n, func() { disrupt(t, sup.Process.Pid, kids) })
	for i, d := range dones {
		select {
		case <-d:
		case <-time.After(3 * time.Minute):
			t.Fatalf("subscriber %d did not finish", i)
		}
	}
	checkExactlyOnce(t, subs, n)
	resumes := 0
	for _, s := range subs {
		resumes += s.resumes
	}
	t.Logf("%s: %d subscribers got %d messages each, exactly once and in order, across %d resumes", b.name, len(subs), n, resumes)
	if resumes == 0 {
		t.Error("no subscriber had to resume: the disruption touched nobody")
	}
	// The supervisor stops cleanly and leaves no child behind.
	_ = sup.Process.Signal(syscall.SIGTERM)
	if err := sup.Wait(); err != nil {
		t.Errorf("supervisor exit: %v", err)
	}
	if left := childrenOf(sup.Process.Pid); len(left) > 0 {
		t.Errorf("children left behind: %v", left)
	}
}

// TestProcsKillChild: under --procs 3, one child killed with SIGKILL is
// restarted, and its clients reconnect to the others and resume with
// nothing lost.
func TestProcsKillChild(t *testing.T) {
	forEachProcBackend(t, func(t *testing.T, b procBackend) {
		runProcsScenario(t, b, func(t *testing.T, sup int, kids []int) {
			// Kill the child holding the most sockets, so that the kill
			// certainly hits clients.
			victim, most := kids[0], -1
			for _, k := range kids {
				fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", k))
				if len(fds) > most {
					victim, most = k, len(fds)
				}
			}
			_ = syscall.Kill(victim, syscall.SIGKILL)
			cs := waitChildren(t, sup, 3, []int{victim})
			t.Logf("killed child %d; children now %v", victim, cs)
		})
	})
}

// TestProcsRollingRestart: SIGHUP replaces every child one at a time under
// traffic, and nothing is lost.
func TestProcsRollingRestart(t *testing.T) {
	forEachProcBackend(t, func(t *testing.T, b procBackend) {
		runProcsScenario(t, b, func(t *testing.T, sup int, kids []int) {
			_ = syscall.Kill(sup, syscall.SIGHUP)
			cs := waitChildren(t, sup, 3, kids)
			t.Logf("SIGHUP: children %v replaced by %v", kids, cs)
		})
	})
}
