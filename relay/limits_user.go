package relay

import (
	"net/http"
	"sync"

	"golang.org/x/time/rate"

	"github.com/roomlog/roomlog/relay/auth"
)

// Per-user limits on this relay, besides the per-connection and per-IP
// ones (limits.go): the connections one user (the token's sub) may hold,
// and the publishes per second of all of them together. Anonymous clients
// have no user and only the other limits.

// Defaults for the per-user fields of LimitsConfig.
const (
	DefaultMaxConnsPerUser  = 100 // sockets per user on one relay
	DefaultUserPublishRate  = 200 // publishes per second per user on one relay
	DefaultUserPublishBurst = 400
)

// userLimits holds, per user with a connection here, its connection count
// and its publish bucket. An entry goes when its last connection does.
type userLimits struct {
	mu sync.Mutex
	m  map[string]*userEntry
}

type userEntry struct {
	conns int
	lim   *rate.Limiter // nil: unlimited
}

// bindUser counts the connection against its user's cap, once, when it
// first authenticates as p (connSec.user is set by the first successful
// call). It reports false when the user holds the most connections.
func (s *Server) bindUser(cs *connSec, p *auth.Principal) bool {
	if p.Anonymous || p.User == "" {
		return true
	}
	cs.mu.Lock()
	bound := cs.user != nil
	cs.mu.Unlock()
	if bound {
		return true
	}
	l := &s.cfg.Limits
	ul := &s.sec.users
	ul.mu.Lock()
	e := ul.m[p.User]
	if e == nil {
		e = &userEntry{}
		if l.UserPublishRate > 0 {
			e.lim = rate.NewLimiter(rate.Limit(l.UserPublishRate), l.UserPublishBurst)
		}
		ul.m[p.User] = e
	}
	if l.MaxConnsPerUser > 0 && e.conns >= l.MaxConnsPerUser {
		ul.mu.Unlock()
		s.countLimit("max_conns_per_user")
		return false
	}
	e.conns++
	ul.mu.Unlock()
	user := p.User
	var once sync.Once
	cs.mu.Lock()
	cs.user = e
	cs.userRelease = func() {
		once.Do(func() {
			ul.mu.Lock()
			if e.conns--; e.conns <= 0 {
				delete(ul.m, user)
			}
			ul.mu.Unlock()
		})
	}
	cs.mu.Unlock()
	return true
}

// refuseUser writes the HTTP refusal of a handshake over the user's cap.
func refuseUser(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "5")
	httpError(w, http.StatusTooManyRequests, "max_conns_per_user", "this user holds the most connections allowed on this relay")
}

// allowUserPublish takes one publish from the connection's user's bucket.
func (c *conn) allowUserPublish() bool {
	cs := c.sec
	if cs == nil {
		return true
	}
	cs.mu.Lock()
	e := cs.user
	cs.mu.Unlock()
	return e == nil || e.lim == nil || e.lim.Allow()
}
