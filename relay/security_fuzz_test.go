package relay

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/roomlog/roomlog/record"

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

// FuzzDecodeControlRequest: a control request the API accepts becomes a
// record every relay decodes back to the same effect; nothing else is
// accepted.
func FuzzDecodeControlRequest(f *testing.F) {
	for _, s := range []string{
		`{"jti":"t-1"}`,
		`{"user":"alice"}`,
		`{"user":"alice","issued_before":1700000000,"until":1900000000}`,
		`{"issued_before":1700000000}`,
		`{"room":"lobby","user":"bob"}`,
		`{"room":"~control","user":"bob"}`,
		`{"user":"a","until":99999999999}`,
		`{"jti":"\u0000"}`,
		`[]`,
	} {
		for _, e := range []string{apiRevoke, apiDisconnect, apiRemove} {
			f.Add(e, []byte(s))
		}
	}
	s := &Server{cfg: Config{RevocationTTL: DefaultRevocationTTL}}
	now := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, endpoint string, b []byte) {
		r, ferr := decodeControlRequest(endpoint, b)
		if ferr != nil {
			return
		}
		ev, ferr := s.controlEvent(endpoint, &r, now)
		if ferr != nil {
			return
		}
		got, err := record.Decode(record.Encode(ev))
		if err != nil {
			t.Fatalf("accepted %q as a record the log refuses: %v", b, err)
		}
		if got.Type != ev.Type || got.User != ev.User || got.Room != ev.Room || got.Revoke != ev.Revoke {
			t.Fatalf("%q: decoded %+v, want %+v", b, got, ev)
		}
		if ev.Type == record.TypeRevoke && (ev.Revoke.Until <= now.UnixMilli() || ev.Revoke.Until > now.Add(maxRevocationTTL).UnixMilli()) {
			t.Fatalf("%q: until %d out of bounds", b, ev.Revoke.Until)
		}
	})
}
