package relay

import (
	"net/http"
)

// routes is the relay's HTTP mux: /ws (handler_websocket.go), /socket.io/
// (handler_socketio.go), the backend API (api.go), the console (admin.go),
// /metrics, /healthz, /readyz, and Config.Pages (the demo page) for every
// other path.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", s.serveWS)
	mux.HandleFunc("/socket.io/", s.serveSocketIO)
	if s.cfg.Pages != nil {
		mux.Handle("/", s.cfg.Pages)
	}
	s.registerAPI(mux)
	s.registerAdmin(mux)
	if !s.cfg.PrivateMetrics {
		mux.Handle("/metrics", s.MetricsHandler())
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.Ready() {
			http.Error(w, "not ready: replaying the log or draining", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return mux
}
