package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Following partitions on demand (Config.Partitions set): the consumer
// starts with some partitions and adds others when asked (Follow), loading
// each from its newest snapshot (Config.LoadSnapshot) and the log after it,
// as Start does for all of them; Unfollow drops one and forgets its state.
//
// Every decision about the followed set runs on the folder goroutine,
// between two batches (a request over c.changes), so the fold never races
// it. Dropping a partition also has to be ordered with the polls: the
// folder stops folding it (follow.on), then asks the poller to remove it
// from the fetch between two polls (onPoller, which interrupts a poll that
// is waiting), and the poller sends the folder the rest of the drop (the
// state reset) behind every batch polled before the removal; franz-go
// returns no record of a removed partition after that. A partition being
// dropped is added again only once its reset has run (follow.pendingAdd),
// so no batch polled for an earlier follow is folded into a later one.

// ErrNotFollowed is returned by Follow for a partition it cannot follow
// (none such, or every partition is followed from Start), and wraps the
// error of a follow dropped while it loaded.
var ErrNotFollowed = errors.New("consumer: partition not followed")

// follow is one partition's follow state. The folder goroutine writes it;
// following is read from any goroutine.
type follow struct {
	on       bool  // folded (the folder's)
	removing bool  // on its way out of the fetch; reset pending (the folder's)
	liveFrom int64 // records from here on are live (the folder's)
	// pendingAdd is an add that waits for the reset (the folder's).
	pendingAdd func()

	// loading is closed when a Follow's load ends (under c.fmu).
	loading chan struct{}
	loadErr error
}

// change is a request run on the folder goroutine.
type change func()

// fetchItem is a polled batch, or a change to run on the folder in its
// place among the batches.
type fetchItem struct {
	fetches kgo.Fetches
	fn      func()
}

// poll polls the log and hands the folder each batch, running the
// requests queued by onPoller between two polls. It closes c.fetched when
// ctx ends.
func (c *Consumer) poll(ctx context.Context) {
	defer close(c.fetched)
	var pctx context.Context
	for {
		c.pmu.Lock()
		reqs := c.preqs
		c.preqs = nil
		if pctx == nil || pctx.Err() != nil {
			pctx, c.pcancel = context.WithCancel(ctx)
		}
		c.pmu.Unlock()
		for _, fn := range reqs {
			fn()
		}
		fs := c.cl.PollFetches(pctx)
		if ctx.Err() != nil {
			return
		}
		if pctx.Err() != nil && fs.NumRecords() == 0 {
			continue // interrupted by onPoller
		}
		select {
		case c.fetched <- fetchItem{fetches: fs}:
		case <-ctx.Done():
			return
		}
	}
}

// onPoller runs fn on the poller goroutine, between two polls, at once if
// it is waiting for records.
func (c *Consumer) onPoller(fn func()) {
	c.pmu.Lock()
	c.preqs = append(c.preqs, fn)
	cancel := c.pcancel
	c.pmu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// toFolder sends fn to the folder behind the batches polled so far. Call
// on the poller goroutine.
func (c *Consumer) toFolder(fn func()) {
	select {
	case c.fetched <- fetchItem{fn: fn}:
	case <-c.runCtx.Done():
	}
}

// Following reports whether p is followed and caught up with the log's end
// as it was when it was added.
func (c *Consumer) Following(p int32) bool {
	if int(p) >= len(c.followed) || p < 0 {
		return false
	}
	return c.followed[p].Load()
}

// OnDemand reports whether partitions are followed on demand
// (Config.Partitions set).
func (c *Consumer) OnDemand() bool { return c.cfg.Partitions != nil }

// FollowedPartitions returns the partitions followed now, in order.
func (c *Consumer) FollowedPartitions() []int32 {
	var out []int32
	for p := range c.followed {
		if c.followed[p].Load() {
			out = append(out, int32(p))
		}
	}
	return out
}

// Follow makes sure partition p is followed and its fold has caught up with
// the log's end as it was when the follow began; it loads the partition
// (snapshot, then the log after it) when it is not followed yet. Concurrent
// calls for one partition share one load. The load runs to its end even if
// ctx ends first (another caller may be waiting for it).
func (c *Consumer) Follow(ctx context.Context, p int32) error {
	if c.Following(p) {
		return nil
	}
	if !c.OnDemand() {
		return fmt.Errorf("%w: partition %d (every partition is followed from Start)", ErrNotFollowed, p)
	}
	if p < 0 || int(p) >= len(c.followed) {
		return fmt.Errorf("%w: no partition %d", ErrNotFollowed, p)
	}
	c.fmu.Lock()
	f := &c.follows[p]
	ch := f.loading
	if ch == nil {
		if c.followed[p].Load() {
			c.fmu.Unlock()
			return nil
		}
		ch = make(chan struct{})
		f.loading, f.loadErr = ch, nil
		c.wg.Add(1)
		go c.load(p, ch)
	}
	c.fmu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
		return fmt.Errorf("consumer: loading partition %d: %w", p, ctx.Err())
	}
	if c.Following(p) {
		return nil
	}
	c.fmu.Lock()
	err := c.follows[p].loadErr
	c.fmu.Unlock()
	if err == nil {
		err = fmt.Errorf("%w: partition %d was dropped while loading", ErrNotFollowed, p)
	}
	return err
}

