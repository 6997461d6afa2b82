package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// jwks is a JSON Web Key Set fetched from a URL and cached: refreshed on the
// first use after JWKSRefresh (so a withdrawn key is refused at most that
// long after it leaves the set), and refetched when a token names
// an unknown kid, at most once per JWKSMinInterval so that tokens with
// random kids cannot turn the relay into a request amplifier.
//
// At most one fetch runs at a time, on a goroutine of its own, and no lock
// is held across it: a token with an unknown kid waits for the fetch in
// flight for at most jwksWait, and the verifications of every other token
// never wait at all.
//
// A small fetcher of our own rather than a JWKS library: it accepts only the
// key types roomlog verifies (RSA, EC P-256, Ed25519; symmetric "oct" keys
// are ignored, they do not belong in a published set), pins each to its
// algorithm, and adds no dependency beyond golang-jwt.
type jwks struct {
	cfg *Config
	log *slog.Logger

	mu      sync.RWMutex // guards byKid and fetched
	byKid   map[string]crypto.PublicKey
	fetched time.Time

	flightMu sync.Mutex    // guards lastTry and inflight; never held across a fetch
	lastTry  time.Time     // when the last fetch started
	inflight chan struct{} // closed when the running fetch ends; nil when none runs
}

const maxJWKSBytes = 1 << 20

// jwksWait bounds how long a token with an unknown kid waits for the set to
// be fetched; past it the token is refused (the fetch goes on).
const jwksWait = 3 * time.Second

func newJWKS(cfg *Config, log *slog.Logger) *jwks {
	return &jwks{cfg: cfg, log: log, byKid: map[string]crypto.PublicKey{}}
}

// keys returns the set's keys for kid (every key when kid is empty) that
// verify alg, refetching the set once when kid is unknown.
func (j *jwks) keys(kid, alg string) []jwt.VerificationKey {
	j.mu.RLock()
	out := j.lookup(kid, alg)
	stale := time.Since(j.fetched) > j.cfg.JWKSRefresh
	never := j.fetched.IsZero()
	j.mu.RUnlock()
	// An unknown kid may be a new key; a stale set may still hold a key the
	// issuer has withdrawn: either way, fetch (or join the fetch in
	// flight) and look again.
	if (len(out) == 0 && (kid != "" || never)) || stale {
		if done := j.start(); done != nil {
			select {
			case <-done:
			case <-time.After(jwksWait):
			}
			j.mu.RLock()
			out = j.lookup(kid, alg)
			j.mu.RUnlock()
		}
	}
	return out
}

func (j *jwks) lookup(kid, alg string) []jwt.VerificationKey {
	var out []jwt.VerificationKey
	if kid != "" {
		if k, ok := j.byKid[kid]; ok && keyAlg(k) == alg {
			out = append(out, k)
		}
		return out
	}
	for _, k := range j.byKid {
		if keyAlg(k) == alg {
			out = append(out, k)
		}
	}
	return out
}

// start returns a channel closed when a fetch ends: the one in flight, or
// one started now. It returns nil, starting nothing, when the last fetch
// started less than JWKSMinInterval ago.
func (j *jwks) start() <-chan struct{} {
	j.flightMu.Lock()
	defer j.flightMu.Unlock()
	if j.inflight != nil {
		return j.inflight
	}
	if !j.lastTry.IsZero() && time.Since(j.lastTry) < j.cfg.JWKSMinInterval {
		return nil
	}
	j.lastTry = time.Now()
	done := make(chan struct{})
	j.inflight = done
	go func() {
		_ = j.fetch(context.Background())
		j.flightMu.Lock()
		j.inflight = nil
		j.flightMu.Unlock()
		close(done)
	}()
	return done
}

// fetch replaces the cached set with the one at the URL. A key removed from
// the published set is refused from then on.
func (j *jwks) fetch(ctx context.Context) error {
	set, err := j.get(ctx)
	if err != nil {
		j.log.Warn("fetching the JWKS", "url", j.cfg.JWKSURL, "err", err)
		return err
	}
	j.mu.Lock()
	j.byKid, j.fetched = set, time.Now()
	j.mu.Unlock()
	return nil
}

// jwksFetchTimeout bounds one fetch of the set.
const jwksFetchTimeout = 10 * time.Second

func (j *jwks) get(ctx context.Context) (map[string]crypto.PublicKey, error) {
	ctx, cancel := context.WithTimeout(ctx, jwksFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.cfg.JWKSURL, nil)
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := j.cfg.JWKSClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks: %s answered %s", j.cfg.JWKSURL, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("jwks: reading: %w", err)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("jwks: over %d bytes", maxJWKSBytes)
	}
	return parseJWKS(body)
}

// jwk is one JSON Web Key (RFC 7517), the fields roomlog uses.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS reads a key set; keys that are not signature keys of a
// supported type are skipped, and a set with none is an error.
func parseJWKS(b []byte) (map[string]crypto.PublicKey, error) {
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	out := map[string]crypto.PublicKey{}
	for i, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		pk, err := k.publicKey()
		if err != nil {
			continue
		}
		if k.Alg != "" && k.Alg != keyAlg(pk) {
			continue // a key published for another algorithm
		}
		kid := k.Kid
		if kid == "" {
			kid = fmt.Sprintf("#%d", i)
		}
		out[kid] = pk
	}
	if len(out) == 0 {
		return nil, errors.New("jwks: no usable RSA, EC P-256 or Ed25519 signature key")
	}
	return out, nil
}

func (k *jwk) publicKey() (crypto.PublicKey, error) {
	b64 := func(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }
	switch k.Kty {
	case "RSA":
		n, err1 := b64(k.N)
		e, err2 := b64(k.E)
		if err1 != nil || err2 != nil || len(e) == 0 || len(e) > 4 {
			return nil, errors.New("bad RSA key")
		}
		pk := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		return pk, checkPublicKey(pk)
	case "EC":
		if k.Crv != "P-256" {
			return nil, errors.New("EC key not on P-256")
		}
		x, err1 := b64(k.X)
		y, err2 := b64(k.Y)
		if err1 != nil || err2 != nil || len(x) != 32 || len(y) != 32 {
			return nil, errors.New("bad EC key")
		}
		raw := append(append([]byte{4}, x...), y...)
		pk, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
		if err != nil {
			return nil, err
		}
		return pk, nil
	case "OKP":
		x, err := b64(k.X)
		if k.Crv != "Ed25519" || err != nil || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("bad OKP key")
		}
		return ed25519.PublicKey(x), nil
	}
	return nil, fmt.Errorf("unsupported kty %q", k.Kty)
}
