// Package console serves the operator console at /admin/: the fleet, the rooms and a room's timeline, a page
// that reads everything through the relay's JSON API under /admin/api/ (relay/admin.go, docs/operations.md).
// HTML, CSS and script are embedded in the binary: no CDN, nothing fetched from elsewhere, so it works offline.
//
// The page holds no secret and shows nothing by itself: every datum comes from the API, which checks the admin
// token (kept by the page in sessionStorage, sent as Authorization: Bearer). Handler is safe for concurrent use;
// it holds no state.
package console

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
	// Open: the API needs no token (a loopback listener with --anonymous); the page says it is for local
	// development only.
	Open bool
}

// Handler serves the console at /admin/ and its files; any other path is 404.
func Handler(cfg Config) http.Handler {
	files, _ := fs.Sub(static, "static")
	mode := "token"
	if cfg.Open {
		mode = "open"
	}
	return webpage.Handler(webpage.Config{
		Files: files, Root: "/admin/", Fill: map[string]string{"{{AUTH}}": mode}, Assets: []string{"console.js", "console.css"},
		CSP: "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
	})
}
