// Package consumer reads the roomlog events topic inside every relay process,
// folds each record into the shared state of its room (presence, key-value
// state, recent history, deduplication, relay leases), and hands each record
// with the fold's result to a Sink (the relay's hub, which fans it out to the
// local sockets of the room).
//
// It reads partitions directly, without a consumer group: by default every
// partition, because any of a relay's sockets may be in any room; with
// Config.Partitions, those and the ones added on demand (Follow, follow.go).
// At start it replays each followed partition from its snapshot or the
// beginning of the log, so that the state of every room is a pure function
// of the log prefix: every relay that has folded
// the same offsets holds the same state, and a replay reproduces it. Records
// written to another partition than their key's (a third-party producer with
// another partitioner) are misplaced: the fold skips them and takes the
// copy the partition's owner re-homes to the room's partition
// (misplaced.go), so they reach the room once, in its order. Misplaced and
// undecodable records are counted (Stats) and logged, at most one warning
// of each kind per WarnInterval.
//
// # Concurrency
//
// Start starts two goroutines, and Stop ends both (cancel, then wait):
//
//   - the poller calls PollFetches and hands each batch to the folder over a
//     channel of two, so the next fetch is in flight while a batch is folded;
//   - the folder folds each record into its partition's state (under that
//     partition's write lock, released before delivery), then calls
//     Sink.Deliver, in offset order per partition, and advances the
//     partition's Progress once per batch. It is the only writer of the
//     state; Deliver runs on it and must not block.
//
// Follow loads a partition on a goroutine of its own; the add and the drop
// of a partition are decided on the folder goroutine, between batches, and
// a drop's removal from the fetch runs on the poller, between polls, which
// then hands the folder the state reset behind the batches polled before
// (follow.go).
//
// While the first replay runs, a third goroutine waits for readiness (or
// Stop) to restore the garbage collector's setting. SnapshotStore.Load
// decodes partitions on up to GOMAXPROCS goroutines and returns after all of
// them; SnapshotStore's other methods, ReadRange and Owner run on the
// caller's goroutine. Readers of the state (presence, get, history,
// recovery) take a partition's read lock. Start, Stop, WaitFor and the
// accessors are safe from any goroutine.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/record"
)

// Delivery is one folded record handed to the Sink. It and its fields are
// valid only during the Deliver call. When Deliver runs, the partition's state
// is exactly the state after this record: the consumer goroutine is its only
// writer, so the sink may read it (under Part.RLock) without racing the fold.
type Delivery struct {
	Event     record.Event
	Pos       record.Pos
	Timestamp time.Time
	Result    *Result
	Part      *Partition
	Live      bool // false while replaying the log up to where it was at Start
	// Record is the record as read; a sink that keeps any of it (a
	// misplaced record to re-home) copies it.
	Record *kgo.Record
}

// Sink receives the records of the log. Deliver is called from the consumer's
// single goroutine and must not block.
type Sink interface {
	Deliver(d *Delivery)
}

// Config configures a Consumer. Zero values take the defaults noted.
type Config struct {
	// ClientOpts connect to the log (seed brokers, TLS, SASL).
	ClientOpts []kgo.Opt
	// Topic is the events topic. Required.
	Topic string
	// Epoch is stamped into every position (see record.Pos). Required to be
	// the topic's current epoch.
	Epoch uint64
	// Sink receives every record. Required.
	Sink Sink
	// HistoryWindow is how many recent publishes per room are kept in
	// memory for recovery and history (default 64; negative: none).
	HistoryWindow int
	// Restore holds partitions rebuilt from snapshots: their folds resume
	// at the snapshot's offset instead of the log's start.
	Restore map[int32]*Partition
	// FetchMaxWait bounds how long a fetch waits for new records
	// (default DefaultFetchMaxWait); records are returned as soon as any
	// arrive.
	FetchMaxWait time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Partitions, when not nil, are the partitions Start follows; the
	// others are followed on demand (Follow, follow.go) and may be dropped
	// (Unfollow). nil: every partition, from Start, always.
	Partitions []int32
	// LoadSnapshot returns partition p's newest snapshot (nil: none) for
	// Follow. nil: a followed partition is replayed from its log's start.
	LoadSnapshot func(ctx context.Context, p int32) (*Partition, error)
}

