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
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/record"
)

// recordView is one record as the tools print it (JSON lines).
type recordView struct {
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
}

func viewOf(ev *record.Event, r *kgo.Record, epoch uint64) recordView {
	v := recordView{
		Pos: record.Pos{Epoch: epoch, Partition: r.Partition, Offset: r.Offset}.String(), Partition: r.Partition, Offset: r.Offset,
		Timestamp: r.Timestamp.UTC(), Room: ev.Room, Type: ev.Type, Event: ev.Event, Data: ev.Data, From: ev.From, User: ev.User,
		MID: ev.MID, Key: ev.Key, Relay: ev.Relay, Session: ev.Session,
	}
	switch ev.Type {
	case record.TypeIncr:
		v.Delta = &ev.Delta
	case record.TypeCAS, record.TypeExpire:
		v.Version = &ev.Version
	}
	return v
}

// filter selects records for replay and export.
type filter struct {
	rooms, events, types []string
	from, user           string
	since, until         string
	fromPos, toPos       string
	sinceT, untilT       time.Time
	lo, hi               *record.Pos
}

func (f *filter) register(fs *flag.FlagSet) {
	fs.Func("room", "only this room (glob pattern, e.g. 'chat:*'; repeatable)", func(s string) error { f.rooms = append(f.rooms, s); return nil })
	fs.Func("event", "only publishes of this event (repeatable)", func(s string) error { f.events = append(f.events, s); return nil })
	fs.Func("type", "only records of this type: publish, join, leave, set, del, incr, cas, lease, expire (repeatable)", func(s string) error {
		f.types = append(f.types, s)
		return nil
	})
	fs.StringVar(&f.from, "from", "", "only records sent by this connection id")
	fs.StringVar(&f.user, "user", "", "only records of this user id")
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
		if f.sinceT, err = parseTime(f.since, now); err != nil {
			return nil, nil, fmt.Errorf("--since: %w", err)
		}
	}
	if f.until != "" {
		if f.untilT, err = parseTime(f.until, now); err != nil {
			return nil, nil, fmt.Errorf("--until: %w", err)
		}
	}
	for _, p := range f.rooms {
		if _, err := path.Match(p, ""); err != nil {
			return nil, nil, fmt.Errorf("--room %q: %w", p, err)
		}
	}
	for _, t := range f.types {
		if ok := map[string]bool{"publish": true, "join": true, "leave": true, "set": true, "del": true, "incr": true, "cas": true, "lease": true, "expire": true}[t]; !ok {
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

func (f *filter) match(ev *record.Event, r *kgo.Record) bool {
	if len(f.rooms) > 0 && !matchAny(f.rooms, ev.Room) {
		return false
	}
	if len(f.events) > 0 && (ev.Type != record.TypePublish || !contains(f.events, ev.Event)) {
		return false
	}
	if len(f.types) > 0 && !contains(f.types, string(ev.Type)) {
		return false
	}
	if f.from != "" && ev.From != f.from {
		return false
	}
	if f.user != "" && ev.User != f.user {
		return false
	}
	if !f.sinceT.IsZero() && r.Timestamp.Before(f.sinceT) {
		return false
	}
	if !f.untilT.IsZero() && !r.Timestamp.Before(f.untilT) {
		return false
	}
	return true
}

func matchAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, s); ok {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
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
	)
	sf.register(fs)
	fs.StringVar(&format, "format", "json", "output: json (JSON lines) or table")
	fs.BoolVar(&follow, "follow", false, "keep printing new records as they arrive (until interrupted)")
	fs.BoolVar(&skipCorrupt, "skip-corrupt", false, "report corrupt records and go on, instead of stopping at the first")
	fs.BoolVar(&quiet, "quiet", false, "no progress line, even on a terminal")
	if err := parse(fs, args); err != nil {
		return usageErr(err, stderr)
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
		fmt.Fprintln(tw, "TIME\tPOS\tROOM\tTYPE\tEVENT/KEY\tFROM\tDATA")
		defer tw.Flush()
	}
	skipped := 0
	err = o.scan(ctx, from, to, follow, newProgress(stderr, quiet || follow), func(r *kgo.Record) error {
		ev, err := record.Decode(r)
		if err != nil {
			if !skipCorrupt {
				return corruptError(r, o.epoch, err)
			}
			skipped++
			log.Warn("skipping a corrupt record", "pos", record.Pos{Epoch: o.epoch, Partition: r.Partition, Offset: r.Offset}.String(), "err", err)
			return nil
		}
		if !sf.flt.match(&ev, r) {
			return nil
		}
		v := viewOf(&ev, r, o.epoch)
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
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Timestamp.Format("2006-01-02T15:04:05.000Z"), v.Pos, v.Room, v.Type, what, v.From, strings.ReplaceAll(data, "\t", " "))
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
	})
	if skipped > 0 {
		fmt.Fprintf(stderr, "skipped %d corrupt records\n", skipped)
	}
	return err
}
