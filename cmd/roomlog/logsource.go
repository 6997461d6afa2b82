package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/internal/cliflag"
	"github.com/roomlog/roomlog/internal/embedded"
	"github.com/roomlog/roomlog/record"
	"github.com/roomlog/roomlog/relay"
)

// The log tools (replay, state, export, redrive) read any broker, or the
// embedded broker's data folder directly (when no relay holds it).

type logSource struct {
	brokers cliflag.List
	dataDir string
	topic   string
	kafka   kafkaFlags
}

func (l *logSource) register(fs *flag.FlagSet) {
	l.kafka.register(fs)
	fs.Var(&l.brokers, "brokers", "Kafka brokers, host:port,... (empty: open --data-dir)")
	fs.StringVar(&l.dataDir, "data-dir", "./roomlog-data", "the embedded broker's data folder, read when --brokers is empty (not while a relay holds it)")
	fs.StringVar(&l.topic, "topic", relay.DefaultTopic, "events topic")
}

// scanFlags are the flags of the tools that scan the log with filters
// (replay, export): where the log is, the filters, and the tool's logging.
type scanFlags struct {
	src logSource
	flt filter
	lf  logFlags
}

func (s *scanFlags) register(fs *flag.FlagSet) {
	s.src.register(fs)
	s.flt.register(fs)
	s.lf.register(fs)
}

// open builds the logger, opens the log, and works out the offsets the
// filters read between.
func (s *scanFlags) open(ctx context.Context, stderr io.Writer) (o *openedLog, log *slog.Logger, from, to map[int32]int64, err error) {
	if o, log, err = s.src.openLogged(ctx, &s.lf, stderr); err != nil {
		return nil, nil, nil, nil, err
	}
	if from, to, err = s.flt.prepare(o); err != nil {
		o.close()
		return nil, nil, nil, nil, err
	}
	return o, log, from, to, nil
}

// openedLog is a connected log and the events topic's description.
type openedLog struct {
	opts   []kgo.Opt
	topic  string
	epoch  uint64
	parts  []int32
	starts map[int32]int64
	ends   map[int32]int64
	close  func()
}

// openLogged builds the tool's logger from lf and opens the log with it.
func (l *logSource) openLogged(ctx context.Context, lf *logFlags, stderr io.Writer) (*openedLog, *slog.Logger, error) {
	log, err := lf.logger(stderr)
	if err != nil {
		return nil, nil, err
	}
	o, err := l.open(ctx, log)
	return o, log, err
}

