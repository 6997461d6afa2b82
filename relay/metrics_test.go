package relay_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/relay"
)

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	return string(b)
}

// metric returns the value of the sample named by its full series text,
// e.g. `roomlog_publishes_total{outcome="acked"}`; 0 when absent.
func metric(body, series string) float64 {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` ([0-9.e+-]+)$`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

func TestMetricsFollowTraffic(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		r := startRelay(t, b, newTopic(t), nil)
		addr := r.Addr().String()
		before := scrape(t, addr)
		c := dial(t, r)
		c.join("m")
		for i := 0; i < 5; i++ {
			c.do(map[string]any{"op": "publish", "room": "m", "data": i, "id": i})
			c.message()
		}
		c.send(map[string]any{"op": "publish", "room": "", "id": "bad"})
		c.reply()
		// Acks come from the fold, which may run before the producer's
		// own callback (where the produce latency is observed): wait for
		// the last one.
		after := scrape(t, addr)
		for deadline := time.Now().Add(10 * time.Second); metric(after, "roomlog_produce_latency_seconds_count")-metric(before, "roomlog_produce_latency_seconds_count") < 6 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
			after = scrape(t, addr)
		}
		for _, tt := range []struct {
			series string
			delta  float64
		}{
			{`roomlog_publishes_total{outcome="acked"}`, 5},
			{`roomlog_publishes_total{outcome="rejected"}`, 1},
			{`roomlog_deliveries_total{kind="message"}`, 5},
			{`roomlog_joins_total`, 1},
			{`roomlog_connections_total`, 1},
			{`roomlog_errors_total{code="invalid_room"}`, 1},
			{`roomlog_produce_latency_seconds_count`, 6}, // the join and 5 publishes
			{`roomlog_publish_deliver_latency_seconds_count`, 5},
		} {
			if got := metric(after, tt.series) - metric(before, tt.series); got != tt.delta {
				t.Errorf("%s grew by %v, want %v", tt.series, got, tt.delta)
			}
		}
		if metric(after, "roomlog_connections") != 1 || metric(after, "roomlog_rooms") != 1 || metric(after, "roomlog_ready") != 1 {
			t.Errorf("gauges: connections %v rooms %v ready %v", metric(after, "roomlog_connections"), metric(after, "roomlog_rooms"), metric(after, "roomlog_ready"))
		}
		if !strings.Contains(after, `roomlog_consumer_lag_records{partition="0"}`) {
			t.Error("no consumer lag per partition")
		}
		// The six records went out in at least one produce request, and
		// the fold fetched them back; no request failed.
		for _, series := range []string{
			`roomlog_kafka_requests_total{api="Produce",client="producer"}`,
			`roomlog_kafka_requests_total{api="Fetch",client="consumer"}`,
		} {
			if got := metric(after, series) - metric(before, series); got < 1 {
				t.Errorf("%s grew by %v, want at least 1", series, got)
			}
		}
		if strings.Contains(after, "roomlog_kafka_request_errors_total{") {
			t.Error("Kafka request errors counted on a healthy broker")
		}
		c.ws.Close()
		deadline := time.Now().Add(10 * time.Second)
		for metric(scrape(t, addr), `roomlog_closes_total{reason="normal"}`) != 1 {
			if time.Now().After(deadline) {
				t.Fatal("the close was not counted")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// TestReadyzDuringReplay: a relay starting on a long log answers /readyz
// 503 (and /ws 503) while it replays, and 200 once caught up.
func TestReadyzDuringReplay(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		topic := newTopic(t)
		startRelay(t, b, topic, nil) // creates the topic
		cl, err := kgo.NewClient(kgo.SeedBrokers(b.brokers...), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(5*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		const n = 300_000
		for i := 0; i < n; i++ {
			cl.Produce(context.Background(), &kgo.Record{Key: []byte("room-" + strconv.Itoa(i%1000)), Value: []byte(`{"n":` + strconv.Itoa(i) + `}`)}, nil)
		}
		if err := cl.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		cl.Close()

		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		started := make(chan *relay.Server, 1)
		go func() { started <- startRelay(t, b, topic, func(c *relay.Config) { c.Listen = addr }) }()

		status := func(path string) int {
			resp, err := http.Get("http://" + addr + path)
			if err != nil {
				return 0
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		sawReplay := false
		for {
			select {
			case r := <-started:
				if got := status("/readyz"); got != 200 {
					t.Fatalf("/readyz after start: %d", got)
				}
				if !sawReplay {
					t.Fatal("never saw /readyz 503 during the replay")
				}
				if rec := r.Stats().LogRecords; rec < n {
					t.Fatalf("replayed %d records, want at least %d", rec, n)
				}
				return
			default:
			}
			switch status("/readyz") {
			case 503:
				if !sawReplay {
					if got := status("/ws"); got != 503 {
						t.Errorf("/ws during replay: %d, want 503", got)
					}
				}
				sawReplay = true
			case 200:
				if !sawReplay {
					t.Fatal(fmt.Sprint("ready before the replay was seen; log too short?"))
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
}
