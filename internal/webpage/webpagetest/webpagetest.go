// Package webpagetest checks pages served by internal/webpage, for the
// tests of the packages that embed them (relay/demo, relay/console).
package webpagetest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Case is one request to a page handler and what it must answer.
type Case struct {
	Name    string
	Handler http.Handler
	Path    string
	Status  int
	CType   string // a substring of Content-Type
	Body    string // a substring of the body
}

// Run serves each case and checks its status, content type, body and that a
// Content-Security-Policy is set.
func Run(t *testing.T, cases []Case) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.Name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			tt.Handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.Path, nil))
			res := rec.Result()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tt.Status {
				t.Fatalf("status: got %d, want %d", res.StatusCode, tt.Status)
			}
			if got := res.Header.Get("Content-Type"); !strings.Contains(got, tt.CType) {
				t.Errorf("content type: got %q, want %q", got, tt.CType)
			}
			if !strings.Contains(string(body), tt.Body) {
				t.Errorf("body lacks %q", tt.Body)
			}
			if res.Header.Get("Content-Security-Policy") == "" {
				t.Error("no Content-Security-Policy")
			}
		})
	}
}
