// Package traffic is the test traffic of testenv/chaos and testenv/faulttest:
// publishers that send sequence-numbered messages with a client message id
// (mid), retrying each unacknowledged publish (on another relay after a
// disconnect) until it is acknowledged; subscribers that stay in a room,
// resuming with since=<last position> after every disconnect; and the check
// that every acknowledged message reached every subscriber of its room once
// and in log order (report.go).
//
// # Concurrency
//
// Each Publisher and Subscriber runs on the goroutine that calls its Run;
// Check, Want and the accessors may be called from any goroutine, at any
// time (they take the client's mutex).
package traffic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// frame is any server frame, with the fields chaos looks at.
type frame struct {
	Op        string          `json:"op"`
	ID        json.RawMessage `json:"id"`
	Room      string          `json:"room"`
	Data      json.RawMessage `json:"data"`
	Pos       string          `json:"pos"`
	Code      string          `json:"code"`
	Message   string          `json:"message"`
	Duplicate bool            `json:"duplicate"`
	Recovered *bool           `json:"recovered"`
	Relay     string          `json:"relay"`
}

// payload is the data of every chaos publish.
type payload struct {
	P   string `json:"p"`
	Seq int    `json:"seq"`
	Pad string `json:"pad,omitempty"`
}

// MsgKey names a message: its publisher and sequence number.
type MsgKey struct {
	Pub string
	Seq int
}

// pos is a parsed P-O-E position.
type pos struct {
	part   int32
	offset int64
	epoch  string
}

func parsePos(s string) (pos, error) {
	parts := strings.SplitN(s, "-", 3)
	if len(parts) != 3 {
		return pos{}, fmt.Errorf("position %q: want P-O-E", s)
	}
	p, err1 := strconv.ParseInt(parts[0], 10, 32)
	o, err2 := strconv.ParseInt(parts[1], 10, 64)
	if err1 != nil || err2 != nil {
		return pos{}, fmt.Errorf("position %q: want P-O-E", s)
	}
	return pos{part: int32(p), offset: o, epoch: parts[2]}, nil
}

// Dialer connects to any live relay, starting at a random one.
// Dialer connects to any live relay of a fleet.
type Dialer struct {
	urls   []string
	prefer string
	d      websocket.Dialer
}

// Prefer makes the first connection go to url when it is up (later ones go
// anywhere else first, as always), so a test can place its clients.
func (d *Dialer) Prefer(url string) *Dialer {
	d.prefer = url
	return d
}

// NewDialer returns a dialer over the relays' WebSocket URLs.
func NewDialer(urls []string) *Dialer {
	return &Dialer{urls: urls, d: websocket.Dialer{HandshakeTimeout: 3 * time.Second}}
}

// dial tries every relay once, in random order, skipping avoid (the relay
// that just failed) unless it is the only one. It returns the connection and
// the relay name from the welcome frame.
func (d *Dialer) dial(ctx context.Context, avoid string) (*websocket.Conn, string, string, error) {
	order := rand.Perm(len(d.urls))
	if avoid == "" && d.prefer != "" {
		for i, j := range order {
			if d.urls[j] == d.prefer {
				order[0], order[i] = order[i], order[0]
			}
		}
	}
	var lastErr error
	for pass := 0; pass < 2; pass++ {
		for _, i := range order {
			u := d.urls[i]
			if pass == 0 && u == avoid && len(d.urls) > 1 {
				continue
			}
			if pass == 1 && u != avoid {
				continue
			}
			c, _, err := d.d.DialContext(ctx, u, nil)
			if err != nil {
				lastErr = err
				continue
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			var w frame
			if err := c.ReadJSON(&w); err != nil || w.Op != "welcome" {
				c.Close()
				lastErr = fmt.Errorf("no welcome from %s: %v", u, err)
				continue
			}
			_ = c.SetReadDeadline(time.Time{})
			return c, u, w.Relay, nil
		}
	}
	if lastErr == nil {
		lastErr = errors.New("no relay")
	}
	return nil, "", "", lastErr
}

// jitter returns a duration uniformly in [d/2, 3d/2).
func jitter(d time.Duration) time.Duration { return d/2 + rand.N(d) }

// closeGracefully sends a normal close frame and closes the connection, as a
// client that leaves (WriteControl may run beside the reader).
func closeGracefully(c *websocket.Conn) {
	_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second))
	_ = c.Close()
}

