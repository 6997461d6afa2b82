package engineio

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/roomlog/roomlog/internal/glob"
)

// Defaults for Config's zero values. The first four are the reference
// server's (engine.io 6).
const (
	DefaultPingInterval   = 25 * time.Second
	DefaultPingTimeout    = 20 * time.Second
	DefaultMaxPayload     = 1_000_000 // bytes
	DefaultUpgradeTimeout = 10 * time.Second
	DefaultWriteTimeout   = 10 * time.Second
	DefaultSendQueue      = 1024 // messages
	// DefaultCloseFlush bounds how long a closing session keeps writing
	// what was queued before it closed. A polling session that closed
	// between two polls waits for the next poll the longer of this and
	// PingTimeout (a client polls again at once, but a loaded one may take
	// seconds, and it must still get what was queued, such as a
	// CONNECT_ERROR; the reference server waits 30 s).
	DefaultCloseFlush = time.Second
)

// Config configures a Server. Zero values take the defaults noted on each
// field; OnOpen is required.
type Config struct {
	// OnOpen is called once per session, when it opens, with the
	// handshake request (headers, URL and query, remote address, context
	// values), and returns the session's Handler (nil: close the session
	// at once). The session keeps nothing of the request: take what it
	// needs now. It must not block: it runs on the handshake's goroutine,
	// before the client learns the session id.
	OnOpen func(*Session, *http.Request) Handler

	// PingInterval is how often the server pings (default
	// DefaultPingInterval); PingTimeout is how long it then waits for the
	// pong before closing the session (default DefaultPingTimeout). Both are
	// announced to the client, which closes the session itself when no
	// ping comes within their sum.
	PingInterval time.Duration
	PingTimeout  time.Duration
	// MaxPayload bounds a polling request body and a WebSocket message, in
	// bytes (default DefaultMaxPayload); announced to the client, which
	// splits its polling payloads to fit. A larger body gets HTTP 413, a
	// larger WebSocket message close 1009; both end the session.
	MaxPayload int
	// UpgradeTimeout bounds an upgrade from the probe's WebSocket handshake
	// to the client's upgrade packet (default DefaultUpgradeTimeout).
	UpgradeTimeout time.Duration
	// WriteTimeout bounds one WebSocket write or one poll response
	// (default DefaultWriteTimeout); a write that misses it ends the
	// session with ReasonSlowClient.
	WriteTimeout time.Duration
	// SendQueue bounds the messages queued for one session (default
	// DefaultSendQueue). Send beyond it closes the session with
	// ReasonSlowClient instead of blocking.
	SendQueue int
	// CloseFlush: see DefaultCloseFlush.
	CloseFlush time.Duration

	// AllowedOrigins are glob patterns ('*' matches any run of characters,
	// '?' one; "*" alone allows every origin) of browser Origins allowed
	// besides the server's own host. Requests without an Origin header
	// (non-browser clients) are always allowed. An allowed cross-origin
	// polling request gets CORS headers with credentials; a refused one
	// gets HTTP 403. CheckOrigin, when set, replaces this policy.
	AllowedOrigins []string
	CheckOrigin    func(r *http.Request) bool

	// DisablePolling refuses the polling transport (WebSocket only, no
	// upgrades); DisableWebSocket refuses WebSocket (polling only).
	DisablePolling   bool
	DisableWebSocket bool

	// NewSID returns a new session id, unique across every server that
	// shares clients (default: RandomSID("")). Without sticky sessions a
	// request may reach a server that does not hold its session; make the
	// id name its owner (RandomSID(ownerPrefix)) so that Forward can find
	// it.
	NewSID func() (string, error)
	// Forward is asked for a request that names a session this server does
	// not hold (polling GET and POST, and the WebSocket upgrade). It
	// returns a handler that serves the request elsewhere, typically an
	// httputil.ReverseProxy to the relay the sid names, or nil: the client
	// then gets HTTP 400 "Session ID unknown" and starts a new session.
	// The request has passed the origin and protocol checks. Guard against
	// loops (a forwarded request must not be forwarded again) and keep the
	// Host header when proxying, since the owner checks the Origin again.
	Forward func(sid string, r *http.Request) http.Handler

	// WriteBufferSize sizes the buffer a WebSocket holds while it writes a
	// message (gorilla's default when zero). The read buffer is always
	// wsread.BufferSize bytes, one the reader sees, so that it can park.
	WriteBufferSize int
}

func (c *Config) setDefaults() error {
	if c.OnOpen == nil {
		return errors.New("engineio: Config.OnOpen is required")
	}
	if c.DisablePolling && c.DisableWebSocket {
		return errors.New("engineio: both transports are disabled")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.PingInterval, DefaultPingInterval)
	def(&c.PingTimeout, DefaultPingTimeout)
	def(&c.UpgradeTimeout, DefaultUpgradeTimeout)
	def(&c.WriteTimeout, DefaultWriteTimeout)
	def(&c.CloseFlush, DefaultCloseFlush)
	if c.MaxPayload == 0 {
		c.MaxPayload = DefaultMaxPayload
	}
	if c.SendQueue == 0 {
		c.SendQueue = DefaultSendQueue
	}
	if c.PingInterval < 0 || c.PingTimeout < 0 || c.UpgradeTimeout < 0 || c.WriteTimeout < 0 ||
		c.CloseFlush < 0 || c.MaxPayload < 0 || c.SendQueue < 0 {
		return errors.New("engineio: negative durations and sizes are not allowed")
	}
	if c.NewSID == nil {
		c.NewSID = func() (string, error) { return RandomSID("") }
	}
	if c.CheckOrigin == nil {
		patterns := make([]string, len(c.AllowedOrigins))
		for i, p := range c.AllowedOrigins {
			patterns[i] = strings.ToLower(p)
		}
		c.CheckOrigin = func(r *http.Request) bool { return originAllowed(r, patterns) }
	}
	return nil
}

// RandomSID returns prefix followed by 20 random URL-safe characters
// (120 bits).
func RandomSID(prefix string) (string, error) {
	var b [15]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// originAllowed: no Origin (not a browser), the request's own host, or a
// pattern.
func originAllowed(r *http.Request, patterns []string) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if i := strings.Index(origin, "://"); i >= 0 && strings.EqualFold(origin[i+3:], r.Host) {
		return true
	}
	origin = strings.ToLower(origin)
	for _, p := range patterns {
		if p == "*" || glob.Match(p, origin) {
			return true
		}
	}
	return false
}

// pollCloseWait is how long a polling session closed between two polls
// waits for the next one: see DefaultCloseFlush.
func (c *Config) pollCloseWait() time.Duration {
	return max(c.CloseFlush, c.PingTimeout)
}