// LoadTimeout bounds one partition's load (snapshot and catch-up).
const LoadTimeout = 2 * time.Minute

// load follows p: its snapshot, its log's bounds, the add on the folder
// goroutine, then the catch-up. It runs on its own goroutine.
func (c *Consumer) load(p int32, done chan struct{}) {
	defer c.wg.Done()
	ctx, cancel := context.WithTimeout(c.runCtx, LoadTimeout)
	defer cancel()
	began := time.Now()
	end, err := c.addPartition(ctx, p)
	if err == nil {
		err = c.WaitFor(ctx, p, end)
	}
	c.fmu.Lock()
	f := &c.follows[p]
	if err == nil {
		c.followed[p].Store(true)
	} else {
		f.loadErr = fmt.Errorf("consumer: loading partition %d: %w", p, err)
	}
	f.loading = nil
	c.fmu.Unlock()
	close(done)
	if err != nil {
		c.cfg.Logger.Warn("following a partition failed", "partition", p, "err", err)
		c.Unfollow(p)
		return
	}
	c.cfg.Logger.Debug("following a partition", "partition", p, "to", end, "took", time.Since(began).Round(time.Millisecond))
}

// addPartition restores p from its snapshot (or its log's start), and adds
// it to the fetch from there; it returns the log's end when the add began:
// the fold has caught up once it reaches it.
func (c *Consumer) addPartition(ctx context.Context, p int32) (int64, error) {
	if int(p) >= len(c.follows) || p < 0 {
		return 0, fmt.Errorf("no partition %d in topic %q", p, c.cfg.Topic)
	}
	start, end, err := c.bounds(ctx, p)
	if err != nil {
		return 0, err
	}
	var base *Partition
	if c.cfg.LoadSnapshot != nil {
		snap, err := c.cfg.LoadSnapshot(ctx, p)
		switch {
		case err != nil:
			c.cfg.Logger.Warn("loading a partition's snapshot failed; replaying its log from the start", "partition", p, "err", err)
		case snap != nil && c.usableSnapshot(p, snap, start, end):
			base = snap
		}
	}
	if base == nil {
		base = newPartition(p, c.cfg.HistoryWindow)
		base.next, base.floor = start, start
	}
	added := make(chan struct{})
	err = c.onFolder(ctx, func() {
		f := &c.follows[p]
		if f.on {
			close(added) // still followed: an Unfollow found this load running
			return
		}
		add := func() {
			defer close(added)
			part := c.state.parts[p]
			part.mu.Lock()
			part.adopt(base, c.state.topicParts)
			part.hwm.Store(end)
			part.mu.Unlock()
			f.on, f.liveFrom = true, end
			c.cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{c.cfg.Topic: {p: kgo.NewOffset().At(base.next)}})
		}
		if f.removing {
			f.pendingAdd = add
			return
		}
		add()
	})
	if err != nil {
		return 0, err
	}
	select {
	case <-added:
		return end, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// bounds lists partition p's log start and end offsets, retrying while the
// log is unreachable (a broker restarting) until ctx ends.
func (c *Consumer) bounds(ctx context.Context, p int32) (start, end int64, err error) {
	adm := kadm.NewClient(c.cl)
	for {
		start, end, err = c.listBounds(ctx, adm, p)
		if err == nil {
			return start, end, nil
		}
		select {
		case <-ctx.Done():
			return 0, 0, err
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (c *Consumer) listBounds(ctx context.Context, adm *kadm.Client, p int32) (start, end int64, err error) {
	ends, err := adm.ListEndOffsets(ctx, c.cfg.Topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return 0, 0, fmt.Errorf("list end offsets: %w", err)
	}
	starts, err := adm.ListStartOffsets(ctx, c.cfg.Topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return 0, 0, fmt.Errorf("list start offsets: %w", err)
	}
	eo, ok1 := ends.Lookup(c.cfg.Topic, p)
	so, ok2 := starts.Lookup(c.cfg.Topic, p)
	if !ok1 || !ok2 {
		return 0, 0, fmt.Errorf("no partition %d in topic %q", p, c.cfg.Topic)
	}
	return so.Offset, eo.Offset, nil
}

// Unfollow stops following p and forgets its state (reads of it see an
// empty partition until it is followed again). A load in progress is left
// to finish.
func (c *Consumer) Unfollow(p int32) {
	if !c.OnDemand() || p < 0 || int(p) >= len(c.followed) {
		return
	}
	c.fmu.Lock()
	loading := c.follows[p].loading != nil
	if !loading {
		c.followed[p].Store(false)
	}
	c.fmu.Unlock()
	if loading {
		return
	}
	_ = c.onFolder(c.runCtx, func() {
		f := &c.follows[p]
		c.fmu.Lock()
		busy := c.followed[p].Load() || f.loading != nil
		c.fmu.Unlock()
		if !f.on || busy {
			return
		}
		f.on, f.removing = false, true
		c.onPoller(func() {
			c.cl.RemoveConsumePartitions(map[string][]int32{c.cfg.Topic: {p}})
			c.toFolder(func() {
				part := c.state.parts[p]
				part.mu.Lock()
				empty := newPartition(p, c.cfg.HistoryWindow)
				empty.next, empty.floor = part.next, part.next
				part.adopt(empty, c.state.topicParts)
				part.hwm.Store(empty.next)
				part.mu.Unlock()
				f.removing = false
				if add := f.pendingAdd; add != nil {
					f.pendingAdd = nil
					add()
				}
			})
		})
	})
}

// onFolder runs fn on the folder goroutine, between batches. It returns
// once fn is queued; fn runs before the next batch is folded.
func (c *Consumer) onFolder(ctx context.Context, fn change) error {
	select {
	case c.changes <- fn:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("consumer: %w", ctx.Err())
	}
}

// adopt replaces p's folded state with q's (a snapshot, or an empty
// partition), keeping p's lock and progress channel, so pointers to p held
// by readers stay valid. Call with p's write lock held, and only for a
// partition outside the fetch.
func (p *Partition) adopt(q *Partition, topicParts int32) {
	p.next, p.floor = q.next, q.floor
	p.rooms, p.relays, p.sessions = q.rooms, q.relays, q.sessions
	p.dedupe, p.dedupeQ, p.dedupeHead = q.dedupe, q.dedupeQ, q.dedupeHead
	p.revoked, p.window = q.revoked, q.window
	p.topicParts = topicParts
	p.rehomed, p.rehomedQ, p.rehomedHead, p.rehomedHigh = q.rehomed, q.rehomedQ, q.rehomedHead, q.rehomedHigh
	p.sio, p.sioPruned = q.sio, q.sioPruned
	close(p.notify)
	p.notify = make(chan struct{})
}