// backoff sleeps for the n-th retry (100 ms doubling, at most 2 s, jittered).
func backoff(ctx context.Context, n int) {
	d := 100 * time.Millisecond << min(n, 5)
	d = min(d, 2*time.Second)
	d = d/2 + rand.N(d/2+1)
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// ---------------------------------------------------------------- Publisher

type ackInfo struct {
	pos       string
	duplicate bool
}

// Publisher publishes sequence-numbered messages to one room, one at a time.
type Publisher struct {
	Name string
	Room string
	dl   *Dialer
	Rate float64 // messages per second
	Pad  string  // padding in every message
	// Churn, when positive, makes the publisher leave its relay about this
	// often (between publishes) and carry on through another one. Set
	// before Run.
	Churn time.Duration

	mu    sync.Mutex
	acked map[int]ackInfo // seq -> ack
	sent  int             // highest seq handed to the relay at least once
	// counters
	attempts, retries, dupAcks, reconnects, logUnavailable, otherErrors atomic.Int64
}

// NewPublisher returns a publisher of rate messages per second to room,
// each padded with pad bytes, through any relay of dl.
func NewPublisher(name, room string, dl *Dialer, rate float64, pad int) *Publisher {
	return &Publisher{Name: name, Room: room, dl: dl, Rate: rate, Pad: strings.Repeat("x", pad), acked: map[int]ackInfo{}}
}

// LogUnavailable is how many publishes relays refused with log_unavailable.
func (p *Publisher) LogUnavailable() int64 { return p.logUnavailable.Load() }

// OtherErrors is how many publishes got an error other than log_unavailable
// or shutting_down.
func (p *Publisher) OtherErrors() int64 { return p.otherErrors.Load() }

// Acked is how many distinct messages were acknowledged so far.
func (p *Publisher) Acked() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.acked)
}

// Run publishes seq 1, 2, ... one at a time until stop is closed, each
// retried (same mid) until acked; after stop it still finishes the publish in
// flight, until ctx ends.
func (p *Publisher) Run(ctx context.Context, stop <-chan struct{}) {
	var (
		c        *websocket.Conn
		url      string
		failures int
		leaveAt  time.Time // with Churn: when to leave this relay
	)
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	interval := time.Duration(float64(time.Second) / p.Rate)
	next := time.Now()
	for seq := 1; ; seq++ {
		// Pace: one publish per interval, not bursting after an outage.
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-time.After(time.Until(next)):
		}
		next = time.Now().Add(interval)
		data, _ := json.Marshal(payload{P: p.Name, Seq: seq, Pad: p.Pad})
		req, _ := json.Marshal(map[string]any{
			"op": "publish", "room": p.Room, "data": json.RawMessage(data),
			"mid": fmt.Sprintf("%s-%d", p.Name, seq), "id": strconv.Itoa(seq),
		})
		p.mu.Lock()
		p.sent = seq
		p.mu.Unlock()
		for try := 0; ; try++ {
			if ctx.Err() != nil {
				return
			}
			if try > 0 {
				p.retries.Add(1)
			}
			if c == nil {
				var err error
				c, url, _, err = p.dl.dial(ctx, url)
				if err != nil {
					failures++
					backoff(ctx, failures)
					continue
				}
				if try > 0 || seq > 1 {
					p.reconnects.Add(1)
				}
				if p.Churn > 0 {
					leaveAt = time.Now().Add(jitter(p.Churn))
				}
			}
			p.attempts.Add(1)
			a, err := publishOnce(c, req, strconv.Itoa(seq))
			if err == nil {
				failures = 0
				p.mu.Lock()
				p.acked[seq] = a
				p.mu.Unlock()
				if a.duplicate {
					p.dupAcks.Add(1)
				}
				if p.Churn > 0 && time.Now().After(leaveAt) {
					closeGracefully(c)
					c = nil
				}
				break
			}
			var fe *frameErr
			if errors.As(err, &fe) {
				switch fe.code {
				case "log_unavailable":
					p.logUnavailable.Add(1)
					backoff(ctx, try)
					continue // same connection
				case "shutting_down":
				default:
					p.otherErrors.Add(1)
				}
			}
			// Broken, draining or confused connection: drop it, retry elsewhere.
			c.Close()
			c = nil
			failures++
			backoff(ctx, failures)
		}
	}
}

type frameErr struct{ code, msg string }

func (e *frameErr) Error() string { return e.code + ": " + e.msg }

