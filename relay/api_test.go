package relay_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/roomlog/roomlog/relay"
)

const testAPIKey = "test-api-key-0123456789"

func apiPost(t *testing.T, r *relay.Server, path, key, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+r.Addr().String()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

// TestBackendAPI: /api/publish and /api/state append like a client, answer
// with the position (and the fold's result), and refuse bad keys, bad input
// and oversized bodies without appending.
func TestBackendAPI(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		topic := newTopic(t)
		r := startRelay(t, b, topic, func(c *relay.Config) {
			quietLeases(c)
			c.MaxMessageBytes = 4096
			c.Auth.APIKeys = [][]byte{[]byte(testAPIKey)}
		})
		c := dial(t, r)
		c.join("news")

		code, out := apiPost(t, r, "/api/publish", testAPIKey, `{"room":"news","event":"headline","data":{"text":"hello"},"mid":"n-1"}`)
		if code != 200 || out["pos"] == nil {
			t.Fatalf("publish: %d %v", code, out)
		}
		if m := c.message(); m.Event != "headline" || m.Pos != out["pos"] || !bytes.Equal(m.Data, []byte(`{"text":"hello"}`)) {
			t.Fatalf("delivered %+v, want the API publish at %v", m, out["pos"])
		}
		code, dup := apiPost(t, r, "/api/publish", testAPIKey, `{"room":"news","event":"headline","data":{"text":"hello"},"mid":"n-1"}`)
		if code != 200 || dup["duplicate"] != true || dup["pos"] != out["pos"] {
			t.Fatalf("retry: %d %v, want a duplicate of %v", code, dup, out["pos"])
		}

		code, set := apiPost(t, r, "/api/state", testAPIKey, `{"room":"news","op":"set","key":"title","value":"Draft"}`)
		if code != 200 || set["value"] != "Draft" {
			t.Fatalf("set: %d %v", code, set)
		}
		code, conflict := apiPost(t, r, "/api/state", testAPIKey, `{"room":"news","op":"cas","key":"title","value":"X","version":1}`)
		if code != 409 || conflict["error"] != "conflict" || conflict["value"] != "Draft" {
			t.Fatalf("cas with a wrong version: %d %v, want 409 conflict", code, conflict)
		}
		code, incr := apiPost(t, r, "/api/state", testAPIKey, `{"room":"news","op":"incr","key":"views","delta":5}`)
		if code != 200 || incr["value"] != float64(5) {
			t.Fatalf("incr: %d %v", code, incr)
		}

		before := endOffsets(t, b, topic)
		big := `{"room":"news","data":"` + strings.Repeat("x", 10000) + `"}`
		for _, tt := range []struct {
			name, path, key, body string
			code                  int
			err                   string
		}{
			{"no key", "/api/publish", "", `{"room":"news","data":1}`, 401, "unauthorized"},
			{"wrong key", "/api/publish", "test-api-key-0123456780", `{"room":"news","data":1}`, 401, "unauthorized"},
			{"not json", "/api/publish", testAPIKey, `{"room":`, 400, "bad_request"},
			{"unknown field", "/api/publish", testAPIKey, `{"room":"news","dta":1}`, 400, "bad_request"},
			{"no room", "/api/publish", testAPIKey, `{"data":1}`, 400, "invalid_room"},
			{"control character room", "/api/publish", testAPIKey, `{"room":"a\u0000b"}`, 400, "invalid_room"},
			{"two values", "/api/publish", testAPIKey, `{"room":"news"} {"room":"news"}`, 400, "bad_request"},
			{"state field on publish", "/api/publish", testAPIKey, `{"room":"news","key":"k"}`, 400, "bad_request"},
			{"bad state op", "/api/state", testAPIKey, `{"room":"news","op":"join"}`, 400, "unknown_op"},
			{"set without value", "/api/state", testAPIKey, `{"room":"news","op":"set","key":"k"}`, 400, "invalid_value"},
			{"incr delta not integer", "/api/state", testAPIKey, `{"room":"news","op":"incr","key":"k","delta":1.5}`, 400, "invalid_value"},
			{"too large", "/api/publish", testAPIKey, big, 413, "too_large"},
		} {
			code, out := apiPost(t, r, tt.path, tt.key, tt.body)
			if code != tt.code || out["error"] != tt.err {
				t.Errorf("%s: %d %v, want %d %s", tt.name, code, out, tt.code, tt.err)
			}
		}
		if got := endOffsets(t, b, topic) - before; got != 0 {
			t.Fatalf("refused API requests appended %d records", got)
		}
		resp, err := http.Get("http://" + r.Addr().String() + "/api/publish")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("GET: %d, want 405", resp.StatusCode)
		}
	})
}
