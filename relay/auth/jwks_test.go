package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// jwksServer publishes the keys in set (kid → key), which the test may
// change; when hold is set, each request waits for it to close first.
type jwksServer struct {
	set     atomic.Pointer[map[string]*ecdsa.PrivateKey]
	hold    atomic.Pointer[chan struct{}]
	arrived chan struct{} // a request came in
	url     string
}

func newJWKSServer(t *testing.T, keys map[string]*ecdsa.PrivateKey) *jwksServer {
	t.Helper()
	js := &jwksServer{arrived: make(chan struct{}, 100)}
	js.set.Store(&keys)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		js.arrived <- struct{}{}
		if h := js.hold.Load(); h != nil {
			select {
			case <-*h:
			case <-r.Context().Done():
				return
			}
		}
		var out []map[string]string
		for kid, k := range *js.set.Load() {
			raw, _ := k.PublicKey.Bytes()
			b64 := base64.RawURLEncoding.EncodeToString
			out = append(out, map[string]string{"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "x": b64(raw[1:33]), "y": b64(raw[33:])})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": out})
	}))
	t.Cleanup(srv.Close)
	js.url = srv.URL
	return js
}

func es256(t *testing.T, k *ecdsa.PrivateKey, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
	tok.Header["kid"] = kid
	s, err := tok.SignedString(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newECKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestJWKSFetchHoldsNoLock: while a JWKS fetch hangs, a token with another
// unknown kid is answered within the wait bound instead of queuing behind
// the fetch on a mutex (it used to wait out the fetch's 10 s timeout).
func TestJWKSFetchHoldsNoLock(t *testing.T) {
	k1 := newECKey(t)
	js := newJWKSServer(t, map[string]*ecdsa.PrivateKey{"k1": k1})
	hold := make(chan struct{})
	js.hold.Store(&hold)
	defer close(hold)
	cfg := &Config{JWKSURL: js.url, JWKSMinInterval: time.Hour}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	v := NewVerifier(cfg, nil)
	first := make(chan error, 1)
	go func() { _, err := v.Verify(es256(t, k1, "k1")); first <- err }()
	<-js.arrived // the first fetch is in flight, and held
	second := make(chan error, 1)
	go func() { _, err := v.Verify(es256(t, newECKey(t), "k2")); second <- err }()
	select {
	case err := <-second:
		var ae *Error
		if !errors.As(err, &ae) || ae.Kind != KindUnknownKey {
			t.Fatalf("second token: %v, want an unknown key", err)
		}
	case <-time.After(jwksFetchTimeout - 2*time.Second):
		// Between the wait bound (3 s) and the fetch's own timeout (10 s):
		// only a token queued behind the held fetch gets here.
		t.Fatal("a token waited behind the held JWKS fetch")
	}
	if err := <-first; err == nil {
		t.Fatal("first token verified with no key set")
	}
}

// TestJWKSWithdrawnKey: a key removed from the published set is refused
// once the set is older than JWKSRefresh (it used to be trusted until an
// hourly background refresh, and by the token that triggered it).
func TestJWKSWithdrawnKey(t *testing.T) {
	k1, k2 := newECKey(t), newECKey(t)
	js := newJWKSServer(t, map[string]*ecdsa.PrivateKey{"k1": k1, "k2": k2})
	cfg := &Config{JWKSURL: js.url, JWKSRefresh: 50 * time.Millisecond, JWKSMinInterval: time.Millisecond}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	v := NewVerifier(cfg, nil)
	if _, err := v.Verify(es256(t, k1, "k1")); err != nil {
		t.Fatalf("k1 before rotation: %v", err)
	}
	js.set.Store(&map[string]*ecdsa.PrivateKey{"k2": k2}) // k1 withdrawn
	time.Sleep(60 * time.Millisecond)                     // the cached set is now older than JWKSRefresh
	if _, err := v.Verify(es256(t, k1, "k1")); err == nil {
		t.Fatal("a withdrawn key still verifies after JWKSRefresh")
	}
	if _, err := v.Verify(es256(t, k2, "k2")); err != nil {
		t.Fatalf("k2: %v", err)
	}
}
