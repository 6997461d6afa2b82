package relay_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/roomlog/roomlog/record"
	"github.com/roomlog/roomlog/relay"
)

// adminGet fetches an admin API path with token (none when empty) and
// returns the status and the body.
func adminGet(t *testing.T, s *relay.Server, path, token string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+s.Addr().String()+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

func adminJSON(t *testing.T, s *relay.Server, path string, v any) {
	t.Helper()
	status, b := adminGet(t, s, path, "tok")
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, b)
	}
}

// TestAdminAPI: the console's endpoints read the fleet, the rooms, a room,
// its records, its state at a position and a diff, and an export; bad
// requests get 401 or 400 with a JSON error, never a 500, and the relay
// keeps serving.
func TestAdminAPI(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := startRelay(t, b, newTopic(t), func(c *relay.Config) { c.AdminTokens = [][]byte{[]byte("other"), []byte("tok")} })
		c := dial(t, s)
		c.join("chat:a")
		c.join("chat:b")
		var pos []string
		for i := range 5 {
			pos = append(pos, c.do(map[string]any{"op": "publish", "room": "chat:a", "event": "chat", "data": map[string]any{"n": i}, "id": i}).Pos)
		}
		c.do(map[string]any{"op": "set", "room": "chat:a", "key": "k", "value": "v", "id": "s"})

		var fleet struct {
			Relay  struct{ Name string }
			Relays []struct{ Name, Status string }
		}
		adminJSON(t, s, "/admin/api/fleet", &fleet)
		if fleet.Relay.Name != s.Name() || len(fleet.Relays) != 1 || fleet.Relays[0].Status != "alive" {
			t.Errorf("fleet: %+v", fleet)
		}
		var rooms struct{ Rooms []struct{ Room string } }
		adminJSON(t, s, "/admin/api/rooms?prefix=chat:", &rooms)
		if got := fmt.Sprint(rooms.Rooms); got != "[{chat:a} {chat:b}]" {
			t.Errorf("rooms: got %s", got)
		}
		var room struct {
			Room struct {
				Members []struct{ Conn string }
				History []json.RawMessage
			}
		}
		adminJSON(t, s, "/admin/api/room?room=chat:a", &room)
		if len(room.Room.Members) != 1 || room.Room.Members[0].Conn != c.id || len(room.Room.History) != 5 {
			t.Errorf("room: %+v", room)
		}
		var recs struct{ Records []struct{ Type, Pos string } }
		adminJSON(t, s, "/admin/api/records?room=chat:a&type=publish", &recs)
		if len(recs.Records) != 5 || recs.Records[2].Pos != pos[2] {
			t.Errorf("records: %+v, want the publishes at %v", recs, pos)
		}
		var st struct {
			At      string
			History []json.RawMessage
			State   map[string]json.RawMessage
		}
		adminJSON(t, s, "/admin/api/state?room=chat:a&at="+pos[2], &st)
		if st.At != pos[2] || len(st.History) != 3 || len(st.State) != 0 {
			t.Errorf("state at %s: %+v", pos[2], st)
		}
		var diff struct {
			Changes []struct{ Pos string }
			To      struct{ History []json.RawMessage }
		}
		adminJSON(t, s, "/admin/api/state?room=chat:a&at="+pos[2]+"&diff="+pos[4], &diff)
		if len(diff.Changes) != 2 || diff.Changes[1].Pos != pos[4] || len(diff.To.History) != 5 {
			t.Errorf("diff: %+v", diff)
		}
		status, body := adminGet(t, s, "/admin/api/export?room=chat:a&event=chat", "tok")
		lines := strings.Split(strings.TrimSpace(string(body)), "\n")
		if status != 200 || len(lines) != 7 || !strings.Contains(lines[0], `"format":"roomlog-export"`) || lines[6] != `{"end":true,"records":5}` {
			t.Errorf("export: %d %s", status, body)
		}

		p, _ := record.ParsePos(pos[0])
		other := record.Pos{Epoch: p.Epoch, Partition: (p.Partition + 1) % 4, Offset: 0}
		for _, tt := range []struct {
			name, path, token string
			status            int
			code              string
		}{
			{"no token", "/admin/api/fleet", "", 401, "unauthorized"},
			{"wrong token", "/admin/api/fleet", "tok2", 401, "unauthorized"},
			{"unknown endpoint", "/admin/api/write", "tok", 404, "not_found"},
			{"unknown room", "/admin/api/room?room=nobody", "tok", 400, "unknown_room"},
			{"bad room", "/admin/api/room?room=" + url.QueryEscape("a\x00b"), "tok", 400, "bad_room"},
			{"relay key as room", "/admin/api/room?room=" + url.QueryEscape(record.RelayKeyPrefix+"x"), "tok", 400, "bad_room"},
			{"huge limit", "/admin/api/records?room=chat:a&limit=100000000", "tok", 400, "bad_limit"},
			{"malformed limit", "/admin/api/rooms?limit=1e3", "tok", 400, "bad_limit"},
			{"malformed position", "/admin/api/state?room=chat:a&at=yesterday", "tok", 400, "bad_position"},
			{"another epoch", "/admin/api/state?room=chat:a&at=" + record.Pos{Epoch: p.Epoch + 1, Partition: p.Partition, Offset: 1}.String(), "tok", 400, "stale_position"},
			{"another partition", "/admin/api/state?room=chat:a&at=" + other.String(), "tok", 400, "bad_position"},
			{"past the end", "/admin/api/state?room=chat:a&at=" + record.Pos{Epoch: p.Epoch, Partition: p.Partition, Offset: 1 << 40}.String(), "tok", 400, "past_end"},
			{"diff before at", "/admin/api/state?room=chat:a&at=" + pos[4] + "&diff=" + pos[0], "tok", 400, "bad_range"},
			{"from after to", "/admin/api/records?room=chat:a&from=" + pos[4] + "&to=" + pos[0], "tok", 400, "bad_range"},
			{"bad type", "/admin/api/export?room=chat:a&type=write", "tok", 400, "bad_type"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				status, body := adminGet(t, s, tt.path, tt.token)
				var e struct{ Error, Message string }
				if err := json.Unmarshal(body, &e); status != tt.status || err != nil || e.Error != tt.code || e.Message == "" {
					t.Errorf("got %d %s, want %d %q", status, body, tt.status, tt.code)
				}
			})
		}
		if status, _ := adminGet(t, s, "/readyz", ""); status != 200 || !s.Ready() {
			t.Errorf("after bad requests: /readyz %d", status)
		}
		c.do(map[string]any{"op": "publish", "room": "chat:a", "event": "chat", "data": 1, "id": "after"})
	})
}

// TestAdminAccess: off without tokens; AdminOpen serves loopback clients
// without a token.
func TestAdminAccess(t *testing.T) {
	b := kfakeBackend(t)
	off := startRelay(t, b, newTopic(t), quietLeases)
	if status, _ := adminGet(t, off, "/admin/api/fleet", "tok"); status != http.StatusNotFound {
		t.Errorf("console off: got %d, want 404", status)
	}
	open := startRelay(t, b, newTopic(t), func(c *relay.Config) { quietLeases(c); c.AdminOpen = true })
	if status, body := adminGet(t, open, "/admin/api/fleet", ""); status != http.StatusOK {
		t.Errorf("open console from loopback: got %d %s, want 200", status, body)
	}
}
