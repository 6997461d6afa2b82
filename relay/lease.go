package relay

import (
	"context"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/consumer"
	"github.com/roomlog/roomlog/record"
)

// Relay liveness. Every relay writes a lease record to every partition each
// LeaseTimeout/3. Each relay watches the others' leases as it folds them; when
// one has not been renewed for LeaseTimeout (by this relay's clock), it
// appends an expire record naming the exact lease it saw last. The fold ends
// the session only if that lease is still the newest, so the outcome is
// decided by the log, identically on every relay and in every replay, and a
// relay that renewed in time is never expired.

// DefaultName is a relay's name when Config.RelayName is empty: the host
// name and the port of addr (the bound listener's; "/" in the host name
// becomes "_", names may not hold it).
func DefaultName(addr string) string {
	host, _ := os.Hostname()
	_, port, _ := net.SplitHostPort(addr)
	return strings.ReplaceAll(host, "/", "_") + ":" + port
}

// leases tracks when this relay last saw each other relay's lease, and
// whether its own view of each partition is current: silence is measured
// only while this relay folds its own leases in time. After a log outage
// (a partition without a leader, brokers below min.insync.replicas) every
// relay's last folded lease is old, and every renewal was held up alike;
// judging by the old times would expire relays that were only waiting for
// the log, racing their renewals (and closing their clients with 4002). So
// a partition's silence counts from when this relay's own leases flow again
// (healthySince), and not at all while they do not.
type leases struct {
	mu           sync.Mutex
	self         string // this relay's name
	timeout      time.Duration
	seenAt       map[leaseKey]leaseSeen
	expired      map[leaseKey]int64 // lease offset we already asked to expire
	healthySince map[int32]time.Time
	kickCh       chan struct{}
}

type leaseKey struct {
	partition int32
	relay     string
}

type leaseSeen struct {
	offset int64
	at     time.Time
}

func newLeases(timeout time.Duration) *leases {
	return &leases{timeout: timeout, seenAt: make(map[leaseKey]leaseSeen), expired: make(map[leaseKey]int64),
		healthySince: make(map[int32]time.Time), kickCh: make(chan struct{}, 1)}
}

// setSelf names this relay (its own leases tell whether its view of a
// partition is current); Start calls it once the name is known.
func (l *leases) setSelf(name string) {
	l.mu.Lock()
	l.self = name
	l.mu.Unlock()
}

// seen records that relay's lease at offset was folded now.
func (l *leases) seen(partition int32, relay string, offset int64) {
	l.seenAtTime(partition, relay, offset, time.Now())
}

// ownGap is how long this relay's own leases may take between two folds in a
// partition (they are written every timeout/3) before its view of the
// partition counts as stale.
func (l *leases) ownGap() time.Duration { return l.timeout * 2 / 3 }

func (l *leases) seenAtTime(partition int32, relay string, offset int64, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := leaseKey{partition, relay}
	if relay == l.self {
		if prev, ok := l.seenAt[k]; !ok || now.Sub(prev.at) > l.ownGap() {
			l.healthySince[partition] = now
		}
	}
	l.seenAt[k] = leaseSeen{offset: offset, at: now}
}

// silent reports how long relay has been silent in partition, by this
// relay's clock, counting only the time this relay's own view of the
// partition has been current; ok is false when that view is stale now (its
// own lease has not been folded within ownGap) or relay's lease was never
// seen at offset.
func (l *leases) silent(partition int32, relay string, offset int64, now time.Time) (d time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	seen, found := l.seenAt[leaseKey{partition, relay}]
	own, current := l.seenAt[leaseKey{partition, l.self}]
	if !found || seen.offset != offset || !current || now.Sub(own.at) > l.ownGap() {
		return 0, false
	}
	from := seen.at
	if h := l.healthySince[partition]; h.After(from) {
		from = h
	}
	return now.Sub(from), true
}

