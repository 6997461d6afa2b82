package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/internal/embedded"
	"github.com/roomlog/roomlog/internal/logview"
	"github.com/roomlog/roomlog/record"
	"github.com/roomlog/roomlog/relay"
)

func runExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("export", "Writes a slice of the events topic to a file (JSON lines), for `roomlog redrive`.\n"+
		"The filters are replay's; records that do not decode are exported too (the file is the log as it is).", stderr)
	var (
		sf    scanFlags
		out   string
		quiet bool
	)
	sf.register(fs)
	fs.StringVar(&out, "out", "", "file to write (- for standard output; required)")
	fs.BoolVar(&quiet, "quiet", false, "no progress line")
	if err := parse(fs, args); err != nil {
		return usageErr(err, stderr)
	}
	if out == "" {
		return errors.New("--out is required (a file, or - for standard output)")
	}
	o, _, from, to, err := sf.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer o.close()
	var w io.Writer = stdout
	var f *os.File
	if out != "-" {
		if f, err = os.Create(out); err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	ex, err := logview.NewExporter(bw, o.topic, o.epoch, len(o.parts), sf.flt.Filter)
	if err != nil {
		return err
	}
	if err = o.scan(ctx, from, to, false, newProgress(stderr, quiet), ex.Add); err != nil {
		return err
	}
	n, err := ex.Close()
	if err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if f != nil {
		if err := f.Close(); err != nil {
			return err
		}
	}
	fmt.Fprintf(stderr, "exported %d records of %q\n", n, o.topic)
	return nil
}

// readExport reads and checks a whole export file.
func readExport(path string) (logview.ExportHeader, []logview.ExportRecord, error) {
	var h logview.ExportHeader
	f, err := os.Open(path)
	if err != nil {
		return h, nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	line := 0
	next := func() bool {
		line++
		return sc.Scan()
	}
	if !next() {
		return h, nil, fmt.Errorf("%s: empty file (not a roomlog export)", path)
	}
	if err := json.Unmarshal(sc.Bytes(), &h); err != nil || h.Format != logview.ExportFormat {
		return h, nil, fmt.Errorf("%s: line 1 is not a roomlog export header", path)
	}
	if h.Version != 1 {
		return h, nil, fmt.Errorf("%s: export format version %d; this roomlog reads version 1", path, h.Version)
	}
	var recs []logview.ExportRecord
	for {
		if !next() {
			if err := sc.Err(); err != nil {
				return h, nil, fmt.Errorf("%s: line %d: %w", path, line, err)
			}
			return h, nil, fmt.Errorf("%s: truncated after %d records (no end line): the export did not finish", path, len(recs))
		}
		b := sc.Bytes()
		if strings.HasPrefix(string(b), `{"end"`) {
			var t logview.ExportTrailer
			if err := json.Unmarshal(b, &t); err != nil || !t.End {
				return h, nil, fmt.Errorf("%s: line %d: bad end line", path, line)
			}
			if t.Records != int64(len(recs)) {
				return h, nil, fmt.Errorf("%s: the end line counts %d records, the file holds %d", path, t.Records, len(recs))
			}
			return h, recs, nil
		}
		var er logview.ExportRecord
		if err := json.Unmarshal(b, &er); err != nil {
			return h, nil, fmt.Errorf("%s: line %d is not a record (truncated or corrupt): %w", path, line, err)
		}
		recs = append(recs, er)
	}
}

func runRedrive(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("redrive", "Re-publishes an export file, in order, into a topic (a sandbox), so a bug can be reproduced\n"+
		"against a local relay. Usage: roomlog redrive [flags] FILE", stderr)
	var (
		src        logSource
		lf         logFlags
		renames    []string
		speed      float64
		create     bool
		partitions int
	)
	src.register(fs)
	lf.register(fs)
	fs.Func("rename", "rename a room: old=new (repeatable; a trailing * renames a prefix: chat:*=sandbox:*)", func(s string) error {
		if !strings.Contains(s, "=") {
			return fmt.Errorf("want old=new, got %q", s)
		}
		renames = append(renames, s)
		return nil
	})
	fs.Float64Var(&speed, "speed", 0, "timing: 0 publishes as fast as possible; 1 keeps the original gaps; 2 is twice as fast")
	fs.BoolVar(&create, "create-topic", true, "create the topic when missing")
	fs.IntVar(&partitions, "partitions", 0, "partitions of a created topic (default: the export's)")
	file := ""
	if len(args) > 0 && !strings.HasPrefix(args[len(args)-1], "-") {
		file, args = args[len(args)-1], args[:len(args)-1]
	}
	if err := parse(fs, args); err != nil {
		return usageErr(err, stderr)
	}
	if file == "" {
		fmt.Fprintln(stderr, "redrive needs the export file: roomlog redrive [flags] FILE")
		return errUsage
	}
	if speed < 0 {
		return fmt.Errorf("--speed %v: want 0 or more", speed)
	}
	log, err := lf.logger(stderr)
	if err != nil {
		return err
	}
	h, recs, err := readExport(file)
	if err != nil {
		return err
	}
	rename, err := renamer(renames)
	if err != nil {
		return err
	}
	if partitions == 0 {
		partitions = h.Partitions
	}
	if len(src.brokers) == 0 {
		if err := os.MkdirAll(src.dataDir, 0o750); err != nil {
			return err
		}
		emb, err := embedded.Start(embedded.Config{DataDir: src.dataDir, Logger: log})
		if err != nil {
			return err
		}
		defer emb.Close()
		src.brokers = emb.Addrs()
	}
	extra, err := src.kafka.opts()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(src.brokers...), kgo.DefaultProduceTopic(src.topic),
		kgo.RecordPartitioner(record.NewPartitioner()), kgo.ProducerBatchMaxBytes(int32(relay.MaxMessageBytesLimit + 16<<10)),
		kgo.ProducerBatchCompression(kgo.NoCompression())}, extra...)...) // what every backend's client reads, as the relay
	if err != nil {
		return err
	}
	defer cl.Close()
	if create {
		if _, err := relay.EnsureTopic(ctx, cl, src.topic, int32(partitions), -1); err != nil {
			return err
		}
	}
	for _, er := range recs {
		if room := rename(er.Key); room != er.Key {
			if err := record.ValidName(room, record.MaxRoomBytes); err != nil {
				return fmt.Errorf("--rename makes room %q into %q, which %v", er.Key, room, err)
			}
		}
	}
	order := redriveOrder(recs)
	began := time.Now()
	var first int64
	var (
		errMu    sync.Mutex
		firstErr error
	)
	for i, idx := range order {
		er := recs[idx]
		if i == 0 {
			first = er.Timestamp
		}
		if speed > 0 {
			due := began.Add(time.Duration(float64(time.Duration(er.Timestamp-first)*time.Millisecond) / speed))
			if d := time.Until(due); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		r := &kgo.Record{Key: []byte(rename(er.Key)), Value: er.Value, Timestamp: time.UnixMilli(er.Timestamp)}
		var typ string
		for _, hd := range er.Headers {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: hd[0], Value: []byte(hd[1])})
			if hd[0] == record.HeaderType {
				typ = hd[1]
			}
		}
		if typ == string(record.TypeLease) || typ == string(record.TypeExpire) {
			record.ManualPartition(r, er.Partition%int32(partitions))
		}
		// Asynchronous, in order: the idempotent producer keeps each
		// partition's order.
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				errMu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("redrive record %d of %d (partition %d offset %d of the export): %w", i+1, len(order), er.Partition, er.Offset, err)
				}
				errMu.Unlock()
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	if firstErr != nil {
		return firstErr
	}
	fmt.Fprintf(stderr, "redrove %d records from %s (topic %s) into %s in %v\n", len(order), file, h.Topic, src.topic, time.Since(began).Round(time.Millisecond))
	return nil
}

