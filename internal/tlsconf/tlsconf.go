// Package tlsconf is the relay's certificate source: certificates obtained
// and renewed over ACME by certmagic (shared, locked storage: one
// certificate per domain for the whole fleet), or static files reloaded when
// they change. relay.Config.TLS takes Manager.Config(); the optional plain
// HTTP server answers ACME HTTP-01 challenges and redirects everything else
// to HTTPS. Only cmd/roomlog uses it, so certmagic and its dependencies stay
// out of the relay package.
//
// # Concurrency
//
// New, Manage, ServeHTTP and Close are called by the one goroutine that
// owns the Manager (cmd/roomlog's relay command). Beside it run:
//
//   - the TLS handshakes of the relay's listener, which call the
//     GetCertificate of Config() concurrently; a static certificate's
//     reload happens there, under its mutex;
//   - certmagic's maintenance goroutine (renewals, every
//     RenewCheckInterval), and with Manage(wait=false) its background
//     obtain, both stopped by Close;
//   - the plain HTTP server's goroutine, started by ServeHTTP and ended by
//     Close.
package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/roomlog/roomlog/internal/reuseport"
)

// Defaults for Config's zero values.
const (
	DefaultStorage        = "./roomlog-certs"
	DefaultHTTPListen     = ":80"
	DefaultTLSListen      = ":443"
	DefaultReloadInterval = 5 * time.Second
)

// Config configures New. Set Domains (ACME) or CertFile and KeyFile
// (static), not both.
type Config struct {
	Domains    []string // names to obtain certificates for over ACME
	ACMECA     string   // ACME directory URL (default: Let's Encrypt production)
	ACMECARoot string   // PEM file of a private CA's root to trust for the ACME server's own HTTPS
	ACMEEmail  string   // ACME account contact (optional)
	Storage    string   // certmagic file storage folder, shareable by several relays (default DefaultStorage)

	CertFile, KeyFile string        // static certificate and key (PEM)
	ReloadInterval    time.Duration // how often the static files are checked for changes (on handshakes)

	// RenewalWindowRatio is the fraction of a certificate's lifetime left
	// when renewal starts (default certmagic's, 1/3); RenewCheckInterval
	// how often certificates are checked (default certmagic's, 10m).
	RenewalWindowRatio float64
	RenewCheckInterval time.Duration

	// ReusePort sets SO_REUSEPORT on the HTTP listener (several relay
	// processes on one host, --procs).
	ReusePort bool

	Logger *slog.Logger
	// OnEvent, if set, sees certmagic's events (cert_obtaining,
	// cert_obtained, cert_failed, ...), for metrics and tests.
	OnEvent func(event string, data map[string]any)
}

// Manager is a relay's certificate source.
type Manager struct {
	cfg    Config
	conf   *tls.Config
	magic  *certmagic.Config
	cache  *certmagic.Cache
	issuer *certmagic.ACMEIssuer
	static *staticCert

	mu   sync.Mutex
	http *http.Server
	ln   net.Listener
}

