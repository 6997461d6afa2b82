package relay

import (
	"context"
	"net"

	"github.com/roomlog/roomlog/internal/asyncconn"
	"github.com/roomlog/roomlog/internal/reuseport"
)

// listen opens the relay's TCP listener, with SO_REUSEPORT when asked. Its
// connections are asyncconn.Conns: once a WebSocket takes one over
// (asyncconn.Enable), writing to it never blocks, so deliveries are
// written from the goroutine that fans them out (writer.go).
func (s *Server) listen(ctx context.Context, addr string, reusePort bool) (net.Listener, error) {
	ln, err := reuseport.Listen(ctx, addr, reusePort)
	if err != nil {
		return nil, err
	}
	// A socket's pending bytes are bounded by asyncconn's default (4 MiB)
	// besides SendQueue's frames.
	return &asyncconn.Listener{Listener: ln, Config: asyncconn.Config{FlushTimeout: s.cfg.WriteTimeout}}, nil
}