// replayGCPercent is GOGC while the consumer replays the log at start.
const replayGCPercent = 400

// DefaultHistoryWindow is Config.HistoryWindow's default.
const DefaultHistoryWindow = 64

// HistoryWindowFor is the window a Config.HistoryWindow of n keeps: n,
// DefaultHistoryWindow for 0, none for a negative n.
func HistoryWindowFor(n int) int {
	switch {
	case n == 0:
		return DefaultHistoryWindow
	case n < 0:
		return 0
	}
	return n
}

// WarnInterval is the least time between two warnings about misplaced
// records, and between two about skipped ones.
const WarnInterval = 10 * time.Second

// Stats are counters since Start.
type Stats struct {
	Records   uint64 // records folded
	Skipped   uint64 // records that did not decode (logged)
	Misplaced uint64 // records written to another partition than their room's
	// SkippedBy counts Skipped by record.SkipReason.
	SkippedBy map[string]uint64
}

// Consumer tails the events topic. Create with New, then Start.
type Consumer struct {
	cfg   Config
	cl    *kgo.Client
	state *State

	ready     chan struct{} // closed once caught up with the end offsets seen at Start
	readyOnce sync.Once
	ends      map[int32]int64

	cancel context.CancelFunc
	runCtx context.Context
	wg     sync.WaitGroup

	// Following on demand (follow.go).
	changes  chan change    // run on the folder goroutine between batches
	fetched  chan fetchItem // poller → folder: batches, and changes in their order
	pmu      sync.Mutex     // guards preqs and pcancel
	preqs    []func()       // run on the poller goroutine between polls
	pcancel  context.CancelFunc
	followed []atomic.Bool // by partition: followed and caught up
	fmu      sync.Mutex    // guards follows' loading fields
	follows  []follow      // by partition

	records, skipped, misplaced atomic.Uint64
	skippedBy                   [6]atomic.Uint64 // by index in record.SkipReasons
	warnMisplaced, warnSkipped  warnLimiter      // the folder goroutine's
}

// DefaultFetchMaxWait is Config.FetchMaxWait's default.
const DefaultFetchMaxWait = 250 * time.Millisecond

// New validates cfg and fills its defaults.
func New(cfg Config) (*Consumer, error) {
	switch {
	case cfg.Topic == "":
		return nil, errors.New("consumer: no topic")
	case cfg.Sink == nil:
		return nil, errors.New("consumer: no sink")
	}
	if cfg.FetchMaxWait <= 0 {
		cfg.FetchMaxWait = DefaultFetchMaxWait
	}
	cfg.HistoryWindow = HistoryWindowFor(cfg.HistoryWindow)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Consumer{cfg: cfg, state: NewState(cfg.HistoryWindow), ready: make(chan struct{}), changes: make(chan change, 16), fetched: make(chan fetchItem, 2),
		warnMisplaced: warnLimiter{every: WarnInterval}, warnSkipped: warnLimiter{every: WarnInterval}}, nil
}