// New prepares the certificate source; nothing is obtained or served until
// Manage and ServeHTTP.
func New(c Config) (*Manager, error) {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	acmeOn, staticOn := len(c.Domains) > 0, c.CertFile != "" || c.KeyFile != ""
	switch {
	case acmeOn && staticOn:
		return nil, errors.New("tls: set either domains (ACME) or a certificate and key file, not both")
	case !acmeOn && !staticOn:
		return nil, errors.New("tls: no domains and no certificate file")
	case staticOn && (c.CertFile == "" || c.KeyFile == ""):
		return nil, errors.New("tls: a static certificate needs both the certificate and the key file")
	}
	t := &Manager{cfg: c}
	base := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// HTTP/1.1 only: WebSocket upgrades need it.
		NextProtos: []string{"http/1.1"},
	}
	if staticOn {
		if c.ReloadInterval <= 0 {
			c.ReloadInterval = DefaultReloadInterval
		}
		sc := &staticCert{certFile: c.CertFile, keyFile: c.KeyFile, interval: c.ReloadInterval, log: c.Logger}
		if err := sc.load(); err != nil {
			return nil, err
		}
		t.static = sc
		base.GetCertificate = sc.get
		t.conf = base
		return t, nil
	}
	for _, d := range c.Domains {
		if !certmagic.SubjectQualifiesForPublicCert(d) {
			return nil, fmt.Errorf("tls: %q cannot have a public certificate", d)
		}
	}
	if c.ACMECA == "" {
		c.ACMECA = certmagic.LetsEncryptProductionCA
	}
	if c.Storage == "" {
		c.Storage = DefaultStorage
	}
	var roots *x509.CertPool
	if c.ACMECARoot != "" {
		pem, err := os.ReadFile(c.ACMECARoot)
		if err != nil {
			return nil, fmt.Errorf("tls: ACME CA root: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls: ACME CA root %s: no PEM certificate", c.ACMECARoot)
		}
	}
	zl := zap.New(&slogCore{h: c.Logger.Handler()})
	var magic *certmagic.Config
	t.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return magic, nil },
		RenewCheckInterval: c.RenewCheckInterval,
		Logger:             zl,
	})
	magic = certmagic.New(t.cache, certmagic.Config{
		Storage:            &certmagic.FileStorage{Path: c.Storage},
		RenewalWindowRatio: c.RenewalWindowRatio,
		OCSP:               certmagic.OCSPConfig{DisableStapling: true}, // Let's Encrypt has ended OCSP
		Logger:             zl,
		OnEvent: func(_ context.Context, event string, data map[string]any) error {
			if c.OnEvent != nil {
				c.OnEvent(event, data)
			}
			return nil
		},
	})
	t.issuer = certmagic.NewACMEIssuer(magic, certmagic.ACMEIssuer{
		CA:           c.ACMECA,
		Email:        c.ACMEEmail,
		Agreed:       true,
		TrustedRoots: roots,
		Logger:       zl,
	})
	magic.Issuers = []certmagic.Issuer{t.issuer}
	t.magic = magic
	mc := magic.TLSConfig()
	base.GetCertificate = mc.GetCertificate
	base.NextProtos = append(base.NextProtos, mc.NextProtos...) // acme-tls/1 for TLS-ALPN-01
	t.conf = base
	t.cfg = c
	return t, nil
}

// Config is the *tls.Config for the relay's listener (relay.Config.TLS).
func (t *Manager) Config() *tls.Config { return t.conf }

// Manage obtains (or loads from the shared storage) the certificates of
// every domain and keeps them renewed. tlsAddr is the relay's bound TLS
// listener: TLS-ALPN-01 challenges are answered there. With wait, it
// returns once every certificate is in hand; else obtaining continues in
// the background. A no-op for static certificates.
func (t *Manager) Manage(ctx context.Context, tlsAddr net.Addr, wait bool) error {
	if t.magic == nil {
		return nil
	}
	if ta, ok := tlsAddr.(*net.TCPAddr); ok {
		t.issuer.AltTLSALPNPort = ta.Port
		if !ta.IP.IsUnspecified() {
			t.issuer.ListenHost = ta.IP.String()
		}
	}
	t.mu.Lock()
	if t.ln != nil {
		if ha, ok := t.ln.Addr().(*net.TCPAddr); ok {
			t.issuer.AltHTTPPort = ha.Port
		}
	} else {
		t.issuer.DisableHTTPChallenge = true // nothing answers on port 80
	}
	t.mu.Unlock()
	var err error
	if wait {
		err = t.magic.ManageSync(ctx, t.cfg.Domains)
	} else {
		err = t.magic.ManageAsync(ctx, t.cfg.Domains)
	}
	if err != nil {
		return fmt.Errorf("tls: managing certificates for %s: %w", strings.Join(t.cfg.Domains, ","), err)
	}
	return nil
}

