package relay

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/record"
)

// The producer: every record the relay appends goes through produce, on one
// idempotent franz-go client with acks=all.

// startProducer makes the producer client. Nothing is sent until the first
// record.
func (s *Server) startProducer() error {
	codec, err := compressionCodec(s.cfg.Compression)
	if err != nil {
		return fmt.Errorf("relay: producer: %w", err)
	}
	prod, err := kgo.NewClient(append([]kgo.Opt{
		kgo.ClientID("roomlog-relay"),
		kgo.DefaultProduceTopic(s.cfg.Topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(max(s.cfg.ProduceLinger, 0)),
		kgo.RecordDeliveryTimeout(s.cfg.ProduceTimeout),
		kgo.ProducerBatchMaxBytes(int32(MaxMessageBytesLimit + 16<<10)),
		kgo.RecordPartitioner(record.NewPartitioner()),
		kgo.ProducerBatchCompression(codec),
	}, s.clientOpts(kafkaClientProducer)...)...)
	if err != nil {
		return fmt.Errorf("relay: producer: %w", err)
	}
	s.prod = prod
	return nil
}

// compressionCodec is the franz-go codec named by Config.Compression.
// franz-go's own default is Snappy, which kafkajs (and other clients
// without a Snappy codec) cannot read: a backend's consumer crashed on the
// first batch that compressed well. So none unless asked.
func compressionCodec(name string) (kgo.CompressionCodec, error) {
	switch name {
	case "", "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.NoCompression(), fmt.Errorf("compression %q: want none, gzip, snappy, lz4 or zstd", name)
}

// produce appends ev to the events topic; done (if not nil) runs on a
// franz-go goroutine with the record's position or the error.
func (s *Server) produce(ev *record.Event, done func(record.Pos, error)) {
	r := record.Encode(ev)
	began := time.Now()
	s.prod.Produce(context.Background(), r, func(r *kgo.Record, err error) {
		if err == nil {
			s.metrics.since(s.metrics.produceLatency, began)
		} else {
			s.cfg.Logger.Warn("append failed", "room", ev.Room, "type", ev.Type, "err", err)
		}
		if done != nil {
			done(record.Pos{Epoch: s.epoch, Partition: r.Partition, Offset: r.Offset}, err)
		}
	})
}