// redriveOrder merges the export's partitions by timestamp, never
// reordering records within a partition.
func redriveOrder(recs []logview.ExportRecord) []int {
	byPart := map[int32][]int{}
	for i, r := range recs {
		byPart[r.Partition] = append(byPart[r.Partition], i)
	}
	for _, idx := range byPart {
		sort.SliceStable(idx, func(a, b int) bool { return recs[idx[a]].Offset < recs[idx[b]].Offset })
	}
	out := make([]int, 0, len(recs))
	heads := map[int32]int{}
	for len(out) < len(recs) {
		best := int32(-1)
		for p, idx := range byPart {
			h := heads[p]
			if h >= len(idx) {
				continue
			}
			if best < 0 {
				best = p
				continue
			}
			a, b := recs[idx[h]], recs[byPart[best][heads[best]]]
			if a.Timestamp < b.Timestamp || (a.Timestamp == b.Timestamp && p < best) {
				best = p
			}
		}
		out = append(out, byPart[best][heads[best]])
		heads[best]++
	}
	return out
}

func renamer(rules []string) (func(string) string, error) {
	type rule struct {
		old, new string
		prefix   bool
	}
	var rs []rule
	for _, s := range rules {
		old, nw, _ := strings.Cut(s, "=")
		r := rule{old: old, new: nw}
		if strings.HasSuffix(old, "*") {
			if !strings.HasSuffix(nw, "*") {
				return nil, fmt.Errorf("--rename %q: a prefix rule needs * on both sides", s)
			}
			r.old, r.new, r.prefix = strings.TrimSuffix(old, "*"), strings.TrimSuffix(nw, "*"), true
		}
		rs = append(rs, r)
	}
	return func(room string) string {
		if strings.HasPrefix(room, record.RelayKeyPrefix) {
			return room
		}
		for _, r := range rs {
			if r.prefix && strings.HasPrefix(room, r.old) {
				return r.new + strings.TrimPrefix(room, r.old)
			}
			if !r.prefix && room == r.old {
				return r.new
			}
		}
		return room
	}, nil
}