// publishOnce writes one publish and waits for its ack or error.
func publishOnce(c *websocket.Conn, req []byte, id string) (ackInfo, error) {
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := c.WriteMessage(websocket.TextMessage, req); err != nil {
		return ackInfo{}, err
	}
	// produce-timeout is 10 s: after 20 s the connection is presumed dead.
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	want := strconv.Quote(id)
	for {
		var f frame
		if err := c.ReadJSON(&f); err != nil {
			return ackInfo{}, err
		}
		if string(f.ID) != want {
			continue
		}
		switch f.Op {
		case "ack":
			if f.Pos == "" {
				return ackInfo{}, &frameErr{code: "no_pos", msg: "ack without pos"}
			}
			return ackInfo{pos: f.Pos, duplicate: f.Duplicate}, nil
		case "error":
			return ackInfo{}, &frameErr{code: f.Code, msg: f.Message}
		}
	}
}

// --------------------------------------------------------------- Subscriber

type delivery struct {
	pos  pos
	at   time.Time
	seen int // times received
}

// Subscriber stays in one room and records what it receives.
type Subscriber struct {
	Name string
	Room string
	dl   *Dialer

	mu        sync.Mutex
	lastPos   string // newest position seen: join ack or message
	last      pos
	hasLast   bool
	got       map[MsgKey]*delivery
	lastSeq   map[string]int // Publisher -> highest seq received
	dups      int
	ooo       int // out of order: a new message at an offset at or below one already seen, or a Publisher's seq going back
	unknown   int // message frames whose data is not a chaos payload
	epochs    map[string]bool
	examples  []string // first few anomalies, for the report
	DropEvery int      // self-test: ignore every Nth message frame; set before Run
	// Churn, when positive, makes the subscriber close its connection about
	// this often and resume from its last position through another relay,
	// as a client that comes and goes. Set before Run.
	Churn  time.Duration
	churns atomic.Int64
	// Since, when set, is the position the first join resumes from (as
	// after a reconnect), for a subscriber that checks what the log holds.
	Since    string
	firstPos string      // the first join's position
	closes   map[int]int // WebSocket close codes relays ended its connections with
	frames   int

	joined                                    chan struct{} // closed after the first join ack
	reconnects, recovered, notRecovered, errs atomic.Int64
	joinErrors                                atomic.Int64
}

func NewSubscriber(name, room string, dl *Dialer) *Subscriber {
	return &Subscriber{Name: name, Room: room, dl: dl, got: map[MsgKey]*delivery{}, lastSeq: map[string]int{},
		epochs: map[string]bool{}, closes: map[int]int{}, joined: make(chan struct{})}
}

// Joined is closed when the subscriber's first join has been acknowledged.
func (s *Subscriber) Joined() <-chan struct{} { return s.joined }

// CloseCodes counts the WebSocket close codes relays ended its connections
// with.
func (s *Subscriber) CloseCodes() map[int]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.closes)
}

// FirstPos is the position of the subscriber's first join (empty until
// Joined is closed).
func (s *Subscriber) FirstPos() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.firstPos
}

// Churns is how often the subscriber left its relay on purpose (Churn).
func (s *Subscriber) Churns() int64 { return s.churns.Load() }

// Reconnects is how often the subscriber connected again after its first
// connection ended.
func (s *Subscriber) Reconnects() int64 { return s.reconnects.Load() }

func (s *Subscriber) note(format string, args ...any) {
	if len(s.examples) < 10 {
		s.examples = append(s.examples, fmt.Sprintf(format, args...))
	}
}

// Run stays in the room until ctx ends, resuming from the last position
// after every disconnect.
func (s *Subscriber) Run(ctx context.Context) {
	var (
		url      string
		failures int
		first    = true
	)
	for ctx.Err() == nil {
		c, u, _, err := s.dl.dial(ctx, url)
		if err != nil {
			failures++
			backoff(ctx, failures)
			continue
		}
		url = u
		if !first {
			s.reconnects.Add(1)
		}
		err = s.session(ctx, c, &first)
		c.Close()
		if ce := (*websocket.CloseError)(nil); errors.As(err, &ce) {
			s.mu.Lock()
			s.closes[ce.Code]++
			s.mu.Unlock()
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			failures++
		} else {
			failures = 0
		}
		backoff(ctx, failures)
	}
}

