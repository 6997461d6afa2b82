package relay

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roomlog/roomlog/internal/trunc"
	"github.com/roomlog/roomlog/relay/auth"
)

// The security gate of every connection: admission before the upgrade
// (connection limits, origin, a token in the query or header), then per
// frame (rate limit, authentication, permissions), and timers (auth
// deadline, token expiry, idle). See docs/security.md.

// security is the Server's state for authentication and limits.
type security struct {
	verifier *verifier
	counts   limitCounters
	conns    connLimits
	users    userLimits
	api      apiWaiters
	apiKeys  atomic.Pointer[[][]byte] // in service (secrets.go)
}

// initSecurity runs in New, after the Upgrader is made.
func (s *Server) initSecurity() {
	s.sec = &security{verifier: newVerifier(&s.cfg.Auth, s.cfg.Logger)}
	s.sec.conns.perIP = map[string]int{}
	s.sec.users.m = map[string]*userEntry{}
	s.setAPIKeys(s.cfg.Auth.APIKeys)
	s.sec.api.m = map[string]chan apiResult{}
	s.up.CheckOrigin = s.checkOrigin
}

// connSec is one connection's security state. p is written by the reader
// goroutine (auth frames) and read by it; timers only read it.
type connSec struct {
	ip       string
	release  func()
	p        atomic.Pointer[auth.Principal]
	limiter  *frameLimiter
	lastRead atomic.Int64 // unix nanos of the last data frame

	mu          sync.Mutex
	user        *userEntry // the user's limits, once authenticated as a user (limits_user.go)
	userRelease func()
	authTimer   *time.Timer
	expTimer    *time.Timer
	idleTimer   *time.Timer
	terminated  bool
}

// admit decides, before the WebSocket upgrade, whether a client may
// connect: connection limits, then a token from the query (token=) or the
// Authorization header. It writes the HTTP refusal itself.
func (s *Server) admit(w http.ResponseWriter, r *http.Request) (*connSec, bool) {
	cs := &connSec{ip: s.clientIP(r), limiter: newFrameLimiter(&s.cfg.Limits)}
	tok := r.URL.Query().Get("token")
	if bt, ok := auth.BearerToken(r.Header.Get("Authorization")); tok == "" && ok {
		tok = bt
	}
	if tok != "" {
		p, ferr := s.verifyToken(tok)
		if ferr != nil {
			s.countLimit("unauthorized")
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			httpError(w, http.StatusUnauthorized, string(ferr.Code), ferr.Message)
			return nil, false
		}
		cs.p.Store(p)
	} else if s.cfg.Auth.Anonymous {
		cs.p.Store(auth.Anonymous())
	}
	release, ok := s.acquireConn(w, cs.ip)
	if !ok {
		return nil, false
	}
	cs.release = release
	if p := cs.p.Load(); p != nil {
		if !s.bindUser(cs, p) {
			release()
			refuseUser(w)
			return nil, false
		}
		if ur := cs.userRelease; ur != nil {
			// A handshake that fails after admission frees both slots.
			cs.release = func() { ur(); release() }
		}
	}
	return cs, true
}

// startConnSec arms the connection's timers once its goroutines run.
func (c *conn) startConnSec() {
	cs := c.sec
	cs.lastRead.Store(time.Now().UnixNano())
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if p := cs.p.Load(); p == nil {
		cs.authTimer = time.AfterFunc(c.s.cfg.Auth.Timeout, func() {
			if cs.p.Load() == nil {
				c.closeFor("close_auth_timeout", DisconnectAuthTimeout)
			}
		})
	} else {
		c.armExpiry(p)
	}
	if idle := c.s.cfg.Limits.IdleTimeout; idle > 0 {
		var check func()
		check = func() {
			since := time.Since(time.Unix(0, cs.lastRead.Load()))
			if since >= idle {
				c.closeFor("close_idle", DisconnectIdle.With("idle: no frame for "+idle.String()))
				return
			}
			cs.mu.Lock()
			if !cs.terminated {
				cs.idleTimer.Reset(idle - since)
			}
			cs.mu.Unlock()
		}
		cs.idleTimer = time.AfterFunc(idle, check)
	}
}

// maxExpiryWait is beyond any process's life: a token expiring later is
// never timed.
const maxExpiryWait = 100 * 365 * 24 * time.Hour

// armExpiry closes the connection with 4003 when p's token expires (plus
// the leeway), unless a refreshed token has replaced it by then. Holds
// cs.mu.
func (c *conn) armExpiry(p *auth.Principal) {
	cs := c.sec
	if cs.expTimer != nil {
		cs.expTimer.Stop()
		cs.expTimer = nil
	}
	if p.Exp.IsZero() || cs.terminated {
		return
	}
	// A far exp ("never expires": 9999-12-31) saturates time.Until, and
	// adding the leeway would overflow to a negative wait that fires at
	// once: such a token needs no timer.
	wait := time.Until(p.Exp)
	if wait > maxExpiryWait {
		return
	}
	cs.expTimer = time.AfterFunc(wait+c.s.cfg.Auth.Leeway, func() {
		if cur := cs.p.Load(); cur == p {
			c.closeFor("close_token_expired", DisconnectTokenExpired)
		}
	})
}

