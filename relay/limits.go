package relay

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/roomlog/roomlog/relay/auth"
)

// Limits on what one client may cost the relay (docs/security.md). Every
// violation is refused before anything reaches the log, answered with a
// documented error frame, close code or HTTP status, and counted
// (Server.countLimit).

// Defaults for LimitsConfig's zero values.
const (
	DefaultRate        = 100              // frames per second per connection
	DefaultBurst       = 200              // frames a connection may send at once
	DefaultAbuseWindow = 3 * time.Second  // window over which refused frames are counted
	DefaultAbuseFactor = 5                // refused frames per window, as a multiple of rate×window, before close 4008
	DefaultMaxConns    = 100_000          // sockets per relay
	DefaultHTTPIdle    = 90 * time.Second // keep-alive HTTP connections idle this long are closed
	DefaultMaxHTTP     = 10_000           // plain HTTP connections (not WebSocket) held at once
)

// Error codes for limits and authentication.
const (
	CodeUnauthorized ErrorCode = "unauthorized" // no valid token: authenticate first
	CodeForbidden    ErrorCode = "forbidden"    // the token does not allow this op on this room
	CodeRateLimited  ErrorCode = "rate_limited" // over the connection's rate limit; the frame was dropped
)

// LimitsConfig bounds what clients may cost. Zero values take the defaults
// noted on each field.
type LimitsConfig struct {
	// AllowedOrigins are glob patterns ('*' matches any run of characters,
	// '?' one) of browser Origins allowed besides the relay's own host,
	// e.g. "https://*.example.com". "*" allows every origin. Requests
	// without an Origin header (non-browser clients) are always allowed.
	AllowedOrigins []string
	// Rate is the frames per second one connection may send (token
	// bucket, with Burst); default DefaultRate, negative: unlimited.
	Rate  float64
	Burst int // default DefaultBurst, at least 1
	// A connection whose refused frames within AbuseWindow exceed
	// AbuseFactor × Rate × AbuseWindow is closed with 4008.
	AbuseWindow time.Duration
	AbuseFactor float64
	// MaxConns is the most sockets the relay holds (503 beyond);
	// default DefaultMaxConns, negative: unlimited.
	MaxConns int
	// MaxConnsPerIP is the most sockets from one client address (429
	// beyond); 0: unlimited. IPv6 clients count per /64, which one host
	// or one subscriber usually holds whole.
	MaxConnsPerIP int
	// MaxConnsPerUser is the most sockets one user (the token's sub) holds
	// on this relay (429 at the handshake, or close 4012 after an auth
	// frame); default DefaultMaxConnsPerUser, negative: unlimited.
	MaxConnsPerUser int
	// UserPublishRate is the publishes per second of all of one user's
	// connections on this relay together (token bucket, with
	// UserPublishBurst); beyond it a publish is refused with rate_limited.
	// Default DefaultUserPublishRate, negative: unlimited.
	UserPublishRate  float64
	UserPublishBurst int // default DefaultUserPublishBurst, at least 1
	// ClientIPHeader names a header set by a trusted proxy that carries
	// the client address (X-Forwarded-For: its last entry). Empty: the
	// TCP peer address. Set it only behind a proxy that overwrites it.
	ClientIPHeader string
	// IdleTimeout closes (4009) a connection that sends no frame for this
	// long; 0: never (clients that only listen are legitimately silent).
	IdleTimeout time.Duration
	// HTTPIdleTimeout closes a keep-alive HTTP connection that waits this
	// long for its next request (default DefaultHTTPIdle).
	HTTPIdleTimeout time.Duration
	// MaxHTTPConns is the most plain HTTP connections (API, health,
	// metrics, pages, requests not yet upgraded) held at once; a new one
	// beyond it is closed at once. Default DefaultMaxHTTP, negative:
	// unlimited. WebSockets count against MaxConns instead.
	MaxHTTPConns int
}

