package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/gorilla/websocket"
)

// A worker holds the connections of a contiguous range of rooms, so that
// every publish and all its deliveries are timed by the same process clock.

const histShards = 16

// partial is a worker's result, merged by the coordinator.
type partial struct {
	Type string `json:"type"` // "ready" or "result"

	Conns          int      `json:"conns"`
	Connected      int      `json:"connected"`
	ConnectFailed  int      `json:"connect_failed"`
	ConnectErrors  []string `json:"connect_errors,omitempty"` // the first failures' reasons
	ConnectStartNs int64    `json:"connect_start_ns"`
	ConnectEndNs   int64    `json:"connect_end_ns"`

	Counts

	Hist    *hdrhistogram.Snapshot `json:"hist,omitempty"`
	AckHist *hdrhistogram.Snapshot `json:"ack_hist,omitempty"`
}

type worker struct {
	cfg     *config
	ad      adapter
	epoch   time.Time
	dialers []*websocket.Dialer

	clients   []*client         // stable connections, in index order
	pubs      []*client         // publishers
	roomPubs  map[int][]*client // room -> its publishers
	roomsOwn  []int             // rooms of this shard
	churnSeq  atomic.Int64
	measuring atomic.Bool
	stopping  atomic.Bool

	hmu  [histShards]sync.Mutex
	hist [histShards]*hdrhistogram.Histogram
	amu  sync.Mutex
	ackH *hdrhistogram.Histogram // publish written → its ack read, measured window only

	deliveries, deliveriesWindow        atomic.Uint64
	published, publishedWindow, pubErrs atomic.Uint64
	reconnects, reconnectFailed         atomic.Uint64
	churnConnects, churnFailed, churnDn atomic.Uint64
	errorFrames                         atomic.Uint64
	errMu                               sync.Mutex
	errSamples                          []string
}

// client is one logical connection: it survives reconnects.
type client struct {
	w        *worker
	idx      int
	room     int
	roomName string
	pub      int // publisher id, -1 if it does not publish
	stable   bool
	ep       int

	wmu  sync.Mutex
	ws   *websocket.Conn
	dead atomic.Bool // closing on purpose: no reconnect
	// joined is set once the first connect's join is acknowledged. A
	// connection that never joined was promised nothing: tally leaves it
	// out (the run counts it as a failed connect instead).
	joined atomic.Bool

	smu     sync.Mutex
	streams map[int32]*stream
	lastPos string  // roomlog (either protocol): position of the last message
	cEpoch  string  // centrifugo: stream epoch
	cOffset uint64  // centrifugo: last offset
	acked   bitset  // publisher: acknowledged sequences
	sentAt  []int64 // publisher: when each sequence was written, ns since the worker's epoch
	nAcked  uint64
	dup     uint64
	ooo     uint64

	seq uint64 // publisher: next sequence (publisher goroutine only)

	state chan event // handshake events while connecting
}

type event int

const (
	evNone event = iota
	evConnected
	evJoined
	evJoinFailed
)

type bitset []uint64

func (b *bitset) set(i uint64) bool {
	w := int(i / 64)
	for len(*b) <= w {
		*b = append(*b, 0)
	}
	m := uint64(1) << (i % 64)
	had := (*b)[w]&m != 0
	(*b)[w] |= m
	return had
}

func (b bitset) has(i uint64) bool {
	w := int(i / 64)
	return w < len(b) && b[w]&(uint64(1)<<(i%64)) != 0
}

type stream struct {
	got bitset
	max int64
}

