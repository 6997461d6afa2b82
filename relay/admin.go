package relay

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/roomlog/roomlog/internal/logview"
	"github.com/roomlog/roomlog/record"
	"github.com/roomlog/roomlog/relay/auth"
)

// The operator console's JSON API, under /admin/api/ (docs/operations.md):
// the fleet from the folded leases, this relay's own figures, the rooms, and
// (admin_log.go) a room's records, its state at any position and exports.
// Read-only: no handler here appends to the log. Off unless Config.AdminTokens
// or Config.AdminOpen is set. The handlers run on HTTP goroutines; they take
// partitions' read locks only while copying out, and bound every log read by
// ReadTimeout and a record budget.

// registerAdmin mounts the console (Config.Console) at /admin/ and its API
// at /admin/api/, when the console is enabled.
func (s *Server) registerAdmin(mux *http.ServeMux) {
	if len(s.cfg.AdminTokens) == 0 && !s.cfg.AdminOpen {
		return
	}
	if s.cfg.Console != nil {
		mux.Handle("/admin/", s.cfg.Console)
	}
	api := map[string]func(http.ResponseWriter, *http.Request){
		"fleet": s.adminFleet, "rooms": s.adminRooms, "room": s.adminRoom,
		"records": s.adminRecords, "state": s.adminState, "export": s.adminExport,
	}
	mux.HandleFunc("/admin/api/", func(w http.ResponseWriter, r *http.Request) {
		h := api[strings.TrimPrefix(r.URL.Path, "/admin/api/")]
		switch {
		case !s.adminAuthorized(r):
			w.Header().Set("WWW-Authenticate", `Bearer realm="roomlog admin"`)
			httpError(w, http.StatusUnauthorized, "unauthorized", "an admin token is required (Authorization: Bearer <token>, from --admin-token-file)")
		case h == nil:
			httpError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.URL.Path)
		case r.Method != http.MethodGet:
			w.Header().Set("Allow", http.MethodGet)
			httpError(w, http.StatusMethodNotAllowed, "method_not_allowed", "the admin API is read-only: use GET")
		default:
			w.Header().Set("Cache-Control", "no-store")
			h(w, r)
		}
	})
}

// adminAuthorized: a valid admin token, or (AdminOpen) a loopback client.
func (s *Server) adminAuthorized(r *http.Request) bool {
	if len(s.cfg.AdminTokens) > 0 {
		return bearerIn(r, s.cfg.AdminTokens)
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	ip := net.ParseIP(host)
	return s.cfg.AdminOpen && ip != nil && ip.IsLoopback()
}

// bearerIn compares the request's bearer token with every key in constant
// time (over SHA-256 digests, so lengths do not leak either).
func bearerIn(r *http.Request, keys [][]byte) bool {
	key, bearer := auth.BearerToken(r.Header.Get("Authorization"))
	if !bearer {
		return false
	}
	got := sha256.Sum256([]byte(key))
	ok := 0
	for _, k := range keys {
		want := sha256.Sum256(k)
		ok |= subtle.ConstantTimeCompare(got[:], want[:])
	}
	return ok == 1
}

func adminJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_ = json.NewEncoder(w).Encode(v)
}

// badRequest answers 400 with a code and a message.
func badRequest(w http.ResponseWriter, code, msg string) {
	httpError(w, http.StatusBadRequest, code, msg)
}

// fleetRelay is one relay as the folded leases show it.
type fleetRelay struct {
	Name       string `json:"name"`
	Session    string `json:"session"`
	LastLease  string `json:"last_lease"`      // the newest lease record's time (RFC 3339)
	SilentMS   int64  `json:"silent_ms"`       // since then, by this relay's clock
	Status     string `json:"status"`          // alive, silent (expiry due), expired
	Members    int    `json:"members"`         // its connections' memberships, every partition
	Partitions int    `json:"partitions"`      // partitions holding its lease
	Self       bool   `json:"self,omitempty"`  // this relay
	Ended      string `json:"ended,omitempty"` // expired: when this relay saw its lease go
}

// adminFleetMemory keeps relays whose leases left the fold (expired), so the
// fleet view can show them as such for a while.
type adminFleetMemory struct {
	mu   sync.Mutex
	seen map[string]fleetRelay
}

