package relay

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/roomlog/roomlog/consumer"
	"github.com/roomlog/roomlog/record"
	"github.com/roomlog/roomlog/relay/auth"
)

// The backend HTTP API: POST /api/publish and POST /api/state, for services
// that would rather not speak Kafka. Authenticated by an API key
// (Authorization: Bearer <key>), it appends to the log exactly like a
// client's publish or state op, and answers once the log has the record and
// this relay has folded it. docs/security.md and docs/protocol.md describe
// it.

// apiRequest is the body of both endpoints. Unknown fields are refused.
type apiRequest struct {
	Room    string          `json:"room"`
	Event   string          `json:"event"`
	Data    json.RawMessage `json:"data"`
	MID     string          `json:"mid"`
	Op      string          `json:"op"`
	Key     *string         `json:"key"`
	Value   json.RawMessage `json:"value"`
	Delta   json.RawMessage `json:"delta"`
	Version json.RawMessage `json:"version"`
}

// decodeAPIRequest parses and validates a body for endpoint "publish" or
// "state", with the same rules as a client frame.
func decodeAPIRequest(endpoint string, body []byte) (clientFrame, *frameError) {
	var r apiRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return clientFrame{}, errorf(CodeBadRequest, "body is not a JSON object of the documented shape: %v", err)
	}
	if dec.More() {
		return clientFrame{}, errorf(CodeBadRequest, "body holds more than one JSON value")
	}
	f := clientFrame{Room: r.Room, Event: r.Event, Data: r.Data, MID: r.MID, Key: r.Key, Value: r.Value, Delta: r.Delta, Version: r.Version}
	switch endpoint {
	case "publish":
		if r.Op != "" && r.Op != opPublish {
			return f, errorf(CodeUnknownOp, "op must be absent or publish")
		}
		if r.Key != nil || r.Value != nil || r.Delta != nil || r.Version != nil {
			return f, errorf(CodeBadRequest, "key, value, delta and version belong to /api/state")
		}
		f.Op = opPublish
	case "state":
		switch r.Op {
		case opSet, opDel, opIncr, opCAS:
		default:
			return f, errorf(CodeUnknownOp, "op must be set, del, incr or cas")
		}
		if r.Event != "" || r.Data != nil || r.MID != "" {
			return f, errorf(CodeBadRequest, "event, data and mid belong to /api/publish")
		}
		f.Op = r.Op
	}
	if ferr := validateFrame(&f); ferr != nil {
		return f, ferr
	}
	return f, nil
}

// apiResult is what the fold made of an API request's record.
type apiResult struct {
	pos       record.Pos
	duplicate bool
	original  record.Pos
	code      string
	entry     consumer.Entry
}

// apiWaiters are the API requests awaiting their record's fold, by request
// id (the record's rl-req).
type apiWaiters struct {
	mu   sync.Mutex
	m    map[string]chan apiResult
	next atomic.Uint64
}

const apiFromSuffix = "-api"

// apiDelivered runs in Deliver for every record: it hands an API request's
// fold result to the waiting handler. It never blocks.
func (s *Server) apiDelivered(d *consumer.Delivery) {
	ev := &d.Event
	if ev.Req == "" || !strings.HasSuffix(ev.From, apiFromSuffix) {
		return
	}
	w := &s.sec.api
	w.mu.Lock()
	ch, ok := w.m[ev.Req]
	delete(w.m, ev.Req)
	w.mu.Unlock()
	if !ok {
		return
	}
	r := apiResult{pos: d.Pos}
	if res := d.Result; res != nil {
		r.duplicate, r.code = res.Duplicate, res.Code
		if res.Duplicate {
			r.original = d.Part.Pos(s.epoch, res.Original)
		}
		r.entry = consumer.Entry{Value: append(json.RawMessage(nil), res.Entry.Value...), Version: res.Entry.Version}
	}
	ch <- r // buffered: never blocks
}

// apiAuthorized compares the bearer key with every configured key in
// constant time (over SHA-256 digests, so lengths do not leak either).
func (s *Server) apiAuthorized(r *http.Request) bool {
	key, bearer := auth.BearerToken(r.Header.Get("Authorization"))
	if !bearer {
		return false
	}
	got := sha256.Sum256([]byte(key))
	ok := 0
	for _, k := range s.cfg.Auth.APIKeys {
		want := sha256.Sum256(k)
		ok |= subtle.ConstantTimeCompare(got[:], want[:])
	}
	return ok == 1
}

// registerAPI adds the API's routes to mux (when API keys are configured).
func (s *Server) registerAPI(mux *http.ServeMux) {
	if len(s.cfg.Auth.APIKeys) == 0 {
		return
	}
	mux.HandleFunc("/api/publish", func(w http.ResponseWriter, r *http.Request) { s.serveAPI(w, r, "publish") })
	mux.HandleFunc("/api/state", func(w http.ResponseWriter, r *http.Request) { s.serveAPI(w, r, "state") })
}

