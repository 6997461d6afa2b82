package relay

import (
	"context"
	"fmt"
	"hash/fnv"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roomlog/roomlog/consumer"
	"github.com/roomlog/roomlog/record"
)

// Following rooms' partitions (Config.Follow = FollowInterest, see
// docs/scaling.md). The relay folds the control partition from Start and
// any other partition only while it needs it:
//
//   - an op on a room (join, publish, state, reads; from a socket or the
//     API) first follows the room's partition (ensure): the consumer loads
//     it from its snapshot and the log after it, then the relay writes its
//     lease there and waits for the fold to take it, so its joins find a live
//     lease and acks still come from the fold;
//   - each partition has a keeper, chosen by rendezvous hashing over the
//     relays alive in the control partition's leases, which follows it
//     whether or not it has sockets there: a partition always has a relay
//     that expires the leases of dead relays, re-homes misplaced records and
//     writes snapshots;
//   - a partition with no local room, not kept, and not used for
//     FollowIdle is dropped.
//
// A relay that stops following a partition stops renewing its lease there,
// and the others expire it in that partition: that ends nothing of its own
// (it has no member there), and the relay ignores such an expiry of its own
// session (ownLeaseCurrent); only an expiry of a lease it wrote since it
// last began following the partition ends its session.
//
// Concurrency: ensure runs on readers' goroutines, one at a time per
// partition (follower.locks); the keeper and drop passes run on the lease
// loop; leaseAt is read by the consumer's goroutine (Deliver).

// Follow modes (Config.Follow).
const (
	FollowAll      = "all"      // every partition, from Start (the default)
	FollowInterest = "interest" // the control partition, kept ones, and those local rooms need
)

// DefaultFollowIdle is Config.FollowIdle's default.
const DefaultFollowIdle = 2 * time.Minute

// Config.FetchMaxWait's defaults. With FollowInterest a partition's load
// waits for the fetch in flight: BenchmarkFollow (consumer) loads a
// 200-record partition in 124 ms on average at 250 ms, 57 ms at 100 ms and
// 28 ms at 50 ms; an idle relay on the embedded broker spends 0.4%, 0.8% and
// 1.4% of a core.
const (
	DefaultFetchMaxWait         = consumer.DefaultFetchMaxWait
	DefaultFetchMaxWaitInterest = 100 * time.Millisecond
)

type follower struct {
	locks   []sync.Mutex   // by partition: one ensure at a time
	leaseAt []atomic.Int64 // by partition: offset of this session's first lease in the current follow; -1: none
	usedAt  []atomic.Int64 // by partition: Unix nanoseconds of the last ensure
	kept    atomic.Pointer[map[int32]bool]
	loading sync.Mutex // the keeper pass: one at a time
}

func newFollower(partitions int32) *follower {
	f := &follower{locks: make([]sync.Mutex, partitions), leaseAt: make([]atomic.Int64, partitions), usedAt: make([]atomic.Int64, partitions)}
	for p := range f.leaseAt {
		f.leaseAt[p].Store(-1)
	}
	none := map[int32]bool{}
	f.kept.Store(&none)
	return f
}

// controlPartitionID is the partition of record.ControlKey.
func (s *Server) controlPartitionID() int32 {
	return record.PartitionOf(record.ControlKey, s.partitions)
}

// ensureRoom follows room's partition (FollowInterest); see ensure.
func (s *Server) ensureRoom(ctx context.Context, room string) error {
	if s.fol == nil {
		return nil
	}
	return s.ensure(ctx, record.PartitionOf(room, s.partitions))
}

// ensure makes sure partition p is followed, caught up, and holds this
// relay's lease, so that records this relay appends there are folded and
// answered. A no-op unless Config.Follow is FollowInterest.
func (s *Server) ensure(ctx context.Context, p int32) error {
	f := s.fol
	if f == nil {
		return nil
	}
	f.usedAt[p].Store(time.Now().UnixNano())
	if f.leaseAt[p].Load() >= 0 && s.cons.Following(p) {
		return nil
	}
	f.locks[p].Lock()
	defer f.locks[p].Unlock()
	f.usedAt[p].Store(time.Now().UnixNano())
	if f.leaseAt[p].Load() >= 0 && s.cons.Following(p) {
		return nil
	}
	f.leaseAt[p].Store(-1)
	if err := s.cons.Follow(ctx, p); err != nil {
		return err
	}
	off, err := s.writeLease(ctx, p)
	if err != nil {
		return fmt.Errorf("taking this relay's lease in partition %d: %w", p, err)
	}
	if err := s.cons.WaitFor(ctx, p, off+1); err != nil {
		return err
	}
	f.leaseAt[p].Store(off)
	// Used from now on too: a load can take longer than FollowIdle, and
	// the op that asked for it has yet to run (a join's room is local only
	// once the fold has taken the join).
	f.usedAt[p].Store(time.Now().UnixNano())
	return nil
}

