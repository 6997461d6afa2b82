package relay_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/roomlog/roomlog/relay"
)

// kfakeBackend is an in-process broker for tests whose subject is the edge
// (auth, limits, TLS), not the log.
func kfakeBackend(t *testing.T) backend {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return backend{name: "kfake", brokers: c.ListenAddrs()}
}

// quietLeases keeps lease records out of a test's log for its duration, so
// end offsets count only what clients appended.
func quietLeases(c *relay.Config) { c.LeaseTimeout = 10 * time.Minute }

// testKeys are the token keys of the auth tests.
type testKeys struct {
	hs      []byte
	rsa     *rsa.PrivateKey
	ec      *ecdsa.PrivateKey // published in the JWKS as kid "ec-1"
	ed      ed25519.PrivateKey
	rsaPEM  []byte // the RSA public key, PEM: the algorithm-confusion "secret"
	another *rsa.PrivateKey
}

func newTestKeys(t *testing.T) *testKeys {
	t.Helper()
	k := &testKeys{hs: []byte("0123456789abcdef0123456789abcdef-secret")}
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if k.another, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	k.rsaPEM = pemPublic(t, &k.rsa.PublicKey)
	return k
}

// sign makes a token; kid is set when not empty.
func sign(t *testing.T, m jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// claims are valid claims for user sub with rooms, plus overrides.
func claims(sub string, rooms any, over map[string]any) jwt.MapClaims {
	c := jwt.MapClaims{"sub": sub, "iss": "roomlog-test", "aud": "relays", "exp": time.Now().Add(time.Hour).Unix(), "rooms": rooms}
	for k, v := range over {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func pemPublic(t *testing.T, k crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// serveJWKS publishes the EC key as kid "ec-1" and counts the fetches.
func serveJWKS(t *testing.T, k *ecdsa.PublicKey) (url string, fetches *atomic.Int64) {
	t.Helper()
	fetches = new(atomic.Int64)
	raw, err := k.Bytes() // 0x04 || X || Y
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	body, _ := json.Marshal(map[string]any{"keys": []map[string]string{
		{"kty": "EC", "crv": "P-256", "kid": "ec-1", "use": "sig", "alg": "ES256", "x": b64(raw[1:33]), "y": b64(raw[33:])},
		{"kty": "oct", "kid": "sym", "k": "c2VjcmV0"}, // ignored: symmetric keys do not belong in a JWKS
	}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, fetches
}

// dialWith connects to url with header and dialer (nil: the default) and
// reads the welcome frame; the reader goroutine runs when read is set.
func dialWith(t *testing.T, d *websocket.Dialer, url string, hdr http.Header, read bool) (*client, *http.Response, error) {
	t.Helper()
	if d == nil {
		d = websocket.DefaultDialer
	}
	ws, resp, err := d.Dial(url, hdr)
	if err != nil {
		return nil, resp, err
	}
	c := &client{t: t, ws: ws, msgs: make(chan frame, 100000), acks: make(chan frame, 100000), err: make(chan error, 1)}
	t.Cleanup(func() { ws.Close() })
	var w frame
	if err := ws.ReadJSON(&w); err != nil || w.Op != "welcome" {
		t.Fatalf("welcome: %+v, %v", w, err)
	}
	c.id = w.Conn
	if read {
		go c.readLoop()
	}
	return c, resp, nil
}

// closeCode waits for the connection's reader to end and returns the close
// code it got (0: ended without a close frame).
func (c *client) closeCode() int {
	c.t.Helper()
	select {
	case err := <-c.err:
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		return 0
	case <-time.After(waitLimit):
		c.t.Fatalf("connection not closed within %v", waitLimit)
	}
	return 0
}

// errorBody decodes an HTTP JSON error.
func errorBody(resp *http.Response) string {
	if resp == nil {
		return ""
	}
	var e struct {
		Error string `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&e)
	return e.Error
}
