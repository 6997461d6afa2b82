package demo

import (
	"testing"

	"github.com/roomlog/roomlog/internal/webpage/webpagetest"
)

func TestHandler(t *testing.T) {
	anon, tokens := Handler(Config{}), Handler(Config{TokenRequired: true})
	webpagetest.Run(t, []webpagetest.Case{
		{Name: "page", Handler: anon, Path: "/", Status: 200, CType: "text/html", Body: `content="anonymous"`},
		{Name: "page with tokens", Handler: tokens, Path: "/", Status: 200, CType: "text/html", Body: `content="token"`},
		{Name: "sdk bundle", Handler: anon, Path: "/roomlog.min.js", Status: 200, CType: "javascript", Body: "Roomlog"},
		{Name: "script", Handler: anon, Path: "/demo.js", Status: 200, CType: "javascript", Body: "Roomlog"},
		{Name: "style", Handler: anon, Path: "/demo.css", Status: 200, CType: "text/css"},
		{Name: "index by name", Handler: anon, Path: "/index.html", Status: 404},
		{Name: "unknown", Handler: anon, Path: "/secrets", Status: 404},
	})
}