// prune forgets, in partition p, the relays whose lease the fold no longer
// holds live (expired, or ended by a restart): the tables hold the live
// fleet, not every relay name ever seen.
func (l *leases) prune(p int32, folded []consumer.RelayLease) {
	live := make(map[string]bool, len(folded))
	for _, fl := range folded {
		if !fl.Expired {
			live[fl.Relay] = true
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for k := range l.seenAt {
		if k.partition == p && !live[k.relay] {
			delete(l.seenAt, k)
		}
	}
	for k := range l.expired {
		if k.partition == p && !live[k.relay] {
			delete(l.expired, k)
		}
	}
}

// size is how many (partition, relay) entries the tables hold.
func (l *leases) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.seenAt) + len(l.expired)
}

// kick makes the lease loop renew at once.
func (l *leases) kick() {
	select {
	case l.kickCh <- struct{}{}:
	default:
	}
}

// leaseRecord is this relay's lease for session, written to partition p.
func (s *Server) leaseRecord(p int32, session string) *kgo.Record {
	r := record.Encode(&record.Event{Type: record.TypeLease, Room: record.RelayKeyPrefix + s.cfg.RelayName, Relay: s.cfg.RelayName, Session: session, Addr: s.cfg.AdvertiseAddr})
	record.ManualPartition(r, p)
	return r
}

// writeLeases appends this relay's lease to every partition and waits for
// the log to take them.
func (s *Server) writeLeases(ctx context.Context) error {
	session := s.currentSession()
	var wg sync.WaitGroup
	parts := s.leasedPartitions()
	errs := make(chan error, len(parts))
	for _, p := range parts {
		wg.Add(1)
		s.prod.Produce(ctx, s.leaseRecord(p, session), func(_ *kgo.Record, err error) {
			if err != nil {
				errs <- err
			}
			wg.Done()
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// leaseLoop renews this relay's lease and expires relays that stopped
// renewing theirs, until ctx ends.
func (s *Server) leaseLoop(ctx context.Context) {
	defer s.bg.Done()
	t := time.NewTicker(s.cfg.LeaseTimeout / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.leases.kickCh:
		}
		if err := s.writeLeases(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("renewing this relay's lease", "err", err)
		}
		s.expireStale()
		if s.fol != nil {
			s.bg.Add(1)
			go func() {
				defer s.bg.Done()
				s.followPass(ctx)
			}()
		}
	}
}

// expireStale appends an expire record for every other relay session whose
// newest lease in a partition this relay saw folded more than LeaseTimeout
// ago: its members leave, and its entry leaves the lease table.
func (s *Server) expireStale() {
	now := time.Now()
	for _, p := range s.leasedPartitions() {
		part := s.cons.State().Partition(p)
		leases := part.Leases()
		s.leases.prune(p, leases)
		for _, l := range leases {
			if l.Expired || l.Relay == s.cfg.RelayName {
				continue
			}
			k := leaseKey{p, l.Relay}
			silent, ok := s.leases.silent(p, l.Relay, l.LeaseOffset, now)
			s.leases.mu.Lock()
			asked, did := s.leases.expired[k]
			s.leases.mu.Unlock()
			if !ok || silent < s.cfg.LeaseTimeout || (did && asked == l.LeaseOffset) {
				continue
			}
			s.cfg.Logger.Warn("relay stopped renewing its lease; expiring it", "relay", l.Relay, "session", l.Session,
				"partition", p, "members", l.Members, "silent_for", silent.Round(time.Millisecond))
			r := record.Encode(&record.Event{Type: record.TypeExpire, Room: record.RelayKeyPrefix + l.Relay, Relay: l.Relay, Session: l.Session, Version: l.LeaseOffset})
			record.ManualPartition(r, p)
			s.leases.mu.Lock()
			s.leases.expired[k] = l.LeaseOffset
			s.leases.mu.Unlock()
			s.prod.Produce(context.Background(), r, func(_ *kgo.Record, err error) {
				if err != nil {
					s.cfg.Logger.Warn("appending an expire record", "relay", l.Relay, "partition", p, "err", err)
					s.leases.mu.Lock()
					delete(s.leases.expired, k)
					s.leases.mu.Unlock()
				}
			})
		}
	}
}
