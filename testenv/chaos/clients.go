package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

type msgKey struct {
	pub string
	seq int
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

// dialer connects to any live relay, starting at a random one.
type dialer struct {
	urls []string
	d    websocket.Dialer
}

func newDialer(urls []string) *dialer {
	return &dialer{urls: urls, d: websocket.Dialer{HandshakeTimeout: 3 * time.Second}}
}

// dial tries every relay once, in random order, skipping avoid (the relay
// that just failed) unless it is the only one. It returns the connection and
// the relay name from the welcome frame.
func (d *dialer) dial(ctx context.Context, avoid string) (*websocket.Conn, string, string, error) {
	order := rand.Perm(len(d.urls))
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

// ---------------------------------------------------------------- publisher

type ackInfo struct {
	pos       string
	duplicate bool
}

type publisher struct {
	name string
	room string
	dl   *dialer
	rate float64 // messages per second
	pad  string

	mu    sync.Mutex
	acked map[int]ackInfo // seq -> ack
	sent  int             // highest seq handed to the relay at least once
	// counters
	attempts, retries, dupAcks, reconnects, logUnavailable, otherErrors atomic.Int64
}

// run publishes seq 1, 2, ... one at a time until stop is closed, each
// retried (same mid) until acked; after stop it still finishes the publish in
// flight, until ctx ends.
func (p *publisher) run(ctx context.Context, stop <-chan struct{}) {
	var (
		c        *websocket.Conn
		url      string
		failures int
	)
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	interval := time.Duration(float64(time.Second) / p.rate)
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
		data, _ := json.Marshal(payload{P: p.name, Seq: seq, Pad: p.pad})
		req, _ := json.Marshal(map[string]any{
			"op": "publish", "room": p.room, "data": json.RawMessage(data),
			"mid": fmt.Sprintf("%s-%d", p.name, seq), "id": strconv.Itoa(seq),
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

// --------------------------------------------------------------- subscriber

type delivery struct {
	pos  pos
	at   time.Time
	seen int // times received
}

type subscriber struct {
	name string
	room string
	dl   *dialer

	mu        sync.Mutex
	lastPos   string // newest position seen: join ack or message
	last      pos
	hasLast   bool
	got       map[msgKey]*delivery
	lastSeq   map[string]int // publisher -> highest seq received
	dups      int
	ooo       int // out of order: a new message at an offset at or below one already seen, or a publisher's seq going back
	unknown   int // message frames whose data is not a chaos payload
	epochs    map[string]bool
	examples  []string // first few anomalies, for the report
	dropEvery int      // self-test: ignore every Nth message frame
	frames    int

	joined                                    chan struct{} // closed after the first join ack
	reconnects, recovered, notRecovered, errs atomic.Int64
	joinErrors                                atomic.Int64
}

func newSubscriber(name, room string, dl *dialer) *subscriber {
	return &subscriber{name: name, room: room, dl: dl, got: map[msgKey]*delivery{}, lastSeq: map[string]int{},
		epochs: map[string]bool{}, joined: make(chan struct{})}
}

func (s *subscriber) note(format string, args ...any) {
	if len(s.examples) < 10 {
		s.examples = append(s.examples, fmt.Sprintf(format, args...))
	}
}

// run stays in the room until ctx ends, resuming from the last position
// after every disconnect.
func (s *subscriber) run(ctx context.Context) {
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
func (s *subscriber) session(ctx context.Context, c *websocket.Conn, first *bool) error {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	s.mu.Lock()
	since := s.lastPos
	s.mu.Unlock()
	join := map[string]any{"op": "join", "room": s.room, "id": "join"}
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

func (s *subscriber) onMessage(f *frame) {
	p, err := parsePos(f.Pos)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frames++
	if s.dropEvery > 0 && s.frames%s.dropEvery == 0 {
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
	k := msgKey{pl.P, pl.Seq}
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
func (s *subscriber) missing(want map[msgKey]string) int {
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
