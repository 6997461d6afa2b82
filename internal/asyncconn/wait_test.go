//go:build linux

package asyncconn

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// waitWoken arms ac and returns a channel closed when its wake runs.
func waitWoken(t *testing.T, ac *Conn) <-chan struct{} {
	t.Helper()
	woke := make(chan struct{})
	if !ac.WaitRead(func() { close(woke) }) {
		t.Fatal("WaitRead on a TCP connection reported false")
	}
	return woke
}

func woken(t *testing.T, woke <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-woke:
	case <-time.After(10 * time.Second):
		t.Fatalf("no wake after %s", what)
	}
}

func notWoken(t *testing.T, woke <-chan struct{}) {
	t.Helper()
	select {
	case <-woke:
		t.Fatal("woken with nothing to read")
	case <-time.After(50 * time.Millisecond):
	}
}

func TestWaitReadWakes(t *testing.T) {
	tests := []struct {
		name string
		// cause makes the socket readable (or closes it); wantData: the
		// read that follows returns "x".
		cause    func(ac *Conn, client net.Conn)
		wantData bool
		wantErr  error // the read's error when not wantData (nil: any error)
	}{
		{"client writes", func(_ *Conn, client net.Conn) { client.Write([]byte("x")) }, true, nil},
		{"client closes", func(_ *Conn, client net.Conn) { client.Close() }, false, io.EOF},
		{"server closes", func(ac *Conn, _ net.Conn) { ac.Close() }, false, net.ErrClosed},
		{"client resets", func(_ *Conn, client net.Conn) {
			client.(*net.TCPConn).SetLinger(0)
			client.Close()
		}, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ac, client := pair(t, Config{})
			woke := waitWoken(t, ac)
			notWoken(t, woke)
			tt.cause(ac, client)
			woken(t, woke, tt.name)
			buf := make([]byte, 8)
			n, err := ac.Read(buf)
			if tt.wantData {
				if err != nil || string(buf[:n]) != "x" {
					t.Fatalf("read after the wake: %q, %v", buf[:n], err)
				}
				return
			}
			if err == nil {
				t.Fatalf("read after %s: %q, no error", tt.name, buf[:n])
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("read after %s: %v, want %v", tt.name, err, tt.wantErr)
			}
		})
	}
}

// A socket that already holds unread bytes when it is armed wakes at once:
// nothing sent before the wait is missed.
func TestWaitReadBytesAlreadyThere(t *testing.T) {
	ac, client := pair(t, Config{})
	client.Write([]byte("early"))
	time.Sleep(20 * time.Millisecond) // let the bytes reach the socket
	woken(t, waitWoken(t, ac), "bytes sent before the wait")
}

// After a close, WaitRead wakes at once, and the poller forgets the Conn.
func TestWaitReadAfterClose(t *testing.T) {
	ac, _ := pair(t, Config{})
	woke := waitWoken(t, ac)
	if ac.waitID == 0 || sharedPoller().lookup(ac.waitID) != ac {
		t.Fatal("an armed Conn is not in the poller's registry")
	}
	id := ac.waitID
	ac.Close()
	woken(t, woke, "the close")
	if sharedPoller().lookup(id) != nil {
		t.Fatal("the poller still knows the Conn after its close")
	}
	woken(t, waitWoken(t, ac), "a wait on a closed connection")
}

func TestWaitReadTwicePanics(t *testing.T) {
	ac, _ := pair(t, Config{})
	waitWoken(t, ac)
	defer func() {
		if recover() == nil {
			t.Fatal("a second WaitRead while armed did not panic")
		}
	}()
	ac.WaitRead(func() {})
}

func TestWaitReadNoSocket(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if New(a, Config{}).WaitRead(func() {}) {
		t.Fatal("WaitRead on a pipe reported true")
	}
}

// Many connections each wait, are woken and read, round after round (the
// second arming of a socket takes the other path), concurrently: every
// byte is read once, in order, and every wait wakes once.
func TestWaitReadManyRounds(t *testing.T) {
	const conns, rounds = 50, 40
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for range conns {
		ac, client := pair(t, Config{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				woke := make(chan struct{})
				var once sync.Once
				if !ac.WaitRead(func() { once.Do(func() { close(woke) }) }) {
					errs <- errors.New("WaitRead reported false")
					return
				}
				if _, err := client.Write([]byte{byte(r)}); err != nil {
					errs <- err
					return
				}
				select {
				case <-woke:
				case <-time.After(10 * time.Second):
					errs <- errors.New("no wake")
					return
				}
				b := make([]byte, 1)
				if _, err := io.ReadFull(ac, b); err != nil || b[0] != byte(r) {
					errs <- errors.New("wrong byte after the wake")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
