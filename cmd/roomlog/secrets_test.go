package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
)

// TestSIGHUPReloadsSecrets: `roomlog relay` reloads its HS256 secret file and
// API key file on SIGHUP (polling is set to an hour here, so only the
// signal can do it), keeps running, and keeps the previous secret when the
// new file is bad.
func TestSIGHUPReloadsSecrets(t *testing.T) {
	dir := t.TempDir()
	secretFile, keyFile := filepath.Join(dir, "hs256"), filepath.Join(dir, "keys")
	write := func(path, s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	oldSecret, newSecret := "old-secret-0123456789abcdef0123456789", "new-secret-0123456789abcdef0123456789"
	write(secretFile, oldSecret)
	write(keyFile, "old-api-key-0123456789\n")
	addr := freePort(t)
	cmd := startProc(t, addr, []string{"ROOMLOG_ANONYMOUS=false", "ROOMLOG_DATA_DIR=" + t.TempDir()}, "relay", "--listen", addr,
		"--jwt-hs256-secret-file", secretFile, "--api-key-file", keyFile, "--secret-reload-interval", "1h")
	accepted := func(secret string) bool {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "u", "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			ws, resp, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws?token="+tok, nil)
			if err == nil {
				ws.Close()
				return true
			}
			if resp == nil || resp.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
				return false // refused (401), not still replaying (503)
			}
		}
	}
	apiStatus := func(key string) int {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/api/publish", strings.NewReader(`{"room":"r","data":1}`))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	hup := func() {
		t.Helper()
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	eventually := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 30s", what)
			}
		}
	}
	if !accepted(oldSecret) || apiStatus("old-api-key-0123456789") != http.StatusOK {
		t.Fatal("the configured secret or key is refused")
	}

	write(secretFile, "too short")
	hup()
	time.Sleep(200 * time.Millisecond) // the signal is handled asynchronously
	if !accepted(oldSecret) {
		t.Fatal("a bad secret file replaced the secret in service")
	}

	write(secretFile, newSecret)
	write(keyFile, "new-api-key-0123456789\n")
	if accepted(newSecret) {
		t.Fatal("the new secret works before SIGHUP with polling off")
	}
	hup()
	eventually("the new secret after SIGHUP", func() bool { return accepted(newSecret) })
	eventually("the new API key after SIGHUP", func() bool { return apiStatus("new-api-key-0123456789") == http.StatusOK })
	if accepted(oldSecret) || apiStatus("old-api-key-0123456789") != http.StatusUnauthorized {
		t.Fatal("the old secret or key still works after the reload")
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("relay exit after SIGHUPs: %v", err)
	}
}
