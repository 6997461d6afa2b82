package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/consumer"
	"github.com/roomlog/roomlog/internal/logview"
	"github.com/roomlog/roomlog/record"
	"github.com/roomlog/roomlog/relay"
)

// parsePoint reads --at or --diff: a position (inclusive) or a time.
func parsePoint(name, s string, o *openedLog) (logview.Point, error) {
	if p, err := record.ParsePos(s); err == nil {
		if err := o.checkPos("--"+name, p); err != nil {
			return logview.Point{}, err
		}
		return logview.Point{Pos: &p}, nil
	}
	t, err := parseTime(s, time.Now())
	if err != nil {
		return logview.Point{}, fmt.Errorf("--%s: %q is neither a position nor a time: %w", name, s, err)
	}
	return logview.Point{Time: t}, nil
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
	first := logview.Point{Pos: &record.Pos{Epoch: o.epoch, Partition: pn, Offset: end - 1}}
	if at != "" {
		if first, err = parsePoint("at", at, o); err != nil {
			return err
		}
	}
	var second *logview.Point
	if diff != "" {
		pt, err := parsePoint("diff", diff, o)
		if err != nil {
			return err
		}
		second = &pt
	}
	for _, pt := range []*logview.Point{&first, second} {
		if pt != nil && pt.Pos != nil && pt.Pos.Partition != pn {
			return fmt.Errorf("position %s is in partition %d, but room %q lives in partition %d", pt.Pos, pt.Pos.Partition, room, pn)
		}
	}
	var snaps *consumer.SnapshotStore
	if !noSnap {
		snaps = &consumer.SnapshotStore{Topic: snapTopic, EventsTopic: o.topic, Epoch: o.epoch, ClientOpts: o.opts, Logger: log}
	}
	part, start, err := logview.StartingPoint(ctx, snaps, pn, int32(len(o.parts)), o.starts[pn], first, window, log)
	if err != nil {
		return err
	}
	fold := &logview.Fold{Part: part, Room: room, Epoch: o.epoch, At: first, To: second, Corrupt: func(r *kgo.Record, err error) error {
		if !skipCorrupt {
			return corruptError(r, o.epoch, err)
		}
		log.Warn("skipping a corrupt record", "offset", r.Offset, "err", err)
		return nil
	}}
	scanErr := o.scan(ctx, map[int32]int64{pn: start}, map[int32]int64{pn: end}, false, newProgress(stderr, quiet), func(r *kgo.Record) error {
		if err := fold.Feed(r); err != logview.ErrReached {
			return err
		}
		return errStopScan
	})
	if scanErr != nil {
		return scanErr
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if second == nil {
		return enc.Encode(fold.State())
	}
	return enc.Encode(fold.Diff())
}
