package demo

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
		{name: "page", path: "/", status: 200, ctype: "text/html", body: `content="anonymous"`},
		{name: "page with tokens", cfg: Config{TokenRequired: true}, path: "/", status: 200, ctype: "text/html", body: `content="token"`},
		{name: "sdk bundle", path: "/roomlog.min.js", status: 200, ctype: "javascript", body: "Roomlog"},
		{name: "script", path: "/demo.js", status: 200, ctype: "javascript", body: "Roomlog"},
		{name: "style", path: "/demo.css", status: 200, ctype: "text/css"},
		{name: "index by name", path: "/index.html", status: 404},
		{name: "unknown", path: "/secrets", status: 404},
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