func runWorker(args []string) error {
	cfg, err := parseConfig("worker", args, true)
	if err != nil {
		return err
	}
	raiseNoFile()
	w := &worker{cfg: cfg, ad: newAdapter(cfg), epoch: time.Now(), roomPubs: map[int][]*client{}}
	for i := range w.hist {
		w.hist[i] = hdrhistogram.New(1, 600_000_000, 3) // microseconds, 1 µs to 10 min, 3 significant digits
	}
	w.ackH = hdrhistogram.New(1, 600_000_000, 3)
	w.makeDialers()

	// This shard's rooms, connections and publishers.
	pubOf := map[int]int{}
	for p := 0; p < cfg.Publishers; p++ {
		pubOf[cfg.publisherConn(p)] = p
	}
	for r := 0; r < cfg.Rooms; r++ {
		if cfg.shardOf(r) == cfg.Shard {
			w.roomsOwn = append(w.roomsOwn, r)
		}
	}
	if len(w.roomsOwn) == 0 {
		return errors.New("no rooms in this shard")
	}
	lo, hi := cfg.firstConn(w.roomsOwn[0]), cfg.firstConn(w.roomsOwn[len(w.roomsOwn)-1]+1)
	if w.roomsOwn[len(w.roomsOwn)-1] == cfg.Rooms-1 {
		hi = cfg.Conns
	}
	for i := lo; i < hi; i++ {
		c := w.newClient(i, cfg.roomOf(i), true)
		if p, ok := pubOf[i]; ok {
			c.pub = p
			w.pubs = append(w.pubs, c)
			w.roomPubs[c.room] = append(w.roomPubs[c.room], c)
		}
		w.clients = append(w.clients, c)
	}

	out := json.NewEncoder(os.Stdout)
	deadline := time.Now().Add(cfg.Timeout)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()

	// Connect phase.
	ready := partial{Type: "ready", Conns: len(w.clients)}
	ready.ConnectStartNs = time.Now().UnixNano()
	connected, failed, errs := w.connectAll(ctx)
	ready.ConnectEndNs = time.Now().UnixNano()
	ready.Connected, ready.ConnectFailed, ready.ConnectErrors = connected, failed, errs
	if err := out.Encode(ready); err != nil {
		return err
	}
	w.logf("shard %d: %d connected, %d failed in %.1fs", cfg.Shard, connected, failed, float64(ready.ConnectEndNs-ready.ConnectStartNs)/1e9)

	// Wait for "go".
	in := bufio.NewScanner(os.Stdin)
	if !in.Scan() || in.Text() != "go" {
		return errors.New("coordinator went away before go")
	}

	// Traffic.
	start := time.Now()
	winStart := start.Add(cfg.Warmup)
	winEnd := winStart.Add(cfg.Duration)
	var pwg sync.WaitGroup
	for _, c := range w.pubs {
		pwg.Add(1)
		go func(c *client) { defer pwg.Done(); w.publishLoop(ctx, c, winStart, winEnd) }(c)
	}
	if cfg.Churn > 0 {
		pwg.Add(1)
		go func() { defer pwg.Done(); w.churnLoop(ctx, winEnd) }()
	}
	sleepUntil(ctx, winStart)
	w.measuring.Store(true)
	sleepUntil(ctx, winEnd)
	w.measuring.Store(false)
	pwg.Wait()
	sleepUntil(ctx, winEnd.Add(cfg.Drain))

	res := w.tally()
	w.stopping.Store(true)
	w.closeAll()
	res.Type = "result"
	return out.Encode(res)
}

func sleepUntil(ctx context.Context, t time.Time) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}

func (w *worker) logf(format string, args ...any) {
	if !w.cfg.Quiet {
		fmt.Fprintf(os.Stderr, "[worker %d] "+format+"\n", append([]any{w.cfg.Shard}, args...)...)
	}
}

func (w *worker) errorSample(s string) {
	w.errorFrames.Add(1)
	w.errMu.Lock()
	if len(w.errSamples) < 5 {
		w.errSamples = append(w.errSamples, s)
	}
	w.errMu.Unlock()
}

func (w *worker) newClient(i, room int, stable bool) *client {
	return &client{
		w: w, idx: i, room: room, roomName: w.cfg.roomName(room), pub: -1, stable: stable,
		ep: i % len(w.cfg.URLs), streams: map[int32]*stream{}, state: make(chan event, 4),
	}
}

// raiseNoFile lifts the soft descriptor limit to the hard one.
func raiseNoFile() {
	var r syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r) == nil && r.Cur < r.Max {
		r.Cur = r.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r)
	}
}

// makeDialers: one dialer per source address, so that more than ~28k
// connections (one ephemeral port range) reach the servers.
func (w *worker) makeDialers() {
	n := w.cfg.SrcIPs
	if n > 250 {
		n = 250
	}
	mk := func(local net.Addr) *websocket.Dialer {
		nd := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: local, Control: bindNoPort}
		return &websocket.Dialer{
			NetDialContext:   nd.DialContext,
			HandshakeTimeout: 10 * time.Second,
			ReadBufferSize:   2048,
			WriteBufferSize:  1024,
			WriteBufferPool:  &sync.Pool{},
		}
	}
	if n <= 0 {
		w.dialers = []*websocket.Dialer{mk(nil)}
		return
	}
	for i := 0; i < n; i++ {
		w.dialers = append(w.dialers, mk(&net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i))}))
	}
}

// bindNoPort sets IP_BIND_ADDRESS_NO_PORT: the source port is chosen at
// connect time, per destination, not at bind time.
func bindNoPort(network, address string, rc syscall.RawConn) error {
	return rc.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, 24 /* IP_BIND_ADDRESS_NO_PORT */, 1)
	})
}

