package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/roomlog/roomlog/internal/cliflag"
	"github.com/roomlog/roomlog/internal/secretfile"
	"github.com/roomlog/roomlog/internal/tlsconf"
	"github.com/roomlog/roomlog/relay"
	"github.com/roomlog/roomlog/relay/auth"
)

// securityFlags are the relay's TLS, authentication and limit flags
// (docs/security.md).
type securityFlags struct {
	tlsDomains             cliflag.List
	acmeCA, acmeCARoot     string
	acmeEmail, tlsStorage  string
	httpListen             string
	tlsCert, tlsKey        string
	insecurePlaintext      bool
	anonymous              bool
	hsSecretFiles, pubKeys cliflag.List
	jwksURL                string
	issuer, audience       string
	leeway, authTimeout    time.Duration
	apiKeyFiles            cliflag.List
	adminTokenFiles        cliflag.List
	origins                cliflag.List
	rate                   float64
	burst                  int
	maxConns, maxConnsIP   int
	clientIPHeader         string
	idleTimeout            time.Duration
	maxConnsUser           int
	userRate               float64
	userBurst              int
	secretReload           time.Duration
	revocationTTL          time.Duration
}

func registerSecurityFlags(fs *flag.FlagSet) *securityFlags {
	f := &securityFlags{}
	fs.Var(&f.tlsDomains, "tls-domain", "serve wss:// with certificates for these domains, obtained and renewed over ACME (repeatable or comma list)")
	fs.StringVar(&f.acmeCA, "acme-ca", "https://acme-v02.api.letsencrypt.org/directory", "ACME directory URL")
	fs.StringVar(&f.acmeCARoot, "acme-ca-root", "", "PEM file of a private CA root to trust for the ACME server's HTTPS")
	fs.StringVar(&f.acmeEmail, "acme-email", "", "ACME account contact email")
	fs.StringVar(&f.tlsStorage, "tls-storage", tlsconf.DefaultStorage, "certificate storage folder; relays sharing it share one certificate per domain")
	fs.StringVar(&f.httpListen, "http-listen", tlsconf.DefaultHTTPListen, "with TLS: plain HTTP listener for ACME HTTP-01 challenges and redirects to https ('off': none)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "static TLS certificate file (PEM, full chain), reloaded when it changes")
	fs.StringVar(&f.tlsKey, "tls-key", "", "static TLS key file (PEM), reloaded when it changes")
	fs.BoolVar(&f.insecurePlaintext, "insecure-plaintext", false, "serve plain ws:// on a non-loopback address (behind a TLS-terminating load balancer only)")
	fs.BoolVar(&f.anonymous, "anonymous", false, "accept clients without a token, with every permission (local development)")
	fs.Var(&f.hsSecretFiles, "jwt-hs256-secret-file", "file holding an HS256 secret of 32 bytes or more, reloaded when it changes and on SIGHUP (repeatable: rotation)")
	fs.Var(&f.pubKeys, "jwt-public-key-file", "PEM public key file or folder of *.pem for RS256, ES256, EdDSA tokens (repeatable)")
	fs.StringVar(&f.jwksURL, "jwks-url", "", "JWKS URL of the token issuer's public keys (fetched, cached, refetched on an unknown kid)")
	fs.StringVar(&f.issuer, "jwt-issuer", "", "required token issuer (iss), when set")
	fs.StringVar(&f.audience, "jwt-audience", "", "required token audience (aud), when set")
	fs.DurationVar(&f.leeway, "jwt-leeway", auth.DefaultLeeway, "clock skew allowed on exp and nbf")
	fs.DurationVar(&f.authTimeout, "auth-timeout", auth.DefaultTimeout, "how long a connection without a token may take to send its auth frame (else close 4004)")
	fs.Var(&f.apiKeyFiles, "api-key-file", "file of backend API keys, one per line, reloaded when it changes and on SIGHUP (enables the backend API /api/...; repeatable)")
	fs.DurationVar(&f.secretReload, "secret-reload-interval", secretfile.DefaultInterval, "how often the secret and API key files are checked for changes")
	fs.DurationVar(&f.revocationTTL, "revocation-ttl", relay.DefaultRevocationTTL, "how long a revocation (/api/revoke) lasts when it gives no until: your tokens' longest lifetime")
	fs.Var(&f.adminTokenFiles, "admin-token-file", "file of operator console tokens, one per line (enables the read-only console at /admin/ and /admin/api/; repeatable)")
	fs.Var(&f.origins, "allowed-origins", "browser origins allowed besides the relay's own host, glob patterns (https://*.example.com; '*': any)")
	fs.Float64Var(&f.rate, "rate", relay.DefaultRate, "frames per second one connection may send (negative: unlimited)")
	fs.IntVar(&f.burst, "burst", relay.DefaultBurst, "frames one connection may send in a burst")
	fs.IntVar(&f.maxConns, "max-conns", relay.DefaultMaxConns, "connections this relay holds (503 beyond; negative: unlimited)")
	fs.IntVar(&f.maxConnsIP, "max-conns-per-ip", 0, "connections from one client address (429 beyond; 0: unlimited)")
	fs.StringVar(&f.clientIPHeader, "client-ip-header", "", "header a trusted proxy sets to the client address (e.g. X-Forwarded-For), for --max-conns-per-ip")
	fs.DurationVar(&f.idleTimeout, "idle-timeout", 0, "close (4009) connections that send nothing for this long (0: never)")
	fs.IntVar(&f.maxConnsUser, "max-conns-per-user", relay.DefaultMaxConnsPerUser, "connections one user (token sub) holds on this relay (429, or close 4012; negative: unlimited)")
	fs.Float64Var(&f.userRate, "user-publish-rate", relay.DefaultUserPublishRate, "publishes per second of one user's connections on this relay together (negative: unlimited)")
	fs.IntVar(&f.userBurst, "user-publish-burst", relay.DefaultUserPublishBurst, "publishes one user may send in a burst")
	return f
}

// relayTLS is the certificate source of a running relay, nil without TLS.
type relayTLS struct {
	t          *tlsconf.Manager
	httpListen string
	log        *slog.Logger
	srv        atomic.Pointer[relay.Server] // counts ACME events once started
}

// configure fills cfg's Auth, Limits and TLS from the flags and checks the
// plaintext policy. It starts nothing that listens.
func (f *securityFlags) configure(fs *flag.FlagSet, cfg *relay.Config, log *slog.Logger) (*relayTLS, error) {
	a := &cfg.Auth
	a.Anonymous = f.anonymous
	// The relay reads (and reloads) the secret and API key files.
	cfg.HS256SecretFiles, cfg.APIKeyFiles = f.hsSecretFiles, f.apiKeyFiles
	cfg.SecretReloadInterval, cfg.RevocationTTL = f.secretReload, f.revocationTTL
	if len(f.pubKeys) > 0 {
		keys, err := auth.LoadPublicKeys(f.pubKeys...)
		if err != nil {
			return nil, fmt.Errorf("--jwt-public-key-file: %w", err)
		}
		a.PublicKeys = keys
	}
	a.JWKSURL, a.Issuer, a.Audience, a.Leeway, a.Timeout = f.jwksURL, f.issuer, f.audience, f.leeway, f.authTimeout
	if f.leeway == 0 {
		a.Leeway = -1 // explicit: none
	}
	var err error
	if cfg.AdminTokens, err = readKeyFiles("admin-token-file", f.adminTokenFiles); err != nil {
		return nil, err
	}
	cfg.AdminOpen = len(f.adminTokenFiles) == 0 && a.Anonymous && loopback(cfg.Listen)
	if !a.Anonymous && len(f.hsSecretFiles) == 0 && len(a.PublicKeys) == 0 && a.JWKSURL == "" {
		return nil, errors.New("no authentication configured: give --jwt-hs256-secret-file, --jwt-public-key-file or --jwks-url, or --anonymous for local development")
	}
	cfg.Limits = relay.LimitsConfig{
		AllowedOrigins: f.origins,
		Rate:           f.rate,
		Burst:          f.burst,
		MaxConns:       f.maxConns,
		MaxConnsPerIP:  f.maxConnsIP,
		ClientIPHeader: f.clientIPHeader,
		IdleTimeout:    f.idleTimeout,

		MaxConnsPerUser:  f.maxConnsUser,
		UserPublishRate:  f.userRate,
		UserPublishBurst: f.userBurst,
	}
	if f.userRate == 0 {
		return nil, errors.New("--user-publish-rate 0 would refuse every publish: give a positive rate, or a negative one for unlimited")
	}
	if f.rate == 0 {
		return nil, errors.New("--rate 0 would refuse every frame: give a positive rate, or a negative one for unlimited")
	}
	listenSet := false
	fs.Visit(func(fl *flag.Flag) { listenSet = listenSet || fl.Name == "listen" })
	tlsOn := len(f.tlsDomains) > 0 || f.tlsCert != "" || f.tlsKey != ""
	if !tlsOn {
		if !f.insecurePlaintext && !loopback(cfg.Listen) {
			return nil, fmt.Errorf("refusing to serve plain ws:// on %q: configure TLS (--tls-domain, or --tls-cert and --tls-key), "+
				"or pass --insecure-plaintext behind a TLS-terminating load balancer, or listen on a loopback address for local development (--listen 127.0.0.1:8080)", cfg.Listen)
		}
		return nil, nil
	}
	if f.insecurePlaintext {
		return nil, errors.New("--insecure-plaintext contradicts the TLS flags")
	}
	if !listenSet {
		cfg.Listen = tlsconf.DefaultTLSListen
	}
	rt := &relayTLS{httpListen: f.httpListen, log: log}
	t, err := tlsconf.New(tlsconf.Config{
		OnEvent: func(event string, _ map[string]any) {
			if srv := rt.srv.Load(); srv != nil {
				srv.CountACMEEvent(event)
			}
		},
		Domains:    f.tlsDomains,
		ACMECA:     f.acmeCA,
		ACMECARoot: f.acmeCARoot,
		ACMEEmail:  f.acmeEmail,
		Storage:    f.tlsStorage,
		CertFile:   f.tlsCert,
		KeyFile:    f.tlsKey,
		ReusePort:  cfg.ReusePort,
		Logger:     log,
	})
	if err != nil {
		return nil, err
	}
	cfg.TLS = t.Config()
	rt.t = t
	return rt, nil
}

// start runs once the relay listens: the HTTP redirect and challenge
// server, and certificate management (in the background).
func (r *relayTLS) start(ctx context.Context, srv *relay.Server) error {
	if r == nil {
		return nil
	}
	r.srv.Store(srv)
	port := 0
	if ta, ok := srv.Addr().(*net.TCPAddr); ok {
		port = ta.Port
	}
	if r.httpListen != "off" && r.httpListen != "" {
		addr, err := r.t.ServeHTTP(r.httpListen, port)
		if err != nil {
			return err
		}
		r.log.Info("redirecting HTTP to HTTPS", "http", addr.String())
	}
	return r.t.Manage(ctx, srv.Addr(), false)
}

func (r *relayTLS) close() {
	if r != nil {
		r.t.Close()
	}
}

// wsScheme is ws or wss.
func (r *relayTLS) wsScheme() string {
	if r == nil {
		return "ws"
	}
	return "wss"
}

// loopback reports whether a listen address only accepts local clients.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// readKeyFiles reads keys, one per line (blank lines and # comments
// skipped), from each file of a flag.
func readKeyFiles(flagName string, files []string) ([][]byte, error) {
	var keys [][]byte
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", flagName, err)
		}
		n := len(keys)
		for _, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				keys = append(keys, []byte(line))
			}
		}
		if len(keys) == n {
			// An empty key file would silently leave what it enables off.
			return nil, fmt.Errorf("--%s %s holds no key (only blank lines and comments)", flagName, p)
		}
	}
	return keys, nil
}
