package consumer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/record"
)

// randomLog makes n records of every kind, with plausible causality (joins
// from live sessions, retries of earlier mids, stale and good expiries).
func randomLog(rng *rand.Rand, n int) []*kgo.Record {
	relays := []string{"a", "b", "c"}
	session := map[string]string{}
	var recs []*kgo.Record
	ts := time.UnixMilli(1_700_000_000_000)
	lastLease := map[string]int64{}
	for i := 0; len(recs) < n; i++ {
		relay := relays[rng.Intn(len(relays))]
		room := "room-" + strconv.Itoa(rng.Intn(6))
		conn := session[relay] + "-" + strconv.Itoa(rng.Intn(8))
		var ev record.Event
		switch k := rng.Intn(20); {
		case k == 0 || session[relay] == "":
			session[relay] = fmt.Sprintf("%s%d", relay, i) // a (re)start
			ev = record.Event{Type: record.TypeLease, Room: record.RelayKeyPrefix + relay, Relay: relay, Session: session[relay]}
			lastLease[relay] = int64(len(recs))
		case k == 1:
			ev = record.Event{Type: record.TypeLease, Room: record.RelayKeyPrefix + relay, Relay: relay, Session: session[relay]}
			lastLease[relay] = int64(len(recs))
		case k == 2:
			v := lastLease[relay]
			if rng.Intn(2) == 0 {
				v = max(v-1, 0) // stale
			}
			ev = record.Event{Type: record.TypeExpire, Room: record.RelayKeyPrefix + relay, Relay: relay, Session: session[relay], Version: v}
		case k < 6:
			ev = record.Event{Type: record.TypeJoin, Room: room, From: conn, Relay: relay, Session: session[relay], User: "u" + strconv.Itoa(rng.Intn(3))}
			if rng.Intn(2) == 0 { // a Socket.IO connection's, resuming one of a few sessions
				ev.SIO = &record.SIORef{Hash: fmt.Sprintf("%032x", rng.Intn(4)), SID: "sid" + strconv.Itoa(rng.Intn(4)), Since: int64(rng.Intn(len(recs)+1)) - 1, Presence: rng.Intn(2) == 0}
			}
		case k < 8:
			ev = record.Event{Type: record.TypeLeave, Room: room, From: conn}
			if rng.Intn(2) == 0 {
				ev.SIO = &record.SIORef{Hash: fmt.Sprintf("%032x", rng.Intn(4)), SID: "sid", Since: -1, Gone: rng.Intn(2) == 0}
			}
		case k < 12:
			ev = record.Event{Type: record.TypePublish, Room: room, Event: "e", Data: json.RawMessage(strconv.Itoa(i)), From: conn, MID: "m" + strconv.Itoa(rng.Intn(40))}
			if rng.Intn(3) == 0 { // a re-homed copy, now and then a repeat
				ev.Origin = &record.Origin{Partition: 1 + int32(rng.Intn(3)), Offset: int64(rng.Intn(30))}
			}
		case k < 14:
			ev = record.Event{Type: record.TypeSet, Room: room, Key: "k" + strconv.Itoa(rng.Intn(4)), Data: json.RawMessage(strconv.Itoa(i))}
		case k < 16:
			ev = record.Event{Type: record.TypeIncr, Room: room, Key: "k" + strconv.Itoa(rng.Intn(4)), Delta: int64(rng.Intn(7) - 3)}
		case k < 18:
			ev = record.Event{Type: record.TypeCAS, Room: room, Key: "k" + strconv.Itoa(rng.Intn(4)), Data: json.RawMessage(`"c"`), Version: int64(rng.Intn(len(recs) + 1))}
		default:
			ev = record.Event{Type: record.TypeDel, Room: room, Key: "k" + strconv.Itoa(rng.Intn(4))}
		}
		r := record.Encode(&ev)
		r.Offset = int64(len(recs))
		ts = ts.Add(time.Duration(rng.Intn(90_000)) * time.Millisecond) // crosses the dedupe window and Socket.IO session expiry now and then
		r.Timestamp = ts
		recs = append(recs, r)
	}
	return recs
}

func fold(t testing.TB, p *Partition, recs []*kgo.Record) {
	var res Result
	for _, r := range recs {
		if _, err := p.Apply(r, &res); err != nil {
			t.Fatalf("offset %d: %v", r.Offset, err)
		}
	}
}

