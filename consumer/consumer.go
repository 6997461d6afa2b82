// Package consumer reads the roomlog events topic inside every relay process
// and hands each record, decoded and in log order, to a Sink (the relay's hub,
// which fans it out to the local sockets of the record's room).
//
// It reads every partition directly, without a consumer group: each relay must
// see every record, because any of its sockets may be in any room. Records are
// routed by their key (the room), never by the partition they arrived on, so a
// third-party producer with another partitioner still reaches the room.
//
// Concurrency: one goroutine polls the log and calls Sink.Deliver for each
// record, in partition order; Deliver must not block (the hub only enqueues).
// Start, Stop and the accessors are safe to call from any goroutine.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/record"
)

// Delivery is one decoded record handed to the Sink. It is only valid for the
// duration of the Deliver call.
type Delivery struct {
	Event     record.Event
	Pos       record.Pos
	Timestamp time.Time
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
	// FetchMaxWait bounds how long a fetch waits for new records
	// (default 250ms); records are returned as soon as any arrive.
	FetchMaxWait time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Stats are counters since Start.
type Stats struct {
	Records   uint64 // records read from the log
	Delivered uint64 // records handed to the sink
	Skipped   uint64 // records that did not decode (logged)
}

// Consumer tails the events topic. Create with New, then Start.
type Consumer struct {
	cfg Config
	cl  *kgo.Client

	cancel context.CancelFunc
	wg     sync.WaitGroup

	records, delivered, skipped atomic.Uint64
}

// New validates cfg and fills its defaults.
func New(cfg Config) (*Consumer, error) {
	switch {
	case cfg.Topic == "":
		return nil, errors.New("consumer: no topic")
	case cfg.Sink == nil:
		return nil, errors.New("consumer: no sink")
	}
	if cfg.FetchMaxWait <= 0 {
		cfg.FetchMaxWait = 250 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Consumer{cfg: cfg}, nil
}

// Start resolves the current end of every partition and begins tailing from
// there. When Start returns, every record produced afterwards will be
// delivered; records already in the log are not.
func (c *Consumer) Start(ctx context.Context) error {
	opts := append([]kgo.Opt{
		kgo.FetchMaxWait(c.cfg.FetchMaxWait),
		kgo.ClientID("roomlog-consumer"),
	}, c.cfg.ClientOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("consumer: client: %w", err)
	}
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, c.cfg.Topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		cl.Close()
		return fmt.Errorf("consumer: list end offsets of %q: %w", c.cfg.Topic, err)
	}
	start := make(map[int32]kgo.Offset)
	ends.Each(func(o kadm.ListedOffset) {
		start[o.Partition] = kgo.NewOffset().At(o.Offset)
	})
	if len(start) == 0 {
		cl.Close()
		return fmt.Errorf("consumer: topic %q has no partitions", c.cfg.Topic)
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{c.cfg.Topic: start})
	c.cl = cl
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.cancel = cancel
	c.wg.Add(1)
	go c.run(runCtx)
	return nil
}

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
	return Stats{Records: c.records.Load(), Delivered: c.delivered.Load(), Skipped: c.skipped.Load()}
}

func (c *Consumer) run(ctx context.Context) {
	defer c.wg.Done()
	var d Delivery
	for {
		fetches := c.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				c.cfg.Logger.Warn("consumer fetch error", "topic", topic, "partition", p, "err", err)
			}
		})
		fetches.EachRecord(func(r *kgo.Record) { c.handle(r, &d) })
	}
}

// handle decodes one record and delivers it. Kept separate from run so the
// benchmark measures exactly the per-record path.
func (c *Consumer) handle(r *kgo.Record, d *Delivery) {
	c.records.Add(1)
	ev, err := record.Decode(r)
	if err != nil {
		c.skipped.Add(1)
		c.cfg.Logger.Warn("skipping undecodable record", "partition", r.Partition, "offset", r.Offset, "err", err)
		return
	}
	*d = Delivery{
		Event:     ev,
		Pos:       record.Pos{Epoch: c.cfg.Epoch, Partition: r.Partition, Offset: r.Offset},
		Timestamp: r.Timestamp,
	}
	c.cfg.Sink.Deliver(d)
	c.delivered.Add(1)
}
