package relay

import (
	"context"
	"time"

	"github.com/roomlog/roomlog/consumer"
)

// Snapshots. Relays write them (no separate process to deploy, monitor and
// keep alive): each partition is written by one relay, its owner, chosen
// from the partition's folded leases (consumer.Owner), so every relay agrees
// who it is without talking; if the owner dies, its lease expires and the
// partition passes to another relay. The owner writes a snapshot every
// SnapshotInterval when at least SnapshotMinRecords records were folded
// since the last one.

// Snapshot defaults.
const (
	DefaultSnapshotTopic      = "roomlog.snapshots"
	DefaultSnapshotInterval   = time.Minute
	DefaultSnapshotMinRecords = 10_000
)

// loadSnapshots creates the snapshots topic when missing and returns the
// newest valid snapshot of each partition (none when snapshots are off).
func (s *Server) loadSnapshots(ctx context.Context) (map[int32]*consumer.Partition, error) {
	if s.cfg.SnapshotInterval < 0 {
		return nil, nil
	}
	s.snaps = &consumer.SnapshotStore{
		Topic:       s.cfg.SnapshotTopic,
		EventsTopic: s.cfg.Topic,
		Epoch:       s.epoch,
		ClientOpts:  s.clientOpts(kafkaClientSnapshots),
		Logger:      s.cfg.Logger,
	}
	if err := s.snaps.Ensure(ctx, s.prod, s.partitions, s.cfg.ReplicationFactor); err != nil {
		return nil, err
	}
	began := time.Now()
	var parts map[int32]*consumer.Partition
	if s.fol != nil {
		control := s.controlPartitionID()
		p, err := s.snaps.LoadPartition(ctx, s.historyWindow(), control)
		if err != nil {
			return nil, err
		}
		parts = map[int32]*consumer.Partition{}
		if p != nil {
			parts[control] = p
		}
	} else {
		var err error
		if parts, err = s.snaps.Load(ctx, s.historyWindow()); err != nil {
			return nil, err
		}
	}
	if len(parts) > 0 {
		s.cfg.Logger.Info("loaded snapshots", "partitions", len(parts), "took", time.Since(began).Round(time.Millisecond))
	}
	return parts, nil
}

// loadSnapshot returns partition p's newest valid snapshot, or nil: for a
// partition followed on demand (follow.go).
func (s *Server) loadSnapshot(ctx context.Context, p int32) (*consumer.Partition, error) {
	return s.snaps.LoadPartition(ctx, s.historyWindow(), p)
}

func (s *Server) historyWindow() int { return consumer.HistoryWindowFor(s.cfg.HistoryWindow) }

// snapshotLoop writes the snapshots of the partitions this relay owns.
func (s *Server) snapshotLoop(ctx context.Context) {
	defer s.bg.Done()
	t := time.NewTicker(s.cfg.SnapshotInterval)
	defer t.Stop()
	last := map[int32]int64{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, p := range s.cons.State().Partitions() {
			if consumer.Owner(p) != s.cfg.RelayName {
				continue
			}
			next, _ := p.Progress()
			if next-last[p.ID()] < int64(s.cfg.SnapshotMinRecords) {
				continue
			}
			if _, err := s.snaps.Write(ctx, s.prod, p, s.cfg.RelayName); err != nil {
				if ctx.Err() == nil {
					s.cfg.Logger.Warn("writing a snapshot", "partition", p.ID(), "err", err)
				}
				continue
			}
			last[p.ID()] = next
		}
	}
}

// WriteSnapshots writes a snapshot of every partition now, whoever owns it
// (for tools and tests).
func (s *Server) WriteSnapshots(ctx context.Context) error {
	for _, p := range s.cons.State().Partitions() {
		if _, err := s.snaps.Write(ctx, s.prod, p, s.cfg.RelayName); err != nil {
			return err
		}
	}
	return nil
}
