// Package backends holds the snippets of docs/backends.md, one file each, and
// this test, which runs every one of them against a relay on a real Kafka
// broker (ROOMLOG_TEST_BROKERS, testenv/kafka/start.sh): a published record
// reaches the room's socket once, is in the room's history and is recovered
// by a client that rejoins with since, both with the partitioner the guide
// sets and with the client's default (librdkafka's CRC32 misplaces it: the
// relay re-homes it); and each consumer snippet reads a client's publish in
// a consumer group. setup.sh installs the clients (Python venv, kafkajs,
// kafka-clients) into a cache.
package backends

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/roomlog/roomlog/record"
	"github.com/roomlog/roomlog/relay"
	"github.com/roomlog/roomlog/relay/auth"
	"github.com/roomlog/roomlog/testenv/kafkatest"
)

const partitions = 8

// waitLimit bounds each wait: a hang guard, not a performance assertion.
const waitLimit = 90 * time.Second

type snippet struct {
	name       string
	publish    []string // command, run in examples/backends
	consume    []string // nil: none
	librdkafka bool     // default partitioner is CRC32 (PARTITIONER picks it)
}

// apiKey is the relay's backend API key (the HTTP snippet's).
const apiKey = "backend-snippets-api-key-0123456789"

func snippets(cache string) []snippet {
	py := filepath.Join(cache, "venv", "bin", "python")
	libs := filepath.Join(cache, "java-libs") + string(os.PathSeparator) + "*"
	return []snippet{
		{"go", []string{"go", "run", "./go/publish"}, []string{"go", "run", "./go/consume"}, false},
		{"node-kafkajs", []string{"node", "node/publish.js"}, []string{"node", "node/consume.js"}, false},
		{"python-confluent-kafka", []string{py, "python/publish_confluent.py"}, []string{py, "python/consume_confluent.py"}, true},
		{"python-kafka-python", []string{py, "python/publish_kafka_python.py"}, []string{py, "python/consume_kafka_python.py"}, false},
		{"java-kafka-clients", []string{"java", "-cp", libs, "java/Publish.java"}, []string{"java", "-cp", libs, "java/Consume.java"}, false},
		{"kcat", []string{"sh", "kcat/publish.sh"}, []string{"sh", "kcat/consume.sh"}, true},
		{"http-api", []string{"sh", "http/publish.sh"}, nil, false},
	}
}

