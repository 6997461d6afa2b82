package relay_test

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/roomlog/roomlog/relay"
	"github.com/roomlog/roomlog/relay/auth"
)

// TestSecretFilesRotate: HS256 secret and API key files are reloaded when
// they change: tokens of the new secret and the new key work at once, the
// old ones no longer; a bad file keeps the previous secrets in service.
func TestSecretFilesRotate(t *testing.T) {
	b := kfakeBackend(t)
	dir := t.TempDir()
	secretFile, keyFile := filepath.Join(dir, "hs256"), filepath.Join(dir, "api-keys")
	write := func(path, s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	oldSecret, newSecret := "old-secret-0123456789abcdef0123456789", "new-secret-0123456789abcdef0123456789"
	oldKey, newKey := "old-api-key-0123456789", "new-api-key-0123456789"
	write(secretFile, oldSecret+"\n")
	write(keyFile, "# backend keys\n"+oldKey+"\n")
	r := startRelay(t, b, newTopic(t), func(c *relay.Config) {
		quietLeases(c)
		c.Auth = auth.Config{}
		c.HS256SecretFiles, c.APIKeyFiles = []string{secretFile}, []string{keyFile}
		c.SecretReloadInterval = 20 * time.Millisecond
	})
	tok := func(secret string) string {
		return sign(t, jwt.SigningMethodHS256, []byte(secret), "", claims("alice", []string{"*"}, nil))
	}
	accepted := func(secret string) bool {
		c, _, err := dialWith(t, nil, wsURL(r)+"?token="+tok(secret), nil, false)
		if c != nil {
			c.ws.Close()
		}
		return err == nil
	}
	publish := func(key string) int {
		code, _ := apiPost(t, r, "/api/publish", key, `{"room":"news","data":1}`)
		return code
	}
	eventually := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(waitLimit); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %v", what, waitLimit)
			}
		}
	}
	if !accepted(oldSecret) || accepted(newSecret) || publish(oldKey) != 200 || publish(newKey) != 401 {
		t.Fatal("before the rotation: want the old secret and key only")
	}

	write(secretFile, newSecret)
	write(keyFile, newKey+"\n")
	eventually("the new secret accepted", func() bool { return accepted(newSecret) })
	eventually("the new API key accepted", func() bool { return publish(newKey) == 200 })
	if accepted(oldSecret) || publish(oldKey) != 401 {
		t.Fatal("after the rotation the old secret or key still works")
	}

	write(secretFile, "short")
	write(keyFile, "# nothing\n")
	if err := r.ReloadSecrets(); err == nil {
		t.Fatal("bad files reloaded without an error")
	}
	time.Sleep(100 * time.Millisecond) // a few polls, which must keep them too
	if !accepted(newSecret) || publish(newKey) != http.StatusOK {
		t.Fatal("bad files took the secrets in service away")
	}
}
