package logview

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/consumer"
	"github.com/roomlog/roomlog/record"
)

// RoomState is a room's folded state at a point, as `roomlog state` prints
// it and the console shows it.
type RoomState struct {
	Room      string                    `json:"room"`
	Partition int32                     `json:"partition"`
	At        string                    `json:"at"`      // position of the last record folded
	AtTime    *time.Time                `json:"at_time"` // its timestamp
	Members   []consumer.Member         `json:"members"`
	State     map[string]consumer.Entry `json:"state"`
	History   []HistoryView             `json:"history"` // the recent messages the relays keep in memory
}

// HistoryView is one message of a room's recent history.
type HistoryView struct {
	Pos       string          `json:"pos"`
	Timestamp time.Time       `json:"timestamp"`
	Event     string          `json:"event"`
	Data      json.RawMessage `json:"data"`
	From      string          `json:"from,omitempty"`
	User      string          `json:"user,omitempty"`
}

// Change is one record of the room between two points, with what the fold
// made of it.
type Change struct {
	RecordView
	Result ChangeResult `json:"result"`
}

// ChangeResult is what the fold made of a Change's record.
type ChangeResult struct {
	Code      string          `json:"code,omitempty"`
	Value     json.RawMessage `json:"value,omitempty"`
	Version   *int64          `json:"version,omitempty"`
	Duplicate bool            `json:"duplicate,omitempty"`
	Joined    string          `json:"joined,omitempty"`
	Left      []string        `json:"left,omitempty"`
}

// Diff is `roomlog state --diff`: the state at the first point, the room's
// records up to the second with what they did, and the state there.
type Diff struct {
	From    RoomState `json:"from"`
	Changes []Change  `json:"changes"`
	To      RoomState `json:"to"`
}

// Point is a place in a partition: a position (inclusive) or a time.
type Point struct {
	Pos  *record.Pos
	Time time.Time
}

// Passed reports whether r is beyond the point.
func (pt Point) Passed(r *kgo.Record) bool {
	if pt.Pos != nil {
		return r.Offset > pt.Pos.Offset
	}
	return r.Timestamp.After(pt.Time)
}

// ErrReached ends a scan: Fold.Feed returns it once the last point is passed.
var ErrReached = errors.New("logview: point reached")

// Fold rebuilds a room's state at At (and, with Diff set, the records up to
// Diff and the state there) by folding its partition's records in order,
// with the relays' fold (consumer.Partition.Apply). Feed it the partition's
// records from its start (or its snapshot's), then call State or Diff.
type Fold struct {
	Part  *consumer.Partition
	Room  string
	Epoch uint64
	At    Point
	To    *Point // the diff's second point, or nil
	// Corrupt handles a record that does not decode: its error stops the
	// fold; nil skips such records (as the relays' consumer does).
	Corrupt func(r *kgo.Record, err error) error

	res     consumer.Result
	last    *kgo.Record
	stage   int // 0: up to At; 1: up to To
	from    RoomState
	changes []Change
}

// Feed folds r, or returns ErrReached when r is past the last point.
func (f *Fold) Feed(r *kgo.Record) error {
	if f.stage == 0 && f.At.Passed(r) {
		f.from = Describe(f.Part, f.Room, f.Epoch, f.last)
		if f.To == nil {
			return ErrReached
		}
		f.stage = 1
	}
	if f.stage == 1 && f.To.Passed(r) {
		return ErrReached
	}
	ev, err := f.Part.Apply(r, &f.res)
	if err != nil {
		if f.Corrupt != nil {
			return f.Corrupt(r, err)
		}
		return nil
	}
	f.last = r
	if f.stage == 1 {
		if c, ok := changeOf(&ev, r, &f.res, f.Room, f.Epoch); ok {
			f.changes = append(f.changes, c)
		}
	}
	return nil
}

// State is the room's state at At (once fed up to it, or to the log's end).
func (f *Fold) State() RoomState {
	if f.stage == 0 {
		return Describe(f.Part, f.Room, f.Epoch, f.last)
	}
	return f.from
}