func TestBackendSnippets(t *testing.T) {
	brokers := strings.Join(kafkatest.Brokers(t), ",") // the backend snippets run on a real broker
	if out, err := exec.Command("bash", "setup.sh").CombinedOutput(); err != nil {
		t.Fatalf("setup.sh: %v\n%s", err, out)
	}
	cache := os.Getenv("ROOMLOG_BACKENDS_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "roomlog", "backends")
	}
	topic := "roomlog-test-backends-" + randHex(4)
	s := startRelay(t, strings.Split(brokers, ","), topic)
	url := "ws://" + s.Addr().String() + "/ws"
	env := []string{"BROKERS=" + brokers, "TOPIC=" + topic, "RELAY=http://" + s.Addr().String(), "API_KEY=" + apiKey}

	for _, sn := range snippets(cache) {
		modes := []string{"guide"}
		if sn.librdkafka {
			modes = append(modes, "default-partitioner")
		}
		for _, mode := range modes {
			t.Run(sn.name+"/publish/"+mode, func(t *testing.T) {
				misplace := mode == "default-partitioner"
				room := roomFor(sn.name+"-"+mode, misplace)
				text := "hello from " + sn.name + " " + randHex(3)
				extra := []string{"ROOM=" + room, "TEXT=" + text}
				if misplace {
					extra = append(extra, "PARTITIONER=consistent_random")
				}
				before := s.Stats().Misplaced
				c := dial(t, url)
				join := c.do(map[string]any{"op": "join", "room": room, "id": "j"})
				run(t, sn.publish, append(env, extra...))

				want, _ := json.Marshal(map[string]string{"text": text})
				m := c.message()
				pos, err := record.ParsePos(m.Pos)
				if m.Event != "chat" || compact(m.Data) != string(want) || err != nil || pos.Partition != record.PartitionOf(room, partitions) {
					t.Fatalf("got %+v, want event chat, data %s, from the room's partition %d", m, want, record.PartitionOf(room, partitions))
				}
				// Exactly once: the next message is the next publish.
				c.do(map[string]any{"op": "publish", "room": room, "event": "chat", "data": "end", "id": "e"})
				if m := c.message(); string(m.Data) != `"end"` {
					t.Fatalf("after the snippet's record: %+v, want end", m)
				}
				if got := s.Stats().Misplaced - before; misplace && got != 1 || !misplace && got != 0 {
					t.Fatalf("misplaced records: %d, want %v", got, misplace)
				}
				h := c.do(map[string]any{"op": "history", "room": room, "id": "h"})
				var hist []string
				for _, m := range h.Messages {
					hist = append(hist, compact(m.Data))
				}
				if w := []string{string(want), `"end"`}; !reflect.DeepEqual(hist, w) {
					t.Fatalf("history %v, want %v", hist, w)
				}
				rejoin := dial(t, url)
				if a := rejoin.do(map[string]any{"op": "join", "room": room, "since": join.Pos, "id": "r"}); a.Recovered == nil || !*a.Recovered {
					t.Fatalf("rejoin with since: %+v", a)
				}
				for _, w := range []string{string(want), `"end"`} {
					if m := rejoin.message(); compact(m.Data) != w {
						t.Fatalf("recovered %+v, want %s", m, w)
					}
				}
			})
		}
		if sn.consume == nil {
			continue
		}
		t.Run(sn.name+"/consume", func(t *testing.T) {
			room := roomFor(sn.name+"-consume", false)
			c := dial(t, url)
			c.do(map[string]any{"op": "join", "room": room, "id": "j"})
			// Repetitive data, so the relay's batch is snappy-compressed
			// (franz-go keeps a batch uncompressed when that is smaller):
			// each consumer must read compressed batches.
			text := strings.Repeat("from a socket ", 200)
			c.do(map[string]any{"op": "publish", "room": room, "event": "chat", "data": map[string]string{"text": text}, "id": "p"})
			out := run(t, sn.consume, append(env, "ROOM="+room, "GROUP=backend-"+randHex(4)))
			if want := room + " chat  " + `{"text":"` + text + `"}`; strings.TrimSpace(out) != strings.TrimSpace(want) {
				// The relay appends the data byte for byte as the client sent it.
				t.Fatalf("consumer printed %q, want %q", out, want)
			}
		})
	}
}

// TestGuideShowsTheFiles: every code block of docs/backends.md marked with
// the file it shows is that file, byte for byte, and every snippet the test
// above runs is shown.
func TestGuideShowsTheFiles(t *testing.T) {
	guide, err := os.ReadFile("../../docs/backends.md")
	if err != nil {
		t.Fatal(err)
	}
	const marker = "<!-- file: "
	shown := map[string]bool{}
	text := string(guide)
	for {
		i := strings.Index(text, marker)
		if i < 0 {
			break
		}
		text = text[i+len(marker):]
		name := text[:strings.Index(text, " -->")]
		open := strings.Index(text, "```")
		body := text[strings.Index(text[open:], "\n")+open+1:]
		end := strings.Index(body, "\n```\n")
		if end < 0 {
			t.Fatalf("%s: unterminated code block", name)
		}
		want, err := os.ReadFile(filepath.FromSlash(strings.TrimPrefix(name, "examples/backends/")))
		if err != nil {
			t.Fatalf("the guide shows %s: %v", name, err)
		}
		if got := body[:end+1]; got != string(want) {
			t.Errorf("the guide's %s differs from the file:\n%s", name, got)
		}
		shown[strings.TrimPrefix(name, "examples/backends/")] = true
		text = body[end:]
	}
	for _, sn := range snippets("") {
		for _, cmd := range [][]string{sn.publish, sn.consume} {
			if cmd == nil {
				continue
			}
			file := cmd[len(cmd)-1]
			if strings.HasPrefix(file, "./") {
				file = strings.TrimPrefix(file, "./") + "/main.go"
			}
			if !shown[file] {
				t.Errorf("docs/backends.md does not show %s", file)
			}
		}
	}
}

