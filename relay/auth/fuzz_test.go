package auth

import "testing"

// FuzzVerify: any string is refused without panicking, with an *Error.
func FuzzVerify(f *testing.F) {
	for _, s := range []string{
		"", "a.b.c", "not.a.token", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
		"eyJhbGciOiJIUzI1NiJ9.%%%.%%%",
		"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ4IiwiZXhwIjo0MTAyNDQ0ODAwfQ.AAAA",
	} {
		f.Add(s)
	}
	cfg := &Config{HS256Secrets: [][]byte{testSecret}}
	if err := cfg.Validate(); err != nil {
		f.Fatal(err)
	}
	v := NewVerifier(cfg, nil)
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := v.Verify(tok)
		if err == nil {
			t.Fatalf("a fuzzed token verified: %q → %+v", tok, p)
		}
		if _, ok := err.(*Error); !ok {
			t.Fatalf("refusal of %q is a %T, not an *Error", tok, err)
		}
	})
}

// FuzzParseRooms: the rooms claim never panics the parser.
func FuzzParseRooms(f *testing.F) {
	for _, s := range []string{`["room:*"]`, `{"join":["a"],"publish":["b*"]}`, `null`, `42`, `{"join":"a"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseRooms(b)
		if err == nil {
			_ = p.Allows(Join, "room:a")
		}
	})
}

func TestMatch(t *testing.T) {
	for _, tt := range []struct {
		pat, s string
		want   bool
	}{
		{"room:a*", "room:a", true},
		{"room:a*", "room:abc/def", true},
		{"room:a*", "room:b", false},
		{"*", "", true},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"https://*.example.com", "https://app.example.com", true},
		{"https://*.example.com", "https://example.com.evil.net", false},
		{"*a*b*c*", "xxaxxbxxcxx", true},
		{"*a*b*c*", "xxaxxcxxbxx", false},
	} {
		if got := Match(tt.pat, tt.s); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.pat, tt.s, got, tt.want)
		}
	}
}
