package tlsconf

import (
	"strings"
	"testing"
)

// The ACME and static-file paths are tested with real relays and a real ACME
// server in relay/tls_test.go; these are the checks that need neither.

func TestNewRefusesBadConfigs(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"nothing", Config{}, "no domains and no certificate file"},
		{"both", Config{Domains: []string{"relay.example.com"}, CertFile: "c.pem", KeyFile: "k.pem"}, "not both"},
		{"cert without key", Config{CertFile: "c.pem"}, "both the certificate and the key file"},
		{"not public", Config{Domains: []string{"localhost"}}, "cannot have a public certificate"},
		{"missing files", Config{CertFile: "/nonexistent/c.pem", KeyFile: "/nonexistent/k.pem"}, "loading"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestRedirectable(t *testing.T) {
	acme := &Manager{cfg: Config{Domains: []string{"relay.example.com"}}}
	static := &Manager{cfg: Config{CertFile: "c.pem", KeyFile: "k.pem"}}
	for _, tt := range []struct {
		m    *Manager
		host string
		want bool
	}{
		{acme, "relay.example.com", true},
		{acme, "RELAY.example.com", true},
		{acme, "evil.example", false},
		{static, "anything.example", true},
		{static, "", false},
	} {
		if got := tt.m.redirectable(tt.host); got != tt.want {
			t.Errorf("redirectable(%q) with domains %v = %v, want %v", tt.host, tt.m.cfg.Domains, got, tt.want)
		}
	}
}
