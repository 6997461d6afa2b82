// Package demo serves the demo page at /: a chat room with a presence list, a shared counter and a live
// indicator of the connection, a newcomer's first look at roomlog after `make run`. The page uses the SDK's
// browser bundle (sdk/js, built to static/roomlog.min.js and committed; a test in sdk/js checks it is fresh),
// and everything is embedded in the binary: no CDN, nothing fetched.
//
// The page never weakens authentication: it connects to the relay's /ws like any client, and when the relay
// requires tokens it asks for one. Handler is safe for concurrent use; it holds no state.
package demo

import (
	"embed"
	"io/fs"
	"net/http"

	"github.com/roomlog/roomlog/internal/webpage"
)

//go:embed static
var static embed.FS

// Config says what the page must know about the relay that serves it.
type Config struct {
	// TokenRequired: the relay accepts no anonymous clients, so the page asks for a JSON Web Token.
	TokenRequired bool
}

// Handler serves the page at / and its files; any other path is 404.
func Handler(cfg Config) http.Handler {
	files, _ := fs.Sub(static, "static")
	mode := "anonymous"
	if cfg.TokenRequired {
		mode = "token"
	}
	return webpage.Handler(webpage.Config{
		Files: files, Root: "/", Fill: map[string]string{"{{AUTH}}": mode}, Assets: []string{"roomlog.min.js", "demo.js", "demo.css"},
		CSP: "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; frame-ancestors 'none'",
	})
}
