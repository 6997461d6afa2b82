package engineio

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"

	"github.com/gorilla/websocket"
)

// Server serves Engine.IO v4 at one path: mount it on a mux
// (mux.Handle("/socket.io/", srv)). It holds the sessions it created; a
// request for another server's session goes to Config.Forward.
type Server struct {
	cfg Config
	up  websocket.Upgrader

	mu       sync.Mutex // guards sessions, closing
	sessions map[string]*Session
	closing  bool

	wg sync.WaitGroup // sessions until their handler's Closed returns, and WebSocket writers
}

// NewServer checks cfg, fills its defaults and returns a server.
func NewServer(cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, sessions: make(map[string]*Session)}
	s.up = websocket.Upgrader{
		// 0: the read buffer is the hijacked one wsread.Hijacker makes,
		// which the reader sees (internal/wsread).
		ReadBufferSize:  0,
		WriteBufferSize: cfg.WriteBufferSize,
		// A session holds a write buffer only while writing a message, not
		// for its whole life: an idle session keeps none.
		WriteBufferPool: &sync.Pool{},
		// ServeHTTP has checked the origin already.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	return s, nil
}

// Len returns the number of sessions this server holds.
func (s *Server) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Shutdown refuses new sessions (HTTP 503), closes every session with
// ReasonShutdown (the transport only: clients reconnect, elsewhere) and
// waits until every handler's Closed and every writer has returned, or ctx
// ends.
// Call it before the http.Server's Shutdown, which waits for pending polls:
// closing the sessions is what answers them.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	all := make([]*Session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		all = append(all, sess)
	}
	s.mu.Unlock()
	for _, sess := range all {
		sess.Close(ReasonShutdown)
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Server) lookup(sid string) *Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[sid]
}

// add registers sess and counts it in wg until its handler's Closed has
// returned (finishLater), unless the server is shutting down. Under mu, so
// Shutdown's Wait never races an Add.
func (s *Server) add(sess *Session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.sessions[sess.id] = sess
	s.wg.Add(1)
	return true
}

func (s *Server) remove(sess *Session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessions[sess.id] == sess {
		delete(s.sessions, sess.id)
	}
}

// ServeHTTP serves one Engine.IO request: a handshake, a poll, a POST of
// packets, or a WebSocket (new, or an upgrade of a polling session).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.cfg.CheckOrigin(r) {
		s.refuse(w, http.StatusForbidden, CodeForbidden)
		return
	}
	if r.Method == http.MethodOptions {
		s.preflight(w, r)
		return
	}
	s.cors(w, r)
	q := r.URL.Query()
	transport := q.Get("transport")
	isWS := websocket.IsWebSocketUpgrade(r)
	switch {
	case transport == TransportPolling && !s.cfg.DisablePolling:
	case transport == TransportWebSocket && !s.cfg.DisableWebSocket:
	default:
		s.refuse(w, http.StatusBadRequest, CodeUnknownTransport)
		return
	}
	if q.Get("EIO") != "4" {
		s.refuse(w, http.StatusBadRequest, CodeUnsupportedProtocol)
		return
	}
	if q.Has("j") || (transport == TransportWebSocket) != isWS {
		// JSONP (gone from the v4 client), or a transport that does not
		// match the request.
		s.refuse(w, http.StatusBadRequest, CodeBadRequest)
		return
	}
	sid := q.Get("sid")
	if sid == "" {
		s.handshake(w, r, isWS)
		return
	}
	sess := s.lookup(sid)
	if sess == nil {
		if s.cfg.Forward != nil {
			if h := s.cfg.Forward(sid, r); h != nil {
				h.ServeHTTP(w, r)
				return
			}
		}
		s.refuse(w, http.StatusBadRequest, CodeUnknownSID)
		return
	}
	switch {
	case isWS:
		sess.serveUpgrade(w, r)
	case r.Method == http.MethodGet:
		sess.servePoll(w, r)
	case r.Method == http.MethodPost:
		sess.servePost(w, r)
	default:
		s.refuse(w, http.StatusBadRequest, CodeBadRequest)
	}
}

func (s *Server) handshake(w http.ResponseWriter, r *http.Request, isWS bool) {
	if r.Method != http.MethodGet {
		s.refuse(w, http.StatusBadRequest, CodeBadHandshakeMethod)
		return
	}
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		s.refuse(w, http.StatusServiceUnavailable, CodeBadRequest)
		return
	}
	sid, err := s.cfg.NewSID()
	if err != nil {
		s.refuse(w, http.StatusInternalServerError, CodeBadRequest)
		return
	}
	sess := newSession(s, sid)
	if isWS {
		s.openWebSocket(w, r, sess)
		return
	}
	if !s.add(sess) {
		s.refuse(w, http.StatusServiceUnavailable, CodeBadRequest)
		return
	}
	sess.open(r)
	open := AppendPacket(nil, Packet{Type: PacketOpen, Data: s.openData(sid, !s.cfg.DisableWebSocket)})
	writePoll(w, r, open, s.cfg.WriteTimeout)
}

// openData is the handshake's JSON.
func (s *Server) openData(sid string, upgrade bool) []byte {
	upgrades := []string{}
	if upgrade {
		upgrades = append(upgrades, TransportWebSocket)
	}
	b, _ := json.Marshal(struct {
		SID          string   `json:"sid"`
		Upgrades     []string `json:"upgrades"`
		PingInterval int64    `json:"pingInterval"`
		PingTimeout  int64    `json:"pingTimeout"`
		MaxPayload   int      `json:"maxPayload"`
	}{sid, upgrades, s.cfg.PingInterval.Milliseconds(), s.cfg.PingTimeout.Milliseconds(), s.cfg.MaxPayload})
	return b
}

// cors adds the CORS headers of an allowed cross-origin request (with
// credentials, so the origin itself, never "*").
func (s *Server) cors(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Add("Vary", "Origin")
}

func (s *Server) preflight(w http.ResponseWriter, r *http.Request) {
	s.cors(w, r)
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "GET, POST")
	if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
		h.Set("Access-Control-Allow-Headers", req)
	}
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}