func (w *worker) connectAll(ctx context.Context) (ok, failed int, errs []string) {
	conc := w.cfg.ConnectConc
	if conc < 1 {
		conc = 1
	}
	var tick <-chan time.Time
	if w.cfg.ConnectRate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / w.cfg.ConnectRate))
		defer t.Stop()
		tick = t.C
	}
	jobs := make(chan *client)
	var nOK, nFail atomic.Int64
	var emu sync.Mutex
	var wg sync.WaitGroup
	for g := 0; g < conc; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range jobs {
				var err error
				for attempt := 0; attempt < 3; attempt++ {
					if err = c.connect(ctx, false); err == nil {
						break
					}
					time.Sleep(200 * time.Millisecond)
				}
				if err != nil {
					nFail.Add(1)
					emu.Lock()
					if len(errs) < 10 {
						errs = append(errs, fmt.Sprintf("connection %d (room %s, %s): %v", c.idx, c.roomName, w.cfg.URLs[c.ep], err))
					}
					emu.Unlock()
					continue
				}
				c.joined.Store(true)
				nOK.Add(1)
				go c.readLoop(ctx)
			}
		}()
	}
	last := time.Now()
	for i, c := range w.clients {
		if tick != nil {
			select {
			case <-tick:
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		jobs <- c
		if time.Since(last) > 5*time.Second {
			last = time.Now()
			w.logf("dialled %d/%d", i+1, len(w.clients))
		}
	}
	close(jobs)
	wg.Wait()
	return int(nOK.Load()), int(nFail.Load()), errs
}

// connect dials, runs the protocol hello and joins the room (resuming after
// the last message seen when resume is set); it returns once the join is
// acknowledged. Frames that arrive meanwhile are handled as usual.
func (c *client) connect(ctx context.Context, resume bool) error {
	w := c.w
	d := w.dialers[c.idx%len(w.dialers)]
	u := w.ad.url(w.cfg.URLs[c.ep])
	hdr := http.Header{}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	ws, resp, err := d.DialContext(dctx, u, hdr)
	if err != nil {
		if resp != nil {
			return fmt.Errorf("%s: %v (HTTP %d)", u, err, resp.StatusCode)
		}
		return fmt.Errorf("%s: %v", u, err)
	}
	for len(c.state) > 0 {
		<-c.state
	}
	c.wmu.Lock()
	c.ws = ws
	c.wmu.Unlock()
	fail := func(err error) error {
		c.wmu.Lock()
		c.ws = nil
		c.wmu.Unlock()
		ws.Close()
		return err
	}
	ws.SetReadDeadline(time.Now().Add(15 * time.Second))
	if err := w.ad.hello(c); err != nil {
		return fail(err)
	}
	joinSent := false
	for {
		_, b, err := ws.ReadMessage()
		if err != nil {
			return fail(err)
		}
		w.ad.frame(c, b)
		for drained := false; !drained; {
			select {
			case ev := <-c.state:
				switch ev {
				case evConnected:
					if !joinSent {
						joinSent = true
						if err := w.ad.join(c, resume); err != nil {
							return fail(err)
						}
					}
				case evJoined:
					ws.SetReadDeadline(time.Time{})
					return nil
				case evJoinFailed:
					return fail(errors.New("join refused"))
				}
			default:
				drained = true
			}
		}
	}
}

func (c *client) signal(ev event) {
	select {
	case c.state <- ev:
	default:
	}
}

func (c *client) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.ws == nil {
		return errors.New("not connected")
	}
	c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.ws.WriteMessage(websocket.TextMessage, b)
}

// readLoop reads frames until the run ends; a stable connection that loses
// its socket reconnects to the next endpoint and resumes.
func (c *client) readLoop(ctx context.Context) {
	w := c.w
	for {
		c.wmu.Lock()
		ws := c.ws
		c.wmu.Unlock()
		if ws == nil {
			return
		}
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				break
			}
			w.ad.frame(c, b)
		}
		c.wmu.Lock()
		if c.ws == ws {
			c.ws = nil
		}
		c.wmu.Unlock()
		ws.Close()
		if !c.stable || c.dead.Load() || w.stopping.Load() || ctx.Err() != nil {
			return
		}
		backoff := 100 * time.Millisecond
		for {
			if w.stopping.Load() || ctx.Err() != nil {
				return
			}
			c.ep = (c.ep + 1) % len(w.cfg.URLs)
			if err := c.connect(ctx, true); err == nil {
				w.reconnects.Add(1)
				break
			}
			w.reconnectFailed.Add(1)
			time.Sleep(backoff)
			if backoff < time.Second {
				backoff *= 2
			}
		}
	}
}

