package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roomlog/roomlog/consumer"
	"github.com/roomlog/roomlog/record"
)

// The backend HTTP API: POST /api/publish and POST /api/state, for services
// that would rather not speak Kafka. Authenticated by an API key
// (Authorization: Bearer <key>), it appends to the log exactly like a
// client's publish or state op, and answers once the log has the record and
// this relay has folded it. docs/security.md and docs/protocol.md describe
// it.

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

// apiFromSuffix ends the `from` of records the backend API appends:
// "<session>/api". Connection ids are "<session>-<base 36 counter>", which
// never holds a '/', so the two can never be mistaken for each other.
const apiFromSuffix = "/api"

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
	return bearerIn(r, *s.sec.apiKeys.Load())
}

// registerAPI adds the API's routes to mux (when API keys are configured).
func (s *Server) registerAPI(mux *http.ServeMux) {
	if len(s.cfg.Auth.APIKeys) == 0 {
		return
	}
	for _, endpoint := range []string{apiPublish, apiState, apiRevoke, apiDisconnect, apiRemove} {
		mux.HandleFunc("/api/"+endpoint, func(w http.ResponseWriter, r *http.Request) { s.serveAPI(w, r, endpoint) })
	}
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
	// A body that trickles in would hold the connection: it has the read
	// timeout to arrive.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.cfg.ReadTimeout))
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
	if isControlEndpoint(endpoint) {
		s.serveControl(w, r.Context(), endpoint, body)
		return
	}
	f, ferr := decodeAPIRequest(endpoint, body)
	if ferr != nil {
		s.countLimit("api_bad_request")
		httpError(w, http.StatusBadRequest, string(ferr.Code), ferr.Message)
		return
	}
	if !s.apiEnsure(w, r.Context(), f.Room) {
		return
	}
	s.apiAppend(w, r.Context(), &f)
}

// apiEnsure follows room's partition before an API request appends to it
// (follow.go); it answers 504 itself when that fails.
func (s *Server) apiEnsure(w http.ResponseWriter, ctx context.Context, room string) bool {
	if s.fol == nil {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ReadTimeout)
	defer cancel()
	if err := s.ensureRoom(ctx, room); err != nil {
		httpError(w, http.StatusServiceUnavailable, string(CodeLogUnavailable), "this relay could not load the room's partition from the log; retry: "+err.Error())
		return false
	}
	return true
}

func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	var buf bytes.Buffer
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, max))
	return buf.Bytes(), err
}

// apiAppend appends the request's record and answers with what the fold
// made of it.
func (s *Server) apiAppend(w http.ResponseWriter, ctx context.Context, f *clientFrame) {
	ev := ops[f.Op].event(f)
	if f.Op == opPublish {
		s.stats.publishes.Add(1)
	}
	res, folded, ok := s.apiCommit(w, ctx, ev)
	if !ok {
		return
	}
	if !folded {
		if f.Op == opPublish {
			writeJSON(w, http.StatusOK, appendAPIAnswer(nil, res.pos, ack{}, nil))
			return
		}
		writeJSON(w, http.StatusGatewayTimeout, appendAPIAnswer(nil, res.pos, ack{}, errorf(CodeTimeout, "the record is in the log, but this relay has not folded it yet")))
		return
	}
	if f.Op == opPublish {
		if res.duplicate {
			writeJSON(w, http.StatusOK, appendAPIAnswer(nil, res.original, ack{duplicate: true}, nil))
			return
		}
		writeJSON(w, http.StatusOK, appendAPIAnswer(nil, res.pos, ack{}, nil))
		return
	}
	if res.code != "" {
		writeJSON(w, http.StatusConflict, appendAPIAnswer(nil, res.pos, ack{entry: &res.entry}, stateErrorText(res.code)))
		return
	}
	writeJSON(w, http.StatusOK, appendAPIAnswer(nil, res.pos, ack{entry: &res.entry}, nil))
}

// apiCommit appends ev as the API's and waits for this relay to fold it.
// ok is false when it has answered the request itself (the log refused the
// record) or the client left; folded is false when the record is in the
// log (res.pos) but was not folded within --read-timeout.
func (s *Server) apiCommit(w http.ResponseWriter, ctx context.Context, ev *record.Event) (res apiResult, folded, ok bool) {
	session := s.currentSession()
	req := strconv.Quote("api-" + session + "-" + strconv.FormatUint(s.sec.api.next.Add(1), 36))
	ev.From, ev.Req = session+apiFromSuffix, req
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
			return res, false, false
		}
	case <-ctx.Done():
		// The client left; the record may still be appended.
		forget()
		return res, false, false
	}
	rctx, cancel := s.readDeadline()
	defer cancel()
	select {
	case res = <-ch:
		return res, true, true
	case <-rctx.Done():
		forget()
		return apiResult{pos: pos}, false, true
	}
}

// writeJSON writes a JSON body built in protocol.go.
func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
