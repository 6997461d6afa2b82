package secretfile

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func keysOf(w *Watcher) string {
	var out []string
	for _, k := range w.Keys() {
		out = append(out, string(k))
	}
	return strings.Join(out, ",")
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func minLen(n int) func([][]byte) error {
	return func(keys [][]byte) error {
		for _, k := range keys {
			if len(k) < n {
				return errors.New("too short")
			}
		}
		return nil
	}
}

// TestWatcherReloads: a changed file is taken on the next poll; a file that
// does not load or check keeps the previous set (Reload says why); the
// next good change is taken again.
func TestWatcherReloads(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	write(t, a, "secret-one\n")
	write(t, b, "# keys\nkey-two\n\nkey-three\n")
	reloaded := make(chan string, 10)
	w, err := New(Config{Name: "test", Files: []string{a, b}, Check: minLen(6), Interval: 10 * time.Millisecond, Logger: quiet,
		Parse: func(p string, data []byte) ([][]byte, error) {
			if p == a {
				return Whole(p, data)
			}
			return Lines(p, data)
		},
		OnReload: func(keys [][]byte) { reloaded <- string(keys[0]) }})
	if err != nil {
		t.Fatal(err)
	}
	if got := keysOf(w); got != "secret-one,key-two,key-three" {
		t.Fatalf("loaded %q", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w.Start(ctx)
	defer w.Stop()

	write(t, a, "  secret-two  ")
	select {
	case got := <-reloaded:
		if got != "secret-two" {
			t.Fatalf("reloaded %q", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a changed file was not reloaded")
	}
	for _, bad := range []struct{ file, content string }{{a, ""}, {a, "short"}, {b, "# only a comment\n"}} {
		write(t, bad.file, bad.content)
		if err := w.Reload(); err == nil {
			t.Fatalf("%q loaded", bad.content)
		}
		if got := keysOf(w); got != "secret-two,key-two,key-three" {
			t.Fatalf("after a bad file %q: %q, want the previous set", bad.content, got)
		}
	}
	write(t, b, "key-four\n")
	write(t, a, "secret-three")
	if err := w.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := keysOf(w); got != "secret-three,key-four" {
		t.Fatalf("after a good change: %q", got)
	}
	if err := os.Remove(a); err != nil {
		t.Fatal(err)
	}
	if err := w.Reload(); err == nil || keysOf(w) != "secret-three,key-four" {
		t.Fatalf("a removed file: %v, keys %q", err, keysOf(w))
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	write(t, empty, "\n")
	for _, tt := range []struct {
		name string
		cfg  Config
	}{
		{"no files", Config{Parse: Whole}},
		{"no parser", Config{Files: []string{empty}}},
		{"missing file", Config{Files: []string{filepath.Join(dir, "none")}, Parse: Whole}},
		{"empty file", Config{Files: []string{empty}, Parse: Whole}},
		{"no key lines", Config{Files: []string{empty}, Parse: Lines}},
	} {
		if _, err := New(tt.cfg); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
}