// ensureAll follows every partition (a Socket.IO recovery, which must find
// the session's parts wherever they are).
func (s *Server) ensureAll(ctx context.Context) error {
	if s.fol == nil {
		return nil
	}
	errs := make(chan error, s.partitions)
	for p := range s.partitions {
		go func() { errs <- s.ensure(ctx, p) }()
	}
	var first error
	for range s.partitions {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// writeLease appends this relay's lease to partition p and returns its
// offset once the log has it.
func (s *Server) writeLease(ctx context.Context, p int32) (int64, error) {
	res := s.prod.ProduceSync(ctx, s.leaseRecord(p, s.currentSession()))
	if err := res.FirstErr(); err != nil {
		return 0, err
	}
	return res[0].Record.Offset, nil
}

// leasedPartitions are the partitions this relay renews its lease in: all
// of them, or (FollowInterest) the ones it follows.
func (s *Server) leasedPartitions() []int32 {
	if s.fol == nil {
		ps := make([]int32, s.partitions)
		for p := range ps {
			ps[p] = int32(p)
		}
		return ps
	}
	var ps []int32
	for _, p := range s.cons.FollowedPartitions() {
		if s.fol.leaseAt[p].Load() >= 0 {
			ps = append(ps, p)
		}
	}
	return ps
}

// ownLeaseCurrent reports whether the fold ending this relay's session in
// partition p by an expiry of its lease at leaseOffset ends it for real:
// always when every partition is followed; with FollowInterest, only for a
// lease written since this relay last began following p (an older one was
// left behind when the relay dropped the partition).
func (s *Server) ownLeaseCurrent(p int32, leaseOffset int64) bool {
	if s.fol == nil {
		return true
	}
	at := s.fol.leaseAt[p].Load()
	return at >= 0 && leaseOffset >= at
}

// KeeperOf is the relay that keeps partition p among relays: the highest
// rendezvous score, so a relay joining or leaving moves only its own share.
// Tools that place clients by partition (testenv/scaling) call it too.
func KeeperOf(p int32, relays []string) string {
	best, bestScore := "", uint64(0)
	for _, r := range relays {
		h := fnv.New64a()
		h.Write([]byte(r))
		h.Write([]byte{0})
		h.Write([]byte(strconv.Itoa(int(p))))
		if sc := mix64(h.Sum64()); best == "" || sc > bestScore || (sc == bestScore && r < best) {
			best, bestScore = r, sc
		}
	}
	return best
}

// mix64 spreads every input bit over the whole word (MurmurHash3's
// finalizer): FNV alone leaves the high bits of names that differ only in
// their last bytes alike, and the highest score would go to one relay for
// most partitions.
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// liveRelays are the relays with a live lease in the control partition,
// this one included.
func (s *Server) liveRelays() []string {
	names := []string{s.cfg.RelayName}
	for _, l := range s.controlPartition().Leases() {
		if !l.Expired && l.Relay != s.cfg.RelayName {
			names = append(names, l.Relay)
		}
	}
	return names
}

// followPass follows the partitions this relay keeps and drops the ones it
// no longer needs. It runs on the lease loop.
func (s *Server) followPass(ctx context.Context) {
	f := s.fol
	if f == nil || !f.loading.TryLock() {
		return
	}
	defer f.loading.Unlock()
	relays := s.liveRelays()
	kept := map[int32]bool{}
	for p := range s.partitions {
		if KeeperOf(p, relays) == s.cfg.RelayName {
			kept[p] = true
		}
	}
	f.kept.Store(&kept)
	for p := range kept {
		if ctx.Err() != nil {
			return
		}
		lctx, cancel := context.WithTimeout(ctx, consumer.LoadTimeout)
		if err := s.ensure(lctx, p); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("following a kept partition", "partition", p, "err", err)
		}
		cancel()
	}
	s.dropIdle(time.Now())
}

// dropIdle stops following partitions that no local room is in, that this
// relay does not keep, and that no op used for FollowIdle.
//
// The local rooms are listed again after a partition is found idle and
// locked: an ensure marks its partition used when it ends, and its op
// (a join) makes the room local soon after, so a partition idle at the
// check has its rooms in the second list.
func (s *Server) dropIdle(now time.Time) {
	f := s.fol
	idle := func(p int32, now time.Time) bool {
		return now.Sub(time.Unix(0, f.usedAt[p].Load())) >= s.cfg.FollowIdle
	}
	local := s.localPartitions()
	kept := *f.kept.Load()
	var locked []int32
	for _, p := range s.cons.FollowedPartitions() {
		if local[p] || kept[p] || !idle(p, now) {
			continue
		}
		if !f.locks[p].TryLock() {
			continue // an ensure is running
		}
		if !idle(p, time.Now()) {
			f.locks[p].Unlock()
			continue
		}
		locked = append(locked, p)
	}
	if len(locked) == 0 {
		return
	}
	local = s.localPartitions()
	for _, p := range locked {
		if !local[p] {
			f.leaseAt[p].Store(-1)
			s.cons.Unfollow(p)
			s.cfg.Logger.Debug("dropped an idle partition", "partition", p)
		}
		f.locks[p].Unlock()
	}
}

// localPartitions are the control partition and the partitions of the
// rooms this relay's connections are in.
func (s *Server) localPartitions() map[int32]bool {
	local := map[int32]bool{s.controlPartitionID(): true}
	s.hub.eachRoom(func(room string) { local[record.PartitionOf(room, s.partitions)] = true })
	return local
}
