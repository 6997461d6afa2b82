package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/golang-jwt/jwt/v5"

	"github.com/roomlog/roomlog/internal/trunc"
	"github.com/roomlog/roomlog/record"
)

// Kind says why a token was refused.
type Kind int

// The kinds of refusal.
const (
	KindNoTokens     Kind = iota + 1 // the relay is configured with no token key
	KindTooLarge                     // over 16 KiB
	KindMalformed                    // not a JWS of three base64 parts with JSON in them
	KindAlgorithm                    // no alg, or one golang-jwt does not know
	KindUnknownKey                   // no configured or published key for the token's algorithm (and kid)
	KindBadSignature                 // no key verifies the signature, or alg is not HS256, RS256, ES256 or EdDSA (none included)
	KindExpired                      // exp passed (beyond the leeway)
	KindNotYetValid                  // nbf in the future
	KindClaims                       // exp missing, wrong iss or aud, a bad sub or rooms claim
)

// Error is a refused token. Its message is meant for the client; Unwrap
// gives golang-jwt's error when there is one.
type Error struct {
	Kind Kind
	msg  string
	err  error
}

func (e *Error) Error() string { return e.msg }
func (e *Error) Unwrap() error { return e.err }

func refuse(k Kind, err error, format string, args ...any) *Error {
	return &Error{Kind: k, msg: fmt.Sprintf(format, args...), err: err}
}

// BearerToken returns the credential of an Authorization header of the
// Bearer scheme ("Bearer <token>", scheme case-insensitive), or false when
// the header is of another scheme or carries nothing.
func BearerToken(header string) (string, bool) {
	const scheme = "bearer "
	if len(header) <= len(scheme) || !strings.EqualFold(header[:len(scheme)], scheme) {
		return "", false
	}
	tok := strings.TrimSpace(header[len(scheme):])
	return tok, tok != ""
}

// tokenClaims are the claims roomlog reads.
type tokenClaims struct {
	jwt.RegisteredClaims
	Rooms json.RawMessage `json:"rooms"`
}

// Verifier checks tokens against the configured keys.
type Verifier struct {
	cfg    *Config
	parser *jwt.Parser
	jwks   *jwks                    // nil without a JWKS URL
	hs     atomic.Pointer[[][]byte] // HS256 secrets in service (SetHS256Secrets)
}

// SetHS256Secrets replaces the HS256 secrets (a rotated secret file): tokens
// signed with the new ones verify at once, with the old ones no longer. An
// invalid set is refused and the previous one stays.
func (v *Verifier) SetHS256Secrets(secrets [][]byte) error {
	if err := CheckHS256Secrets(secrets); err != nil {
		return err
	}
	s := append([][]byte(nil), secrets...)
	v.hs.Store(&s)
	return nil
}

