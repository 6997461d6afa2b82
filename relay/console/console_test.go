package console

import (
	"testing"

	"github.com/roomlog/roomlog/internal/webpage/webpagetest"
)

func TestHandler(t *testing.T) {
	token, open := Handler(Config{}), Handler(Config{Open: true})
	webpagetest.Run(t, []webpagetest.Case{
		{Name: "page", Handler: token, Path: "/admin/", Status: 200, CType: "text/html", Body: `content="token"`},
		{Name: "page, open", Handler: open, Path: "/admin/", Status: 200, CType: "text/html", Body: `content="open"`},
		{Name: "script", Handler: token, Path: "/admin/console.js", Status: 200, CType: "javascript", Body: "/admin/api/"},
		{Name: "style", Handler: token, Path: "/admin/console.css", Status: 200, CType: "text/css"},
		{Name: "index by name", Handler: token, Path: "/admin/index.html", Status: 404},
		{Name: "unknown", Handler: token, Path: "/admin/secrets", Status: 404},
	})
}
