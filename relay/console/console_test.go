package console

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		path   string
		status int
		ctype  string
		body   string // a substring
	}{
		{name: "page", path: "/admin/", status: 200, ctype: "text/html", body: `content="token"`},
		{name: "page, open", cfg: Config{Open: true}, path: "/admin/", status: 200, ctype: "text/html", body: `content="open"`},
		{name: "script", path: "/admin/console.js", status: 200, ctype: "javascript", body: "/admin/api/"},
		{name: "style", path: "/admin/console.css", status: 200, ctype: "text/css"},
		{name: "index by name", path: "/admin/index.html", status: 404},
		{name: "unknown", path: "/admin/secrets", status: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			Handler(tt.cfg).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
			res := rec.Result()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tt.status {
				t.Fatalf("status: got %d, want %d", res.StatusCode, tt.status)
			}
			if got := res.Header.Get("Content-Type"); !strings.Contains(got, tt.ctype) {
				t.Errorf("content type: got %q, want %q", got, tt.ctype)
			}
			if !strings.Contains(string(body), tt.body) {
				t.Errorf("body lacks %q", tt.body)
			}
			if res.Header.Get("Content-Security-Policy") == "" {
				t.Error("no Content-Security-Policy")
			}
		})
	}
}
