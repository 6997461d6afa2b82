package main

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/roomlog/roomlog/record"
)

var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "roomlog-bin")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "roomlog")
	// Every relay these tests start: anonymous clients (local test relays)
	// and no per-connection rate limit (the tests send bulk traffic).
	os.Setenv("ROOMLOG_ANONYMOUS", "true")
	os.Setenv("ROOMLOG_RATE", "-1")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startProc runs the binary and waits until addr accepts TCP connections.
func startProc(t *testing.T, addr string, env []string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v did not listen on %s: %s", args, addr, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type frame struct {
	Op, Pos, Conn, Code string
	Data                json.RawMessage
}

// wsDial connects, retrying while the relay answers 503 (replaying).
func wsDial(t *testing.T, addr string) *websocket.Conn {
	t.Helper()
	var ws *websocket.Conn
	for deadline := time.Now().Add(60 * time.Second); ; {
		var resp *http.Response
		var err error
		ws, resp, err = websocket.DefaultDialer.Dial("ws://"+addr+"/ws", nil)
		if err == nil {
			break
		}
		if resp == nil || resp.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() { ws.Close() })
	var f frame
	if err := ws.ReadJSON(&f); err != nil || f.Op != "welcome" {
		t.Fatalf("welcome: %+v %v", f, err)
	}
	return ws
}

// roundTrip joins room, publishes data, and returns the message's position.
func roundTrip(t *testing.T, ws *websocket.Conn, room, data string) record.Pos {
	t.Helper()
	for _, m := range []map[string]any{
		{"op": "join", "room": room, "id": "j"},
		{"op": "publish", "room": room, "data": data, "id": "p"},
	} {
		if err := ws.WriteJSON(m); err != nil {
			t.Fatal(err)
		}
	}
	_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		var f frame
		if err := ws.ReadJSON(&f); err != nil {
			t.Fatal(err)
		}
		if f.Op == "error" {
			t.Fatalf("error frame %+v", f)
		}
		if f.Op == "message" {
			if want, _ := json.Marshal(data); string(f.Data) != string(want) {
				t.Fatalf("got data %s, want %s", f.Data, want)
			}
			p, err := record.ParsePos(f.Pos)
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
	}
}

// TestRelayEmbedded: `roomlog relay` alone is a durable server configured
// from the environment; SIGTERM closes clients with 1001 and exits 0; a
// restart on the same data folder continues the same log.
// TestTLSFailureAfterStartDrainsTheRelay: when TLS cannot start once the
// relay serves (here its HTTP redirect port is taken), the relay is drained
// before the process exits and before the embedded broker closes; it used
// to return with the relay still serving on a log being closed.
func TestTLSFailureAfterStartDrainsTheRelay(t *testing.T) {
	dir := t.TempDir()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cert, key := selfSigned(t, dir)
	cmd := exec.Command(bin, "relay", "--anonymous", "--listen", freePort(t), "--data-dir", filepath.Join(dir, "data"),
		"--tls-cert", cert, "--tls-key", key, "--http-listen", taken.Addr().String())
	done := make(chan []byte, 1)
	go func() { out, _ := cmd.CombinedOutput(); done <- out }()
	select {
	case out := <-done:
		if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "tls:") {
			t.Fatalf("exit %d, output:\n%s\nwant exit 1 with the TLS error", cmd.ProcessState.ExitCode(), out)
		}
		if !strings.Contains(string(out), "relay stopped") {
			t.Fatalf("the relay was not drained:\n%s", out)
		}
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatal("the relay did not exit")
	}
}

// TestPrivateMetrics: with --private-metrics, /metrics is served on the
// admin listener only, not on the public one (issue 15: the operator can keep
// metrics off the internet).
func TestPrivateMetrics(t *testing.T) {
	addr, admin := freePort(t), freePort(t)
	startProc(t, addr, []string{"ROOMLOG_DATA_DIR=" + t.TempDir()}, "relay", "--anonymous", "--listen", addr, "--admin-listen", admin, "--private-metrics")
	get := func(url string) (int, string) {
		for deadline := time.Now().Add(60 * time.Second); ; {
			resp, err := http.Get(url)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusServiceUnavailable { // still replaying
					return resp.StatusCode, string(b)
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %v", url, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	get("http://" + addr + "/readyz")
	if code, _ := get("http://" + addr + "/metrics"); code != http.StatusNotFound {
		t.Fatalf("public /metrics: %d, want 404", code)
	}
	if code, body := get("http://" + admin + "/metrics"); code != 200 || !strings.Contains(body, "roomlog_connections") {
		t.Fatalf("admin /metrics: %d %.200s", code, body)
	}
}

// selfSigned writes a certificate and key for 127.0.0.1 into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestRelayEmbedded(t *testing.T) {
	dir := t.TempDir()
	addr := freePort(t)
	env := []string{"ROOMLOG_LISTEN=" + addr, "ROOMLOG_DATA_DIR=" + dir, "ROOMLOG_PARTITIONS=3"}
	cmd := startProc(t, addr, env, "relay")
	ws := wsDial(t, addr)
	first := roundTrip(t, ws, "lobby", "one")

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		_, _, err := ws.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
			t.Fatalf("on SIGTERM the client got %v, want close 1001", err)
		}
		break
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("relay exit: %v", err)
	}

	// A second process on the same folder while the first runs is refused.
	cmd = startProc(t, addr, env, "relay")
	out, err := exec.Command(bin, "relay", "--listen", freePort(t), "--data-dir", dir).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "in use by another roomlog process") {
		t.Fatalf("second relay on the same data dir: %v\n%s", err, out)
	}
	second := roundTrip(t, wsDial(t, addr), "lobby", "two")
	if second.Epoch != first.Epoch || second.Partition != first.Partition || second.Offset <= first.Offset {
		t.Fatalf("after restart the log is new: %v then %v", first, second)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("relay exit: %v", err)
	}
}

