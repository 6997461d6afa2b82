// Package socketiotest finds Node and the pinned socket.io-client of this
// folder for the Go tests that drive it (internal/socketio's interop test,
// the relay's Socket.IO tests).
package socketiotest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/roomlog/roomlog/testenv/kafkatest"
)

// Script returns the node binary and the absolute path of script (a file of
// this folder). When Node or node_modules is missing it skips the test, or
// fails it when CI asked for every test to run (testenv/test.sh sets
// ROOMLOG_REQUIRE_KAFKA=1).
func Script(t testing.TB, script string) (node, path string) {
	t.Helper()
	missing := func(what string) {
		msg := what + ": run testenv/setup.sh (or npm ci in testenv/socketio)"
		if kafkatest.Required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("socketiotest: cannot locate its folder")
	}
	dir := filepath.Dir(self)
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not installed")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "socket.io-client", "package.json")); err != nil {
		missing("socket.io-client is not installed in " + dir)
	}
	return node, filepath.Join(dir, script)
}
