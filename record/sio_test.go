package record

import (
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

const testHash = "0123456789abcdef0123456789abcdef"

func TestSIORef(t *testing.T) {
	good := []struct {
		in   string
		want SIORef
	}{
		{testHash + "/-/-1/a1b2-7", SIORef{Hash: testHash, SID: "a1b2-7", Since: -1}},
		{testHash + "/p/42/s", SIORef{Hash: testHash, SID: "s", Since: 42, Presence: true}},
		{testHash + "/g/-1/x/y", SIORef{Hash: testHash, SID: "x/y", Since: -1, Gone: true}},
		{testHash + "/pg/0/s", SIORef{Hash: testHash, SID: "s", Since: 0, Presence: true, Gone: true}},
	}
	for _, tt := range good {
		got, err := ParseSIORef(tt.in)
		if err != nil || *got != tt.want {
			t.Errorf("ParseSIORef(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			continue
		}
		if again, err := ParseSIORef(got.String()); err != nil || *again != *got {
			t.Errorf("round trip of %q: %+v, %v", tt.in, again, err)
		}
	}
	bad := map[string]string{
		"empty":          "",
		"three fields":   testHash + "/-/-1",
		"short hash":     "0123/-/-1/s",
		"upper hash":     strings.ToUpper(testHash) + "/-/-1/s",
		"unknown flag":   testHash + "/x/-1/s",
		"repeated flag":  testHash + "/pp/-1/s",
		"empty flags":    testHash + "//-1/s",
		"since below -1": testHash + "/-/-2/s",
		"since not int":  testHash + "/-/a/s",
		"no sid":         testHash + "/-/-1/",
		"control in sid": testHash + "/-/-1/a\x00",
		"long sid":       testHash + "/-/-1/" + strings.Repeat("s", MaxFromBytes+1),
	}
	for name, in := range bad {
		if _, err := ParseSIORef(in); !errors.Is(err, ErrBadHeader) {
			t.Errorf("%s: ParseSIORef(%q) err = %v, want ErrBadHeader", name, in, err)
		}
	}
}

func TestDecodeSIO(t *testing.T) {
	ref := &SIORef{Hash: testHash, SID: "s1-1", Since: 7, Presence: true}
	for _, typ := range []Type{TypeJoin, TypeLeave} {
		in := Event{Type: typ, Room: "lobby", From: "s2-1", Relay: "r", Session: "s2", SIO: ref}
		got, err := Decode(Encode(&in))
		if err != nil || got.SIO == nil || *got.SIO != *ref {
			t.Fatalf("%s: decoded %+v, %v; want rl-sio %+v", typ, got.SIO, err, ref)
		}
	}
	// Other types neither write nor read it.
	pub := Event{Type: TypePublish, Room: "lobby", Event: "chat", Data: []byte("1"), SIO: ref}
	if got, err := Decode(Encode(&pub)); err != nil || got.SIO != nil {
		t.Fatalf("publish: %+v, %v", got.SIO, err)
	}
	// A malformed rl-sio fails the record, like any malformed header.
	rec := Encode(&Event{Type: TypeJoin, Room: "lobby", From: "c"})
	rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: HeaderSIO, Value: []byte("nope")})
	if _, err := Decode(rec); !errors.Is(err, ErrBadHeader) {
		t.Fatalf("malformed rl-sio: %v, want ErrBadHeader", err)
	}
}

// FuzzParseSIORef: no header value crashes the parser; what it accepts
// survives a round trip and is valid.
func FuzzParseSIORef(f *testing.F) {
	f.Add(testHash + "/p/42/a1b2-7")
	f.Add(testHash + "/g/-1/x/y")
	f.Add("/-/-1/")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseSIORef(s)
		if err != nil {
			return
		}
		if !ValidSIOHash(r.Hash) || ValidName(r.SID, MaxFromBytes) != nil || r.Since < -1 {
			t.Fatalf("accepted %q as %+v", s, r)
		}
		if again, err := ParseSIORef(r.String()); err != nil || *again != *r {
			t.Fatalf("round trip of %q: %+v, %v", s, again, err)
		}
	})
}
