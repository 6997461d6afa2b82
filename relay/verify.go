package relay

import (
	"errors"
	"log/slog"

	"github.com/roomlog/roomlog/relay/auth"
)

// verifier is the relay's side of auth.Verifier: a refused token becomes an
// unauthorized error frame (or, before the upgrade, HTTP 401).
type verifier struct{ v *auth.Verifier }

func newVerifier(cfg *auth.Config, log *slog.Logger) *verifier {
	return &verifier{auth.NewVerifier(cfg, log)}
}

// verify checks a token and returns who it authenticates, or the error
// frame that tells the client why not.
func (v *verifier) verify(tok string) (*auth.Principal, *frameError) {
	p, err := v.v.Verify(tok)
	if err != nil {
		return nil, tokenError(err)
	}
	return p, nil
}

// tokenError maps a refusal of the auth package to an error frame. Every
// kind is CodeUnauthorized; the auth package writes the message for the
// client.
func tokenError(err error) *frameError {
	var ae *auth.Error
	if errors.As(err, &ae) {
		return errorf(CodeUnauthorized, "%s", ae.Error())
	}
	return errorf(CodeUnauthorized, "invalid token")
}
