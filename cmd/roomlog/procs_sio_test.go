package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	socketiotest "github.com/roomlog/roomlog/testenv/socketio"
)

// sioDriver is the official socket.io-client in a Node process
// (testenv/socketio/driver.mjs): JSON commands in, JSON reports out.
type sioDriver struct {
	t       *testing.T
	in      io.WriteCloser
	reports chan map[string]any
	chats   int // chat events seen
}

func startSIODriver(t *testing.T, url string, opts map[string]any) *sioDriver {
	t.Helper()
	node, script := socketiotest.Script(t, "driver.mjs")
	o, _ := json.Marshal(opts)
	cmd := exec.Command(node, script, url, string(o))
	cmd.Dir = filepath.Dir(script)
	cmd.Stderr = os.Stderr
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &sioDriver{t: t, in: in, reports: make(chan map[string]any, 1024)}
	go func() {
		defer close(d.reports)
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var r map[string]any
			if json.Unmarshal(sc.Bytes(), &r) == nil {
				d.reports <- r
			}
		}
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return d
}

// next returns the next report of one of the types, failing on a
// disconnect or a second connect (the session must survive).
func (d *sioDriver) next(types ...string) map[string]any {
	d.t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case r, ok := <-d.reports:
			if !ok {
				d.t.Fatal("the client ended")
			}
			switch r["type"] {
			case "disconnect", "connect_error":
				d.t.Fatalf("the client lost its session: %v", r)
			case "event":
				if r["name"] != "chat" {
					d.t.Fatalf("event %v", r)
				}
				d.chats++
			}
			for _, typ := range types {
				if r["type"] == typ {
					return r
				}
			}
		case <-timeout:
			d.t.Fatalf("no %v report within 60s", types)
		}
	}
}

func (d *sioDriver) emitAck(id int, event string, args ...any) map[string]any {
	d.t.Helper()
	b, _ := json.Marshal(map[string]any{"op": "emit", "event": event, "args": args, "id": id})
	if _, err := d.in.Write(append(b, '\n')); err != nil {
		d.t.Fatal(err)
	}
	for {
		r := d.next("ack")
		if fmt.Sprint(r["id"]) == fmt.Sprint(id) {
			ack, _ := r["args"].([]any)
			if len(ack) != 1 {
				d.t.Fatalf("%s: ack %v", event, r)
			}
			m, _ := ack[0].(map[string]any)
			if m["ok"] != true {
				d.t.Fatalf("%s: ack %v", event, m)
			}
			return m
		}
	}
}

// TestProcsSocketIOForwarding: under --procs 2 the children share the
// port, and each advertises an internal address of its own. Socket.IO
// clients on HTTP long-polling with a new TCP connection per request (so
// the kernel spreads a session's requests over both children) keep their
// sessions: requests that reach the other child are forwarded to the owner.
func TestProcsSocketIOForwarding(t *testing.T) {
	forEachProcBackend(t, func(t *testing.T, b procBackend) {
		addr := freePort(t)
		args := []string{"relay", "--procs", "2", "--listen", addr, "--brokers", b.brokers, "--topic", topicName(t),
			"--partitions", "4", "--anonymous", "--demo=false", "--rate", "-1"}
		if b.name == "kafka" {
			args = append(args, "--replication-factor", "1")
		}
		sup := exec.Command(bin, args...)
		if os.Getenv("ROOMLOG_TEST_LOG") != "" {
			sup.Stderr = os.Stderr
		}
		if err := sup.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sup.Process.Signal(syscall.SIGTERM); _ = sup.Wait() })
		waitChildren(t, sup.Process.Pid, 2, nil)
		// Both children ready: 20 answers in a row on new connections,
		// which the kernel spreads over them.
		probe := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		for ok, deadline := 0, time.Now().Add(60*time.Second); ok < 20; time.Sleep(10 * time.Millisecond) {
			ok++
			if resp, err := probe.Get("http://" + addr + "/readyz"); err != nil || resp.StatusCode != http.StatusOK {
				ok = 0
			} else {
				resp.Body.Close()
			}
			if time.Now().After(deadline) {
				t.Fatal("the relays never became ready")
			}
		}
		// Both children must know each other's address (from the leases)
		// before a request can be forwarded: a lease is written every
		// --lease-timeout/3 once ready; the clients start after both are.
		time.Sleep(200 * time.Millisecond)

		const clients, msgs = 3, 10
		ds := make([]*sioDriver, clients)
		for i := range ds {
			ds[i] = startSIODriver(t, "http://"+addr, map[string]any{"transports": []string{"polling"}, "agent": false})
			ds[i].next("connect")
			ds[i].emitAck(1, "join", "procs-sio")
		}
		for i, d := range ds {
			for j := range msgs {
				d.emitAck(2+j, "chat", "procs-sio", map[string]int{"from": i, "seq": j})
			}
		}
		for i, d := range ds {
			for d.chats < clients*msgs {
				d.next("event")
			}
			if d.chats != clients*msgs {
				t.Fatalf("client %d: %d chat events, want %d", i, d.chats, clients*msgs)
			}
		}
	})
}
