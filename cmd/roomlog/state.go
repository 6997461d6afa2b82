package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/consumer"
	"github.com/roomlog/roomlog/record"
	"github.com/roomlog/roomlog/relay"
)

// roomState is a room's folded state at a point, as `roomlog state` prints
// it.
type roomState struct {
	Room      string                    `json:"room"`
	Partition int32                     `json:"partition"`
	At        string                    `json:"at"`      // position of the last record folded
	AtTime    *time.Time                `json:"at_time"` // its timestamp
	Members   []consumer.Member         `json:"members"`
	State     map[string]consumer.Entry `json:"state"`
	History   []historyView             `json:"history"` // the recent messages the relays keep in memory
}

type historyView struct {
	Pos       string          `json:"pos"`
	Timestamp time.Time       `json:"timestamp"`
	Event     string          `json:"event"`
	Data      json.RawMessage `json:"data"`
	From      string          `json:"from,omitempty"`
	User      string          `json:"user,omitempty"`
}

// change is one record of the room between --at and --diff, with what the
// fold made of it.
type change struct {
	recordView
	Result changeResult `json:"result"`
}

type changeResult struct {
	Code      string          `json:"code,omitempty"`
	Value     json.RawMessage `json:"value,omitempty"`
	Version   *int64          `json:"version,omitempty"`
	Duplicate bool            `json:"duplicate,omitempty"`
	Joined    string          `json:"joined,omitempty"`
	Left      []string        `json:"left,omitempty"`
}

// point is --at or --diff: a position (inclusive) or a time.
type point struct {
	pos  *record.Pos
	time time.Time
}

func parsePoint(name, s string, o *openedLog) (point, error) {
	if p, err := record.ParsePos(s); err == nil {
		if err := o.checkPos("--"+name, p); err != nil {
			return point{}, err
		}
		return point{pos: &p}, nil
	}
	t, err := parseTime(s, time.Now())
	if err != nil {
		return point{}, fmt.Errorf("--%s: %q is neither a position nor a time: %w", name, s, err)
	}
	return point{time: t}, nil
}

// passed reports whether r is beyond the point.
func (pt point) passed(r *kgo.Record) bool {
	if pt.pos != nil {
		return r.Offset > pt.pos.Offset
	}
	return r.Timestamp.After(pt.time)
}

