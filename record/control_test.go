package record

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func controlRecord(key, typ, user, value string) *kgo.Record {
	r := &kgo.Record{Key: []byte(key), Value: []byte(value), Headers: []kgo.RecordHeader{{Key: HeaderType, Value: []byte(typ)}}}
	if user != "" {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderUser, Value: []byte(user)})
	}
	return r
}

func TestDecodeControl(t *testing.T) {
	tests := []struct {
		name              string
		key, typ, user, v string
		want              error // nil: decodes
		revoke            Revocation
	}{
		{"revoke jti", ControlKey, "revoke", "", `{"jti":"t-1","until":1000}`, nil, Revocation{JTI: "t-1", Until: 1000}},
		{"revoke user before", ControlKey, "revoke", "alice", `{"issued_before":500,"until":1000}`, nil, Revocation{IssuedBefore: 500, Until: 1000}},
		{"revoke everyone before", ControlKey, "revoke", "", `{"issued_before":500,"until":1000}`, nil, Revocation{IssuedBefore: 500, Until: 1000}},
		{"revoke unknown field kept", ControlKey, "revoke", "", `{"jti":"a","until":9,"later":true}`, nil, Revocation{JTI: "a", Until: 9}},
		{"revoke nothing", ControlKey, "revoke", "", `{"until":1000}`, ErrInvalidValue, Revocation{}},
		{"revoke no until", ControlKey, "revoke", "", `{"jti":"a"}`, ErrInvalidValue, Revocation{}},
		{"revoke negative before", ControlKey, "revoke", "", `{"issued_before":-5,"jti":"a","until":9}`, ErrInvalidValue, Revocation{}},
		{"revoke jti control char", ControlKey, "revoke", "", `{"jti":"a\u0000","until":9}`, ErrInvalidValue, Revocation{}},
		{"revoke not json", ControlKey, "revoke", "", `{"jti":`, ErrInvalidValue, Revocation{}},
		{"revoke two values", ControlKey, "revoke", "", `{"jti":"a","until":9} {}`, ErrInvalidValue, Revocation{}},
		{"revoke null", ControlKey, "revoke", "", `null`, ErrInvalidValue, Revocation{}},
		{"revoke in a room", "lobby", "revoke", "", `{"jti":"a","until":9}`, ErrBadHeader, Revocation{}},
		{"disconnect", ControlKey, "disconnect", "alice", ``, nil, Revocation{}},
		{"disconnect nobody", ControlKey, "disconnect", "", ``, ErrBadHeader, Revocation{}},
		{"disconnect in a room", "lobby", "disconnect", "alice", ``, ErrBadHeader, Revocation{}},
		{"remove", "lobby", "remove", "alice", ``, nil, Revocation{}},
		{"remove nobody", "lobby", "remove", "", ``, ErrBadHeader, Revocation{}},
		{"remove from a reserved key", ControlKey, "remove", "alice", ``, ErrBadHeader, Revocation{}},
		{"remove from a relay key", RelayKeyPrefix + "r1", "remove", "alice", ``, ErrBadHeader, Revocation{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Decode(controlRecord(tt.key, tt.typ, tt.user, tt.v))
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("got %v, want %v", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(e.Type) != tt.typ || e.User != tt.user || e.Revoke != tt.revoke {
				t.Fatalf("got %+v", e)
			}
			again, err := Decode(Encode(&e))
			if err != nil || again.Type != e.Type || again.User != e.User || again.Revoke != e.Revoke || again.Room != e.Room {
				t.Fatalf("round trip: %+v, %v", again, err)
			}
		})
	}
}

// FuzzDecodeControl: a control record decodes to a valid event whose
// encoding decodes to the same event, or is refused with an error.
func FuzzDecodeControl(f *testing.F) {
	f.Add(ControlKey, "revoke", "alice", `{"issued_before":5,"until":9}`)
	f.Add(ControlKey, "revoke", "", `{"jti":"x","until":9}`)
	f.Add(ControlKey, "disconnect", "bob", ``)
	f.Add("lobby", "remove", "bob", ``)
	f.Add("~x", "remove", "\xff", `{`)
	f.Fuzz(func(t *testing.T, key, typ, user, value string) {
		e, err := Decode(controlRecord(key, typ, user, value))
		if err != nil || (e.Type != TypeRevoke && e.Type != TypeDisconnect && e.Type != TypeRemove) {
			return
		}
		if e.Type == TypeRevoke {
			if err := e.Revoke.Validate(); err != nil {
				t.Fatalf("decoded an invalid revocation %+v: %v", e.Revoke, err)
			}
		} else if ValidName(e.User, MaxUserBytes) != nil {
			t.Fatalf("decoded %s of invalid user %q", e.Type, e.User)
		}
		again, err := Decode(Encode(&e))
		if err != nil || again.Type != e.Type || again.User != e.User || again.Revoke != e.Revoke || again.Room != e.Room {
			t.Fatalf("round trip of %+v: %+v, %v", e, again, err)
		}
	})
}
