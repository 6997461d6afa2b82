package relay

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/roomlog/roomlog/consumer"
	"github.com/roomlog/roomlog/record"
)

// metrics are the relay's Prometheus metrics (docs/operations.md lists them).
// Each Server has its own registry, so several relays in one process (tests)
// do not collide; /metrics serves it with the Go and process collectors.
type metrics struct {
	reg *prometheus.Registry

	connsTotal     prometheus.Counter
	forwards       prometheus.Counter
	joins          prometheus.Counter
	publishes      *prometheus.CounterVec
	deliveries     *prometheus.CounterVec
	produceLatency prometheus.Histogram
	deliverLatency prometheus.Histogram
	closes         *prometheus.CounterVec
	errors         *prometheus.CounterVec
	recoveries     *prometheus.CounterVec
	sioResumes     *prometheus.CounterVec
	acme           *prometheus.CounterVec
	limits         *prometheus.CounterVec
	kafkaRequests  *prometheus.CounterVec
	kafkaErrors    *prometheus.CounterVec
}

// Publish outcomes, delivery kinds and recovery sources (label values).
const (
	outcomeAcked          = "acked"
	outcomeDuplicate      = "duplicate"
	outcomeRejected       = "rejected"
	outcomeLogUnavailable = "log_unavailable"

	kindMessage  = "message"
	kindState    = "state"
	kindPresence = "presence"
)

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	latency := []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

	m.connsTotal = prometheus.NewCounter(prometheus.CounterOpts{Name: "roomlog_connections_total", Help: "WebSocket connections accepted."})
	m.forwards = prometheus.NewCounter(prometheus.CounterOpts{Name: "roomlog_socketio_forwarded_total", Help: "Socket.IO requests forwarded to the relay that owns their session."})
	m.joins = prometheus.NewCounter(prometheus.CounterOpts{Name: "roomlog_joins_total", Help: "Joins that took effect on this relay's connections."})
	m.publishes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "roomlog_publishes_total", Help: "Publishes from this relay's connections, by outcome (acked, duplicate, rejected, log_unavailable)."}, []string{"outcome"})
	m.deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "roomlog_deliveries_total", Help: "Frames fanned out to local sockets, by kind (message, state, presence)."}, []string{"kind"})
	m.produceLatency = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "roomlog_produce_latency_seconds", Help: "Time from handing a record to the producer to the log's acknowledgement.", Buckets: latency})
	m.deliverLatency = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "roomlog_publish_deliver_latency_seconds", Help: "Time from a publish record's timestamp (set by the producing relay) to its fan-out here; across hosts it includes their clock skew.", Buckets: latency})
	m.closes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "roomlog_closes_total", Help: "Connections closed, by reason (normal, going_away, binary, too_big, slow_client, session_ended, token_expired, unauthorized, rate_limited, idle, revoked, disconnected, max_conns_per_user)."}, []string{"reason"})
	m.errors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "roomlog_errors_total", Help: "Error frames sent, by code."}, []string{"code"})
	m.recoveries = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "roomlog_recoveries_total", Help: "Joins with since, by where the backlog came from (window, log, none)."}, []string{"source"})
	m.acme = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "roomlog_acme_events_total", Help: "Certificate management events (cert_obtaining, cert_obtained, cert_failed, ...)."}, []string{"event"})
	m.limits = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "roomlog_limit_violations_total", Help: "Requests and frames refused by a limit or a security check, by reason."}, []string{"reason"})
	m.sioResumes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "roomlog_socketio_recoveries_total", Help: "Socket.IO CONNECTs with a pid (connection state recovery), by outcome: recovered, or why not (unknown, expired, retention, other_epoch, other_user, bad_offset, forbidden, log_unavailable)."}, []string{"outcome"})
	m.kafkaRequests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "roomlog_kafka_requests_total", Help: "Requests this relay's Kafka clients sent, by client (producer, consumer, snapshots, reader, admin) and API (Produce, Fetch, Metadata, ...)."}, []string{"client", "api"})
	m.kafkaErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "roomlog_kafka_request_errors_total", Help: "Kafka requests whose write or response read failed (the connection broke or timed out), by client and API."}, []string{"client", "api"})
	for _, c := range []prometheus.Collector{m.kafkaRequests, m.kafkaErrors, m.sioResumes, m.connsTotal, m.forwards, m.joins, m.publishes, m.deliveries, m.produceLatency, m.deliverLatency, m.closes, m.errors, m.recoveries, m.acme, m.limits} {
		f(c)
	}

	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "roomlog_connections", Help: "Open WebSocket connections."}, func() float64 {
		s.connsMu.Lock()
		defer s.connsMu.Unlock()
		return float64(len(s.conns))
	}))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "roomlog_rooms", Help: "Rooms with at least one local subscriber."}, func() float64 { return float64(s.hub.rooms()) }))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "roomlog_ready", Help: "1 once the relay has replayed the log and serves clients; 0 while replaying or draining."}, func() float64 {
		if s.Ready() {
			return 1
		}
		return 0
	}))
	f(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "roomlog_log_records_total", Help: "Records folded by the consumer (replay included)."}, func() float64 {
		cons := s.started.Load()
		if cons == nil {
			return 0
		}
		return float64(cons.Stats().Records)
	}))
	consumerStat := func(get func(consumer.Stats) uint64) func() float64 {
		return func() float64 {
			cons := s.started.Load()
			if cons == nil {
				return 0
			}
			return float64(get(cons.Stats()))
		}
	}
	for _, reason := range record.SkipReasons {
		f(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "roomlog_log_skipped_total", Help: "Records the consumer could not decode and skipped, by reason (no_key, bad_room, too_large, bad_value, unknown_type, bad_header).",
			ConstLabels: prometheus.Labels{"reason": reason}}, consumerStat(func(st consumer.Stats) uint64 { return st.SkippedBy[reason] })))
	}
	f(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "roomlog_misplaced_records_total", Help: "Records folded that were written to another partition than their room's (a producer without Kafka's murmur2 partitioner); each reaches its room through a re-homed copy."},
		consumerStat(func(st consumer.Stats) uint64 { return st.Misplaced })))
	f(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "roomlog_rehomed_records_total", Help: "Copies of misplaced records this relay appended to their room's partition (as the owner of the partition they landed in)."},
		func() float64 { return float64(s.rehome.appended.Load()) }))
	f(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "roomlog_rehome_dropped_total", Help: "Misplaced records this relay did not keep to re-home because too many were waiting (left to their partition's owner)."},
		func() float64 { return float64(s.rehome.dropped.Load()) }))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "roomlog_partitions_followed", Help: "Partitions of the events topic this relay folds (all of them unless --follow interest)."}, func() float64 {
		if cons := s.started.Load(); cons != nil {
			return float64(len(cons.FollowedPartitions()))
		}
		return 0
	}))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "roomlog_rehome_pending", Help: "Misplaced records whose re-homed copy this relay has not folded yet."},
		func() float64 { return float64(s.rehome.len()) }))
	f(lagCollector{s})
	return m
}