// closeConnSec stops the timers and frees the connection's slot. Called
// once, when the reader ends.
func (c *conn) closeConnSec() {
	cs := c.sec
	if cs == nil {
		return
	}
	cs.mu.Lock()
	cs.terminated = true
	for _, t := range []*time.Timer{cs.authTimer, cs.expTimer, cs.idleTimer} {
		if t != nil {
			t.Stop()
		}
	}
	userRelease := cs.userRelease
	cs.userRelease = nil
	cs.mu.Unlock()
	if userRelease != nil {
		userRelease()
	}
	if cs.release != nil {
		cs.release()
	}
}

// user is the connection's authenticated user id ("" if anonymous).
func (c *conn) user() string {
	if c.sec == nil {
		return ""
	}
	if p := c.sec.p.Load(); p != nil {
		return p.User
	}
	return ""
}

// gate runs before a frame is decoded: it counts activity, applies the rate
// limit, serves auth frames, and refuses every other frame until the
// connection is authenticated. It reports whether handle should go on.
func (c *conn) gate(b []byte) bool {
	cs := c.sec
	if cs == nil {
		return true
	}
	if !c.throttle(func() []byte { return frameID(b) }) {
		return false
	}
	af, isAuth, ferr := decodeAuthFrame(b)
	if isAuth {
		c.auth(&af, ferr)
		return false
	}
	if cs.p.Load() == nil {
		c.s.countLimit("unauthorized")
		c.sendError(frameID(b), errorf(CodeUnauthorized, "authenticate first: send {\"op\":\"auth\",\"token\":...}"))
		return false
	}
	return true
}

// throttle runs for every client frame or packet, whatever the protocol:
// it counts activity (the idle check) and applies the rate limit, answering
// a refused frame with an error for request id() or closing an abusive
// client. It reports whether the frame may be served.
func (c *conn) throttle(id func() []byte) bool {
	cs := c.sec
	now := time.Now()
	cs.lastRead.Store(now.UnixNano())
	if ok, abuse := cs.limiter.allow(&c.s.cfg.Limits, now); !ok {
		if abuse {
			c.closeFor("close_rate_limited", DisconnectRateLimited)
			return false
		}
		c.s.countLimit("rate_limited")
		c.sendError(id(), errorf(CodeRateLimited, "over %g frames per second: frame dropped; slow down", c.s.cfg.Limits.Rate))
		return false
	}
	return true
}

// authenticated makes p the connection's principal: it ends the auth
// deadline and times the token's expiry.
func (c *conn) authenticated(p *auth.Principal) {
	cs := c.sec
	cs.p.Store(p)
	cs.mu.Lock()
	if cs.authTimer != nil {
		cs.authTimer.Stop()
	}
	c.armExpiry(p)
	cs.mu.Unlock()
}

// auth serves an auth frame: the first one authenticates the connection
// (a refused one closes it with 4004); later ones refresh the token, for the
// same user, without reconnecting.
func (c *conn) auth(f *authFrame, ferr *frameError) {
	cs := c.sec
	cur := cs.p.Load()
	var p *auth.Principal
	if ferr == nil {
		p, ferr = c.s.verifyToken(f.Token)
	}
	if ferr == nil && cur != nil && !cur.Anonymous && p.User != cur.User {
		ferr = errorf(CodeUnauthorized, "token is for user %q, not %q: reconnect to change user", trunc.String(p.User, 64), trunc.String(cur.User, 64))
	}
	if ferr != nil {
		c.s.countLimit("unauthorized")
		c.sendError(f.ID, ferr)
		if cur == nil {
			c.shutdown(DisconnectAuthRefused.With(ferr.Message))
		}
		return
	}
	if !c.s.bindUser(cs, p) {
		c.sendError(f.ID, errorf(CodeRateLimited, "user %q holds the most connections allowed on this relay", trunc.String(p.User, 64)))
		c.shutdown(DisconnectUserLimit)
		return
	}
	c.authenticated(p)
	c.closeIfRevoked()
	if cur != nil {
		c.leaveForbidden(p) // a refreshed token may allow fewer rooms
	}
	c.reply(f.ID, ack{auth: &authAck{user: p.User, exp: p.Exp.Unix()}})
}

// authorize checks a decoded frame against the connection's permissions
// for its op (opSpec.perms).
func (c *conn) authorize(spec *opSpec, f *clientFrame) *frameError {
	if c.sec == nil {
		return nil
	}
	p := c.sec.p.Load()
	if p == nil {
		return errorf(CodeUnauthorized, "authenticate first")
	}
	for _, k := range spec.perms(f) {
		if !p.Perms.Allows(k, f.Room) {
			c.s.countLimit("forbidden")
			return errorf(CodeForbidden, "your token does not allow %s in room %q", k, trunc.String(f.Room, 64))
		}
	}
	return nil
}