// Diff is the state at At, the changes up to To, and the state at To.
func (f *Fold) Diff() Diff {
	from := f.State()
	changes := f.changes
	if changes == nil {
		changes = []Change{}
	}
	return Diff{From: from, Changes: changes, To: Describe(f.Part, f.Room, f.Epoch, f.last)}
}

// Describe is room's state in p, after the record last (nil: none folded).
func Describe(p *consumer.Partition, room string, epoch uint64, last *kgo.Record) RoomState {
	pn := p.ID()
	st := RoomState{Room: room, Partition: pn, State: map[string]consumer.Entry{}, Members: []consumer.Member{}, History: []HistoryView{}}
	if last != nil {
		st.At = record.Pos{Epoch: epoch, Partition: pn, Offset: last.Offset}.String()
		t := last.Timestamp.UTC()
		st.AtTime = &t
	}
	p.RLock()
	defer p.RUnlock()
	r := p.Room(room)
	if r == nil {
		return st
	}
	st.Members = consumer.SortedMembers(r)
	for k, e := range r.KV {
		st.State[k] = *e
	}
	hist, _ := p.History(r)
	for _, m := range hist {
		st.History = append(st.History, HistoryView{
			Pos: record.Pos{Epoch: epoch, Partition: pn, Offset: m.Offset}.String(), Timestamp: time.UnixMilli(m.Timestamp).UTC(),
			Event: m.Event, Data: m.Data, From: m.From, User: m.User,
		})
	}
	return st
}

// changeOf reports what a record did to the room, if anything.
func changeOf(ev *record.Event, r *kgo.Record, res *consumer.Result, room string, epoch uint64) (Change, bool) {
	c := Change{RecordView: ViewOf(ev, r, epoch)}
	for _, l := range res.Left {
		if l.Room == room {
			c.Result.Left = append(c.Result.Left, l.Member.Conn+" ("+l.Reason+")")
		}
	}
	if ev.Room != room && len(c.Result.Left) == 0 {
		return c, false
	}
	c.Result.Code, c.Result.Duplicate = res.Code, res.Duplicate
	if ev.Type.IsState() && res.Code == "" {
		c.Result.Value = res.Entry.Value
		v := res.Entry.Version
		c.Result.Version = &v
	}
	if res.Joined != nil {
		c.Result.Joined = res.Joined.Conn
	}
	return c, true
}

// ErrRetention: retention deleted records before the requested point that
// no snapshot covers, so the state there cannot be rebuilt.
var ErrRetention = errors.New("earlier records were deleted by retention, and no snapshot before the requested point covers them")

// StartingPoint returns where a fold of partition pn up to pt begins: the
// newest snapshot in st (nil: none) at or before pt, or an empty partition
// at the log's start (logStart). It returns ErrRetention (wrapped) when
// neither can give the state at pt.
// partitions is the topic's partition count, for the fold to tell
// misplaced records.
func StartingPoint(ctx context.Context, st *consumer.SnapshotStore, pn, partitions int32, logStart int64, pt Point, window int, log *slog.Logger) (*consumer.Partition, int64, error) {
	if st != nil {
		p, err := st.LoadPartition(ctx, window, pn)
		if err != nil {
			log.Warn("cannot read snapshots; folding from the log's start", "err", err)
		}
		if p != nil && (pt.Pos == nil || p.Next() <= pt.Pos.Offset+1) && p.Next() >= logStart {
			log.Info("starting from a snapshot", "partition", pn, "offset", p.Next())
			p.SetTopicPartitions(partitions)
			return p, p.Next(), nil
		}
	}
	if logStart > 0 {
		return nil, 0, fmt.Errorf("partition %d starts at offset %d: %w", pn, logStart, ErrRetention)
	}
	p := consumer.NewState(window).Partition(pn)
	p.SetTopicPartitions(partitions)
	return p, 0, nil
}