// apiMaxBody bounds a request body: a frame's limit plus room for the JSON
// around the data.
func (s *Server) apiMaxBody() int64 { return int64(s.cfg.MaxMessageBytes) + 4<<10 }

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request, endpoint string) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		httpError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use POST")
		return
	}
	if !s.apiAuthorized(r) {
		s.countLimit("api_unauthorized")
		w.Header().Set("WWW-Authenticate", `Bearer realm="roomlog-api"`)
		httpError(w, http.StatusUnauthorized, string(CodeUnauthorized), "missing or wrong API key (Authorization: Bearer <key>)")
		return
	}
	if !s.Ready() {
		w.Header().Set("Retry-After", "1")
		httpError(w, http.StatusServiceUnavailable, string(CodeShuttingDown), "relay is not ready (replaying the log or draining)")
		return
	}
	body, err := readBody(w, r, s.apiMaxBody())
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.countLimit("api_too_large")
			httpError(w, http.StatusRequestEntityTooLarge, "too_large", "body is over "+itoa(s.apiMaxBody())+" bytes")
			return
		}
		httpError(w, http.StatusBadRequest, string(CodeBadRequest), "reading the body: "+err.Error())
		return
	}
	f, ferr := decodeAPIRequest(endpoint, body)
	if ferr != nil {
		s.countLimit("api_bad_request")
		httpError(w, http.StatusBadRequest, string(ferr.Code), ferr.Message)
		return
	}
	s.apiAppend(w, r.Context(), &f)
}

func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	var buf bytes.Buffer
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, max))
	return buf.Bytes(), err
}

// apiAppend appends the request's record and answers with what the fold
// made of it.
func (s *Server) apiAppend(w http.ResponseWriter, ctx context.Context, f *clientFrame) {
	session := s.currentSession()
	req := strconv.Quote("api-" + session + "-" + strconv.FormatUint(s.sec.api.next.Add(1), 36))
	ev := &record.Event{Room: f.Room, From: session + apiFromSuffix, Req: req}
	switch f.Op {
	case opPublish:
		ev.Type, ev.Event, ev.Data, ev.MID = record.TypePublish, f.Event, f.Data, f.MID
		s.stats.publishes.Add(1)
	case opSet:
		ev.Type, ev.Key, ev.Data = record.TypeSet, *f.Key, f.Value
	case opDel:
		ev.Type, ev.Key = record.TypeDel, *f.Key
	case opIncr:
		ev.Type, ev.Key, ev.Delta = record.TypeIncr, *f.Key, f.delta
	case opCAS:
		ev.Type, ev.Key, ev.Data, ev.Version = record.TypeCAS, *f.Key, f.Value, f.version
	}
	ch := make(chan apiResult, 1)
	wt := &s.sec.api
	wt.mu.Lock()
	wt.m[req] = ch
	wt.mu.Unlock()
	forget := func() {
		wt.mu.Lock()
		delete(wt.m, req)
		wt.mu.Unlock()
	}
	durable := make(chan error, 1)
	var pos record.Pos
	s.produce(ev, func(p record.Pos, err error) { pos = p; durable <- err })
	select {
	case err := <-durable:
		if err != nil {
			forget()
			s.stats.produceErrors.Add(1)
			httpError(w, http.StatusServiceUnavailable, string(CodeLogUnavailable), "the log did not take the record: "+err.Error())
			return
		}
	case <-ctx.Done():
		// The client left; the record may still be appended.
		forget()
		return
	}
	rctx, cancel := s.readDeadline()
	defer cancel()
	var res apiResult
	select {
	case res = <-ch:
	case <-rctx.Done():
		forget()
		if f.Op == opPublish {
			writeJSON(w, http.StatusOK, map[string]any{"pos": pos.String()})
			return
		}
		writeJSON(w, http.StatusGatewayTimeout, map[string]any{"error": string(CodeTimeout), "message": "the record is in the log, but this relay has not folded it yet", "pos": pos.String()})
		return
	}
	out := map[string]any{"pos": res.pos.String()}
	if f.Op == opPublish {
		if res.duplicate {
			out["pos"], out["duplicate"] = res.original.String(), true
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	var val any = json.RawMessage("null")
	if len(res.entry.Value) > 0 {
		val = res.entry.Value
	}
	out["value"], out["version"] = val, res.entry.Version
	if res.code != "" {
		e := stateError(res.code)
		out["error"], out["message"] = string(e.Code), e.Message
		writeJSON(w, http.StatusConflict, out)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