func (l *LimitsConfig) setDefaults() {
	if l.Rate == 0 {
		l.Rate = DefaultRate
	}
	if l.Burst <= 0 {
		l.Burst = DefaultBurst
	}
	if l.AbuseWindow <= 0 {
		l.AbuseWindow = DefaultAbuseWindow
	}
	if l.AbuseFactor <= 0 {
		l.AbuseFactor = DefaultAbuseFactor
	}
	if l.MaxConns == 0 {
		l.MaxConns = DefaultMaxConns
	}
	if l.MaxConnsPerUser == 0 {
		l.MaxConnsPerUser = DefaultMaxConnsPerUser
	}
	if l.UserPublishRate == 0 {
		l.UserPublishRate = DefaultUserPublishRate
	}
	if l.UserPublishBurst <= 0 {
		l.UserPublishBurst = max(DefaultUserPublishBurst, int(l.UserPublishRate))
	}
	if l.HTTPIdleTimeout <= 0 {
		l.HTTPIdleTimeout = DefaultHTTPIdle
	}
	if l.MaxHTTPConns == 0 {
		l.MaxHTTPConns = DefaultMaxHTTP
	}
}

// limitCounters counts limit violations by reason; the metrics endpoint
// reads them (roomlog_closes_total / roomlog_errors_total).
type limitCounters struct {
	m sync.Map // reason → *atomic.Uint64
}

// countLimit records one violation of a limit or an authentication refusal.
// Reasons: origin, max_conns, max_conns_per_ip, max_conns_per_user,
// max_http_conns, unauthorized, revoked, forbidden, rate_limited,
// user_rate_limited, close_rate_limited, close_idle, close_token_expired,
// close_revoked, close_disconnected, close_auth_timeout, too_many_rooms,
// frame_too_big, api_unauthorized, api_bad_request, api_too_large.
func (s *Server) countLimit(reason string) {
	v, ok := s.sec.counts.m.Load(reason)
	if !ok {
		v, _ = s.sec.counts.m.LoadOrStore(reason, new(atomic.Uint64))
	}
	v.(*atomic.Uint64).Add(1)
	s.metrics.limits.WithLabelValues(reason).Inc()
}

// LimitCounts returns how often each limit was hit, by reason.
func (s *Server) LimitCounts() map[string]uint64 {
	out := map[string]uint64{}
	s.sec.counts.m.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Uint64).Load()
		return true
	})
	return out
}

// connLimits tracks open sockets in total and per client address.
type connLimits struct {
	total atomic.Int64
	mu    sync.Mutex
	perIP map[string]int
	http  atomic.Int64 // plain HTTP connections open (not hijacked)
}

// httpConnState counts the HTTP server's connections until they are
// upgraded (hijacked) or closed, and closes a new one beyond MaxHTTPConns,
// so idle or slow HTTP clients cannot hold descriptors without bound.
func (s *Server) httpConnState(c net.Conn, st http.ConnState) {
	cl := &s.sec.conns
	switch st {
	case http.StateNew:
		if n := cl.http.Add(1); s.cfg.Limits.MaxHTTPConns > 0 && n > int64(s.cfg.Limits.MaxHTTPConns) {
			s.countLimit("max_http_conns")
			_ = c.Close() // the server then reports StateClosed, which uncounts it
		}
	case http.StateHijacked, http.StateClosed:
		cl.http.Add(-1)
	}
}