// Start lists the end of every partition, then folds the whole log from its
// start in the background. Ready is closed once the fold has reached those
// ends; records after them are live.
func (c *Consumer) Start(ctx context.Context) error {
	opts := append([]kgo.Opt{
		kgo.FetchMaxWait(c.cfg.FetchMaxWait),
		kgo.ClientID("roomlog-consumer"),
		kgo.FetchMaxBytes(16 << 20),
		kgo.FetchMaxPartitionBytes(4 << 20),
	}, c.cfg.ClientOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("consumer: client: %w", err)
	}
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, c.cfg.Topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		cl.Close()
		return fmt.Errorf("consumer: list end offsets of %q: %w", c.cfg.Topic, err)
	}
	c.ends = make(map[int32]int64)
	start := make(map[int32]kgo.Offset)
	var only map[int32]bool
	if c.cfg.Partitions != nil {
		only = make(map[int32]bool, len(c.cfg.Partitions))
		for _, p := range c.cfg.Partitions {
			only[p] = true
		}
	}
	topicParts := 0
	ends.Each(func(o kadm.ListedOffset) {
		topicParts = max(topicParts, int(o.Partition)+1)
		p := c.state.Partition(o.Partition)
		p.next = 0
		p.hwm.Store(o.Offset)
		if only != nil && !only[o.Partition] {
			return
		}
		c.ends[o.Partition] = o.Offset
		start[o.Partition] = kgo.NewOffset().AtStart()
	})
	if topicParts == 0 {
		cl.Close()
		return fmt.Errorf("consumer: topic %q has no partitions", c.cfg.Topic)
	}
	// Partitions whose log is empty (or fully deleted) are caught up at
	// once; find their start so an empty partition counts as folded.
	// Without it the history floor would stay 0, and a recovery could
	// claim messages that retention deleted: fail instead.
	starts, err := adm.ListStartOffsets(ctx, c.cfg.Topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		cl.Close()
		return fmt.Errorf("consumer: list start offsets of %q: %w", c.cfg.Topic, err)
	}
	starts.Each(func(o kadm.ListedOffset) {
		p := c.state.Partition(o.Partition)
		p.next, p.floor = o.Offset, o.Offset
		if only != nil && !only[o.Partition] {
			p.hwm.Store(o.Offset) // not followed: no lag to report
		}
	})
	for pn, rp := range c.cfg.Restore {
		if only != nil && !only[pn] {
			continue
		}
		end, ok := c.ends[pn]
		cur := c.state.parts[pn]
		if !ok || cur == nil || !c.usableSnapshot(pn, rp, cur.next, end) {
			continue
		}
		rp.hwm.Store(end)
		c.state.parts[pn] = rp
		start[pn] = kgo.NewOffset().At(rp.next)
	}
	c.state.SetTopicPartitions(int32(topicParts))
	c.followed = make([]atomic.Bool, topicParts)
	c.follows = make([]follow, topicParts)
	for p := range start {
		c.follows[p].on = true
		c.follows[p].liveFrom = c.ends[p]
	}
	if len(start) > 0 {
		cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{c.cfg.Topic: start})
	}
	c.cl = cl
	c.checkReady()
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.cancel, c.runCtx = cancel, runCtx
	c.wg.Add(1)
	go c.run(runCtx)
	return nil
}

// usableSnapshot reports whether a snapshot of partition p may start its
// fold, given the log's start and end offsets: not if it is beyond the
// end; with a warning if it is older than the start (records between are
// gone).
func (c *Consumer) usableSnapshot(p int32, snap *Partition, start, end int64) bool {
	if snap.next > end {
		c.cfg.Logger.Warn("ignoring a snapshot beyond the log's end", "partition", p, "snapshot", snap.next, "end", end)
		return false
	}
	if snap.next < start {
		c.cfg.Logger.Warn("snapshot is older than the log's start: the records between are gone (retention shorter than the snapshot interval?)",
			"partition", p, "snapshot", snap.next, "log_start", start)
	}
	return true
}

// Ready is closed once the fold has caught up with the log's end as it was
// at Start.
func (c *Consumer) Ready() <-chan struct{} { return c.ready }

// State is the folded state. Read it under each partition's read lock.
func (c *Consumer) State() *State { return c.state }

// Stop ends the poll loop and closes the client. It returns once the loop's
// goroutine has ended; no Deliver call happens after Stop returns.
func (c *Consumer) Stop() {
	if c.cancel == nil {
		return
	}
	c.cancel()
	c.wg.Wait()
	c.cl.Close()
}

// Stats returns the counters.
func (c *Consumer) Stats() Stats {
	st := Stats{Records: c.records.Load(), Skipped: c.skipped.Load(), Misplaced: c.misplaced.Load(), SkippedBy: make(map[string]uint64, len(record.SkipReasons))}
	for i, r := range record.SkipReasons {
		st.SkippedBy[r] = c.skippedBy[i].Load()
	}
	return st
}

// WaitFor blocks until partition p has folded every offset below next, or
// ctx ends.
func (c *Consumer) WaitFor(ctx context.Context, p int32, next int64) error {
	part := c.state.parts[p]
	if part == nil {
		return fmt.Errorf("consumer: no partition %d", p)
	}
	for {
		got, ch := part.Progress()
		if got >= next {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("consumer: partition %d folded to %d, waiting for %d: %w", p, got, next, ctx.Err())
		}
	}
}

func (c *Consumer) checkReady() {
	for p, end := range c.ends {
		if c.state.parts[p].next < end {
			return
		}
	}
	c.readyOnce.Do(func() {
		for p := range c.ends {
			c.followed[p].Store(true)
		}
		close(c.ready)
	})
}

