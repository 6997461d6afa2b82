package relay

import (
	"context"
	"errors"

	"github.com/roomlog/roomlog/internal/secretfile"
	"github.com/roomlog/roomlog/relay/auth"
)

// Secrets from files, rotated without a restart (docs/security.md): the
// HS256 secret files (Config.HS256SecretFiles, one secret per file) and the
// backend API key files (Config.APIKeyFiles, one key per line) are loaded
// at New and reloaded when they change (checked every
// Config.SecretReloadInterval) or on ReloadSecrets (cmd/roomlog: SIGHUP). A
// new set is in service at once: tokens signed with a new secret verify,
// tokens with a removed one are refused. A set that fails to load keeps the
// previous one and is logged as an error.
//
// There is no timed grace period for the old secret: to rotate without
// refusing tokens already issued, give two files (the current secret and
// the previous one), write the new secret into one and keep the old in the
// other until the old tokens have expired.

// secretFiles are the relay's watched secret files.
type secretFiles struct {
	hs, api             *secretfile.Watcher // nil when not configured
	hsStatic, apiStatic [][]byte            // given directly in the Config, kept across reloads
}

// loadSecretFiles reads the configured files into cfg.Auth (before it is
// validated) and returns their watchers. onHS and onAPI are called with
// each reloaded set (the Config's own secrets first); reloads happen only
// once the Server exists (Start, ReloadSecrets).
func loadSecretFiles(cfg *Config, onHS, onAPI func(keys [][]byte)) (*secretFiles, error) {
	sf := &secretFiles{hsStatic: cfg.Auth.HS256Secrets, apiStatic: cfg.Auth.APIKeys}
	var err error
	if len(cfg.HS256SecretFiles) > 0 {
		sf.hs, err = secretfile.New(secretfile.Config{
			Name: "jwt-hs256-secret-file", Files: cfg.HS256SecretFiles, Parse: secretfile.Whole,
			Check: auth.CheckHS256Secrets, Interval: cfg.SecretReloadInterval, Logger: cfg.Logger,
			OnReload: func(keys [][]byte) { onHS(append(append([][]byte(nil), sf.hsStatic...), keys...)) },
		})
		if err != nil {
			return nil, err
		}
		cfg.Auth.HS256Secrets = append(append([][]byte(nil), sf.hsStatic...), sf.hs.Keys()...)
	}
	if len(cfg.APIKeyFiles) > 0 {
		sf.api, err = secretfile.New(secretfile.Config{
			Name: "api-key-file", Files: cfg.APIKeyFiles, Parse: secretfile.Lines,
			Check: auth.CheckAPIKeys, Interval: cfg.SecretReloadInterval, Logger: cfg.Logger,
			OnReload: func(keys [][]byte) { onAPI(append(append([][]byte(nil), sf.apiStatic...), keys...)) },
		})
		if err != nil {
			return nil, err
		}
		cfg.Auth.APIKeys = append(append([][]byte(nil), sf.apiStatic...), sf.api.Keys()...)
	}
	return sf, nil
}

func (sf *secretFiles) watchers() []*secretfile.Watcher {
	var ws []*secretfile.Watcher
	for _, w := range []*secretfile.Watcher{sf.hs, sf.api} {
		if w != nil {
			ws = append(ws, w)
		}
	}
	return ws
}

func (sf *secretFiles) start(ctx context.Context) {
	for _, w := range sf.watchers() {
		w.Start(ctx)
	}
}

func (sf *secretFiles) stop() {
	for _, w := range sf.watchers() {
		w.Stop()
	}
}

// ReloadSecrets reads the secret files now (cmd/roomlog calls it on SIGHUP).
// A file that fails to load keeps its previous secrets in service; the
// error says why.
func (s *Server) ReloadSecrets() error {
	var errs []error
	for _, w := range s.secrets.watchers() {
		errs = append(errs, w.Reload())
	}
	return errors.Join(errs...)
}

// setAPIKeys puts a reloaded set of API keys in service.
func (s *Server) setAPIKeys(keys [][]byte) {
	s.sec.apiKeys.Store(&keys)
}