func runState(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("state", "Rebuilds a room's state (members, key-value state, recent history) at a position or a time,\n"+
		"with exactly the fold code the relays run, and prints it as JSON. With --diff, also every record of the\n"+
		"room between the two points with what it did, and the state at the second.", stderr)
	var (
		src            logSource
		lf             logFlags
		room, at, diff string
		window         int
		skipCorrupt    bool
		snapTopic      string
		noSnap, quiet  bool
	)
	src.register(fs)
	lf.register(fs)
	fs.StringVar(&room, "room", "", "the room (required)")
	fs.StringVar(&at, "at", "", "a position (inclusive) or a time (RFC 3339, or a duration back: 15m); default: the log's end")
	fs.StringVar(&diff, "diff", "", "a later position or time: print the room's records between --at and it, and the state there")
	fs.IntVar(&window, "history-window", consumer.DefaultHistoryWindow, "recent messages to show")
	fs.BoolVar(&skipCorrupt, "skip-corrupt", false, "skip corrupt records instead of stopping")
	fs.StringVar(&snapTopic, "snapshot-topic", relay.DefaultSnapshotTopic, "snapshots to start from, when one precedes --at")
	fs.BoolVar(&noSnap, "no-snapshot", false, "fold from the log's start even if a snapshot could be used")
	fs.BoolVar(&quiet, "quiet", false, "no progress line")
	if err := parse(fs, args); err != nil {
		return usageErr(err, stderr)
	}
	if err := record.ValidName(room, record.MaxRoomBytes); err != nil {
		return fmt.Errorf("--room %v", err)
	}
	o, log, err := src.openLogged(ctx, &lf, stderr)
	if err != nil {
		return err
	}
	defer o.close()
	pn := o.partitionOf(room)
	end := o.ends[pn]
	first := point{pos: &record.Pos{Epoch: o.epoch, Partition: pn, Offset: end - 1}}
	if at != "" {
		if first, err = parsePoint("at", at, o); err != nil {
			return err
		}
	}
	var second *point
	if diff != "" {
		pt, err := parsePoint("diff", diff, o)
		if err != nil {
			return err
		}
		second = &pt
	}
	for _, pt := range []*point{&first, second} {
		if pt != nil && pt.pos != nil && pt.pos.Partition != pn {
			return fmt.Errorf("position %s is in partition %d, but room %q lives in partition %d", pt.pos, pt.pos.Partition, room, pn)
		}
	}

	part, start, err := startingPoint(ctx, o, pn, first, snapTopic, noSnap, window, log)
	if err != nil {
		return err
	}
	var (
		res      consumer.Result
		lastR    *kgo.Record
		changes  []change
		stage    = 0 // 0: up to first; 1: up to second
		snapshot roomState
	)
	scanErr := o.scan(ctx, map[int32]int64{pn: start}, map[int32]int64{pn: end}, false, newProgress(stderr, quiet), func(r *kgo.Record) error {
		if stage == 0 && first.passed(r) {
			snapshot = describe(part, room, pn, o.epoch, lastR)
			if second == nil {
				return errStopScan
			}
			stage = 1
		}
		if stage == 1 && second.passed(r) {
			return errStopScan
		}
		ev, err := part.Apply(r, &res)
		if err != nil {
			if !skipCorrupt {
				return corruptError(r, o.epoch, err)
			}
			log.Warn("skipping a corrupt record", "offset", r.Offset, "err", err)
			return nil
		}
		lastR = r
		if stage == 1 {
			if c, ok := changeOf(&ev, r, &res, room, o.epoch); ok {
				changes = append(changes, c)
			}
		}
		return nil
	})
	if scanErr != nil {
		return scanErr
	}
	if stage == 0 {
		snapshot = describe(part, room, pn, o.epoch, lastR)
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if second == nil {
		return enc.Encode(snapshot)
	}
	return enc.Encode(struct {
		From    roomState `json:"from"`
		Changes []change  `json:"changes"`
		To      roomState `json:"to"`
	}{snapshot, changes, describe(part, room, pn, o.epoch, lastR)})
}

// startingPoint returns an empty partition at the log's start, or the newest
// snapshot before pt. It refuses when retention deleted records that no
// snapshot covers: the state would silently be wrong.
func startingPoint(ctx context.Context, o *openedLog, pn int32, pt point, snapTopic string, noSnap bool, window int, log *slog.Logger) (*consumer.Partition, int64, error) {
	if !noSnap {
		st := &consumer.SnapshotStore{Topic: snapTopic, EventsTopic: o.topic, Epoch: o.epoch, ClientOpts: o.opts, Logger: log}
		snaps, err := st.Load(ctx, window)
		if err != nil {
			log.Warn("cannot read snapshots; folding from the log's start", "err", err)
		}
		if p := snaps[pn]; p != nil && (pt.pos == nil || p.Next() <= pt.pos.Offset+1) && p.Next() >= o.starts[pn] {
			log.Info("starting from a snapshot", "partition", pn, "offset", p.Next())
			return p, p.Next(), nil
		}
	}
	if o.starts[pn] > 0 {
		return nil, 0, fmt.Errorf("partition %d starts at offset %d: earlier records were deleted by retention, and no snapshot before the requested point covers them", pn, o.starts[pn])
	}
	return consumer.NewState(window).Partition(pn), 0, nil
}

func describe(p *consumer.Partition, room string, pn int32, epoch uint64, last *kgo.Record) roomState {
	st := roomState{Room: room, Partition: pn, State: map[string]consumer.Entry{}, Members: []consumer.Member{}, History: []historyView{}}
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
		st.History = append(st.History, historyView{
			Pos: record.Pos{Epoch: epoch, Partition: pn, Offset: m.Offset}.String(), Timestamp: time.UnixMilli(m.Timestamp).UTC(),
			Event: m.Event, Data: m.Data, From: m.From, User: m.User,
		})
	}
	return st
}

// changeOf reports what a record did to the room, if anything.
func changeOf(ev *record.Event, r *kgo.Record, res *consumer.Result, room string, epoch uint64) (change, bool) {
	c := change{recordView: viewOf(ev, r, epoch)}
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
