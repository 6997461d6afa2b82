package wsread

import (
	"bufio"
	"bytes"
	"io"
	"testing"
)

// pongFrame is a masked client pong with payload p.
func pongFrame(p string) []byte {
	b := []byte{0x8A, 0x80 | byte(len(p)), 1, 2, 3, 4}
	for i := range len(p) {
		b = append(b, p[i]^byte(i%4+1))
	}
	return b
}

func TestSkipPongs(t *testing.T) {
	text := []byte{0x81, 0x82, 1, 2, 3, 4, 'h' ^ 1, 'i' ^ 2} // a masked text frame "hi"
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name    string
		in      []byte
		skipped bool
		rest    []byte // what is left for gorilla
		err     bool
	}{
		{"a text frame", text, false, text, false},
		{"one pong", pongFrame(""), true, nil, false},
		{"pongs then text", cat(pongFrame("a"), pongFrame("bcd"), text), true, text, false},
		{"text then pong", cat(text, pongFrame("")), false, cat(text, pongFrame("")), false},
		{"an unmasked pong is gorilla's to refuse", []byte{0x8A, 0x00}, false, []byte{0x8A, 0x00}, false},
		{"a pong without FIN is gorilla's", []byte{0x0A, 0x80, 1, 2, 3, 4}, false, []byte{0x0A, 0x80, 1, 2, 3, 4}, false},
		{"a pong over 125 bytes is gorilla's", []byte{0x8A, 0xFE, 0, 200}, false, []byte{0x8A, 0xFE, 0, 200}, false},
		{"a pong cut short", pongFrame("abc")[:7], false, pongFrame("abc")[:7], true},
		{"nothing", nil, false, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReaderSize(bytes.NewReader(tt.in), BufferSize)
			skipped, err := skipPongs(br)
			if skipped != tt.skipped || (err != nil) != tt.err {
				t.Fatalf("skipPongs = %v, %v; want %v, error %v", skipped, err, tt.skipped, tt.err)
			}
			rest, _ := io.ReadAll(br)
			if !bytes.Equal(rest, tt.rest) {
				t.Fatalf("left %x for gorilla, want %x", rest, tt.rest)
			}
		})
	}
}

// FuzzSkipPongs: whatever the client sends, skipPongs never panics, and
// what it takes is whole pong frames from the front: the rest is the
// input's tail, untouched.
func FuzzSkipPongs(f *testing.F) {
	f.Add(pongFrame(""))
	f.Add(append(pongFrame("xy"), 0x81, 0x80, 0, 0, 0, 0))
	f.Add([]byte{0x8A, 0xFF})
	f.Fuzz(func(t *testing.T, in []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(in), BufferSize)
		skipped, _ := skipPongs(br)
		rest, err := io.ReadAll(br)
		if err != nil || len(rest) > len(in) || !bytes.Equal(rest, in[len(in)-len(rest):]) {
			t.Fatalf("the rest (%x, %v) is not the input's tail", rest, err)
		}
		taken := in[:len(in)-len(rest)]
		if skipped != (len(taken) > 0) {
			t.Fatalf("skipped %v, took %d bytes", skipped, len(taken))
		}
		for len(taken) > 0 {
			if len(taken) < 6 || taken[0] != 0x8A || taken[1]&0x80 == 0 || int(taken[1]&0x7F) > 125 ||
				len(taken) < 6+int(taken[1]&0x7F) {
				t.Fatalf("took %x, which is not whole pong frames", in[:len(in)-len(rest)])
			}
			taken = taken[6+int(taken[1]&0x7F):]
		}
	})
}
