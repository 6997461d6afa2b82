package auth

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The relay's tests (relay/auth_test.go) run every kind of token against
// real relays over sockets; these test the package on its own.

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func hs256(t *testing.T, secret []byte, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerifyKinds(t *testing.T) {
	cfg := &Config{HS256Secrets: [][]byte{testSecret}, Issuer: "roomlog-test"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	v := NewVerifier(cfg, nil)
	exp := time.Now().Add(time.Hour).Unix()
	ok := jwt.MapClaims{"sub": "alice", "exp": exp, "iss": "roomlog-test", "rooms": []string{"room:*"}}
	with := func(k string, val any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for k, v := range ok {
			c[k] = v
		}
		if val == nil {
			delete(c, k)
		} else {
			c[k] = val
		}
		return c
	}
	for _, tt := range []struct {
		name  string
		token string
		want  Kind
		msg   string
	}{
		{"too large", strings.Repeat("a", maxTokenBytes+1), KindTooLarge, "token is over 16384 bytes"},
		{"garbage", "not.a.token", KindMalformed, "invalid token: malformed token"},
		{"wrong secret", hs256(t, []byte("not-the-secret-not-the-secret-xx"), ok), KindBadSignature, "invalid token: bad signature"},
		{"expired", hs256(t, testSecret, with("exp", time.Now().Add(-time.Hour).Unix())), KindExpired, "invalid token: token is expired"},
		{"not yet valid", hs256(t, testSecret, with("nbf", exp)), KindNotYetValid, "invalid token: token is not valid yet (nbf)"},
		{"no exp", hs256(t, testSecret, with("exp", nil)), KindClaims, "invalid token: a required claim (exp) is missing"},
		{"wrong issuer", hs256(t, testSecret, with("iss", "other")), KindClaims, "invalid token: wrong issuer"},
		{"no issuer", hs256(t, testSecret, with("iss", nil)), KindClaims, "invalid token: a required claim (iss) is missing"},
		{"no sub", hs256(t, testSecret, with("sub", nil)), KindClaims, "invalid token: sub"},
		{"bad rooms", hs256(t, testSecret, with("rooms", 42)), KindClaims, "invalid token: rooms claim"},
		{"no RS256 key", func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodRS256, ok)
			tok.Header["kid"] = "k1"
			s, _ := tok.SigningString()
			return s + ".c2ln"
		}(), KindUnknownKey, `invalid token: no RS256 key with kid "k1"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := v.Verify(tt.token)
			var ae *Error
			if !errors.As(err, &ae) {
				t.Fatalf("got %+v, %v; want an *Error", p, err)
			}
			if ae.Kind != tt.want || !strings.HasPrefix(ae.Error(), tt.msg) {
				t.Fatalf("got kind %d %q, want kind %d %q", ae.Kind, ae.Error(), tt.want, tt.msg)
			}
		})
	}
	p, err := v.Verify(hs256(t, testSecret, ok))
	if err != nil {
		t.Fatal(err)
	}
	if p.User != "alice" || p.Exp.Unix() != exp || !p.Perms.Allows(Publish, "room:1") || p.Perms.Allows(Join, "lobby") {
		t.Fatalf("got %+v", p)
	}
	none := NewVerifier(&Config{Anonymous: true}, nil)
	if _, err := none.Verify(hs256(t, testSecret, ok)); !errors.As(err, new(*Error)) || err.(*Error).Kind != KindNoTokens {
		t.Fatalf("anonymous-only verifier: %v", err)
	}
}

func TestExpiredUnwrapsToJWT(t *testing.T) {
	cfg := &Config{HS256Secrets: [][]byte{testSecret}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	_, err := NewVerifier(cfg, nil).Verify(hs256(t, testSecret, jwt.MapClaims{"sub": "a", "exp": time.Now().Add(-time.Hour).Unix()}))
	if !errors.Is(err, jwt.ErrTokenExpired) {
		t.Fatalf("got %v, want it to wrap jwt.ErrTokenExpired", err)
	}
}

func TestBearerToken(t *testing.T) {
	for _, tt := range []struct {
		header, want string
		ok           bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer  abc ", "abc", true},
		{"BEARER x", "x", true},
		{"Bearer ", "", false},
		{"Bearer    ", "", false},
		{"Bearerabc", "", false},
		{"Basic abc", "", false},
		{"", "", false},
	} {
		if got, ok := BearerToken(tt.header); got != tt.want || ok != tt.ok {
			t.Errorf("BearerToken(%q) = %q, %v; want %q, %v", tt.header, got, ok, tt.want, tt.ok)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"nothing", Config{}, "no authentication configured"},
		{"short secret", Config{HS256Secrets: [][]byte{[]byte("short")}}, "HS256 secret 1 is 5 bytes"},
		{"short API key", Config{Anonymous: true, APIKeys: [][]byte{[]byte("k")}}, "API key 1 is 1 bytes"},
	} {
		if err := tt.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %q", tt.name, err, tt.want)
		}
	}
	c := Config{Anonymous: true}
	if err := c.Validate(); err != nil || c.Leeway != DefaultLeeway || c.Timeout != DefaultTimeout || c.JWKSClient == nil {
		t.Fatalf("defaults: %v, %+v", err, c)
	}
}
