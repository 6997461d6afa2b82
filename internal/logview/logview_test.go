package logview

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/record"
)

func TestFilterMatch(t *testing.T) {
	at := time.UnixMilli(1_700_000_000_000)
	r := &kgo.Record{Timestamp: at}
	ev := record.Event{Type: record.TypePublish, Room: "chat:a", Event: "chat", From: "c-1", User: "alice"}
	tests := []struct {
		name string
		f    Filter
		want bool
	}{
		{"empty", Filter{}, true},
		{"room glob", Filter{Rooms: []string{"chat:*"}}, true},
		{"other room", Filter{Rooms: []string{"game:*"}}, false},
		{"event", Filter{Events: []string{"chat"}}, true},
		{"other event", Filter{Events: []string{"typing"}}, false},
		{"type", Filter{Types: []string{"publish"}}, true},
		{"other type", Filter{Types: []string{"join"}}, false},
		{"sender", Filter{From: "c-1"}, true},
		{"other sender", Filter{From: "c-2"}, false},
		{"user", Filter{User: "bob"}, false},
		{"since", Filter{Since: at}, true},
		{"until", Filter{Until: at}, false},
	}
	for _, tt := range tests {
		if got := tt.f.Match(&ev, r); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestExporter(t *testing.T) {
	var buf bytes.Buffer
	ex, err := NewExporter(&buf, "events", 0xabc, 4, Filter{Rooms: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	keep := record.Encode(&record.Event{Type: record.TypePublish, Room: "a", Event: "e", Data: json.RawMessage(`1`)})
	drop := record.Encode(&record.Event{Type: record.TypePublish, Room: "b", Event: "e", Data: json.RawMessage(`2`)})
	corrupt := &kgo.Record{Key: []byte("a"), Headers: []kgo.RecordHeader{{Key: record.HeaderType, Value: []byte("nonsense")}}}
	for _, r := range []*kgo.Record{keep, drop, corrupt} {
		if err := ex.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	n, err := ex.Close()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if err != nil || n != 1 || len(lines) != 3 || !strings.Contains(lines[0], `"epoch":"0000000000000abc"`) || lines[2] != `{"end":true,"records":1}` {
		t.Errorf("export: n=%d err=%v\n%s", n, err, buf.String())
	}
}

func TestViewPlace(t *testing.T) {
	home := record.PartitionOf("lobby", 16)
	tests := []struct {
		name      string
		ev        record.Event
		partition int32
		misplaced bool
		origin    string
	}{
		{"in its partition", record.Event{Type: record.TypePublish, Room: "lobby"}, home, false, ""},
		{"misplaced", record.Event{Type: record.TypePublish, Room: "lobby"}, (home + 1) % 16, true, ""},
		{"lease", record.Event{Type: record.TypeLease, Room: record.RelayKeyPrefix + "a", Relay: "a", Session: "s"}, (home + 1) % 16, false, ""},
		{"copy", record.Event{Type: record.TypePublish, Room: "lobby", Origin: &record.Origin{Partition: 7, Offset: 3}}, home, false, "7-3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := ViewOf(&tt.ev, &kgo.Record{Partition: tt.partition}, 1)
			v.Place(&tt.ev, 16)
			if v.Misplaced != tt.misplaced || v.Origin != tt.origin || tt.misplaced && *v.Home != home || !tt.misplaced && v.Home != nil {
				t.Fatalf("view %+v", v)
			}
			b, _ := json.Marshal(v)
			if tt.misplaced != strings.Contains(string(b), `"misplaced":true`) {
				t.Fatalf("JSON %s", b)
			}
		})
	}
}