// TestSharedBroker: two relays on one `roomlog broker`.
func TestSharedBroker(t *testing.T) {
	kafka, a, b := freePort(t), freePort(t), freePort(t)
	startProc(t, kafka, nil, "broker", "--listen", kafka, "--data-dir", t.TempDir())
	startProc(t, a, nil, "relay", "--brokers", kafka, "--listen", a)
	startProc(t, b, []string{"ROOMLOG_BROKERS=" + kafka}, "relay", "--listen", b)
	wa, wb := wsDial(t, a), wsDial(t, b)
	if err := wa.WriteJSON(map[string]any{"op": "join", "room": "x", "id": 1}); err != nil {
		t.Fatal(err)
	}
	var ack frame
	if err := wa.ReadJSON(&ack); err != nil || ack.Op != "ack" {
		t.Fatalf("join: %+v %v", ack, err)
	}
	pos := roundTrip(t, wb, "x", "across")
	_ = wa.SetReadDeadline(time.Now().Add(20 * time.Second))
	var m frame
	if err := wa.ReadJSON(&m); err != nil || m.Op != "message" || m.Pos != pos.String() {
		t.Fatalf("relay A got %+v %v, want the message at %v", m, err, pos)
	}
}

func TestHelpListsEveryFlagWithItsVariable(t *testing.T) {
	out, _ := exec.Command(bin, "relay", "--help").CombinedOutput()
	sc := bufio.NewScanner(bytes.NewReader(out))
	n := 0
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "--") {
			continue
		}
		n++
		name := strings.Fields(line)[0][2:]
		if !strings.Contains(line, "("+envName(name)+", default ") {
			t.Errorf("help line %q lacks its variable and default", line)
		}
	}
	if n < 15 {
		t.Fatalf("help lists %d flags:\n%s", n, out)
	}
}

func TestUsageErrors(t *testing.T) {
	noKeys := filepath.Join(t.TempDir(), "api-keys")
	if err := os.WriteFile(noKeys, []byte("# keys go here\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  []string
		code int
		want string
	}{
		{"api key file without keys", []string{"relay", "--brokers", "127.0.0.1:1", "--listen", "127.0.0.1:0", "--api-key-file", noKeys}, nil, 1, "holds no key"},
		{"no command", nil, nil, 2, "Usage"},
		{"unknown command", []string{"nope"}, nil, 2, "unknown command"},
		{"bad flag", []string{"relay", "--no-such-flag"}, nil, 2, "no-such-flag"},
		{"bad env", []string{"relay"}, []string{"ROOMLOG_PARTITIONS=many"}, 2, "ROOMLOG_PARTITIONS"},
		{"bad partitions", []string{"relay", "--partitions", "0"}, nil, 1, "--partitions"},
		{"bad log level", []string{"relay", "--log-level", "loud"}, nil, 1, "--log-level"},
		{"too big frames", []string{"relay", "--brokers", "127.0.0.1:1", "--listen", "127.0.0.1:0", "--max-message-bytes", "99999999"}, nil, 1, "over the limit"},
		{"plaintext on every interface", []string{"relay", "--brokers", "127.0.0.1:1", "--listen", ":0"}, nil, 1, "--insecure-plaintext"},
		{"no authentication", []string{"relay", "--brokers", "127.0.0.1:1", "--listen", "127.0.0.1:0"}, []string{"ROOMLOG_ANONYMOUS=false"}, 1, "no authentication configured"},
		{"tls and plaintext", []string{"relay", "--brokers", "127.0.0.1:1", "--tls-domain", "relay.example.com", "--insecure-plaintext"}, nil, 1, "contradicts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, tt.args...)
			cmd.Env = append(os.Environ(), tt.env...)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != tt.code || !strings.Contains(string(out), tt.want) {
				t.Fatalf("exit %v, output %q; want code %d mentioning %q", err, out, tt.code, tt.want)
			}
		})
	}
}