// lagCollector reports the consumer's lag per partition at scrape time.
type lagCollector struct{ s *Server }

var lagDesc = prometheus.NewDesc("roomlog_consumer_lag_records", "Records in the log not yet folded by this relay, per partition (as of the last fetch).", []string{"partition"}, nil)

func (l lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- lagDesc }

func (l lagCollector) Collect(ch chan<- prometheus.Metric) {
	cons := l.s.started.Load()
	if cons == nil {
		return
	}
	for _, p := range cons.State().Partitions() {
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(p.Lag()), strconv.Itoa(int(p.ID())))
	}
}

func (m *metrics) since(h prometheus.Histogram, t time.Time) { h.Observe(time.Since(t).Seconds()) }

// The relay's Kafka clients, as roomlog_kafka_requests_total names them.
const (
	kafkaClientProducer  = "producer"  // every record the relay appends
	kafkaClientConsumer  = "consumer"  // the fold
	kafkaClientSnapshots = "snapshots" // loading partition snapshots (the producer writes them)
	kafkaClientReader    = "reader"    // history and recovery reads behind the window
	kafkaClientAdmin     = "admin"     // the admin API's log reads and redrives
)

// kafkaHook counts a franz-go client's requests once each is answered or
// has failed (kgo.HookBrokerE2E). Hooks run on the client's connection
// goroutines; the counters are safe for that.
type kafkaHook struct {
	role string
	m    *metrics
}

func (h kafkaHook) OnBrokerE2E(_ kgo.BrokerMetadata, key int16, e2e kgo.BrokerE2E) {
	api := kmsg.NameForKey(key)
	h.m.kafkaRequests.WithLabelValues(h.role, api).Inc()
	if e2e.Err() != nil {
		h.m.kafkaErrors.WithLabelValues(h.role, api).Inc()
	}
}

// CountACMEEvent counts a certificate management event (certmagic's event
// names) in roomlog_acme_events_total.
func (s *Server) CountACMEEvent(event string) { s.metrics.acme.WithLabelValues(event).Inc() }