func (w *worker) closeAll() {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	for _, c := range w.clients {
		c.dead.Store(true)
		c.wmu.Lock()
		ws := c.ws
		c.ws = nil
		c.wmu.Unlock()
		if ws == nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
			ws.Close()
			<-sem
		}()
	}
	wg.Wait()
}

// --- messages ---

var marker = []byte(`"b":"`)

// payload builds a message's data: {"b":"pub.seq.t","x":"..."} of size bytes.
func (w *worker) payload(pub int, seq uint64) []byte {
	b := make([]byte, 0, w.cfg.Size+8)
	b = append(b, `{"b":"`...)
	b = strconv.AppendInt(b, int64(pub), 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(time.Since(w.epoch)), 10)
	b = append(b, `","x":"`...)
	for len(b) < w.cfg.Size-2 {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

// deliver handles every message marker in b (a frame, or the part of it
// that holds publications).
func (c *client) deliver(b []byte) {
	w := c.w
	now := int64(time.Since(w.epoch))
	for {
		i := bytes.Index(b, marker)
		if i < 0 {
			return
		}
		b = b[i+len(marker):]
		pub, seq, t, rest, ok := parseMarker(b)
		b = rest
		if !ok {
			continue
		}
		w.deliveries.Add(1)
		if w.measuring.Load() {
			w.deliveriesWindow.Add(1)
			us := (now - t) / 1000
			if us < 1 {
				us = 1
			}
			s := c.idx % histShards
			w.hmu[s].Lock()
			_ = w.hist[s].RecordValue(us)
			w.hmu[s].Unlock()
		}
		c.smu.Lock()
		st := c.streams[int32(pub)]
		if st == nil {
			st = &stream{max: -1}
			c.streams[int32(pub)] = st
		}
		if st.got.set(seq) {
			c.dup++
		} else if int64(seq) < st.max {
			c.ooo++
		}
		if int64(seq) > st.max {
			st.max = int64(seq)
		}
		c.smu.Unlock()
	}
}

func parseMarker(b []byte) (pub int, seq uint64, t int64, rest []byte, ok bool) {
	var v [3]int64
	k, n := 0, int64(0)
	for i, ch := range b {
		switch {
		case ch >= '0' && ch <= '9':
			n = n*10 + int64(ch-'0')
		case ch == '.' && k < 2:
			v[k] = n
			k, n = k+1, 0
		case ch == '"' && k == 2:
			v[2] = n
			return int(v[0]), uint64(v[1]), v[2], b[i+1:], true
		default:
			return 0, 0, 0, b[i:], false
		}
	}
	return 0, 0, 0, nil, false
}

func (c *client) ack(seq uint64) {
	now := int64(time.Since(c.w.epoch))
	c.smu.Lock()
	at := int64(-1)
	if !c.acked.set(seq) {
		c.nAcked++
		if seq < uint64(len(c.sentAt)) {
			at = c.sentAt[seq]
		}
	}
	c.smu.Unlock()
	if w := c.w; at >= 0 && w.measuring.Load() {
		w.amu.Lock()
		_ = w.ackH.RecordValue(max((now-at)/1000, 1))
		w.amu.Unlock()
	}
}

// sent notes when sequence seq is written (before the write: its ack may
// come back before the writer returns). A failed write's sequence is
// written again by the next publish.
func (c *client) sent(seq uint64) {
	now := int64(time.Since(c.w.epoch))
	c.smu.Lock()
	if seq < uint64(len(c.sentAt)) {
		c.sentAt[seq] = now
	} else {
		c.sentAt = append(c.sentAt, now)
	}
	c.smu.Unlock()
}

// publishLoop publishes at this publisher's share of the rate until the end
// of the measured window. A publish that cannot be written (no socket) is
// skipped and counted; sequences stay dense over written publishes.
func (w *worker) publishLoop(ctx context.Context, c *client, winStart, winEnd time.Time) {
	interval := time.Duration(float64(time.Second) * float64(w.cfg.Publishers) / w.cfg.Rate)
	if interval <= 0 {
		interval = time.Millisecond
	}
	time.Sleep(time.Duration(rand.Int64N(int64(interval))))
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		now := time.Now()
		if now.After(winEnd) || ctx.Err() != nil {
			return
		}
		c.sent(c.seq)
		if err := w.ad.publish(c, c.seq, w.payload(c.pub, c.seq)); err != nil {
			w.pubErrs.Add(1)
		} else {
			c.seq++
			w.published.Add(1)
			if now.After(winStart) {
				w.publishedWindow.Add(1)
			}
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// churnLoop opens connections at the churn rate; each joins a random room of
// the shard, stays ChurnHold, and closes. They count for deliveries and
// latency, not for losses.
func (w *worker) churnLoop(ctx context.Context, end time.Time) {
	t := time.NewTicker(time.Duration(float64(time.Second) / w.cfg.Churn))
	defer t.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for time.Now().Before(end) && ctx.Err() == nil {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		n := w.churnSeq.Add(1)
		room := w.roomsOwn[rand.IntN(len(w.roomsOwn))]
		c := w.newClient(w.cfg.Conns+int(n), room, false)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.connect(ctx, false); err != nil {
				w.churnFailed.Add(1)
				return
			}
			w.churnConnects.Add(1)
			go c.readLoop(ctx)
			time.Sleep(w.cfg.ChurnHold)
			c.dead.Store(true)
			c.wmu.Lock()
			ws := c.ws
			c.ws = nil
			c.wmu.Unlock()
			if ws != nil {
				ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
				ws.Close()
				w.churnDn.Add(1)
			}
		}()
	}
}

// tally counts losses: for every stable member of a room that joined it,
// every acknowledged publish to the room that it did not receive. A member
// whose first connect failed (three attempts) is not counted: no server
// acknowledged its join, and the run reports it as a failed connect.
func (w *worker) tally() partial {
	var p partial
	p.Conns = len(w.clients)
	p.Published, p.PublishedWindow, p.PublishErrors = w.published.Load(), w.publishedWindow.Load(), w.pubErrs.Load()
	p.Deliveries, p.DeliveriesWindow = w.deliveries.Load(), w.deliveriesWindow.Load()
	p.Reconnects, p.ReconnectFailed = w.reconnects.Load(), w.reconnectFailed.Load()
	p.ChurnConnects, p.ChurnFailed, p.ChurnDisconnects = w.churnConnects.Load(), w.churnFailed.Load(), w.churnDn.Load()
	p.ErrorFrames = w.errorFrames.Load()
	w.errMu.Lock()
	p.ErrorSamples = append([]string(nil), w.errSamples...)
	w.errMu.Unlock()

	acked := map[int]bitset{}
	for _, pc := range w.pubs {
		pc.smu.Lock()
		acked[pc.pub] = append(bitset(nil), pc.acked...)
		p.Acked += pc.nAcked
		pc.smu.Unlock()
	}
	lostRooms, dupRooms, oooRooms := map[int]bool{}, map[int]bool{}, map[int]bool{}
	for _, c := range w.clients {
		if !c.joined.Load() {
			continue
		}
		c.smu.Lock()
		if c.dup > 0 {
			dupRooms[c.room] = true
		}
		if c.ooo > 0 {
			oooRooms[c.room] = true
		}
		p.Dup += c.dup
		p.OOO += c.ooo
		for _, pc := range w.roomPubs[c.room] {
			a := acked[pc.pub]
			st := c.streams[int32(pc.pub)]
			var expected, missed uint64
			first := int64(-1)
			for wi, word := range a {
				for word != 0 {
					bit := uint64(wi*64) + uint64(bits.TrailingZeros64(word))
					word &= word - 1
					expected++
					if st == nil || !st.got.has(bit) {
						missed++
						if first < 0 {
							first = int64(bit)
						}
					}
				}
			}
			p.Expected += expected
			p.Lost += missed
			if missed > 0 {
				lostRooms[c.room] = true
				if len(p.LossSamples) < 10 {
					p.LossSamples = append(p.LossSamples, fmt.Sprintf("room %s: connection %d (last on %s; this worker saw %d reconnects) missed %d of %d acknowledged publishes of publisher %d, the first at sequence %d",
						c.roomName, c.idx, w.cfg.URLs[c.ep%len(w.cfg.URLs)], w.reconnects.Load(), missed, expected, pc.pub, first))
				}
			}
		}
		c.smu.Unlock()
	}
	p.RoomsLost, p.RoomsDup, p.RoomsOOO = len(lostRooms), len(dupRooms), len(oooRooms)
	h := hdrhistogram.New(1, 600_000_000, 3)
	for i := range w.hist {
		w.hmu[i].Lock()
		h.Merge(w.hist[i])
		w.hmu[i].Unlock()
	}
	p.Hist = h.Export()
	w.amu.Lock()
	p.AckHist = w.ackH.Export()
	w.amu.Unlock()
	return p
}
