package relay

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/roomlog/roomlog/record"
)

// Authentication: JSON Web Tokens on connect or in an auth frame
// (docs/security.md, docs/protocol.md). A token names its user (sub) and the
// rooms it may use (the "rooms" claim).

// Defaults for AuthConfig's zero values.
const (
	DefaultAuthLeeway      = 10 * time.Second
	DefaultJWKSRefresh     = time.Hour
	DefaultJWKSMinInterval = 10 * time.Second
	maxRoomPatterns        = 256
	maxTokenBytes          = 16 << 10
)

// AuthConfig says who may connect. With no key at all and Anonymous unset,
// New fails: a relay never accepts anonymous clients by accident.
type AuthConfig struct {
	// Anonymous lets clients connect without a token, with every
	// permission and no user id. For local development.
	Anonymous bool
	// HS256Secrets verify HS256 tokens (several: key rotation).
	HS256Secrets [][]byte
	// PublicKeys verify RS256 (RSA, 2048 bits or more), ES256 (ECDSA
	// P-256) and EdDSA (Ed25519) tokens. Each key verifies only its own
	// algorithm.
	PublicKeys []crypto.PublicKey
	// JWKSURL is a JSON Web Key Set fetched at start, every JWKSRefresh,
	// and when a token names a kid it does not have (at most once per
	// JWKSMinInterval).
	JWKSURL         string
	JWKSClient      *http.Client // default: 10s timeout
	JWKSRefresh     time.Duration
	JWKSMinInterval time.Duration
	Issuer          string        // required iss, when set
	Audience        string        // required in aud, when set
	Leeway          time.Duration // clock skew allowed on exp and nbf (default 10s; negative: none)
	// Timeout is how long a connection without a token may take to send
	// its auth frame (default DefaultAuthTimeout).
	Timeout time.Duration
	// APIKeys authenticate the backend HTTP API (/api/publish,
	// /api/state); none: the API is off.
	APIKeys [][]byte
}