// TestSnapshotPlusTailEqualsFullReplay: for random logs of every record
// kind, at every snapshot point, the state rebuilt from the snapshot and the
// tail equals the state of the full replay.
func TestSnapshotPlusTailEqualsFullReplay(t *testing.T) {
	sio := 0
	defer func() {
		if sio == 0 && !t.Failed() {
			t.Fatal("no random log left a Socket.IO session; the test compares none")
		}
	}()
	for seed := int64(1); seed <= 40; seed++ {
		rng := rand.New(rand.NewSource(seed))
		recs := randomLog(rng, 600)
		full := newPartition(0, 16)
		fold(t, full, recs)
		want := full.Dump()

		live := newPartition(0, 16)
		for at := 0; at < len(recs); {
			step := 1 + rng.Intn(80)
			next := min(at+step, len(recs))
			fold(t, live, recs[at:next])
			at = next
			data, off, err := live.EncodeSnapshot()
			if err != nil {
				t.Fatal(err)
			}
			if off != int64(at) {
				t.Fatalf("seed %d: snapshot covers %d, want %d", seed, off, at)
			}
			restored, err := DecodeSnapshot(data, 16)
			if err != nil {
				t.Fatalf("seed %d at %d: %v", seed, at, err)
			}
			if got, now := restored.Dump(), live.Dump(); !reflect.DeepEqual(got, now) {
				t.Fatalf("seed %d at %d: snapshot round trip differs\n got %+v\nwant %+v", seed, at, got, now)
			}
			fold(t, restored, recs[at:])
			if got := restored.Dump(); !reflect.DeepEqual(got, want) {
				t.Fatalf("seed %d: snapshot at %d + tail differs from the full replay\n got %+v\nwant %+v", seed, at, got, want)
			}
		}
		if len(want.Rooms) == 0 {
			t.Fatalf("seed %d: the random log left no state; the test compares nothing", seed)
		}
		sio += len(want.SIO)
	}
}

func TestDecodeSnapshotErrors(t *testing.T) {
	p := newPartition(3, 0)
	fold(t, p, randomLog(rand.New(rand.NewSource(7)), 50))
	good, _, err := p.EncodeSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	zipped := func(s string) []byte {
		var b bytes.Buffer
		w, _ := zstd.NewWriter(&b)
		_, _ = w.Write([]byte(s))
		_ = w.Close()
		return b.Bytes()
	}
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"garbage", []byte("not a snapshot"), nil},
		{"truncated", good[:len(good)/2], nil},
		{"not json", zipped("{{{"), nil},
		{"future version", zipped(`{"v":99,"partition":0,"next":5}`), ErrSnapshotVersion},
		{"negative offset", zipped(`{"v":1,"partition":0,"next":-5}`), nil},
		{"member without conn", zipped(`{"v":1,"partition":0,"next":5,"rooms":{"r":{"m":[{"relay":"x"}]}}}`), nil},
		{"revocation without until", zipped(`{"v":2,"partition":0,"next":5,"dedupe":"AAA=","revoked":{"jti":{"t":0},"all":{"before":0,"until":0}}}`), nil},
		{"revoked jti with a control character", zipped(`{"v":2,"partition":0,"next":5,"dedupe":"AAA=","revoked":{"jti":{"a\u0000":9},"all":{"before":0,"until":0}}}`), nil},
		{"revoked user without until", zipped(`{"v":2,"partition":0,"next":5,"dedupe":"AAA=","revoked":{"users":{"u":{"before":3,"until":-1}},"all":{"before":0,"until":0}}}`), nil},
	}
	// A version 1 snapshot (before the revocation list) still loads.
	if p, err := DecodeSnapshot(zipped(`{"v":1,"partition":2,"next":5,"dedupe":"AAA="}`), 0); err != nil || p.Next() != 5 || p.revoked != nil {
		t.Fatalf("version 1: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeSnapshot(tt.data, 0)
			if err == nil {
				t.Fatal("decoded")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func FuzzDecodeSnapshot(f *testing.F) {
	p := newPartition(0, 0)
	fold(f, p, randomLog(rand.New(rand.NewSource(1)), 40))
	good, _, _ := p.EncodeSnapshot()
	f.Add(good)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodeSnapshot(data, 4)
		if err != nil {
			return
		}
		// Whatever decodes must fold on without panicking.
		fold(t, p, randomLog(rand.New(rand.NewSource(2)), 30))
	})
}
