package logview

import (
	"encoding/json"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/record"
)

// RecordView is one record as the tools print it (JSON lines) and the console
// lists it.
type RecordView struct {
	Pos       string          `json:"pos"`
	Partition int32           `json:"partition"`
	Offset    int64           `json:"offset"`
	Timestamp time.Time       `json:"timestamp"`
	Room      string          `json:"room"`
	Type      record.Type     `json:"type"`
	Event     string          `json:"event,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
	From      string          `json:"from,omitempty"`
	User      string          `json:"user,omitempty"`
	MID       string          `json:"mid,omitempty"`
	Key       string          `json:"key,omitempty"`
	Delta     *int64          `json:"delta,omitempty"`
	Version   *int64          `json:"version,omitempty"`
	Relay     string          `json:"relay,omitempty"`
	Session   string          `json:"session,omitempty"`
	// Misplaced: written to another partition than its room's, Home
	// (the fold skips it; its re-homed copy takes its place). Set by
	// Place.
	Misplaced bool   `json:"misplaced,omitempty"`
	Home      *int32 `json:"home,omitempty"`
	// Origin: a re-homed copy of the misplaced record at this place
	// ("partition-offset").
	Origin string `json:"origin,omitempty"`
}

// Place marks v misplaced when ev, read from partition v.Partition, belongs
// in another of the topic's n partitions.
func (v *RecordView) Place(ev *record.Event, n int32) {
	if home, ok := record.Home(ev, n); ok && home != v.Partition {
		v.Misplaced, v.Home = true, &home
	}
}

// ViewOf is the view of the decoded record ev read as r.
func ViewOf(ev *record.Event, r *kgo.Record, epoch uint64) RecordView {
	v := RecordView{
		Pos: record.Pos{Epoch: epoch, Partition: r.Partition, Offset: r.Offset}.String(), Partition: r.Partition, Offset: r.Offset,
		Timestamp: r.Timestamp.UTC(), Room: ev.Room, Type: ev.Type, Event: ev.Event, Data: ev.Data, From: ev.From, User: ev.User,
		MID: ev.MID, Key: ev.Key, Relay: ev.Relay, Session: ev.Session,
	}
	if ev.Origin != nil {
		v.Origin = ev.Origin.String()
	}
	switch ev.Type {
	case record.TypeIncr:
		v.Delta = &ev.Delta
	case record.TypeCAS, record.TypeExpire:
		v.Version = &ev.Version
	case record.TypeRevoke:
		v.Data, _ = json.Marshal(&ev.Revoke) // strings and integers: cannot fail
	}
	return v
}
