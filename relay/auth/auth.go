// Package auth checks who a client is and which rooms it may use: JSON Web
// Tokens (HS256, RS256, ES256, EdDSA; each key bound to its algorithm; keys
// from secrets, PEM files or a JWKS URL) carrying the user (sub) and room
// permissions (the "rooms" claim), and the glob patterns those permissions
// and the relay's origin allow-list are written in. docs/security.md is the
// threat model.
//
// It knows nothing of sockets or frames: Verify returns a *Error whose Kind
// says why a token was refused and whose message is written for the client;
// the relay turns it into its error frame or HTTP 401.
//
// # Concurrency
//
// A Verifier, and the Principals and Perms it returns, are safe for
// concurrent use and never changed after they are made. Verify runs on the
// caller's goroutine. With a JWKS URL, the key set is fetched on a goroutine
// of its own, one fetch at a time (for an unknown kid, at most once per
// JWKSMinInterval; and on the first use after JWKSRefresh), which ends with
// that fetch; a verification that needs the set waits for it at most 3 s,
// holding no lock. Nothing else runs in the background and there is nothing
// to stop.
package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// Defaults for Config's zero values.
const (
	DefaultLeeway          = 10 * time.Second
	DefaultTimeout         = 10 * time.Second // time a connection has to authenticate
	DefaultJWKSRefresh     = 5 * time.Minute
	DefaultJWKSMinInterval = 10 * time.Second
	maxRoomPatterns        = 256
	maxTokenBytes          = 16 << 10
)

// Config says who may connect. With no key at all and Anonymous unset,
// Validate (and so relay.New) fails: a relay never accepts anonymous clients
// by accident.
type Config struct {
	// Anonymous lets clients connect without a token, with every
	// permission and no user id. For local development.
	Anonymous bool
	// HS256Secrets verify HS256 tokens (several: key rotation).
	HS256Secrets [][]byte
	// PublicKeys verify RS256 (RSA, 2048 bits or more), ES256 (ECDSA
	// P-256) and EdDSA (Ed25519) tokens. Each key verifies only its own
	// algorithm.
	PublicKeys []crypto.PublicKey
	// JWKSURL is a JSON Web Key Set fetched on first use, refreshed when
	// older than JWKSRefresh, and refetched when a token names a kid it
	// does not have (at most once per JWKSMinInterval).
	JWKSURL         string
	JWKSClient      *http.Client // default: 10s timeout
	JWKSRefresh     time.Duration
	JWKSMinInterval time.Duration
	Issuer          string        // required iss, when set
	Audience        string        // required in aud, when set
	Leeway          time.Duration // clock skew allowed on exp and nbf (default 10s; negative: none)
	// Timeout is how long a connection without a token may take to send
	// its auth frame (default DefaultTimeout).
	Timeout time.Duration
	// APIKeys authenticate the backend HTTP API (/api/publish,
	// /api/state); none: the API is off.
	APIKeys [][]byte
}

// Validate checks the keys and fills zero values with the defaults. A relay
// calls it in relay.New; a Verifier needs a validated Config.
func (a *Config) Validate() error {
	if !a.Anonymous && len(a.HS256Secrets) == 0 && len(a.PublicKeys) == 0 && a.JWKSURL == "" {
		return errors.New("no authentication configured: give token keys (HS256 secrets, public keys or a JWKS URL), or allow anonymous clients explicitly")
	}
	if err := CheckHS256Secrets(a.HS256Secrets); err != nil {
		return err
	}
	for i, k := range a.PublicKeys {
		if err := checkPublicKey(k); err != nil {
			return fmt.Errorf("public key %d: %w", i+1, err)
		}
	}
	if err := CheckAPIKeys(a.APIKeys); err != nil {
		return err
	}
	if a.Leeway == 0 {
		a.Leeway = DefaultLeeway
	} else if a.Leeway < 0 {
		a.Leeway = 0
	}
	if a.Timeout <= 0 {
		a.Timeout = DefaultTimeout
	}
	if a.JWKSRefresh <= 0 {
		a.JWKSRefresh = DefaultJWKSRefresh
	}
	if a.JWKSMinInterval <= 0 {
		a.JWKSMinInterval = DefaultJWKSMinInterval
	}
	if a.JWKSClient == nil {
		a.JWKSClient = &http.Client{Timeout: 10 * time.Second}
	}
	return nil
}

// CheckHS256Secrets reports an HS256 secret too short to be one.
func CheckHS256Secrets(secrets [][]byte) error {
	for i, s := range secrets {
		if len(s) < 32 {
			return fmt.Errorf("HS256 secret %d is %d bytes; want at least 32", i+1, len(s))
		}
	}
	return nil
}

// CheckAPIKeys reports an API key too short to be one.
func CheckAPIKeys(keys [][]byte) error {
	for i, k := range keys {
		if len(k) < 16 {
			return fmt.Errorf("API key %d is %d bytes; want at least 16", i+1, len(k))
		}
	}
	return nil
}

func (a *Config) tokensOn() bool {
	return len(a.HS256Secrets) > 0 || len(a.PublicKeys) > 0 || a.JWKSURL != ""
}

func checkPublicKey(k crypto.PublicKey) error {
	switch k := k.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("RSA key of %d bits; want 2048 or more", k.N.BitLen())
		}
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return errors.New("ECDSA key not on P-256 (ES256)")
		}
	case ed25519.PublicKey:
	default:
		return fmt.Errorf("unsupported key type %T: want RSA, ECDSA P-256 or Ed25519", k)
	}
	return nil
}

// LoadPublicKeys reads PEM public keys (PKIX "PUBLIC KEY", "RSA PUBLIC
// KEY", or the key of a "CERTIFICATE") from files, or from every *.pem file
// of a folder.
func LoadPublicKeys(paths ...string) ([]crypto.PublicKey, error) {
	var keys []crypto.PublicKey
	for _, p := range paths {
		files := []string{p}
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			files, _ = filepath.Glob(filepath.Join(p, "*.pem"))
			if len(files) == 0 {
				return nil, fmt.Errorf("public keys: no *.pem file in %s", p)
			}
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("public keys: %w", err)
			}
			ks, err := ParsePublicKeys(b)
			if err != nil {
				return nil, fmt.Errorf("public keys: %s: %w", f, err)
			}
			keys = append(keys, ks...)
		}
	}
	return keys, nil
}

// ParsePublicKeys parses every PEM block of b as a public key.
func ParsePublicKeys(b []byte) ([]crypto.PublicKey, error) {
	var keys []crypto.PublicKey
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		var k any
		var err error
		switch blk.Type {
		case "PUBLIC KEY":
			k, err = x509.ParsePKIXPublicKey(blk.Bytes)
		case "RSA PUBLIC KEY":
			k, err = x509.ParsePKCS1PublicKey(blk.Bytes)
		case "CERTIFICATE":
			var c *x509.Certificate
			if c, err = x509.ParseCertificate(blk.Bytes); err == nil {
				k = c.PublicKey
			}
		default:
			return nil, fmt.Errorf("PEM block %q is not a public key", blk.Type)
		}
		if err != nil {
			return nil, err
		}
		if err := checkPublicKey(k); err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM public key found")
	}
	return keys, nil
}