func (a *AuthConfig) setDefaults() error {
	if !a.Anonymous && len(a.HS256Secrets) == 0 && len(a.PublicKeys) == 0 && a.JWKSURL == "" {
		return errors.New("relay: no authentication configured: give token keys (HS256 secrets, public keys or a JWKS URL), or allow anonymous clients explicitly")
	}
	for i, s := range a.HS256Secrets {
		if len(s) < 32 {
			return fmt.Errorf("relay: HS256 secret %d is %d bytes; want at least 32", i+1, len(s))
		}
	}
	for i, k := range a.PublicKeys {
		if err := checkPublicKey(k); err != nil {
			return fmt.Errorf("relay: public key %d: %w", i+1, err)
		}
	}
	for i, k := range a.APIKeys {
		if len(k) < 16 {
			return fmt.Errorf("relay: API key %d is %d bytes; want at least 16", i+1, len(k))
		}
	}
	if a.Leeway == 0 {
		a.Leeway = DefaultAuthLeeway
	} else if a.Leeway < 0 {
		a.Leeway = 0
	}
	if a.Timeout <= 0 {
		a.Timeout = DefaultAuthTimeout
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

func (a *AuthConfig) tokensOn() bool {
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

// principal is an authenticated client: its user id, permissions and the
// expiry of its token.
type principal struct {
	user      string
	exp       time.Time // zero: never (anonymous)
	perms     perms
	anonymous bool
}

// perms are the room patterns a token allows per kind of op.
type perms struct {
	all                             bool // anonymous: everything
	join, publish, presence, stateW []string
}

// Permission kinds, as named in the rooms claim.
const (
	permJoin     = "join"
	permPublish  = "publish"
	permPresence = "presence"
	permState    = "state"
)

func (p *perms) allows(kind, room string) bool {
	if p.all {
		return true
	}
	var pats []string
	switch kind {
	case permJoin:
		pats = p.join
	case permPublish:
		pats = p.publish
	case permPresence:
		pats = p.presence
	case permState:
		pats = p.stateW
	}
	for _, pat := range pats {
		if globMatch(pat, room) {
			return true
		}
	}
	return false
}

// tokenClaims are the claims roomlog reads.
type tokenClaims struct {
	jwt.RegisteredClaims
	Rooms json.RawMessage `json:"rooms"`
}

// parseRooms reads the rooms claim: a list of patterns (every permission),
// or an object {"join":[...],"publish":[...],"presence":[...],"state":[...]}.
// Absent: no room at all.
func parseRooms(raw json.RawMessage) (perms, error) {
	var p perms
	if len(raw) == 0 || string(raw) == "null" {
		return p, nil
	}
	check := func(l []string) error {
		if len(l) > maxRoomPatterns {
			return fmt.Errorf("more than %d patterns", maxRoomPatterns)
		}
		for _, s := range l {
			if s == "" || len(s) > record.MaxRoomBytes {
				return fmt.Errorf("pattern %q: want 1 to %d bytes", truncate(s, 32), record.MaxRoomBytes)
			}
		}
		return nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err == nil {
		if err := check(list); err != nil {
			return p, err
		}
		p.join, p.publish, p.presence, p.stateW = list, list, list, list
		return p, nil
	}
	var obj struct {
		Join     []string `json:"join"`
		Publish  []string `json:"publish"`
		Presence []string `json:"presence"`
		State    []string `json:"state"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return p, errors.New("want a list of room patterns or an object of join, publish, presence and state lists")
	}
	for _, l := range [][]string{obj.Join, obj.Publish, obj.Presence, obj.State} {
		if err := check(l); err != nil {
			return p, err
		}
	}
	p.join, p.publish, p.presence, p.stateW = obj.Join, obj.Publish, obj.Presence, obj.State
	return p, nil
}

// verifier checks tokens against the configured keys.
type verifier struct {
	cfg    *AuthConfig
	parser *jwt.Parser
	jwks   *jwks // nil without a JWKS URL
}

func newVerifier(cfg *AuthConfig) *verifier {
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
	v := &verifier{cfg: cfg, parser: jwt.NewParser(opts...)}
	if cfg.JWKSURL != "" {
		v.jwks = newJWKS(cfg)
	}
	return v
}

// keyFor returns the keys that may verify t: only keys of the token's own
// algorithm, so an RSA public key can never serve as an HS256 secret.
func (v *verifier) keyFor(t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	kid, _ := t.Header["kid"].(string)
	var keys []jwt.VerificationKey
	if alg == "HS256" {
		for _, s := range v.cfg.HS256Secrets {
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
			return nil, fmt.Errorf("no %s key with kid %q", alg, truncate(kid, 64))
		}
		return nil, fmt.Errorf("no key for %s tokens", alg)
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

// verify checks a token and returns who it authenticates. The error's
// message says why a token was refused, for the client.
func (v *verifier) verify(tok string) (*principal, *frameError) {
	if !v.cfg.tokensOn() {
		return nil, errorf(CodeUnauthorized, "this relay accepts no tokens")
	}
	if len(tok) > maxTokenBytes {
		return nil, errorf(CodeUnauthorized, "token is over %d bytes", maxTokenBytes)
	}
	var c tokenClaims
	if _, err := v.parser.ParseWithClaims(tok, &c, v.keyFor); err != nil {
		return nil, errorf(CodeUnauthorized, "invalid token: %s", tokenErr(err))
	}
	if err := record.ValidName(c.Subject, record.MaxUserBytes); err != nil {
		return nil, errorf(CodeUnauthorized, "invalid token: sub %v", err)
	}
	p, err := parseRooms(c.Rooms)
	if err != nil {
		return nil, errorf(CodeUnauthorized, "invalid token: rooms claim: %v", err)
	}
	return &principal{user: c.Subject, exp: c.ExpiresAt.Time, perms: p}, nil
}

// tokenErr is a short reason for a refused token.
func tokenErr(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token is expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token is not valid yet (nbf)"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "a required claim (exp) is missing"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong audience"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "bad signature"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return truncate(strings.TrimPrefix(err.Error(), "token is unverifiable: "), 200)
	}
	return truncate(err.Error(), 200)
}

func anonymousPrincipal() *principal {
	return &principal{anonymous: true, perms: perms{all: true}}
}
