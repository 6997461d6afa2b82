package relay

import (
	"context"
	"net"

	"github.com/roomlog/roomlog/internal/reuseport"
)

// listen opens the relay's TCP listener, with SO_REUSEPORT when asked.
func listen(ctx context.Context, addr string, reusePort bool) (net.Listener, error) {
	return reuseport.Listen(ctx, addr, reusePort)
}
