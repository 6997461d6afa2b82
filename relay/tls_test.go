package relay_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
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
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/mod/semver"

	"github.com/roomlog/roomlog/internal/tlsconf"
	"github.com/roomlog/roomlog/relay"
)

// TLS tests (internal/tlsconf serving relays): a real ACME server (Pebble, started here on 127.0.0.1) issues
// the relay's certificates. Pebble is installed by testenv/setup.sh
// (go install github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.3); the
// tests find it on PATH or in $(go env GOPATH)/bin, and under CI=true a
// missing pebble fails them.

const testDomain = "relay.test"

// pebble is a running Pebble.
type pebble struct {
	directory string         // ACME directory URL
	caRoot    string         // PEM file of the CA of Pebble's own HTTPS listener
	issuing   *x509.CertPool // the root Pebble issues certificates under
}

// pebbleVersionOK returns p if it is Pebble v2.10.3 or later, and fails
// the test otherwise: earlier ones refuse about one ARI renewal in 256 (they
// look the replaced certificate up by its serial without DER's leading
// zero byte), which made TestACMERenewalKeepsConnections flaky.
func pebbleVersionOK(t *testing.T, p string) string {
	t.Helper()
	out, err := exec.Command("go", "version", "-m", p).Output()
	if err != nil {
		t.Fatalf("go version -m %s: %v", p, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "mod" && f[1] == "github.com/letsencrypt/pebble/v2" {
			if semver.Compare(f[2], "v2.10.3") < 0 {
				t.Fatalf("%s is Pebble %s; the TLS tests need v2.10.3 or later (testenv/setup.sh installs it)", p, f[2])
			}
			return p
		}
	}
	t.Fatalf("%s: not a Pebble build (go version -m says %q)", p, out)
	return ""
}

func pebbleBin(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("pebble"); err == nil {
		return pebbleVersionOK(t, p)
	}
	gopath := os.Getenv("GOPATH")
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		gopath = strings.TrimSpace(string(out))
	}
	for _, dir := range filepath.SplitList(gopath) {
		if p := filepath.Join(dir, "bin", "pebble"); fileExists(p) {
			return pebbleVersionOK(t, p)
		}
	}
	msg := "pebble is not installed: go install github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.3"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// testCA is a throwaway certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "roomlog test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue writes a leaf certificate for names (and 127.0.0.1) and its key.
func (ca *testCA) issue(t *testing.T, serial int64, certFile, keyFile string, names ...string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startPebble runs Pebble on 127.0.0.1, issuing certificates valid for
// validity, with validation skipped (PEBBLE_VA_ALWAYS_VALID) so that no DNS
// or port 80 is involved.
func startPebble(t *testing.T, validity time.Duration) *pebble {
	t.Helper()
	bin := pebbleBin(t)
	dir := t.TempDir()
	ca := newTestCA(t)
	ca.issue(t, 2, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), "localhost")
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	listen, mgmt := freeAddr(t), freeAddr(t)
	var conf struct {
		Pebble map[string]any `json:"pebble"`
	}
	conf.Pebble = map[string]any{
		"listenAddress": listen, "managementListenAddress": mgmt,
		"certificate": filepath.Join(dir, "cert.pem"), "privateKey": filepath.Join(dir, "key.pem"),
		"httpPort": 5002, "tlsPort": 5001, "ocspResponderURL": "", "externalAccountBindingRequired": false,
		"keyAlgorithm": "ecdsa",
		"profiles":     map[string]any{"default": map[string]any{"description": "test", "validityPeriod": int(validity.Seconds())}},
	}
	cb, _ := json.Marshal(conf)
	cfgFile := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(cfgFile, cb, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", cfgFile)
	cmd.Env = append(os.Environ(), "PEBBLE_VA_ALWAYS_VALID=1", "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	var logs strings.Builder
	var logMu sync.Mutex
	cmd.Stdout, cmd.Stderr = lockedWriter{&logs, &logMu}, lockedWriter{&logs, &logMu}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			logMu.Lock()
			t.Logf("pebble output:\n%s", logs.String())
			logMu.Unlock()
		}
	})
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	p := &pebble{directory: "https://" + listen + "/dir", caRoot: caFile}
	var root []byte
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := hc.Get("https://" + mgmt + "/roots/0")
		if err == nil {
			root, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not start: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.issuing = x509.NewCertPool()
	if !p.issuing.AppendCertsFromPEM(root) {
		t.Fatalf("pebble /roots/0: no certificate in %q", root)
	}
	return p
}

type lockedWriter struct {
	b  *strings.Builder
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// acmeTLS is a relay certificate source on Pebble; obtained counts the
// certificates it obtained or renewed.
func acmeTLS(t *testing.T, p *pebble, storage string, obtained *atomic.Int64, mod func(*tlsconf.Config)) *tlsconf.Manager {
	t.Helper()
	c := tlsconf.Config{
		Domains: []string{testDomain}, ACMECA: p.directory, ACMECARoot: p.caRoot, ACMEEmail: "ops@example.com",
		Storage: storage, Logger: testLogger(t),
		OnEvent: func(event string, _ map[string]any) {
			if event == "cert_obtained" && obtained != nil {
				obtained.Add(1)
			}
		},
	}
	if mod != nil {
		mod(&c)
	}
	tl, err := tlsconf.New(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tl.Close)
	return tl
}

// wssDialer trusts only roots and asks for testDomain.
func wssDialer(roots *x509.CertPool) *websocket.Dialer {
	return &websocket.Dialer{HandshakeTimeout: 10 * time.Second, TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: testDomain, MinVersion: tls.VersionTLS12}}
}

func wssURL(s *relay.Server) string { return "wss://" + s.Addr().String() + "/ws" }

// peerSerial is the serial of the certificate the relay presented.
func peerSerial(t *testing.T, c *client) string {
	t.Helper()
	tc, ok := c.ws.NetConn().(*tls.Conn)
	if !ok {
		t.Fatalf("not a TLS connection: %T", c.ws.NetConn())
	}
	return tc.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

func tlsRelay(t *testing.T, b backend, tl *tlsconf.Manager) *relay.Server {
	return startRelay(t, b, newTopic(t), func(c *relay.Config) { c.TLS = tl.Config() })
}

// TestACMECertificateFromPebble: a relay obtains a certificate for
// relay.test from Pebble; wss:// clients trusting only Pebble's issuing root
// connect and exchange messages; plain HTTP redirects to HTTPS; plain ws://
// and TLS 1.1 are refused.
func TestACMECertificateFromPebble(t *testing.T) {
	p := startPebble(t, 24*time.Hour)
	b := kfakeBackend(t)
	tl := acmeTLS(t, p, t.TempDir(), nil, nil)
	r := tlsRelay(t, b, tl)
	port := r.Addr().(*net.TCPAddr).Port
	httpAddr, err := tl.ServeHTTP("127.0.0.1:0", port)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := tl.Manage(ctx, r.Addr(), true); err != nil {
		t.Fatal(err)
	}
	a, _, err := dialWith(t, wssDialer(p.issuing), wssURL(r), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	bb, _, err := dialWith(t, wssDialer(p.issuing), wssURL(r), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	a.join("secure")
	bb.join("secure")
	a.do(map[string]any{"op": "publish", "room": "secure", "data": "over tls", "id": 1})
	if m := bb.message(); string(m.Data) != `"over tls"` || m.From != a.id {
		t.Fatalf("got %+v", m)
	}
	if v := a.ws.NetConn().(*tls.Conn).ConnectionState().Version; v < tls.VersionTLS12 {
		t.Fatalf("TLS version %x", v)
	}
	// Only Pebble's root is trusted by the client: the system roots would refuse.
	if _, _, err := dialWith(t, wssDialer(x509.NewCertPool()), wssURL(r), nil, false); err == nil {
		t.Fatal("a client trusting nothing connected")
	}
	if _, _, err := dialWith(t, nil, "ws://"+r.Addr().String()+"/ws", nil, false); err == nil {
		t.Fatal("plain ws:// to the TLS port connected")
	}
	// MinVersion too: Go's client refuses TLS 1.1 by itself otherwise, and
	// the server would never be asked. The server's refusal is an alert it
	// sends, which Go reports as a "remote error".
	old := &websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: p.issuing, ServerName: testDomain, MinVersion: tls.VersionTLS11, MaxVersion: tls.VersionTLS11}}
	_, _, err = dialWith(t, old, wssURL(r), nil, false)
	var remote *net.OpError
	if !errors.As(err, &remote) || remote.Op != "remote error" {
		t.Fatalf("TLS 1.1: %v, want the server's refusal (a remote alert)", err)
	}
	// Plain HTTP: redirected to https for the managed name, 404 for others.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodGet, "http://"+httpAddr.String()+"/ws?x=1", nil)
	req.Host = testDomain
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := fmt.Sprintf("https://%s:%d/ws?x=1", testDomain, port); resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Fatalf("redirect: %d %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	req.Host = "evil.example"
	if resp, err = noFollow.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("redirect for an unmanaged host: %d, want 404", resp.StatusCode)
	}
}

// TestACMESharedStorageOneCertificate: two relays sharing one storage
// folder end up serving the same certificate, obtained once.
func TestACMESharedStorageOneCertificate(t *testing.T) {
	p := startPebble(t, 24*time.Hour)
	b := kfakeBackend(t)
	storage := t.TempDir()
	var obtained atomic.Int64
	tl1, tl2 := acmeTLS(t, p, storage, &obtained, nil), acmeTLS(t, p, storage, &obtained, nil)
	r1, r2 := tlsRelay(t, b, tl1), tlsRelay(t, b, tl2)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, x := range []struct {
		tl *tlsconf.Manager
		r  *relay.Server
	}{{tl1, r1}, {tl2, r2}} {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = x.tl.Manage(ctx, x.r.Addr(), true) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := obtained.Load(); n != 1 {
		t.Fatalf("certificates obtained: %d, want 1 for the fleet", n)
	}
	c1, _, err := dialWith(t, wssDialer(p.issuing), wssURL(r1), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	c2, _, err := dialWith(t, wssDialer(p.issuing), wssURL(r2), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if s1, s2 := peerSerial(t, c1), peerSerial(t, c2); s1 != s2 {
		t.Fatalf("relays serve different certificates: %s and %s", s1, s2)
	}
}

// TestACMERenewalKeepsConnections: with short-lived certificates the relay
// renews while a client stays connected; new clients get the new
// certificate and the old connection keeps working.
func TestACMERenewalKeepsConnections(t *testing.T) {
	p := startPebble(t, 30*time.Second)
	b := kfakeBackend(t)
	var obtained atomic.Int64
	tl := acmeTLS(t, p, t.TempDir(), &obtained, func(c *tlsconf.Config) {
		c.RenewalWindowRatio = 0.5
		c.RenewCheckInterval = time.Second
	})
	r := tlsRelay(t, b, tl)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := tl.Manage(ctx, r.Addr(), true); err != nil {
		t.Fatal(err)
	}
	stay, _, err := dialWith(t, wssDialer(p.issuing), wssURL(r), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	stay.join("long")
	first := peerSerial(t, stay)
	began := time.Now()
	var renewed string
	for deadline := time.Now().Add(90 * time.Second); renewed == ""; {
		if time.Now().After(deadline) {
			t.Fatalf("no renewal within 90s (obtained %d)", obtained.Load())
		}
		time.Sleep(500 * time.Millisecond)
		c, _, err := dialWith(t, wssDialer(p.issuing), wssURL(r), nil, false)
		if err != nil {
			continue
		}
		if s := peerSerial(t, c); s != first {
			renewed = s
		}
		c.ws.Close()
	}
	t.Logf("renewed after %v: serial %s → %s (%d certificates obtained)", time.Since(began).Round(time.Millisecond), first, renewed, obtained.Load())
	stay.do(map[string]any{"op": "publish", "room": "long", "data": "still connected", "id": "after"})
	if m := stay.message(); string(m.Data) != `"still connected"` {
		t.Fatalf("got %+v", m)
	}
	if s := peerSerial(t, stay); s != first {
		t.Fatalf("the open connection's certificate changed under it: %s", s)
	}
}

// TestStaticCertReload: a static certificate replaced on disk is served to
// new connections within the reload interval; open connections stay; a
// half-written pair keeps the previous certificate in service.
func TestStaticCertReload(t *testing.T) {
	b := kfakeBackend(t)
	dir := t.TempDir()
	ca := newTestCA(t)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca.issue(t, 100, certFile, keyFile, testDomain)
	tl, err := tlsconf.New(tlsconf.Config{CertFile: certFile, KeyFile: keyFile, ReloadInterval: 50 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	r := tlsRelay(t, b, tl)
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	stay, _, err := dialWith(t, wssDialer(roots), wssURL(r), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	stay.join("room")
	if s := peerSerial(t, stay); s != "100" {
		t.Fatalf("serial %s, want 100", s)
	}
	// A certificate whose key does not match yet: still the old one.
	os.WriteFile(certFile, []byte("-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n"), 0o600)
	time.Sleep(100 * time.Millisecond)
	c, _, err := dialWith(t, wssDialer(roots), wssURL(r), nil, false)
	if err != nil {
		t.Fatalf("after a broken write: %v", err)
	}
	if s := peerSerial(t, c); s != "100" {
		t.Fatalf("serial %s after a broken write, want 100", s)
	}
	ca.issue(t, 101, certFile, keyFile, testDomain)
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, _, err := dialWith(t, wssDialer(roots), wssURL(r), nil, false)
		if err == nil && peerSerial(t, c) == "101" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("new certificate not served within 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	stay.do(map[string]any{"op": "publish", "room": "room", "data": 1, "id": "x"})
	if m := stay.message(); string(m.Data) != "1" {
		t.Fatalf("got %+v", m)
	}
}