// open connects (or opens the data folder), checks the topic exists, and
// lists its partitions and offsets.
func (l *logSource) open(ctx context.Context, log *slog.Logger) (*openedLog, error) {
	o := &openedLog{topic: l.topic, close: func() {}}
	where := strings.Join(l.brokers, ",")
	if len(l.brokers) == 0 {
		if _, err := os.Stat(l.dataDir); err != nil {
			return nil, fmt.Errorf("no --brokers, and the data folder %s cannot be read: %w", l.dataDir, err)
		}
		emb, err := embedded.Start(embedded.Config{DataDir: l.dataDir, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("%w (while a relay runs on it, run `roomlog broker` there and pass --brokers)", err)
		}
		o.close = emb.Close
		l.brokers = emb.Addrs()
		where = "data folder " + l.dataDir
	}
	extra, err := l.kafka.opts()
	if err != nil {
		o.close()
		return nil, err
	}
	o.opts = append([]kgo.Opt{kgo.SeedBrokers(l.brokers...), kgo.RetryTimeout(10 * time.Second), kgo.RequestRetries(2)}, extra...)
	cl, err := kgo.NewClient(o.opts...)
	if err != nil {
		o.close()
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	md, err := adm.Metadata(cctx)
	if err != nil {
		o.close()
		return nil, fmt.Errorf("cannot reach the log at %s: %w", where, err)
	}
	td, ok := md.Topics[l.topic]
	if !ok || td.Err != nil {
		names := md.Topics.Names()
		sort.Strings(names)
		o.close()
		return nil, fmt.Errorf("topic %q does not exist at %s (topics there: %s)", l.topic, where, strings.Join(names, ", "))
	}
	o.epoch = record.EpochOf(td.ID)
	starts, err := adm.ListStartOffsets(cctx, l.topic)
	if err == nil {
		err = starts.Error()
	}
	ends, err2 := adm.ListEndOffsets(cctx, l.topic)
	if err == nil {
		err = err2
	}
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		o.close()
		return nil, fmt.Errorf("offsets of %q at %s: %w", l.topic, where, err)
	}
	o.starts, o.ends = map[int32]int64{}, map[int32]int64{}
	starts.Each(func(x kadm.ListedOffset) { o.starts[x.Partition] = x.Offset })
	ends.Each(func(x kadm.ListedOffset) { o.ends[x.Partition] = x.Offset })
	for p := range o.ends {
		o.parts = append(o.parts, p)
	}
	sort.Slice(o.parts, func(i, j int) bool { return o.parts[i] < o.parts[j] })
	return o, nil
}

// checkPos refuses a position from another topic or incarnation.
func (o *openedLog) checkPos(flagName string, p record.Pos) error {
	if p.Epoch != o.epoch {
		return fmt.Errorf("%s %s is a position of another topic (epoch %016x; %q has epoch %016x)", flagName, p, p.Epoch, o.topic, o.epoch)
	}
	if _, ok := o.ends[p.Partition]; !ok {
		return fmt.Errorf("%s %s: topic %q has no partition %d", flagName, p, o.topic, p.Partition)
	}
	return nil
}

// partitionOf is the room's partition.
func (o *openedLog) partitionOf(room string) int32 {
	return record.PartitionOf(room, int32(len(o.parts)))
}

// scan reads partitions from[p] up to (excluding) to[p], in order per
// partition, calling fn for each record; with follow, it keeps reading
// past the ends until ctx ends. Partitions not in from are not read.
func (o *openedLog) scan(ctx context.Context, from, to map[int32]int64, follow bool, progress *progress, fn func(*kgo.Record) error) error {
	want := map[int32]kgo.Offset{}
	var total int64
	for p, off := range from {
		if !follow && off >= to[p] {
			continue
		}
		want[p] = kgo.NewOffset().At(off)
		total += to[p] - off
	}
	if len(want) == 0 {
		return nil
	}
	progress.start(total)
	defer progress.done()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{o.topic: want}),
		kgo.FetchMaxBytes(4 << 20), kgo.FetchMaxPartitionBytes(1 << 20),
	}, o.opts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	remaining := len(want)
	finished := map[int32]bool{}
	for follow || remaining > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			if follow {
				return nil
			}
			return err
		}
		var ferr error
		fs.EachError(func(_ string, p int32, err error) { ferr = fmt.Errorf("partition %d: %w", p, err) })
		if ferr != nil {
			return ferr
		}
		var stop error
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			for _, r := range fp.Records {
				if stop != nil {
					return
				}
				if !follow && r.Offset >= to[fp.Partition] {
					if !finished[fp.Partition] {
						finished[fp.Partition] = true
						remaining--
					}
					return
				}
				progress.add(1)
				if err := fn(r); err != nil {
					stop = err
					return
				}
				if !follow && r.Offset+1 >= to[fp.Partition] && !finished[fp.Partition] {
					finished[fp.Partition] = true
					remaining--
				}
			}
		})
		if stop != nil {
			if errors.Is(stop, errStopScan) {
				return nil
			}
			return stop
		}
	}
	return nil
}

var errStopScan = errors.New("stop")

// progress draws a progress line on a terminal; it is silent when stderr is
// piped or redirected.
type progress struct {
	w         io.Writer
	on        bool
	total, n  int64
	began, at time.Time
}

func newProgress(w io.Writer, quiet bool) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok && !quiet {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.on = true
		}
	}
	return p
}

func (p *progress) start(total int64) {
	p.total, p.n, p.began = total, 0, time.Now()
}

func (p *progress) add(n int64) {
	p.n += n
	if !p.on || time.Since(p.at) < 200*time.Millisecond {
		return
	}
	p.at = time.Now()
	rate := float64(p.n) / time.Since(p.began).Seconds()
	if p.total > 0 {
		fmt.Fprintf(p.w, "\r%d/%d records (%.0f%%), %.0f records/s   ", p.n, p.total, 100*float64(p.n)/float64(p.total), rate)
	} else {
		fmt.Fprintf(p.w, "\r%d records, %.0f records/s   ", p.n, rate)
	}
}

func (p *progress) done() {
	if p.on && !p.at.IsZero() {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

// parseTime reads RFC 3339 or a duration back from now ("10m").
func parseTime(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return t, fmt.Errorf("%q is neither a time (RFC 3339, e.g. 2026-11-25T10:00:00Z) nor a duration back from now (e.g. 15m)", s)
	}
	return t, nil
}

func kadmClient(cl *kgo.Client) *kadm.Client { return kadm.NewClient(cl) }
