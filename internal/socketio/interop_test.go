package socketio_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roomlog/roomlog/internal/engineio"
	"github.com/roomlog/roomlog/internal/socketio"
	socketiotest "github.com/roomlog/roomlog/testenv/socketio"
)

// The official socket.io-client (testenv/socketio, pinned in its
// package-lock.json and installed by testenv/setup.sh with npm ci) against a
// small server built on engineio and socketio: it acks "echo" with the same
// arguments and closes the session, without a Socket.IO DISCONNECT, on
// "kick".

// echoServer serves one Engine.IO session as a minimal Socket.IO server.
type echoServer struct {
	sess *engineio.Session
	dec  socketio.Decoder
}

func (e *echoServer) send(p *socketio.Packet) {
	text, atts := socketio.Encode(p)
	msgs := []engineio.Message{{Data: text}}
	for _, a := range atts {
		msgs = append(msgs, engineio.Message{Binary: true, Data: a})
	}
	_ = e.sess.Send(msgs...)
}

func (e *echoServer) Closed() {}

func (e *echoServer) Message(m engineio.Message) bool {
	sess, send := e.sess, e.send
	p, err := e.dec.Decode(m.Binary, m.Data)
	if err != nil {
		sess.Close(engineio.ReasonParseError)
		return false
	}
	if p == nil {
		return true // attachments due
	}
	switch p.Type {
	case socketio.Connect:
		if p.Namespace != socketio.MainNamespace {
			data, _ := socketio.ConnectErrorData("Invalid namespace", nil)
			send(&socketio.Packet{Type: socketio.ConnectError, Namespace: p.Namespace, Data: data})
			return true
		}
		sid, _ := engineio.RandomSID("")
		data, _ := json.Marshal(map[string]string{"sid": sid})
		send(&socketio.Packet{Type: socketio.Connect, Data: data})
	case socketio.Event, socketio.BinaryEvent:
		name, _, args, err := p.Event()
		if err != nil {
			sess.Close(engineio.ReasonParseError)
			return false
		}
		switch name {
		case "echo":
			if !p.HasID {
				return true
			}
			ack := &socketio.Packet{Type: socketio.Ack, Namespace: p.Namespace, ID: p.ID, HasID: true, Data: socketio.ArrayData(args...)}
			if p.Type == socketio.BinaryEvent {
				ack.Type, ack.Attachments = socketio.BinaryAck, p.Attachments
			}
			send(ack)
		case "kick":
			sess.Close(engineio.ReasonShutdown)
		}
	case socketio.Disconnect:
		// The client left the namespace; it may connect again.
	}
	return true
}

func startServer(t *testing.T, cfg engineio.Config) *httptest.Server {
	t.Helper()
	cfg.OnOpen = func(sess *engineio.Session, _ *http.Request) engineio.Handler { return &echoServer{sess: sess} }
	srv, err := engineio.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", srv)
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		hs.Close()
	})
	return hs
}

func runClient(t *testing.T, scenario, u string) {
	t.Helper()
	node, script := socketiotest.Script(t, "client.mjs")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script, scenario, u)
	cmd.Dir = filepath.Dir(script)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("socket.io-client %s: %v\n%s", scenario, err, out)
	}
}

func TestInterop(t *testing.T) {
	hs := startServer(t, engineio.Config{PingInterval: 100 * time.Millisecond, PingTimeout: 5 * time.Second})
	scenarios := []string{"default", "websocket", "polling", "reconnect-websocket", "reconnect-polling",
		"heartbeat-polling", "heartbeat-websocket", "namespace"}
	for _, scenario := range scenarios {
		t.Run(scenario, func(t *testing.T) { runClient(t, scenario, hs.URL) })
	}
}

// TestInteropRoundRobin: the client's default transports through a proxy
// that alternates every HTTP request (and the upgrade) between two servers,
// with no sticky sessions: a server forwards requests for the other's
// sessions to it.
func TestInteropRoundRobin(t *testing.T) {
	var backends [2]*url.URL
	proxyTo := func(target *url.URL, mark bool) *httputil.ReverseProxy {
		return &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			if mark {
				pr.Out.Header.Set("X-Test-Forwarded", "1")
			}
		}}
	}
	var forwarded atomic.Int64
	forward := func(sid string, r *http.Request) http.Handler {
		if r.Header.Get("X-Test-Forwarded") != "" {
			return nil
		}
		forwarded.Add(1)
		switch {
		case strings.HasPrefix(sid, "a."):
			return proxyTo(backends[0], true)
		case strings.HasPrefix(sid, "b."):
			return proxyTo(backends[1], true)
		}
		return nil
	}
	for i, name := range []string{"a", "b"} {
		hs := startServer(t, engineio.Config{
			NewSID:  func() (string, error) { return engineio.RandomSID(name + ".") },
			Forward: forward,
		})
		backends[i], _ = url.Parse(hs.URL)
	}
	var n atomic.Uint64
	proxies := [2]*httputil.ReverseProxy{proxyTo(backends[0], false), proxyTo(backends[1], false)}
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxies[n.Add(1)%2].ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	runClient(t, "default", front.URL)
	runClient(t, "reconnect-websocket", front.URL)
	if n.Load() < 6 || forwarded.Load() < 3 {
		t.Fatalf("%d requests through the proxy, %d forwarded to their owner", n.Load(), forwarded.Load())
	}
}
