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

// leases tracks when this relay last saw each other relay's lease.
type leases struct {
	mu      sync.Mutex
	seenAt  map[leaseKey]leaseSeen
	expired map[leaseKey]int64 // lease offset we already asked to expire
	kickCh  chan struct{}
}

type leaseKey struct {
	partition int32
	relay     string
}

type leaseSeen struct {
	offset int64
	at     time.Time
}

func newLeases() *leases {
	return &leases{seenAt: make(map[leaseKey]leaseSeen), expired: make(map[leaseKey]int64), kickCh: make(chan struct{}, 1)}
}

// seen records that relay's lease at offset was folded now.
func (l *leases) seen(partition int32, relay string, offset int64) {
	l.mu.Lock()
	l.seenAt[leaseKey{partition, relay}] = leaseSeen{offset: offset, at: time.Now()}
	l.mu.Unlock()
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

// writeLeases appends this relay's lease to every partition and waits for
// the log to take them.
func (s *Server) writeLeases(ctx context.Context) error {
	session := s.currentSession()
	var wg sync.WaitGroup
	errs := make(chan error, s.partitions)
	for p := int32(0); p < s.partitions; p++ {
		r := record.Encode(&record.Event{Type: record.TypeLease, Room: record.RelayKeyPrefix + s.cfg.RelayName, Relay: s.cfg.RelayName, Session: session, Addr: s.cfg.AdvertiseAddr})
		record.ManualPartition(r, p)
		wg.Add(1)
		s.prod.Produce(ctx, r, func(_ *kgo.Record, err error) {
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
	}
}

// expireStale appends an expire record for every other relay session whose
// newest lease in a partition this relay saw folded more than LeaseTimeout
// ago: its members leave, and its entry leaves the lease table.
func (s *Server) expireStale() {
	now := time.Now()
	for p := int32(0); p < s.partitions; p++ {
		part := s.cons.State().Partition(p)
		leases := part.Leases()
		s.leases.prune(p, leases)
		for _, l := range leases {
			if l.Expired || l.Relay == s.cfg.RelayName {
				continue
			}
			k := leaseKey{p, l.Relay}
			s.leases.mu.Lock()
			seen, ok := s.leases.seenAt[k]
			asked, did := s.leases.expired[k]
			s.leases.mu.Unlock()
			if !ok || seen.offset != l.LeaseOffset || now.Sub(seen.at) < s.cfg.LeaseTimeout || (did && asked == l.LeaseOffset) {
				continue
			}
			s.cfg.Logger.Warn("relay stopped renewing its lease; expiring it", "relay", l.Relay, "session", l.Session,
				"partition", p, "members", l.Members, "silent_for", now.Sub(seen.at).Round(time.Millisecond))
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
