package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/internal/logview"
	"github.com/roomlog/roomlog/record"
)

// filter selects records for replay and export.
type filter struct {
	logview.Filter
	since, until   string
	fromPos, toPos string
	lo, hi         *record.Pos
}

func (f *filter) register(fs *flag.FlagSet) {
	fs.Func("room", "only this room (glob pattern, e.g. 'chat:*'; repeatable)", func(s string) error { f.Rooms = append(f.Rooms, s); return nil })
	fs.Func("event", "only publishes of this event (repeatable)", func(s string) error { f.Events = append(f.Events, s); return nil })
	fs.Func("type", "only records of this type: "+strings.Join(logview.Types, ", ")+" (repeatable)", func(s string) error {
		f.Types = append(f.Types, s)
		return nil
	})
	fs.StringVar(&f.From, "from", "", "only records sent by this connection id")
	fs.StringVar(&f.User, "user", "", "only records of this user id")
	fs.StringVar(&f.since, "since", "", "only records at or after this time (RFC 3339, or a duration back from now: 15m)")
	fs.StringVar(&f.until, "until", "", "only records before this time")
	fs.StringVar(&f.fromPos, "from-pos", "", "start at this position (inclusive): reads its partition only")
	fs.StringVar(&f.toPos, "to-pos", "", "stop at this position (inclusive): reads its partition only")
}

// prepare parses the filter against the opened log and returns the offsets
// to read.
func (f *filter) prepare(o *openedLog) (from, to map[int32]int64, err error) {
	now := time.Now()
	if f.since != "" {
		if f.Since, err = parseTime(f.since, now); err != nil {
			return nil, nil, fmt.Errorf("--since: %w", err)
		}
	}
	if f.until != "" {
		if f.Until, err = parseTime(f.until, now); err != nil {
			return nil, nil, fmt.Errorf("--until: %w", err)
		}
	}
	for _, p := range f.Rooms {
		if _, err := path.Match(p, ""); err != nil {
			return nil, nil, fmt.Errorf("--room %q: %w", p, err)
		}
	}
	for _, t := range f.Types {
		if !slices.Contains(logview.Types, t) {
			return nil, nil, fmt.Errorf("--type %q: not a record type", t)
		}
	}
	parsePos := func(name, s string) (*record.Pos, error) {
		if s == "" {
			return nil, nil
		}
		p, err := record.ParsePos(s)
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", name, err)
		}
		if err := o.checkPos("--"+name, p); err != nil {
			return nil, err
		}
		return &p, nil
	}
	if f.lo, err = parsePos("from-pos", f.fromPos); err != nil {
		return nil, nil, err
	}
	if f.hi, err = parsePos("to-pos", f.toPos); err != nil {
		return nil, nil, err
	}
	from, to = map[int32]int64{}, map[int32]int64{}
	for _, p := range o.parts {
		from[p], to[p] = o.starts[p], o.ends[p]
	}
	if f.lo != nil || f.hi != nil {
		part := int32(-1)
		for _, p := range []*record.Pos{f.lo, f.hi} {
			if p == nil {
				continue
			}
			if part >= 0 && p.Partition != part {
				return nil, nil, errors.New("--from-pos and --to-pos are in different partitions")
			}
			part = p.Partition
		}
		from, to = map[int32]int64{part: o.starts[part]}, map[int32]int64{part: o.ends[part]}
		if f.lo != nil {
			if f.lo.Offset < o.starts[part] {
				return nil, nil, fmt.Errorf("--from-pos %s is before the log's start (offset %d): deleted by retention", f.lo, o.starts[part])
			}
			from[part] = f.lo.Offset
		}
		if f.hi != nil {
			to[part] = min(f.hi.Offset+1, o.ends[part])
		}
	}
	return from, to, nil
}

// corruptError reports an undecodable record with its position.
func corruptError(r *kgo.Record, epoch uint64, err error) error {
	return fmt.Errorf("corrupt record at %s (partition %d, offset %d): %w; pass --skip-corrupt to skip such records",
		record.Pos{Epoch: epoch, Partition: r.Partition, Offset: r.Offset}, r.Partition, r.Offset, err)
}