// acquire counts a new socket from ip; release undoes it. It writes the
// HTTP refusal itself.
func (s *Server) acquireConn(w http.ResponseWriter, ip string) (release func(), ok bool) {
	l := &s.cfg.Limits
	cl := &s.sec.conns
	if n := cl.total.Add(1); l.MaxConns > 0 && n > int64(l.MaxConns) {
		cl.total.Add(-1)
		s.countLimit("max_conns")
		w.Header().Set("Retry-After", "5")
		httpError(w, http.StatusServiceUnavailable, "max_conns", "the relay holds its maximum number of connections; try another relay")
		return nil, false
	}
	ip = ipKey(ip)
	if l.MaxConnsPerIP > 0 {
		cl.mu.Lock()
		if cl.perIP[ip] >= l.MaxConnsPerIP {
			cl.mu.Unlock()
			cl.total.Add(-1)
			s.countLimit("max_conns_per_ip")
			w.Header().Set("Retry-After", "5")
			httpError(w, http.StatusTooManyRequests, "max_conns_per_ip", "too many connections from this address")
			return nil, false
		}
		cl.perIP[ip]++
		cl.mu.Unlock()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			cl.total.Add(-1)
			if l.MaxConnsPerIP > 0 {
				cl.mu.Lock()
				if cl.perIP[ip]--; cl.perIP[ip] <= 0 {
					delete(cl.perIP, ip)
				}
				cl.mu.Unlock()
			}
		})
	}, true
}

// ipKey is the client address per-IP caps count under: an IPv6 address's
// /64 (one host can hold all of it), an IPv4 address (or an IPv4-mapped
// IPv6 one) as itself. A value that is not an address counts as itself.
func ipKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, err := a.WithZone("").Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}

// clientIP is the client's address: the TCP peer, or the last entry of the
// trusted proxy header.
func (s *Server) clientIP(r *http.Request) string {
	if h := s.cfg.Limits.ClientIPHeader; h != "" {
		if v := r.Header.Values(h); len(v) > 0 {
			last := v[len(v)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			if ip := strings.TrimSpace(last); ip != "" {
				return ip
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// checkOrigin is the Upgrader's origin policy: no Origin (not a browser),
// the relay's own origin (its scheme and host), or an allowed pattern.
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if i := strings.Index(origin, "://"); i >= 0 && strings.EqualFold(origin[:i], s.requestScheme(r)) && strings.EqualFold(origin[i+3:], r.Host) {
		return true
	}
	for _, p := range s.cfg.Limits.AllowedOrigins {
		if p == "*" || auth.Match(strings.ToLower(p), strings.ToLower(origin)) {
			return true
		}
	}
	s.countLimit("origin")
	return false
}

// requestScheme is the scheme the client used: https when the relay
// terminates TLS, or, behind a trusted proxy (ClientIPHeader set), the
// proxy's X-Forwarded-Proto; http otherwise.
func (s *Server) requestScheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	if s.cfg.Limits.ClientIPHeader != "" {
		if p := strings.TrimSpace(r.Header.Get("X-Forwarded-Proto")); strings.EqualFold(p, "https") || strings.EqualFold(p, "http") {
			return strings.ToLower(p)
		}
	}
	return "http"
}

// frameLimiter is one connection's token bucket and abuse tracker. Used by
// the reader goroutine only.
type frameLimiter struct {
	lim      *rate.Limiter
	winStart time.Time
	refused  int
}

func newFrameLimiter(l *LimitsConfig) *frameLimiter {
	if l.Rate < 0 {
		return nil
	}
	return &frameLimiter{lim: rate.NewLimiter(rate.Limit(l.Rate), l.Burst)}
}

// allow reports whether the frame may be served, and whether the client has
// been refused so often that it must be closed.
func (fl *frameLimiter) allow(l *LimitsConfig, now time.Time) (ok, abuse bool) {
	if fl == nil || fl.lim.AllowN(now, 1) {
		return true, false
	}
	if now.Sub(fl.winStart) > l.AbuseWindow {
		fl.winStart, fl.refused = now, 0
	}
	fl.refused++
	max := max(l.AbuseFactor*l.Rate*l.AbuseWindow.Seconds(), float64(l.Burst))
	return false, float64(fl.refused) > max
}

// httpError writes a JSON error body: {"error":code,"message":...}.
func httpError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(appendHTTPError(nil, code, msg))
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
