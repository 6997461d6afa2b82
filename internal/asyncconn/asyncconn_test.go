package asyncconn

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"
)

// pair returns an enabled Conn (the server side, as the relay's listener
// wraps it) and the client's end, over real TCP on loopback.
func pair(t *testing.T, cfg Config) (*Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	l := &Listener{Listener: ln, Config: cfg}
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() { c, err := l.Accept(); ch <- res{c, err} }()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	ac := r.c.(*Conn)
	if !Enable(ac) {
		t.Fatal("Enable on a TCP connection reported false")
	}
	t.Cleanup(func() { ac.Close(); client.Close() })
	return ac, client
}

// chunk is the i-th test write: its index and filler, recognisable in the
// stream.
func chunk(i, size int) []byte {
	b := bytes.Repeat([]byte{byte('a' + i%26)}, size)
	copy(b, fmt.Sprintf("<%d>", i))
	return b
}

func TestWritesArriveInOrder(t *testing.T) {
	tests := []struct {
		name  string
		n     int
		size  int
		cork  bool
		delay bool // the client starts reading only after every Write
	}{
		{"small, read along", 200, 100, false, false},
		{"small, corked", 200, 100, true, false},
		{"large, client reads late", 512, 64 << 10, false, true},
		{"large, corked, client reads late", 512, 64 << 10, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ac, client := pair(t, Config{MaxPending: 64 << 20})
			var want bytes.Buffer
			for i := range tc.n {
				want.Write(chunk(i, tc.size))
			}
			got := make(chan []byte, 1)
			start := make(chan struct{})
			go func() {
				<-start
				b, _ := io.ReadAll(client)
				got <- b
			}()
			if !tc.delay {
				close(start)
			}
			for i := range tc.n {
				if tc.cork && i%10 == 0 {
					ac.Cork()
				}
				done := make(chan error, 1)
				go func() {
					_, err := ac.Write(chunk(i, tc.size))
					done <- err
				}()
				select {
				case err := <-done:
					if err != nil {
						t.Fatalf("write %d: %v", i, err)
					}
				case <-time.After(10 * time.Second): // a hang guard: Write must never wait for the client
					t.Fatalf("write %d blocked", i)
				}
				if tc.cork && (i%10 == 9 || i == tc.n-1) {
					ac.Uncork()
				}
			}
			if tc.delay {
				if ac.Pending() == 0 {
					t.Fatal("a client that reads nothing took 32 MiB: nothing is pending")
				}
				close(start)
			}
			if err := ac.Close(); err != nil {
				t.Fatal(err)
			}
			b := <-got
			if !bytes.Equal(b, want.Bytes()) {
				t.Fatalf("the client got %d bytes, want %d in order", len(b), want.Len())
			}
		})
	}
}

func TestConcurrentWritesStayWhole(t *testing.T) {
	ac, client := pair(t, Config{MaxPending: 64 << 20})
	const writers, each, size = 8, 200, 700
	got := make(chan []byte, 1)
	go func() { b, _ := io.ReadAll(client); got <- b }()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := ac.Write(chunk(w, size)); err != nil {
					t.Errorf("writer %d, write %d: %v", w, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	ac.Close()
	b := <-got
	if len(b) != writers*each*size {
		t.Fatalf("got %d bytes, want %d", len(b), writers*each*size)
	}
	count := make(map[string]int)
	for off := 0; off < len(b); off += size {
		c := b[off : off+size]
		w := int(c[len(c)-1] - 'a')
		if !bytes.Equal(c, chunk(w, size)) {
			t.Fatalf("bytes at %d are not one whole write: %q", off, c[:16])
		}
		count[string(c[:4])]++
	}
	for w := range writers {
		if n := count[string(chunk(w, size)[:4])]; n != each {
			t.Fatalf("writer %d: %d writes arrived, want %d", w, n, each)
		}
	}
}

func TestOverflowFails(t *testing.T) {
	failed := make(chan error, 1)
	ac, client := pair(t, Config{MaxPending: 1 << 20})
	ac.SetOnFail(func(err error) { failed <- err })
	_ = client // never reads
	big := make([]byte, 256<<10)
	var err error
	for i := 0; i < 1000 && err == nil; i++ {
		_, err = ac.Write(big)
	}
	if !errors.Is(err, ErrOverflow) {
		t.Fatalf("writing to a client that reads nothing: %v, want ErrOverflow", err)
	}
	if _, err := ac.Write([]byte("x")); !errors.Is(err, ErrOverflow) {
		t.Fatalf("a write after the overflow: %v, want the same error", err)
	}
	select {
	case err := <-failed:
		if !errors.Is(err, ErrOverflow) {
			t.Fatalf("OnFail got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OnFail was not called")
	}
	// The connection is closed: the client reads to EOF or a reset.
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, client); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the connection was not closed: %v", err)
	}
}

func TestDeadlineFailsAStuckClient(t *testing.T) {
	failed := make(chan error, 1)
	ac, _ := pair(t, Config{MaxPending: 64 << 20})
	ac.SetOnFail(func(err error) { failed <- err })
	_ = ac.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	big := make([]byte, 256<<10)
	for range 40 { // 10 MiB: more than the socket buffers take
		if _, err := ac.Write(big); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-failed:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("OnFail got %v, want a deadline error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a client that reads nothing was not failed after its write deadline")
	}
	if _, err := ac.Write([]byte("x")); err == nil {
		t.Fatal("a write after the failure succeeded")
	}
}

func TestNotEnabledIsTheInnerConn(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	ac := New(a, Config{})
	if Enable(ac) {
		t.Fatal("Enable on a connection without a socket reported true")
	}
	go func() { _, _ = ac.Write([]byte("hello")) }()
	buf := make([]byte, 5)
	if _, err := io.ReadFull(b, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("read %q, %v", buf, err)
	}
}

func TestUnderTLS(t *testing.T) {
	srv := httptest.NewTLSServer(nil) // for its certificate only
	cfg := srv.TLS
	srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tl := tls.NewListener(&Listener{Listener: ln}, cfg)
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := tl.Accept()
		if err != nil {
			ch <- nil
			return
		}
		_ = c.(*tls.Conn).Handshake()
		ch <- c
	}()
	client, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	sc := <-ch
	if sc == nil {
		t.Fatal("accept failed")
	}
	if !Enable(sc) {
		t.Fatal("Enable did not find the Conn under *tls.Conn")
	}
	var want bytes.Buffer
	for i := range 100 {
		b := chunk(i, 10<<10)
		want.Write(b)
		if _, err := sc.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if Find(sc).Pending() == 0 {
		t.Log("everything went out at once") // not an error: the socket may take 1 MiB
	}
	got := make([]byte, want.Len())
	if _, err := io.ReadFull(client, got); err != nil || !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("TLS stream: %v", err)
	}
	sc.Close()
}
