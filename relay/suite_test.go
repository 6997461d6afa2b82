package relay_test

// The integration suite: real relays on real sockets, run once against kfake
// in-process and once against the real Kafka broker named by
// ROOMLOG_TEST_BROKERS (testenv/kafka/start.sh). Under CI=true, or with
// ROOMLOG_REQUIRE_KAFKA=1, a missing broker or kcat fails the run instead of
// skipping it.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/relay"
	"github.com/roomlog/roomlog/relay/auth"
	"github.com/roomlog/roomlog/testenv/kafkatest"
)

// backend is a log the suite runs against.
type backend struct {
	name    string
	brokers []string
}

// forEachBackend runs fn as a subtest per backend.
func forEachBackend(t *testing.T, fn func(t *testing.T, b backend)) {
	t.Run("kfake", func(t *testing.T) {
		c, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		fn(t, backend{name: "kfake", brokers: c.ListenAddrs()})
	})
	t.Run("kafka", func(t *testing.T) {
		fn(t, backend{name: "kafka", brokers: kafkatest.Brokers(t)})
	})
}

var nonName = regexp.MustCompile(`[^a-zA-Z0-9]+`)

// newTopic names a fresh topic for one test.
func newTopic(t *testing.T) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := nonName.ReplaceAllString(t.Name(), "-")
	if len(name) > 80 {
		name = name[:80]
	}
	return "roomlog-test-" + name + "-" + hex.EncodeToString(b[:])
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("ROOMLOG_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startRelay starts a relay on a free port (or listen) and stops it at the
// end of the test.
func startRelay(t *testing.T, b backend, topic string, mod func(*relay.Config)) *relay.Server {
	t.Helper()
	cfg := relay.Config{
		Listen:     "127.0.0.1:0",
		Brokers:    b.brokers,
		Topic:      topic,
		Partitions: 4,
		Logger:     testLogger(t),
		Auth:       auth.Config{Anonymous: true},
		Limits:     relay.LimitsConfig{Rate: -1, UserPublishRate: -1}, // bulk tests send thousands of frames at once
	}
	if b.name == "kafka" {
		cfg.ReplicationFactor = 1
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := relay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return s
}

// frame is any server frame.
type frame struct {
	Op      string          `json:"op"`
	ID      json.RawMessage `json:"id"`
	Pos     string          `json:"pos"`
	Room    string          `json:"room"`
	Event   string          `json:"event"`
	Data    json.RawMessage `json:"data"`
	From    string          `json:"from"`
	Code    string          `json:"code"`
	Message string          `json:"message"`
	Conn    string          `json:"conn"`

	Key       string          `json:"key"`
	Value     json.RawMessage `json:"value"`
	Version   int64           `json:"version"`
	State     json.RawMessage `json:"state"`
	Recovered *bool           `json:"recovered"`
	Duplicate bool            `json:"duplicate"`
	Members   []member        `json:"members"`
	Member    member          `json:"member"`
	Reason    string          `json:"reason"`
	Messages  []frame         `json:"messages"`
	More      bool            `json:"more"`
}

type member struct {
	Conn     string `json:"conn"`
	User     string `json:"user"`
	Relay    string `json:"relay"`
	JoinedAt int64  `json:"joined_at"`
}

// client is a test WebSocket client: a reader goroutine sorts frames into
// acks/errors (by id) and messages.
type client struct {
	t    *testing.T
	ws   *websocket.Conn
	id   string // connection id from the welcome frame
	wmu  sync.Mutex
	msgs chan frame
	acks chan frame // acks and errors
	err  chan error // the read error that ended the reader
}

func dial(t *testing.T, s *relay.Server) *client {
	t.Helper()
	return dialURL(t, "ws://"+s.Addr().String()+"/ws", true)
}

func dialURL(t *testing.T, url string, read bool) *client {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	c := &client{t: t, ws: ws, msgs: make(chan frame, 100000), acks: make(chan frame, 100000), err: make(chan error, 1)}
	t.Cleanup(func() { ws.Close() })
	// gorilla's default ping handler gives its pong one second and ends the
	// connection when the write misses it; on two busy cores under -race a
	// goroutine can stall longer than that (TestIncrFromManyClients/kafka
	// failed once in a -count=5 run: "write tcp ...: i/o timeout" from the
	// reader). The relay waits PongTimeout for a pong, so the client may too.
	ws.SetPingHandler(func(data string) error {
		err := ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(waitLimit))
		if err == websocket.ErrCloseSent {
			return nil
		}
		return err
	})
	var w frame
	if err := ws.ReadJSON(&w); err != nil || w.Op != "welcome" || w.Conn == "" {
		t.Fatalf("welcome: %+v, %v", w, err)
	}
	c.id = w.Conn
	if read {
		go c.readLoop()
	}
	return c
}

func (c *client) readLoop() {
	for {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			c.err <- err
			return
		}
		var f frame
		if err := json.Unmarshal(b, &f); err != nil {
			c.err <- fmt.Errorf("bad frame %q: %w", b, err)
			return
		}
		if f.Op == "message" || f.Op == "state" || f.Op == "joined" || f.Op == "left" {
			c.msgs <- f
		} else {
			c.acks <- f
		}
	}
}