// run polls the log on one goroutine and folds on another, so the next
// fetch is in flight while the previous one is folded (franz-go issues a
// broker's next fetch only once the buffered one has been polled).
func (c *Consumer) run(ctx context.Context) {
	defer c.wg.Done()
	go c.poll(ctx)
	var (
		d   Delivery
		res Result
	)
	live := false
	select {
	case <-c.ready:
		live = true
	default:
	}
	if !live {
		// The replay allocates fast and keeps little: collect less often
		// until caught up (a quarter of the GC work, for a larger heap
		// for a few seconds).
		if prev := debug.SetGCPercent(replayGCPercent); prev >= replayGCPercent || prev < 0 {
			debug.SetGCPercent(prev)
		} else {
			go func() {
				select {
				case <-c.ready:
				case <-ctx.Done():
				}
				debug.SetGCPercent(prev)
			}()
		}
	}
	for {
		var batch fetchItem
		select {
		case fn := <-c.changes:
			fn()
			continue
		case b, ok := <-c.fetched:
			if !ok {
				return
			}
			batch = b
		}
		if ctx.Err() != nil {
			continue // drain, so the poller can end
		}
		if batch.fn != nil {
			batch.fn()
			continue
		}
		fetches := batch.fetches
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				c.cfg.Logger.Warn("consumer fetch error", "topic", topic, "partition", p, "err", err)
			}
		})
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			if fp.Partition < 0 || int(fp.Partition) >= len(c.follows) {
				return
			}
			f := &c.follows[fp.Partition]
			if !f.on {
				return // fetched for a follow that has ended (follow.go)
			}
			part := c.state.parts[fp.Partition]
			part.hwm.Store(fp.HighWatermark)
			folded := false
			for _, r := range fp.Records {
				if r.Offset < part.next {
					continue // folded already
				}
				c.handle(part, r, &d, &res, live && r.Offset >= f.liveFrom)
				folded = true
			}
			if folded {
				part.Advance()
			}
		})
		if !live {
			c.checkReady()
			select {
			case <-c.ready:
				live = true
			default:
			}
		}
	}
}

// handle folds one record and delivers it. Kept separate from run so the
// benchmark measures exactly the per-record path.
func (c *Consumer) handle(part *Partition, r *kgo.Record, d *Delivery, res *Result, live bool) {
	c.records.Add(1)
	ev, err := part.Apply(r, res)
	if err != nil {
		c.skip(r, err)
		return
	}
	if res.Misplaced {
		c.noteMisplaced(r, &ev, res.Home)
	}
	*d = Delivery{
		Event:     ev,
		Pos:       record.Pos{Epoch: c.cfg.Epoch, Partition: r.Partition, Offset: r.Offset},
		Timestamp: r.Timestamp,
		Result:    res,
		Part:      part,
		Live:      live,
		Record:    r,
	}
	c.cfg.Sink.Deliver(d)
}

// skip counts a record that did not decode and warns (rate-limited).
func (c *Consumer) skip(r *kgo.Record, err error) {
	c.skipped.Add(1)
	reason := record.SkipReason(err)
	for i, s := range record.SkipReasons {
		if s == reason {
			c.skippedBy[i].Add(1)
		}
	}
	if ok, held := c.warnSkipped.allow(time.Now()); ok {
		c.cfg.Logger.Warn("skipping a record that does not decode", "partition", r.Partition, "offset", r.Offset,
			"reason", reason, "err", err, "more_since_last_warning", held)
	}
}

// noteMisplaced counts a misplaced record and warns (rate-limited), naming
// where it was written and where its room lives.
func (c *Consumer) noteMisplaced(r *kgo.Record, ev *record.Event, home int32) {
	c.misplaced.Add(1)
	if ok, held := c.warnMisplaced.allow(time.Now()); ok {
		c.cfg.Logger.Warn("misplaced record: its key maps to another partition than the one it was written to (a producer without Kafka's murmur2 partitioner; see docs/backends.md); it reaches its room through a re-homed copy",
			"room", ev.Room, "written_to", r.Partition, "offset", r.Offset, "home", home, "more_since_last_warning", held)
	}
}