// NewVerifier returns a verifier of tokens for cfg, which Validate has
// filled. log receives the JWKS fetch failures (nil: slog.Default()).
func NewVerifier(cfg *Config, log *slog.Logger) *Verifier {
	if log == nil {
		log = slog.Default()
	}
	opts := []jwt.ParserOption{
		// alg "none" and every other algorithm are refused before any key
		// is looked at.
		jwt.WithValidMethods([]string{"HS256", "RS256", "ES256", "EdDSA"}),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithExpirationRequired(),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v := &Verifier{cfg: cfg, parser: jwt.NewParser(opts...)}
	hs := cfg.HS256Secrets
	v.hs.Store(&hs)
	if cfg.JWKSURL != "" {
		v.jwks = newJWKS(cfg, log)
	}
	return v
}

// Verify checks a token and returns who it authenticates. A refusal is a
// *Error.
func (v *Verifier) Verify(tok string) (*Principal, error) {
	if !v.cfg.tokensOn() {
		return nil, refuse(KindNoTokens, nil, "this relay accepts no tokens")
	}
	if len(tok) > maxTokenBytes {
		return nil, refuse(KindTooLarge, nil, "token is over %d bytes", maxTokenBytes)
	}
	var c tokenClaims
	if _, err := v.parser.ParseWithClaims(tok, &c, v.keyFor); err != nil {
		k, reason := v.tokenErr(err, &c)
		return nil, refuse(k, err, "invalid token: %s", reason)
	}
	if err := record.ValidName(c.Subject, record.MaxUserBytes); err != nil {
		return nil, refuse(KindClaims, nil, "invalid token: sub %v", err)
	}
	if c.ID != "" {
		if err := record.ValidName(c.ID, record.MaxJTIBytes); err != nil {
			return nil, refuse(KindClaims, nil, "invalid token: jti %v", err)
		}
	}
	p, err := ParseRooms(c.Rooms)
	if err != nil {
		return nil, refuse(KindClaims, nil, "invalid token: rooms claim: %v", err)
	}
	pr := &Principal{User: c.Subject, Exp: c.ExpiresAt.Time, Perms: p, JTI: c.ID}
	if c.IssuedAt != nil {
		pr.IssuedAt = c.IssuedAt.Time
	}
	return pr, nil
}

// missingClaim names the required claim c lacks. The claims are decoded
// before they are validated, so c holds what the token carries.
func (v *Verifier) missingClaim(c *tokenClaims) string {
	switch {
	case c.ExpiresAt == nil:
		return "exp"
	case v.cfg.Issuer != "" && c.Issuer == "":
		return "iss"
	case v.cfg.Audience != "" && len(c.Audience) == 0:
		return "aud"
	}
	return "exp, iss or aud"
}

// noKeyError is keyFor's refusal: no key of the token's algorithm (and kid).
type noKeyError struct{ msg string }

func (e *noKeyError) Error() string { return e.msg }

// keyFor returns the keys that may verify t: only keys of the token's own
// algorithm, so an RSA public key can never serve as an HS256 secret.
func (v *Verifier) keyFor(t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	kid, _ := t.Header["kid"].(string)
	var keys []jwt.VerificationKey
	if alg == "HS256" {
		for _, s := range *v.hs.Load() {
			keys = append(keys, s)
		}
	} else {
		for _, k := range v.cfg.PublicKeys {
			if keyAlg(k) == alg {
				keys = append(keys, k)
			}
		}
		if v.jwks != nil {
			keys = append(keys, v.jwks.keys(kid, alg)...)
		}
	}
	if len(keys) == 0 {
		if kid != "" {
			return nil, &noKeyError{fmt.Sprintf("no %s key with kid %q", alg, trunc.String(kid, 64))}
		}
		return nil, &noKeyError{fmt.Sprintf("no key for %s tokens", alg)}
	}
	return jwt.VerificationKeySet{Keys: keys}, nil
}

// keyAlg is the one JWS algorithm a public key verifies.
func keyAlg(k crypto.PublicKey) string {
	switch k := k.(type) {
	case *rsa.PublicKey:
		return "RS256"
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return "ES256"
		}
	case ed25519.PublicKey:
		return "EdDSA"
	}
	return ""
}

// tokenErr classifies golang-jwt's refusal, with a short reason for the
// client.
func (v *Verifier) tokenErr(err error, c *tokenClaims) (Kind, string) {
	var nk *noKeyError
	switch {
	case errors.As(err, &nk):
		return KindUnknownKey, nk.msg
	case errors.Is(err, jwt.ErrTokenExpired):
		return KindExpired, "token is expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return KindNotYetValid, "token is not valid yet (nbf)"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return KindClaims, "a required claim (" + v.missingClaim(c) + ") is missing"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return KindClaims, "wrong issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return KindClaims, "wrong audience"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return KindBadSignature, "bad signature"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return KindMalformed, "malformed token"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return KindAlgorithm, "unknown or missing signing algorithm (alg)"
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		return KindClaims, trunc.String(err.Error(), 200)
	}
	return KindMalformed, trunc.String(err.Error(), 200)
}