func (c *client) send(v any) {
	c.t.Helper()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteJSON(v); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *client) sendRaw(mt int, b []byte) {
	c.t.Helper()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(mt, b); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// waitLimit bounds each wait for a frame: a liveness bound, generous for
// the race detector on two cores, not a performance assertion.
const waitLimit = 60 * time.Second

// pending returns a frame the reader queued on ch before it ended with err,
// and gives err back for closeCode. A select on both channels picks at
// random when both are ready, which would lose a frame that arrived just
// before the close.
func (c *client) pending(ch chan frame, err error) (frame, bool) {
	select {
	case f := <-ch:
		c.err <- err // the reader has ended: the slot is free
		return f, true
	default:
		return frame{}, false
	}
}

// reply waits for the next ack or error frame.
func (c *client) reply() frame {
	c.t.Helper()
	return c.replyWithin(waitLimit)
}

// replyWithin waits up to limit for the next ack or error frame: for tests
// whose replies queue behind a large burst of deliveries.
func (c *client) replyWithin(limit time.Duration) frame {
	c.t.Helper()
	select {
	case f := <-c.acks:
		return f
	case err := <-c.err:
		if f, ok := c.pending(c.acks, err); ok {
			return f
		}
		c.t.Fatalf("connection ended waiting for a reply: %v", err)
	case <-time.After(limit):
		c.t.Fatalf("no reply within %v", limit)
	}
	return frame{}
}

// do sends a frame with an id and waits for its ack, failing on an error.
func (c *client) do(m map[string]any) frame {
	c.t.Helper()
	c.send(m)
	f := c.reply()
	if f.Op != "ack" {
		c.t.Fatalf("%v: got %+v, want ack", m, f)
	}
	if want, _ := json.Marshal(m["id"]); string(f.ID) != string(want) {
		c.t.Fatalf("%v: ack for id %s, want %s", m, f.ID, want)
	}
	return f
}

func (c *client) join(room string) frame {
	c.t.Helper()
	return c.do(map[string]any{"op": "join", "room": room, "id": "j-" + room})
}

// message waits for the next message frame.
func (c *client) message() frame {
	c.t.Helper()
	select {
	case f := <-c.msgs:
		return f
	case err := <-c.err:
		if f, ok := c.pending(c.msgs, err); ok {
			return f
		}
		c.t.Fatalf("connection ended waiting for a message: %v", err)
	case <-time.After(waitLimit):
		c.t.Fatalf("no message within %v", waitLimit)
	}
	return frame{}
}

// partitionEnds returns the end offset of every partition of topic.
func partitionEnds(t *testing.T, b backend, topic string) map[int32]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// endOffsets sums the end offsets of every partition of topic.
func endOffsets(t *testing.T, b backend, topic string) int64 {
	t.Helper()
	var n int64
	for _, e := range partitionEnds(t, b, topic) {
		n += e
	}
	return n
}

// kcat returns the kcat binary, failing or skipping when it is missing.
func kcat(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"kcat", "kafkacat"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if kafkatest.Required() {
		t.Fatal("kcat is not installed (apt-get install kcat); required here")
	}
	t.Skip("kcat not installed")
	return ""
}
