package embedded

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// TestStorageErrorsAreErrors: kfake reports a data folder it cannot write
// (ENOSPC) as a warning, and answers the produce with UNKNOWN_SERVER_ERROR;
// the operator of a relay on a full disk saw only the latter (testenv/faulttest
// TestEmbeddedBrokerDiskFull). Such warnings are logged as errors naming the
// folder, at most one per storageErrorEvery; other warnings stay debug.
func TestStorageErrorsAreErrors(t *testing.T) {
	var out bytes.Buffer
	k := &kfakeLogger{l: slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo})), dataDir: "/data"}
	t0 := time.Unix(1_800_000_000, 0)
	steps := []struct {
		at   time.Duration
		want string // substring of the new output; "" for none
	}{
		{0, `level=ERROR msg="embedded broker: cannot write to its data folder`},
		{time.Second, ""},
		{2 * time.Second, ""},
		{storageErrorEvery, "similar_since_last=2"},
	}
	for i, s := range steps {
		out.Reset()
		k.storageError("persist batch t-0: write /data/x: no space left on device", t0.Add(s.at))
		got := out.String()
		if s.want == "" {
			if got != "" {
				t.Fatalf("step %d: logged %q within %s of the last", i, got, storageErrorEvery)
			}
			continue
		}
		if !strings.Contains(got, s.want) || !strings.Contains(got, "no space left on device") || !strings.Contains(got, "data_dir=/data") {
			t.Fatalf("step %d: logged %q, want %q with the cause and the folder", i, got, s.want)
		}
	}

	out.Reset()
	k.Logf(kfake.LogLevelWarn, "persist batch %s-%d: %v", "t", 0, "no space left on device")
	if got := out.String(); got != "" {
		t.Fatalf("a storage warning within the rate limit was logged: %q", got)
	}
	k.Logf(kfake.LogLevelWarn, "some %s", "chatter")
	if got := out.String(); got != "" {
		t.Fatalf("a warning other than storage was logged above debug: %q", got)
	}
}