func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("replay", "Prints the records of the events topic: as JSON lines (one record a line), or as a table.\n"+
		"Reads every partition from the log's start to its end (or tails it with --follow).", stderr)
	var (
		sf          scanFlags
		format      string
		follow      bool
		skipCorrupt bool
		quiet       bool
		order       string
	)
	sf.register(fs)
	fs.StringVar(&format, "format", "json", "output: json (JSON lines) or table")
	fs.BoolVar(&follow, "follow", false, "keep printing new records as they arrive (until interrupted)")
	fs.BoolVar(&skipCorrupt, "skip-corrupt", false, "report corrupt records and go on, instead of stopping at the first")
	fs.BoolVar(&quiet, "quiet", false, "no progress line, even on a terminal")
	fs.StringVar(&order, "order", "log", "log: each partition in its order, partitions interleaved as read; time: partitions merged by record timestamp (a fleet-wide view; within a partition, and so a room, the order stays the log's)")
	if err := parse(fs, args); err != nil {
		return usageErr(err, stderr)
	}
	if order != "log" && order != "time" {
		return fmt.Errorf("--order %q: want log or time", order)
	}
	if order == "time" && follow {
		return errors.New("--order time cannot be combined with --follow: a quiet partition would hold back every other")
	}
	if format != "json" && format != "table" {
		return fmt.Errorf("--format %q: want json or table", format)
	}
	o, log, from, to, err := sf.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer o.close()
	out := bufio.NewWriterSize(stdout, 64<<10)
	defer out.Flush()
	enc := json.NewEncoder(out)
	var tw *tabwriter.Writer
	if format == "table" {
		tw = tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tPOS\tROOM\tTYPE\tEVENT/KEY\tFROM\tDATA\tPLACE")
		defer tw.Flush()
	}
	skipped := 0
	nparts := int32(len(o.parts))
	print := func(r *kgo.Record) error {
		ev, err := record.Decode(r)
		if err != nil {
			if !skipCorrupt {
				return corruptError(r, o.epoch, err)
			}
			skipped++
			log.Warn("skipping a corrupt record", "pos", record.Pos{Epoch: o.epoch, Partition: r.Partition, Offset: r.Offset}.String(),
				"reason", record.SkipReason(err), "err", err)
			return nil
		}
		if !sf.flt.Match(&ev, r) {
			return nil
		}
		v := logview.ViewOf(&ev, r, o.epoch)
		v.Place(&ev, nparts)
		if tw != nil {
			what := v.Event
			if v.Key != "" {
				what = v.Key
			}
			data := string(v.Data)
			if v.Delta != nil {
				data = strconv.FormatInt(*v.Delta, 10)
			}
			if len(data) > 80 {
				data = data[:77] + "..."
			}
			place := ""
			switch {
			case v.Misplaced:
				place = "misplaced, home " + strconv.Itoa(int(*v.Home))
			case v.Origin != "":
				place = "re-homed from " + v.Origin
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Timestamp.Format("2006-01-02T15:04:05.000Z"), v.Pos, v.Room, v.Type, what, v.From, strings.ReplaceAll(data, "\t", " "), place)
			if follow {
				tw.Flush()
				out.Flush()
			}
			return nil
		}
		if err := enc.Encode(&v); err != nil {
			return err
		}
		if follow {
			return out.Flush()
		}
		return nil
	}
	each := print
	var merge *timeOrder
	if order == "time" {
		merge = newTimeOrder(from, to, print)
		each = merge.add
	}
	err = o.scan(ctx, from, to, follow, newProgress(stderr, quiet || follow), each)
	if err == nil && merge != nil {
		err = merge.flush()
	}
	if skipped > 0 {
		fmt.Fprintf(stderr, "skipped %d corrupt records\n", skipped)
	}
	return err
}
