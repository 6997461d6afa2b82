package relay

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/consumer"
	"github.com/roomlog/roomlog/record"
)

// Re-homing misplaced records (docs/DESIGN.md, "Misplaced records"). The
// fold skips a record written to another partition than its room's
// (consumer/misplaced.go); the owner of the partition where it landed (the
// relay that writes its snapshots, consumer.Owner) appends a copy to the
// room's partition with an rl-origin header, and every relay delivers the
// copy instead, once, in the room's order.
//
// Every relay, owner or not, notes the misplaced records it folds until
// their copy is folded, so a relay that becomes the owner (the old one
// died) re-homes what is left; the home partition's fold tells what was
// already re-homed (Partition.Rehomed), and repeats are applied once.

// Re-home limits.
const (
	// rehomeMaxPending bounds the misplaced records a relay holds until
	// their copies are folded; past it (or rehomeMaxBytes) it notes no
	// more (counted in roomlog_rehome_dropped_total) and leaves them to
	// the owner.
	rehomeMaxPending = 100_000
	rehomeMaxBytes   = 64 << 20
	// rehomeTick is how often the loop looks for work beside the kicks
	// (ownership changes are noticed then).
	rehomeTick = time.Second
)

// rehomer holds the misplaced records whose copies are not folded yet.
type rehomer struct {
	mu      sync.Mutex
	pending map[record.Origin]*rehomeTask
	bytes   int
	kick    chan struct{}
	// maxPending and maxBytes are rehomeMaxPending and rehomeMaxBytes
	// (tests lower them); under mu.
	maxPending, maxBytes int

	appended, dropped  atomic.Uint64
	warnDrop, warnFail time.Time // the last warnings, under mu
}

// warnDue reports whether a warning last given at *last may be given again
// (at most one per consumer.WarnInterval), and notes it. Call with mu held.
func warnDue(last *time.Time) bool {
	if time.Since(*last) < consumer.WarnInterval {
		return false
	}
	*last = time.Now()
	return true
}

// rehomeTask is one misplaced record to re-home.
type rehomeTask struct {
	home   int32
	copy   *kgo.Record // record.Rehome's copy: key, value, headers
	sentAt time.Time   // zero: not in flight
	tried  bool        // this relay has sent a copy (under mu)
}

func newRehomer() *rehomer {
	return &rehomer{pending: make(map[record.Origin]*rehomeTask), kick: make(chan struct{}, 1),
		maxPending: rehomeMaxPending, maxBytes: rehomeMaxBytes}
}

func (rh *rehomer) len() int {
	rh.mu.Lock()
	defer rh.mu.Unlock()
	return len(rh.pending)
}

func (t *rehomeTask) size() int {
	n := len(t.copy.Key) + len(t.copy.Value)
	for _, h := range t.copy.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// noteMisplaced runs on the consumer goroutine for a misplaced record: it
// keeps a copy to re-home unless its home has folded one already. A
// misplaced copy (it has an origin) is never re-homed again.
func (s *Server) noteMisplaced(d *consumer.Delivery) {
	if d.Event.Origin != nil || d.Record == nil {
		return
	}
	o := record.Origin{Partition: d.Pos.Partition, Offset: d.Pos.Offset}
	if home := s.cons.State().Partition(d.Result.Home); home.Rehomed(o) {
		return
	}
	t := &rehomeTask{home: d.Result.Home, copy: record.Rehome(d.Record)}
	rh := s.rehome
	rh.mu.Lock()
	if _, ok := rh.pending[o]; ok {
		rh.mu.Unlock()
		return
	}
	if len(rh.pending) >= rh.maxPending || rh.bytes+t.size() > rh.maxBytes {
		rh.dropped.Add(1)
		warn := warnDue(&rh.warnDrop)
		rh.mu.Unlock()
		if warn {
			s.cfg.Logger.Warn("too many misplaced records waiting to be re-homed; leaving this one to its partition's owner",
				"partition", o.Partition, "offset", o.Offset, "home", t.home, "pending", rh.maxPending)
		}
		return
	}
	rh.pending[o] = t
	rh.bytes += t.size()
	rh.mu.Unlock()
	select {
	case rh.kick <- struct{}{}:
	default:
	}
}

// rehomedFolded runs on the consumer goroutine for a re-homed copy: its
// original needs no more work.
func (s *Server) rehomedFolded(o record.Origin) {
	rh := s.rehome
	rh.mu.Lock()
	if t := rh.pending[o]; t != nil {
		rh.bytes -= t.size()
		delete(rh.pending, o)
	}
	rh.mu.Unlock()
}

// rehomeLoop re-homes the pending records of the partitions this relay
// owns, until ctx ends. It runs on Server.bg once the relay is ready.
func (s *Server) rehomeLoop(ctx context.Context) {
	defer s.bg.Done()
	parts := make(map[int32]*consumer.Partition)
	for _, p := range s.cons.State().Partitions() {
		parts[p.ID()] = p
	}
	t := time.NewTicker(rehomeTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.rehome.kick:
		}
		s.rehomeOwned(ctx, parts)
	}
}

// rehomeOwned appends the copies of pending records from partitions this
// relay owns that are not in flight, in origin order.
func (s *Server) rehomeOwned(ctx context.Context, parts map[int32]*consumer.Partition) {
	owned := map[int32]bool{}
	for id, p := range parts {
		owned[id] = consumer.Owner(p) == s.cfg.RelayName
	}
	// A copy whose fold has not come back by then is sent again (the fold
	// applies repeats once): its produce failed, or this relay lags.
	resend := 2*s.cfg.ProduceTimeout + 5*time.Second
	now := time.Now()
	type job struct {
		o record.Origin
		t *rehomeTask
	}
	var jobs []job
	rh := s.rehome
	rh.mu.Lock()
	for o, t := range rh.pending {
		if owned[o.Partition] && (t.sentAt.IsZero() || now.Sub(t.sentAt) > resend) {
			jobs = append(jobs, job{o, t})
		}
	}
	rh.mu.Unlock()
	sort.Slice(jobs, func(i, j int) bool {
		a, b := jobs[i].o, jobs[j].o
		return a.Partition < b.Partition || a.Partition == b.Partition && a.Offset < b.Offset
	})
	for _, j := range jobs {
		rh.mu.Lock()
		tried := j.t.tried
		rh.mu.Unlock()
		// A record this relay sent before is done only when its own
		// origin is remembered: a later copy of this relay's may have
		// landed while this one failed, raising the high offset past it.
		home := parts[j.t.home]
		if home == nil || tried && home.RehomedExactly(j.o) || !tried && home.Rehomed(j.o) {
			s.rehomedFolded(j.o)
			continue
		}
		rh.mu.Lock()
		j.t.sentAt, j.t.tried = now, true
		rh.mu.Unlock()
		// A fresh record per send: franz-go owns a record until its
		// promise runs. The partitioner puts it in the room's partition.
		r := &kgo.Record{Key: j.t.copy.Key, Value: j.t.copy.Value, Headers: j.t.copy.Headers}
		o, t := j.o, j.t
		s.prod.Produce(ctx, r, func(r *kgo.Record, err error) {
			if err != nil {
				rh.mu.Lock()
				t.sentAt = time.Time{}
				warn := warnDue(&rh.warnFail)
				rh.mu.Unlock()
				if warn && ctx.Err() == nil {
					s.cfg.Logger.Warn("re-homing a misplaced record failed; will retry (one warning per interval)", "partition", o.Partition, "offset", o.Offset, "home", t.home, "err", err)
				}
				return
			}
			rh.appended.Add(1)
		})
	}
}
