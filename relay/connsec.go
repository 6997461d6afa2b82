package relay

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

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
	api      apiWaiters
}

// initSecurity runs in New, after the Upgrader is made.
func (s *Server) initSecurity() {
	s.sec = &security{verifier: newVerifier(&s.cfg.Auth, s.cfg.Logger)}
	s.sec.conns.perIP = map[string]int{}
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

	mu         sync.Mutex
	authTimer  *time.Timer
	expTimer   *time.Timer
	idleTimer  *time.Timer
	terminated bool
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
		p, ferr := s.sec.verifier.verify(tok)
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
				c.s.countLimit("close_auth_timeout")
				c.shutdown(CloseUnauthorized, "no valid token within the auth timeout")
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
				c.s.countLimit("close_idle")
				c.shutdown(CloseIdle, "idle: no frame for "+idle.String())
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
	cs.expTimer = time.AfterFunc(time.Until(p.Exp)+c.s.cfg.Auth.Leeway, func() {
		if cur := cs.p.Load(); cur == p {
			c.s.countLimit("close_token_expired")
			c.shutdown(CloseTokenExpired, "token expired; reconnect with a fresh token")
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
	cs.mu.Unlock()
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

// authFrame is {"op":"auth","token":"...","id":...}.
type authFrame struct {
	Op    string          `json:"op"`
	ID    json.RawMessage `json:"id"`
	Token string          `json:"token"`
}

var authOp = []byte(`"auth"`)

// decodeAuthFrame parses b if it is an auth frame. ok is false for any
// other frame.
func decodeAuthFrame(b []byte) (f authFrame, ok bool, ferr *frameError) {
	if !bytes.Contains(b, authOp) {
		return f, false, nil
	}
	if err := json.Unmarshal(b, &f); err != nil || f.Op != "auth" {
		return authFrame{}, false, nil // decodeFrame reports it
	}
	if err := validID(f.ID); err != nil {
		f.ID = nil
		return f, true, err
	}
	if f.Token == "" {
		return f, true, errorf(CodeUnauthorized, "auth needs a token")
	}
	return f, true, nil
}

// gate runs before a frame is decoded: it counts activity, applies the rate
// limit, serves auth frames, and refuses every other frame until the
// connection is authenticated. It reports whether handle should go on.
func (c *conn) gate(b []byte) bool {
	cs := c.sec
	if cs == nil {
		return true
	}
	now := time.Now()
	cs.lastRead.Store(now.UnixNano())
	if ok, abuse := cs.limiter.allow(&c.s.cfg.Limits, now); !ok {
		if abuse {
			c.s.countLimit("close_rate_limited")
			c.shutdown(CloseRateLimited, "sustained sending over the rate limit")
			return false
		}
		c.s.countLimit("rate_limited")
		c.sendError(frameID(b), errorf(CodeRateLimited, "over %g frames per second: frame dropped; slow down", c.s.cfg.Limits.Rate))
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

// auth serves an auth frame: the first one authenticates the connection
// (a refused one closes it with 4004); later ones refresh the token, for the
// same user, without reconnecting.
func (c *conn) auth(f *authFrame, ferr *frameError) {
	cs := c.sec
	cur := cs.p.Load()
	var p *auth.Principal
	if ferr == nil {
		p, ferr = c.s.sec.verifier.verify(f.Token)
	}
	if ferr == nil && cur != nil && !cur.Anonymous && p.User != cur.User {
		ferr = errorf(CodeUnauthorized, "token is for user %q, not %q: reconnect to change user", truncate(p.User, 64), truncate(cur.User, 64))
	}
	if ferr != nil {
		c.s.countLimit("unauthorized")
		c.sendError(f.ID, ferr)
		if cur == nil {
			c.shutdown(CloseUnauthorized, truncate(ferr.Message, 100))
		}
		return
	}
	cs.p.Store(p)
	cs.mu.Lock()
	if cs.authTimer != nil {
		cs.authTimer.Stop()
	}
	c.armExpiry(p)
	cs.mu.Unlock()
	b := append([]byte(nil), `{"op":"ack"`...)
	if len(f.ID) > 0 {
		b = append(b, `,"id":`...)
		b = append(b, f.ID...)
	}
	b = append(b, `,"user":`...)
	b = appendString(b, p.User)
	b = append(b, `,"exp":`...)
	b = append(b, itoa(p.Exp.Unix())...)
	c.send(append(b, '}'))
}

// authorize checks a decoded frame against the connection's permissions.
func (c *conn) authorize(f *clientFrame) *frameError {
	if c.sec == nil {
		return nil
	}
	p := c.sec.p.Load()
	if p == nil {
		return errorf(CodeUnauthorized, "authenticate first")
	}
	var kinds []auth.Perm
	switch f.Op {
	case opJoin:
		kinds = []auth.Perm{auth.Join}
		if f.Presence {
			kinds = append(kinds, auth.Presence)
		}
	case opPublish:
		kinds = []auth.Perm{auth.Publish}
	case opPresence:
		kinds = []auth.Perm{auth.Presence}
	case opSet, opDel, opIncr, opCAS:
		kinds = []auth.Perm{auth.State}
	case opGet, opHistory:
		kinds = []auth.Perm{auth.Join}
	}
	for _, k := range kinds {
		if !p.Perms.Allows(k, f.Room) {
			c.s.countLimit("forbidden")
			return errorf(CodeForbidden, "your token does not allow %s in room %q", k, truncate(f.Room, 64))
		}
	}
	return nil
}

// frameID extracts a frame's id for an error reply, or nil.
func frameID(b []byte) json.RawMessage {
	var f struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(b, &f) != nil || validID(f.ID) != nil {
		return nil
	}
	return f.ID
}