// session joins (with since when there is a last position) and reads until
// the connection breaks or ctx ends.
func (s *Subscriber) session(ctx context.Context, c *websocket.Conn, first *bool) error {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	var churned atomic.Bool
	if s.Churn > 0 {
		t := time.AfterFunc(jitter(s.Churn), func() {
			churned.Store(true)
			closeGracefully(c)
		})
		defer t.Stop()
		defer func() {
			if churned.Load() {
				s.churns.Add(1)
			}
		}()
	}
	s.mu.Lock()
	if s.lastPos == "" && s.Since != "" {
		s.lastPos = s.Since
	}
	since := s.lastPos
	s.mu.Unlock()
	join := map[string]any{"op": "join", "room": s.Room, "id": "join"}
	if since != "" {
		join["since"] = since
	}
	req, _ := json.Marshal(join)
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := c.WriteMessage(websocket.TextMessage, req); err != nil {
		return err
	}
	joinDeadline := time.Now().Add(30 * time.Second)
	acked := false
	for {
		if !acked {
			_ = c.SetReadDeadline(joinDeadline)
		} else {
			// The relay pings every 25 s; silence beyond a minute is a dead link.
			_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
		}
		_, b, err := c.ReadMessage()
		if err != nil {
			return err
		}
		var f frame
		if err := json.Unmarshal(b, &f); err != nil {
			s.errs.Add(1)
			continue
		}
		switch f.Op {
		case "message":
			s.onMessage(&f)
		case "ack":
			if string(f.ID) != `"join"` {
				continue
			}
			acked = true
			if f.Recovered != nil {
				if *f.Recovered {
					s.recovered.Add(1)
				} else {
					s.notRecovered.Add(1)
					s.mu.Lock()
					s.note("join since %s answered recovered:false", since)
					s.mu.Unlock()
				}
			}
			s.mu.Lock()
			if s.lastPos == "" && f.Pos != "" {
				s.lastPos = f.Pos
			}
			if s.firstPos == "" {
				s.firstPos = f.Pos
			}
			s.mu.Unlock()
			if *first {
				*first = false
				close(s.joined)
			}
		case "error":
			s.errs.Add(1)
			if string(f.ID) == `"join"` {
				s.joinErrors.Add(1)
				s.mu.Lock()
				s.note("join since %q: error %s: %s", since, f.Code, f.Message)
				if f.Code == "stale_position" || f.Code == "bad_position" {
					// Cannot resume from there: start over (losses will show).
					s.lastPos = ""
				}
				s.mu.Unlock()
				return fmt.Errorf("join: %s", f.Code)
			}
		}
	}
}

func (s *Subscriber) onMessage(f *frame) {
	p, err := parsePos(f.Pos)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frames++
	if s.DropEvery > 0 && s.frames%s.DropEvery == 0 {
		return
	}
	if err != nil {
		s.unknown++
		s.note("message with bad pos %q", f.Pos)
		return
	}
	var pl payload
	if json.Unmarshal(f.Data, &pl) != nil || pl.P == "" || pl.Seq <= 0 {
		s.unknown++
		s.note("message with foreign data %s at %s", f.Data, f.Pos)
		return
	}
	s.epochs[p.epoch] = true
	k := MsgKey{pl.P, pl.Seq}
	if d, ok := s.got[k]; ok {
		d.seen++
		s.dups++
		s.note("duplicate %s#%d at %s (first at %d-%d)", pl.P, pl.Seq, f.Pos, d.pos.part, d.pos.offset)
		return
	}
	if s.hasLast && (p.part != s.last.part || p.offset <= s.last.offset) {
		s.ooo++
		s.note("out of order: %s#%d at %s after %d-%d", pl.P, pl.Seq, f.Pos, s.last.part, s.last.offset)
	} else if prev := s.lastSeq[pl.P]; pl.Seq < prev {
		s.ooo++
		s.note("out of order: %s#%d after %s#%d", pl.P, pl.Seq, pl.P, prev)
	}
	s.got[k] = &delivery{pos: p, at: time.Now(), seen: 1}
	if pl.Seq > s.lastSeq[pl.P] {
		s.lastSeq[pl.P] = pl.Seq
	}
	if !s.hasLast || p.offset > s.last.offset {
		s.last, s.hasLast = p, true
		s.lastPos = f.Pos
	}
}

// has reports whether every key in want has been received.
func (s *Subscriber) missing(want map[MsgKey]string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k := range want {
		if _, ok := s.got[k]; !ok {
			n++
		}
	}
	return n
}
