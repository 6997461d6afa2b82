package relay

import (
	"encoding/json"
	"testing"

	"github.com/roomlog/roomlog/relay/auth"
)

// FuzzDecodeAuthFrame: any bytes decode without panicking; an accepted auth
// frame has a token and a valid id.
func FuzzDecodeAuthFrame(f *testing.F) {
	for _, s := range []string{
		`{"op":"auth","token":"abc","id":1}`,
		`{"op":"auth"}`,
		`{"op":"auth","token":""}`,
		`{"op":"auth","token":5}`,
		`{"op":"auth","token":"x","id":{"a":1}}`,
		`{"op":"publish","room":"auth"}`,
		`"auth"`,
		`{"op":"auth","token":"eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."}`,
	} {
		f.Add([]byte(s))
	}
	v := newVerifier(&auth.Config{HS256Secrets: [][]byte{[]byte("0123456789abcdef0123456789abcdef")}, Leeway: 0}, nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		af, ok, ferr := decodeAuthFrame(b)
		if !ok {
			return
		}
		if ferr == nil {
			if af.Token == "" {
				t.Fatalf("accepted an auth frame without a token: %q", b)
			}
			if validID(af.ID) != nil {
				t.Fatalf("accepted an invalid id: %q", b)
			}
			if p, err := v.verify(af.Token); err == nil {
				t.Fatalf("a fuzzed token verified: %q → %+v", af.Token, p)
			}
		}
	})
}

// FuzzDecodeAPIRequest: any body decodes without panicking; an accepted
// request is one the log may take (a valid room, JSON data or value).
func FuzzDecodeAPIRequest(f *testing.F) {
	for _, s := range []string{
		`{"room":"news","event":"e","data":{"a":1},"mid":"m"}`,
		`{"room":"news","op":"set","key":"k","value":1}`,
		`{"room":"news","op":"cas","key":"k","value":1,"version":0}`,
		`{"room":"news","op":"incr","key":"k","delta":-3}`,
		`{"room":"news","op":"del","key":"k"}`,
		`{"room":""}`,
		`[]`,
		`{"room":"x","data":`,
	} {
		f.Add("publish", []byte(s))
		f.Add("state", []byte(s))
	}
	f.Fuzz(func(t *testing.T, endpoint string, b []byte) {
		fr, ferr := decodeAPIRequest(endpoint, b)
		if ferr != nil {
			return
		}
		if fr.Room == "" {
			t.Fatalf("accepted a request without a room: %q", b)
		}
		switch fr.Op {
		case opPublish:
			if !json.Valid(fr.Data) {
				t.Fatalf("accepted invalid data: %q", b)
			}
		case opSet, opCAS:
			if !json.Valid(fr.Value) {
				t.Fatalf("accepted an invalid value: %q", b)
			}
		case opDel, opIncr:
		default:
			if endpoint == "publish" || endpoint == "state" {
				t.Fatalf("accepted op %q on %s: %q", fr.Op, endpoint, b)
			}
		}
	})
}
