// Package webpage serves a page embedded in the binary (relay/demo at /, relay/console at /admin/): its
// index.html at the root path with placeholders filled in, a fixed list of files beside it, and nothing else
// (any other path is 404), with the headers a page served by a relay needs: nosniff, a Content-Security-Policy,
// no referrer, no-cache. A Handler is safe for concurrent use and holds no state once built.
package webpage

import (
	"bytes"
	"io/fs"
	"net/http"
	"strings"
)

// Config describes a page.
type Config struct {
	Files  fs.FS             // the page's folder: index.html and Assets
	Root   string            // where index.html is served: "/" or "/admin/"
	Fill   map[string]string // placeholder → value, each replaced once in index.html
	Assets []string          // the other files served, by name under Root
	CSP    string            // the Content-Security-Policy
}

// Handler serves the page.
func Handler(c Config) http.Handler {
	index, _ := fs.ReadFile(c.Files, "index.html")
	for k, v := range c.Fill {
		index = bytes.Replace(index, []byte(k), []byte(v), 1)
	}
	assets := map[string]bool{}
	for _, a := range c.Assets {
		assets[c.Root+a] = true
	}
	files := http.StripPrefix(strings.TrimSuffix(c.Root, "/"), http.FileServer(http.FS(c.Files)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", c.CSP)
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		switch {
		case r.URL.Path == c.Root:
			h.Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write(index)
		case assets[r.URL.Path]:
			files.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}
