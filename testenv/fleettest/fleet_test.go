// Package fleettest runs the local fleet scripts end to end: the cluster
// script starts, serves a cross-relay message and stops leaving no process
// behind; a short chaos run loses nothing. It builds bin/roomlog first.
package fleettest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

var root, bin string

func TestMain(m *testing.M) {
	wd, _ := os.Getwd()
	root = filepath.Join(wd, "..", "..")
	bin = filepath.Join(root, "bin", "roomlog")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/roomlog")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// freePorts finds n consecutive free ports.
func freePorts(t *testing.T, n int) int {
	for try := 0; try < 50; try++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		base := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		ok := true
		for i := 0; i < n && ok; i++ {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base+i))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free ports")
	return 0
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] != 'Z'
}

func TestClusterScript(t *testing.T) {
	base, broker := freePorts(t, 3), freePorts(t, 1)
	cmd := exec.Command("bash", filepath.Join(root, "testenv/cluster/cluster.sh"), "--no-build", "--base-port", strconv.Itoa(base), "--broker-port", strconv.Itoa(broker))
	cmd.Dir = root
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	}()
	pidRe := regexp.MustCompile(`pid (\d+)`)
	var pids []int
	sc := bufio.NewScanner(out)
	up := false
	for sc.Scan() {
		line := sc.Text()
		for _, m := range pidRe.FindAllStringSubmatch(line, -1) {
			p, _ := strconv.Atoi(m[1])
			pids = append(pids, p)
		}
		if strings.HasPrefix(line, "Ctrl-C stops everything") {
			up = true
			break
		}
	}
	if !up || len(pids) != 4 {
		t.Fatalf("cluster did not come up (pids %v)", pids)
	}
	go func() {
		for sc.Scan() {
		}
	}()

	dial := func(port int) *websocket.Conn {
		ws, _, err := websocket.DefaultDialer.Dial("ws://127.0.0.1:"+strconv.Itoa(port)+"/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		var w map[string]any
		_ = ws.ReadJSON(&w)
		return ws
	}
	a, c := dial(base), dial(base+2)
	_ = a.WriteJSON(map[string]any{"op": "join", "room": "lobby", "id": "j"})
	var f map[string]any
	if err := a.ReadJSON(&f); err != nil || f["op"] != "ack" {
		t.Fatalf("join: %v %v", f, err)
	}
	_ = c.WriteJSON(map[string]any{"op": "publish", "room": "lobby", "data": "across", "id": "p"})
	_ = a.SetReadDeadline(time.Now().Add(20 * time.Second))
	if err := a.ReadJSON(&f); err != nil || f["op"] != "message" || f["data"] != "across" {
		t.Fatalf("relay 1 got %v %v", f, err)
	}
	a.Close()
	c.Close()

	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("cluster script did not stop")
	}
	for _, p := range pids {
		if alive(p) {
			t.Errorf("process %d left behind", p)
		}
	}
}

func TestChaosLosesNothing(t *testing.T) {
	report := filepath.Join(t.TempDir(), "report.json")
	cmd := exec.Command("go", "run", "./testenv/chaos", "--build=false", "--bin", bin, "--duration", "20s", "--settle", "40s",
		"--data-dir", t.TempDir(), "--json", report, "--kill-min", "1500ms", "--kill-max", "4s")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	t.Logf("chaos:\n%s", lastLines(string(out), 25))
	if err != nil {
		t.Fatalf("chaos failed: %v", err)
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var r map[string]any
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	t.Logf("report: %s", lastLines(string(b), 0))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if n > 0 && len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