const adminForgetExpired = 10 * time.Minute

func (s *Server) adminFleet(w http.ResponseWriter, _ *http.Request) {
	now := time.Now()
	byName := map[string]*fleetRelay{}
	for p := int32(0); p < s.partitions; p++ {
		for _, l := range s.cons.State().Partition(p).Leases() {
			f := byName[l.Relay]
			if f == nil {
				f = &fleetRelay{Name: l.Relay, Session: l.Session}
				byName[l.Relay] = f
			}
			f.Partitions++
			f.Members += l.Members
			if t := time.UnixMilli(l.LeaseTime); f.LastLease == "" || t.After(mustTime(f.LastLease)) {
				f.LastLease, f.Session = t.UTC().Format(time.RFC3339Nano), l.Session
			}
		}
	}
	m := &s.admin
	m.mu.Lock()
	if m.seen == nil {
		m.seen = map[string]fleetRelay{}
	}
	for name, f := range byName {
		f.SilentMS = max(now.Sub(mustTime(f.LastLease)).Milliseconds(), 0)
		f.Status = "alive"
		if f.SilentMS > s.cfg.LeaseTimeout.Milliseconds() {
			f.Status = "silent"
		}
		f.Self = name == s.cfg.RelayName
		m.seen[name] = *f
	}
	out := make([]fleetRelay, 0, len(m.seen))
	for name, f := range m.seen {
		if byName[name] == nil {
			if f.Ended == "" {
				f.Status, f.Members, f.Partitions, f.Ended = "expired", 0, 0, now.UTC().Format(time.RFC3339Nano)
				m.seen[name] = f
			}
			if now.Sub(mustTime(f.Ended)) > adminForgetExpired {
				delete(m.seen, name)
				continue
			}
			f.SilentMS = max(now.Sub(mustTime(f.LastLease)).Milliseconds(), 0)
		}
		out = append(out, f)
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	adminJSON(w, map[string]any{"now": now.UTC(), "lease_timeout_ms": s.cfg.LeaseTimeout.Milliseconds(), "relay": s.adminSelf(), "relays": out})
}

func mustTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

// adminSelf is this relay's own figures.
func (s *Server) adminSelf() map[string]any {
	st := s.Stats()
	parts := make([]map[string]any, 0, s.partitions)
	var relays []string
	kept := map[int32]bool{}
	if s.fol != nil {
		relays, kept = s.liveRelays(), *s.fol.kept.Load()
	}
	for p := int32(0); p < s.partitions; p++ {
		part := s.cons.State().Partition(p)
		next, _ := part.Progress()
		// follow: "kept" (this relay keeps it, --follow interest),
		// "followed", or "not followed" (its next offset is where the
		// fold stopped, and it has no lag).
		follow, keeper := "followed", ""
		switch following := s.cons.Following(p); {
		case s.fol == nil && !following:
			follow = "loading" // before the replay has caught up
		case s.fol == nil:
		case !following:
			follow = "not followed"
		case kept[p]:
			follow = "kept"
		}
		if s.fol != nil {
			keeper = KeeperOf(p, relays)
		}
		parts = append(parts, map[string]any{"partition": p, "next": next, "lag": part.Lag(), "follow": follow, "keeper": keeper})
	}
	var hm dto.Metric
	_ = s.metrics.produceLatency.Write(&hm)
	h := hm.GetHistogram()
	lat := map[string]any{"count": h.GetSampleCount(), "mean_ms": 0.0, "p50_ms": quantileMS(h, .5), "p99_ms": quantileMS(h, .99)}
	if h.GetSampleCount() > 0 {
		lat["mean_ms"] = 1000 * h.GetSampleSum() / float64(h.GetSampleCount())
	}
	return map[string]any{
		"name": s.cfg.RelayName, "session": s.currentSession(), "ready": s.Ready(), "epoch": strconv.FormatUint(s.epoch, 16),
		"topic": s.cfg.Topic, "connections": st.Connections, "rooms": st.Rooms, "publishes": st.Publishes, "delivered": st.Delivered,
		"log_records": st.LogRecords, "produce_latency": lat, "partitions": parts,
	}
}

// quantileMS is the upper bound of the histogram bucket holding quantile q,
// in milliseconds (0 when empty).
func quantileMS(h *dto.Histogram, q float64) float64 {
	n := h.GetSampleCount()
	if n == 0 {
		return 0
	}
	want := uint64(q*float64(n) + 0.5)
	for _, b := range h.GetBucket() {
		if b.GetCumulativeCount() >= want {
			return 1000 * b.GetUpperBound()
		}
	}
	return 1000 * h.GetBucket()[len(h.GetBucket())-1].GetUpperBound()
}

// Bounds of the rooms list.
const (
	adminRoomsDefault = 100
	adminRoomsMax     = 1000
)

// adminRooms lists rooms whose name starts with prefix and contains q, in
// name order.
func (s *Server) adminRooms(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, ok := queryLimit(w, q.Get("limit"), adminRoomsDefault, adminRoomsMax)
	if !ok {
		return
	}
	prefix, sub := q.Get("prefix"), q.Get("q")
	match := func(name string) bool {
		return strings.HasPrefix(name, prefix) && strings.Contains(name, sub) && !strings.HasPrefix(name, record.RelayKeyPrefix)
	}
	type roomRow struct {
		Room      string `json:"room"`
		Partition int32  `json:"partition"`
		Members   int    `json:"members"`
		Keys      int    `json:"keys"`
		Messages  int    `json:"messages"`
		Last      string `json:"last,omitempty"` // position of its newest message in memory
	}
	rows, more := []roomRow{}, false
	for p := int32(0); p < s.partitions; p++ {
		part := s.cons.State().Partition(p)
		names, m := part.RoomNames(match, adminRoomsMax)
		more = more || m
		part.RLock()
		for _, name := range names {
			rm := part.Room(name)
			if rm == nil {
				continue
			}
			hist, _ := part.History(rm)
			row := roomRow{Room: name, Partition: p, Members: len(rm.Members), Keys: len(rm.KV), Messages: len(hist)}
			if len(hist) > 0 {
				row.Last = part.Pos(s.epoch, hist[len(hist)-1].Offset).String()
			}
			rows = append(rows, row)
		}
		part.RUnlock()
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Room < rows[j].Room })
	if len(rows) > limit {
		rows, more = rows[:limit], true
	}
	adminJSON(w, map[string]any{"rooms": rows, "more": more})
}