// roomFor names a room; with misplace, one that librdkafka's default
// partitioner (CRC32 of the key) puts outside its murmur2 partition.
func roomFor(base string, misplace bool) string {
	for i := 0; ; i++ {
		room := fmt.Sprintf("%s-%s-%d", base, randHex(2), i)
		crc := int32(crc32.ChecksumIEEE([]byte(room)) % partitions)
		if !misplace || crc != record.PartitionOf(room, partitions) {
			return room
		}
	}
}

// run runs a snippet in this folder and returns its standard output.
func run(t *testing.T, cmdline, env []string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, cmdline[0], cmdline[1:]...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\nstdout: %s\nstderr: %s", strings.Join(cmdline, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// compact is JSON data without insignificant spaces (Python's json.dumps
// writes some): the relay delivers the bytes a backend wrote.
func compact(data []byte) string {
	var b bytes.Buffer
	if err := json.Compact(&b, data); err != nil {
		return string(data)
	}
	return b.String()
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func startRelay(t *testing.T, brokers []string, topic string) *relay.Server {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("ROOMLOG_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	s, err := relay.New(relay.Config{
		Listen: "127.0.0.1:0", Brokers: brokers, Topic: topic, Partitions: partitions, ReplicationFactor: 1,
		Logger: logger, Auth: auth.Config{Anonymous: true, APIKeys: [][]byte{[]byte(apiKey)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
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

// frame is a server frame, as far as this test reads it.
type frame struct {
	Op        string          `json:"op"`
	Pos       string          `json:"pos"`
	Event     string          `json:"event"`
	Data      json.RawMessage `json:"data"`
	Code      string          `json:"code"`
	Message   string          `json:"message"`
	Recovered *bool           `json:"recovered"`
	Messages  []frame         `json:"messages"`
}

// client is a WebSocket client whose reader sorts message frames from the
// replies.
type client struct {
	t       *testing.T
	ws      *websocket.Conn
	msgs    chan frame
	replies chan frame
}

func dial(t *testing.T, url string) *client {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { ws.Close() })
	c := &client{t: t, ws: ws, msgs: make(chan frame, 64), replies: make(chan frame, 64)}
	go func() {
		defer close(c.msgs)
		for {
			var f frame
			if err := ws.ReadJSON(&f); err != nil {
				return
			}
			switch f.Op {
			case "message":
				c.msgs <- f
			case "ack", "error":
				c.replies <- f
			}
		}
	}()
	return c
}

// do sends a frame and waits for its ack.
func (c *client) do(m map[string]any) frame {
	c.t.Helper()
	if err := c.ws.WriteJSON(m); err != nil {
		c.t.Fatalf("send: %v", err)
	}
	select {
	case f := <-c.replies:
		if f.Op != "ack" {
			c.t.Fatalf("%v: %+v", m, f)
		}
		return f
	case <-time.After(waitLimit):
		c.t.Fatalf("%v: no reply", m)
	}
	return frame{}
}

func (c *client) message() frame {
	c.t.Helper()
	select {
	case f, ok := <-c.msgs:
		if !ok {
			c.t.Fatal("connection ended waiting for a message")
		}
		return f
	case <-time.After(waitLimit):
		c.t.Fatal("no message")
	}
	return frame{}
}
