package faulttest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/roomlog/roomlog/testenv/internal/traffic"
)

// smallFS mounts a tmpfs of size bytes for the test, or skips (fails with
// ROOMLOG_REQUIRE_TMPFS=1) where mounting is not permitted.
func smallFS(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		if os.Getenv("ROOMLOG_REQUIRE_TMPFS") == "1" {
			t.Fatalf("mounting a %d-byte tmpfs: %v", size, err)
		}
		t.Skipf("cannot mount a tmpfs here (%v): run as root, or in a namespace that may mount", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fill writes a file in dir until the filesystem is full (ENOSPC).
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatalf("filling %s: %v", dir, err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			t.Fatalf("filling %s: %v", dir, err)
		}
	}
	// Smaller writes take what the big ones left.
	for _, err := f.Write(buf[:512]); err == nil; _, err = f.Write(buf[:512]) {
	}
	var st syscall.Statfs_t
	_ = syscall.Statfs(dir, &st)
	t.Logf("filled %s: %d bytes free", dir, st.Bavail*uint64(st.Bsize))
	return path
}

// TestEmbeddedBrokerDiskFull: the embedded broker's data folder is on a
// small filesystem that fills up under publish load. Publishes are refused
// with log_unavailable (the relay's log names the cause), nothing
// acknowledged is lost, and the relay serves again once space returns; a
// restart on the same folder still holds every acknowledged message.
func TestEmbeddedBrokerDiskFull(t *testing.T) {
	fs := smallFS(t, 16<<20)
	data := filepath.Join(fs, "data")
	args := []string{"--data-dir", data, "--partitions", "2", "--produce-timeout", "3s", "--snapshot-interval", "-1s"}
	r := startRelay(t, "relay-disk", args...)
	room := "fault-disk"
	l := startLoad(t, room, []*relayProc{r}, 2, 3, 20)
	l.waitAcked(t, 20, 30*time.Second)

	filler := fill(t, fs)
	// In-flight publishes settle; after that the full disk refuses all.
	time.Sleep(4 * time.Second)
	frozen, refused := l.acked(), l.logUnavailable()
	time.Sleep(5 * time.Second)
	if got := l.acked(); got != frozen {
		t.Errorf("%d publishes acknowledged while the data folder's filesystem was full", got-frozen)
	}
	if l.logUnavailable() == refused {
		t.Errorf("no publish was refused with log_unavailable while the disk was full")
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	t.Logf("space is back")
	l.waitAcked(t, l.acked(), 60*time.Second)
	time.Sleep(2 * time.Second)
	since := l.subs[0].FirstPos()
	res := l.finish(t, 60*time.Second)
	if res.Publish.LogUnavailable == 0 {
		t.Errorf("publishers saw no log_unavailable")
	}
	if !r.running() {
		t.Fatalf("the relay exited on a full disk")
	}
	logText := r.logText(t)
	if !strings.Contains(logText, "no space left on device") {
		t.Errorf("the relay's log does not name the cause (no space left on device)")
	}

	// The folder holds every acknowledged message: a restarted relay
	// replays it to a subscriber resuming from before the first publish.
	r.stop()
	r2 := startRelay(t, "relay-disk", args...)
	check := traffic.NewSubscriber("sub-after-restart", room, traffic.NewDialer([]string{r2.url()}))
	check.Since = since
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); check.Run(ctx) }()
	defer func() { cancel(); wg.Wait() }()
	want := traffic.Want(l.pubs)
	for deadline := time.Now().Add(60 * time.Second); traffic.Missing([]*traffic.Subscriber{check}, want) > 0 && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	cancel()
	wg.Wait()
	after := traffic.Check(l.pubs, []*traffic.Subscriber{check}, want)
	if !after.OK {
		var b strings.Builder
		after.PrintTable(&b)
		t.Errorf("after a restart on the same data folder:\n%s", b.String())
	}
}
