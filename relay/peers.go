package relay

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
)

// No sticky sessions for Socket.IO (docs/socketio.md): a session id names
// the relay session that owns it (RandomSID(session + ".")), every relay
// publishes its internal address in its lease records (rl-addr), and a
// relay asked for a session it does not hold reverse-proxies the request to
// the owner's address, once.

// forwardedHeader marks a request one relay forwarded to another; it is
// never forwarded again.
const forwardedHeader = "Roomlog-Forwarded-By"

// peers maps relay sessions to their advertised addresses, from folded
// lease records.
type peers struct {
	mu    sync.RWMutex
	addrs map[string]string
}

func (p *peers) set(session, addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.addrs == nil {
		p.addrs = make(map[string]string)
	}
	p.addrs[session] = addr
}

func (p *peers) drop(session string) {
	p.mu.Lock()
	delete(p.addrs, session)
	p.mu.Unlock()
}

func (p *peers) get(session string) string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.addrs[session]
}

// forwardSIO is the Engine.IO server's Forward hook: a handler proxying
// the request to the relay session that owns sid, or nil (the client gets
// "Session ID unknown" and starts a new session).
func (s *Server) forwardSIO(sid string, r *http.Request) http.Handler {
	if r.Header.Get(forwardedHeader) != "" {
		return nil // never forward twice
	}
	i := strings.LastIndexByte(sid, '.')
	if i <= 0 {
		return nil
	}
	owner := sid[:i]
	if owner == s.currentSession() {
		return nil // ours, and gone
	}
	addr := s.peers.get(owner)
	if addr == "" {
		return nil
	}
	s.metrics.forwards.Inc()
	return s.proxyTo(addr)
}

// proxyTo reverse-proxies to another relay's listener, keeping the Host
// header (the owner checks the Origin against it); WebSocket upgrades
// included.
func (s *Server) proxyTo(addr string) http.Handler {
	target := &url.URL{Scheme: "http", Host: addr}
	if s.cfg.TLS != nil {
		target.Scheme = "https"
	}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.Out.Header.Set(forwardedHeader, s.cfg.RelayName)
		},
		Transport:     s.fwd,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.cfg.Logger.Debug("forwarding a Socket.IO request", "to", addr, "err", err)
			w.WriteHeader(http.StatusBadGateway)
		},
	}
}

// DefaultAdvertiseAddr is a relay's address for other relays when
// Config.AdvertiseAddr is empty: the listen address when it names a
// concrete host, else the host name and the bound port.
func DefaultAdvertiseAddr(listen string, bound net.Addr) string {
	host, _, _ := net.SplitHostPort(listen)
	_, port, _ := net.SplitHostPort(bound.String())
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return net.JoinHostPort(host, port)
	}
	name, _ := os.Hostname()
	return net.JoinHostPort(name, port)
}

func validAdvertiseAddr(addr string) error {
	if host, port, err := net.SplitHostPort(addr); err != nil || host == "" || port == "" {
		return fmt.Errorf("relay: advertise address %q: want host:port", addr)
	}
	return nil
}
