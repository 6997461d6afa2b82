package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/internal/logview"
	"github.com/roomlog/roomlog/record"
)

func roomlog(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

func mustRoomlog(t *testing.T, args ...string) string {
	t.Helper()
	out, errs, err := roomlog(t, args...)
	if err != nil {
		t.Fatalf("roomlog %s: %v\n%s", strings.Join(args, " "), err, errs)
	}
	return out
}

// TestLogTools drives replay, state, export and redrive against a topic a
// relay wrote.
func TestLogTools(t *testing.T) {
	forEachProcBackend(t, func(t *testing.T, b procBackend) {
		topic := topicName(t)
		_, addr := startRelayProc(t, b, topic, "--lease-timeout", "1h")
		ws := wsDial(t, addr)
		request(t, ws, map[string]any{"op": "join", "room": "doc", "presence": true, "id": "j"})
		request(t, ws, map[string]any{"op": "set", "room": "doc", "key": "title", "value": "draft", "id": "s1"})
		request(t, ws, map[string]any{"op": "incr", "room": "doc", "key": "n", "delta": 5, "id": "i1"})
		request(t, ws, map[string]any{"op": "publish", "room": "doc", "event": "edit", "data": map[string]int{"v": 1}, "id": "p1"})
		at := request(t, ws, map[string]any{"op": "publish", "room": "doc", "event": "chat", "data": "hello", "id": "p2"}).Pos
		// What the live relay held at `at`.
		live := request(t, ws, map[string]any{"op": "get", "room": "doc", "id": "g"})
		livePresence := request(t, ws, map[string]any{"op": "presence", "room": "doc", "id": "pr"})
		// Later changes.
		request(t, ws, map[string]any{"op": "set", "room": "doc", "key": "title", "value": "final", "id": "s2"})
		request(t, ws, map[string]any{"op": "del", "room": "doc", "key": "n", "id": "d1"})
		request(t, ws, map[string]any{"op": "publish", "room": "other", "data": 1, "id": "p3"})
		end := request(t, ws, map[string]any{"op": "publish", "room": "doc", "event": "chat", "data": "bye", "id": "p4"}).Pos
		src := []string{"--brokers", b.brokers, "--topic", topic}

		t.Run("replay", func(t *testing.T) {
			out := mustRoomlog(t, append([]string{"replay", "--room", "doc", "--type", "publish"}, src...)...)
			var got []string
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				var v logview.RecordView
				if err := json.Unmarshal([]byte(line), &v); err != nil {
					t.Fatalf("not a JSON line: %q", line)
				}
				if v.Room != "doc" || v.Type != record.TypePublish || v.Pos == "" || v.Timestamp.IsZero() || v.From == "" {
					t.Fatalf("record %+v", v)
				}
				got = append(got, string(v.Data))
			}
			if want := []string{`{"v":1}`, `"hello"`, `"bye"`}; !reflect.DeepEqual(got, want) {
				t.Fatalf("publishes %v, want %v", got, want)
			}
			out = mustRoomlog(t, append([]string{"replay", "--event", "chat", "--format", "table"}, src...)...)
			if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[0], "TIME") || !strings.Contains(lines[2], `"bye"`) {
				t.Fatalf("table:\n%s", out)
			}
			out = mustRoomlog(t, append([]string{"replay", "--from-pos", at, "--to-pos", end, "--room", "doc"}, src...)...)
			if n := strings.Count(out, "\n"); n != 4 { // p2, s2, d1, p4
				t.Fatalf("position range gave %d records:\n%s", n, out)
			}
		})

		t.Run("state at equals the live relay", func(t *testing.T) {
			out := mustRoomlog(t, append([]string{"state", "--room", "doc", "--at", at}, src...)...)
			var st logview.RoomState
			if err := json.Unmarshal([]byte(out), &st); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			var want map[string]struct {
				Value   json.RawMessage
				Version int64
			}
			_ = json.Unmarshal(liveState(t, live), &want)
			if len(st.State) != len(want) {
				t.Fatalf("state at %s: %+v, live relay held %s", at, st.State, liveState(t, live))
			}
			for k, e := range want {
				if got := st.State[k]; string(got.Value) != string(e.Value) || got.Version != e.Version {
					t.Fatalf("key %s: %+v, live %+v", k, got, e)
				}
			}
			if len(st.Members) != len(livePresence.Members) || st.Members[0].Conn != livePresence.Members[0].Conn {
				t.Fatalf("members %+v, live %+v", st.Members, livePresence.Members)
			}
			if st.At != at || len(st.History) != 2 {
				t.Fatalf("at %s history %d", st.At, len(st.History))
			}
			out = mustRoomlog(t, append([]string{"state", "--room", "doc", "--at", at, "--diff", end}, src...)...)
			var d struct {
				Changes []logview.Change
				To      logview.RoomState
			}
			if err := json.Unmarshal([]byte(out), &d); err != nil {
				t.Fatal(err)
			}
			if len(d.Changes) != 3 || string(d.To.State["title"].Value) != `"final"` || len(d.To.State) != 1 {
				t.Fatalf("diff: %d changes, to %+v", len(d.Changes), d.To.State)
			}
		})

		t.Run("export and redrive", func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "doc.jsonl")
			mustRoomlog(t, append([]string{"export", "--out", file}, src...)...)
			sandbox := topic + "-sandbox"
			mustRoomlog(t, "redrive", "--brokers", b.brokers, "--topic", sandbox, file)
			for _, room := range []string{"doc", "other"} {
				a := stateOf(t, mustRoomlog(t, append([]string{"state", "--room", room}, src...)...))
				c := stateOf(t, mustRoomlog(t, "state", "--room", room, "--brokers", b.brokers, "--topic", sandbox))
				if !reflect.DeepEqual(a, c) {
					t.Fatalf("room %s after redrive: %+v, original %+v", room, c, a)
				}
			}
			// A relay on the sandbox serves the same state.
			_, saddr := startRelayProc(t, b, sandbox, "--lease-timeout", "1h")
			sw := wsDial(t, saddr)
			request(t, sw, map[string]any{"op": "join", "room": "doc", "id": "j"})
			g := request(t, sw, map[string]any{"op": "get", "room": "doc", "key": "title", "id": "g"})
			var v string
			_ = json.Unmarshal(g.Data, &v)
			if !strings.Contains(liveStateRaw(g), `"final"`) {
				t.Fatalf("sandbox relay: %+v", g)
			}

			// A truncated file is refused before anything is published.
			b2, _ := os.ReadFile(file)
			trunc := filepath.Join(t.TempDir(), "trunc.jsonl")
			_ = os.WriteFile(trunc, b2[:len(b2)*2/3], 0o600)
			_, errs, err := roomlog(t, "redrive", "--brokers", b.brokers, "--topic", topic+"-never", trunc)
			if err == nil || !strings.Contains(errs, "truncated") && !strings.Contains(errs, "not a record") {
				t.Fatalf("truncated export: %v %s", err, errs)
			}
		})

		t.Run("errors", func(t *testing.T) {
			for _, tt := range []struct {
				name string
				args []string
				want string
			}{
				{"missing topic", []string{"replay", "--brokers", b.brokers, "--topic", "no-such-topic"}, "does not exist"},
				{"unreachable broker", []string{"replay", "--brokers", "127.0.0.1:1", "--topic", topic}, "cannot reach the log"},
				{"position from another topic", append([]string{"replay", "--from-pos", "0-0-00000000deadbeef"}, src...), "another topic"},
				{"malformed position", append([]string{"state", "--room", "doc", "--at", "yesterday-ish"}, src...), "neither a position nor a time"},
				{"no data dir", []string{"replay", "--data-dir", filepath.Join(t.TempDir(), "nothing")}, "cannot be read"},
			} {
				_, errs, err := roomlog(t, tt.args...)
				if err == nil || !strings.Contains(errs, tt.want) {
					t.Errorf("%s: %v, stderr %q; want an error mentioning %q", tt.name, err, errs, tt.want)
				}
			}
		})

		t.Run("corrupt record", func(t *testing.T) {
			cl, err := kgo.NewClient(kgo.SeedBrokers(b.brokers), kgo.DefaultProduceTopic(topic))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			bad := &kgo.Record{Key: []byte("doc"), Value: []byte("{"), Headers: []kgo.RecordHeader{{Key: record.HeaderType, Value: []byte("teleport")}}}
			if err := cl.ProduceSync(context.Background(), bad).FirstErr(); err != nil {
				t.Fatal(err)
			}
			_, errs, err := roomlog(t, append([]string{"replay"}, src...)...)
			if err == nil || !strings.Contains(errs, "corrupt record at") || !strings.Contains(errs, "--skip-corrupt") {
				t.Fatalf("corrupt record: %v %s", err, errs)
			}
			out, errs, err := roomlog(t, append([]string{"replay", "--skip-corrupt"}, src...)...)
			if err != nil || !strings.Contains(errs, "skipped 1 corrupt") || !strings.Contains(out, `"bye"`) {
				t.Fatalf("--skip-corrupt: %v %s", err, errs)
			}
		})

		t.Run("misplaced and time order", func(t *testing.T) {
			cl, err := kgo.NewClient(kgo.SeedBrokers(b.brokers), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			home := record.PartitionOf("mis", 4)
			r := &kgo.Record{Key: []byte("mis"), Value: []byte("astray"), Partition: (home + 1) % 4}
			if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
				t.Fatal(err)
			}
			var views []logview.RecordView
			for deadline := time.Now().Add(30 * time.Second); len(views) < 2; time.Sleep(200 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("no re-homed copy in the log: %+v", views)
				}
				views = views[:0]
				out := mustRoomlog(t, append([]string{"replay", "--room", "mis", "--skip-corrupt"}, src...)...)
				for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
					var v logview.RecordView
					if line != "" && json.Unmarshal([]byte(line), &v) == nil {
						views = append(views, v)
					}
				}
			}
			var orig, cp *logview.RecordView
			for i := range views {
				if views[i].Misplaced {
					orig = &views[i]
				} else if views[i].Origin != "" {
					cp = &views[i]
				}
			}
			if orig == nil || cp == nil || *orig.Home != home || cp.Partition != home || cp.Origin != fmt.Sprintf("%d-%d", r.Partition, r.Offset) || string(cp.Data) != `"astray"` {
				t.Fatalf("replay of a misplaced record and its copy: %+v", views)
			}
			table := mustRoomlog(t, append([]string{"replay", "--room", "mis", "--format", "table", "--skip-corrupt"}, src...)...)
			if !strings.Contains(table, fmt.Sprintf("misplaced, home %d", home)) || !strings.Contains(table, "re-homed from "+cp.Origin) {
				t.Fatalf("table without the places:\n%s", table)
			}

			out := mustRoomlog(t, append([]string{"replay", "--order", "time", "--skip-corrupt"}, src...)...)
			all := mustRoomlog(t, append([]string{"replay", "--skip-corrupt"}, src...)...)
			var prev time.Time
			last := map[int32]int64{}
			n := 0
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				var v logview.RecordView
				if err := json.Unmarshal([]byte(line), &v); err != nil {
					t.Fatalf("not a JSON line: %q", line)
				}
				if v.Timestamp.Before(prev) {
					t.Fatalf("--order time: %s after %s", v.Timestamp, prev)
				}
				if o, ok := last[v.Partition]; ok && v.Offset <= o {
					t.Fatalf("--order time: partition %d offset %d after %d", v.Partition, v.Offset, o)
				}
				prev, last[v.Partition] = v.Timestamp, v.Offset
				n++
			}
			if want := len(strings.Split(strings.TrimSpace(all), "\n")); n != want || len(last) < 2 {
				t.Fatalf("--order time printed %d records of %d partitions, the log order %d", n, len(last), want)
			}
			for _, args := range [][]string{{"--order", "sideways"}, {"--order", "time", "--follow"}} {
				if _, errs, err := roomlog(t, append(append([]string{"replay"}, args...), src...)...); err == nil || !strings.Contains(errs, "--order") {
					t.Fatalf("replay %v: %v %s", args, err, errs)
				}
			}
		})

		t.Run("follow", func(t *testing.T) {
			cmd := exec.Command(bin, append([]string{"replay", "--follow", "--skip-corrupt", "--room", "live"}, src...)...)
			stdout, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			lines := make(chan string, 10)
			go func() {
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					lines <- sc.Text()
				}
			}()
			time.Sleep(500 * time.Millisecond)
			request(t, ws, map[string]any{"op": "publish", "room": "live", "data": "tail me", "id": "f"})
			select {
			case l := <-lines:
				if !strings.Contains(l, "tail me") {
					t.Fatalf("follow printed %q", l)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("--follow printed nothing")
			}
		})
	})
}

func liveStateRaw(f wsFrame) string {
	b, _ := json.Marshal(f)
	return string(b)
}

// liveState extracts the "state" object of a get reply.
func liveState(t *testing.T, f wsFrame) []byte {
	t.Helper()
	if f.State == nil {
		t.Fatalf("get reply without state: %+v", f)
	}
	return f.State
}

// stateOf reduces `roomlog state` output to what a redrive preserves:
// members and key values (versions are offsets, which differ).
func stateOf(t *testing.T, out string) map[string]any {
	t.Helper()
	var st logview.RoomState
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var members []string
	for _, m := range st.Members {
		members = append(members, m.Conn+"@"+m.Relay)
	}
	sort.Strings(members)
	kv := map[string]string{}
	for k, e := range st.State {
		kv[k] = string(e.Value)
	}
	var hist []string
	for _, h := range st.History {
		hist = append(hist, string(h.Data))
	}
	return map[string]any{"members": members, "kv": kv, "history": hist}
}