// ServeHTTP starts the plain HTTP server on listen: ACME HTTP-01 challenges
// (when managing certificates), and a permanent redirect to https:// for
// everything else. httpsPort is the TLS listener's port (443: left out of
// the redirect). It returns the bound address.
func (t *Manager) ServeHTTP(addr string, httpsPort int) (net.Addr, error) {
	if addr == "" {
		addr = DefaultHTTPListen
	}
	ln, err := reuseport.Listen(context.Background(), addr, t.cfg.ReusePort)
	if err != nil {
		return nil, fmt.Errorf("tls: HTTP listener on %s: %w", addr, err)
	}
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if hh, _, err := net.SplitHostPort(host); err == nil {
			host = hh
		}
		if !t.redirectable(host) {
			http.Error(w, "unknown host", http.StatusNotFound)
			return
		}
		if httpsPort != 443 && httpsPort != 0 {
			host = net.JoinHostPort(host, strconv.Itoa(httpsPort))
		}
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusPermanentRedirect)
	})
	if t.issuer != nil {
		h = t.issuer.HTTPChallengeHandler(h)
	}
	// Redirects and ACME challenges are short: every phase has a bound.
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, IdleTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(t.cfg.Logger.Handler(), slog.LevelDebug)}
	t.mu.Lock()
	t.http, t.ln = srv, ln
	t.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
	return ln.Addr(), nil
}

// redirectable reports whether plain HTTP requests for host are redirected:
// with ACME, only the managed domains (no open redirect for any Host).
func (t *Manager) redirectable(host string) bool {
	if len(t.cfg.Domains) == 0 {
		return host != ""
	}
	for _, d := range t.cfg.Domains {
		if strings.EqualFold(d, host) {
			return true
		}
	}
	return false
}

// Close stops the HTTP server and certificate maintenance.
func (t *Manager) Close() {
	t.mu.Lock()
	srv := t.http
	t.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
	if t.cache != nil {
		t.cache.Stop()
	}
}

// staticCert serves a certificate from files, reloading it when the files
// change: at most every interval, checked on handshakes. A half-written
// pair that fails to load keeps the previous certificate in service.
type staticCert struct {
	certFile, keyFile string
	interval          time.Duration
	log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string
	checked time.Time
}

func fileStamp(paths ...string) string {
	var b strings.Builder
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			b.WriteString("missing;")
			continue
		}
		fmt.Fprintf(&b, "%d-%d;", st.ModTime().UnixNano(), st.Size())
	}
	return b.String()
}

func (s *staticCert) load() error {
	stamp := fileStamp(s.certFile, s.keyFile)
	c, err := tls.LoadX509KeyPair(s.certFile, s.keyFile)
	if err != nil {
		return fmt.Errorf("tls: loading %s and %s: %w", s.certFile, s.keyFile, err)
	}
	s.cert, s.stamp, s.checked = &c, stamp, time.Now()
	return nil
}

func (s *staticCert) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.checked) >= s.interval {
		s.checked = time.Now()
		if fileStamp(s.certFile, s.keyFile) != s.stamp {
			old := s.cert
			if err := s.load(); err != nil {
				s.cert = old
				s.log.Warn("certificate files changed but do not load; still serving the previous certificate", "err", err)
			} else {
				s.log.Info("certificate reloaded", "cert", s.certFile)
			}
		}
	}
	return s.cert, nil
}

// slogCore sends certmagic's zap logs to the relay's slog logger.
type slogCore struct {
	h     slog.Handler
	attrs []slog.Attr
}

func (c *slogCore) Enabled(l zapcore.Level) bool {
	return c.h.Enabled(context.Background(), zapToSlog(l))
}

func (c *slogCore) With(fs []zapcore.Field) zapcore.Core {
	return &slogCore{h: c.h, attrs: append(append([]slog.Attr(nil), c.attrs...), fieldsToAttrs(fs)...)}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fs []zapcore.Field) error {
	r := slog.NewRecord(e.Time, zapToSlog(e.Level), e.Message, 0)
	r.AddAttrs(slog.String("component", "certmagic"))
	r.AddAttrs(c.attrs...)
	r.AddAttrs(fieldsToAttrs(fs)...)
	return c.h.Handle(context.Background(), r)
}

func (c *slogCore) Sync() error { return nil }

func fieldsToAttrs(fs []zapcore.Field) []slog.Attr {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fs {
		f.AddTo(enc)
	}
	out := make([]slog.Attr, 0, len(enc.Fields))
	for k, v := range enc.Fields {
		out = append(out, slog.Any(k, v))
	}
	return out
}

func zapToSlog(l zapcore.Level) slog.Level {
	switch {
	case l <= zapcore.DebugLevel:
		return slog.LevelDebug
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	}
	return slog.LevelError
}