// adminRoom is a room's live state on this relay: members (with their
// relays), key-value state with versions, recent messages; in the format of
// `roomlog state`, plus where its partition's fold is.
func (s *Server) adminRoom(w http.ResponseWriter, r *http.Request) {
	room, ok := queryRoom(w, r)
	if !ok {
		return
	}
	p := s.partitionOf(room)
	p.RLock()
	next, known := p.Next(), p.Room(room) != nil
	p.RUnlock()
	if !known {
		badRequest(w, "unknown_room", "room "+strconv.Quote(room)+" has no members, state or recent messages on this relay")
		return
	}
	st := logview.Describe(p, room, s.epoch, nil)
	if next > 0 {
		st.At = p.Pos(s.epoch, next-1).String()
	}
	adminJSON(w, map[string]any{"room": st, "next": p.Pos(s.epoch, next).String()})
}

// queryRoom reads and validates the room parameter.
func queryRoom(w http.ResponseWriter, r *http.Request) (string, bool) {
	room := r.URL.Query().Get("room")
	if err := record.ValidName(room, record.MaxRoomBytes); err != nil || strings.HasPrefix(room, record.RelayKeyPrefix) {
		badRequest(w, "bad_room", "room "+strconv.Quote(room)+": not a room name")
		return "", false
	}
	return room, true
}

// queryLimit reads a limit parameter: def when empty, 1 to max.
func queryLimit(w http.ResponseWriter, s string, def, maxN int) (int, bool) {
	if s == "" {
		return def, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxN {
		badRequest(w, "bad_limit", "limit "+strconv.Quote(s)+": want a number from 1 to "+strconv.Itoa(maxN))
		return 0, false
	}
	return n, true
}
