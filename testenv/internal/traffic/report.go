package traffic

import (
	"fmt"
	"io"
	"sort"
)

// RoomResult is the check of one room (or, as Result.Totals, of all).
type RoomResult struct {
	Room        string   `json:"room"`
	Publishers  int      `json:"publishers"`
	Subscribers int      `json:"subscribers"`
	Acked       int      `json:"acked"`               // distinct messages acknowledged
	Expected    int      `json:"expected_deliveries"` // acked x subscribers
	Received    int      `json:"received"`            // distinct acked messages received, summed over subscribers
	Lost        int      `json:"lost"`                // expected - received
	Duplicated  int      `json:"duplicated"`          // extra copies received
	OutOfOrder  int      `json:"out_of_order"`
	Unacked     int      `json:"received_unacked"` // received, never acknowledged to the publisher (allowed)
	Foreign     int      `json:"foreign"`          // message frames that are not traffic payloads
	PosMismatch int      `json:"pos_mismatch"`     // received at a position other than the one acked
	LostSample  []string `json:"lost_sample,omitempty"`
}

// Result is what the publishers and subscribers saw, checked: OK when every
// acknowledged message reached every subscriber of its room exactly once, in
// log order, at the position its ack named, and something was acknowledged.
type Result struct {
	OK        bool          `json:"ok"`
	Totals    RoomResult    `json:"totals"`
	Rooms     []*RoomResult `json:"rooms"`
	Publish   PublishCounts `json:"publish"`
	Subscribe struct {
		Reconnects   int64 `json:"reconnects"`
		Churns       int64 `json:"churns"` // connections closed on purpose (Churn)
		Recovered    int64 `json:"recovered"`
		NotRecovered int64 `json:"not_recovered"`
		JoinErrors   int64 `json:"join_errors"`
		Errors       int64 `json:"errors"`
		Epochs       int   `json:"epochs"`
	} `json:"subscribe"`
	Anomalies []string `json:"anomalies,omitempty"`
}

// PublishCounts sums the publishers' counters.
type PublishCounts struct {
	Attempts       int64 `json:"attempts"`
	Retries        int64 `json:"retries"`
	DuplicateAcks  int64 `json:"duplicate_acks"`
	Reconnects     int64 `json:"reconnects"`
	LogUnavailable int64 `json:"log_unavailable"`
	OtherErrors    int64 `json:"other_errors"`
	Unfinished     int   `json:"unfinished"` // last publish of a publisher never acked
}

// Want lists what every room must deliver: room -> message -> acked position.
func Want(pubs []*Publisher) map[string]map[MsgKey]string {
	want := map[string]map[MsgKey]string{}
	for _, p := range pubs {
		p.mu.Lock()
		m := want[p.Room]
		if m == nil {
			m = map[MsgKey]string{}
			want[p.Room] = m
		}
		for seq, a := range p.acked {
			m[MsgKey{p.Name, seq}] = a.pos
		}
		p.mu.Unlock()
	}
	return want
}

// Missing counts the (message, subscriber) pairs of want not delivered yet.
func Missing(subs []*Subscriber, want map[string]map[MsgKey]string) int {
	n := 0
	for _, s := range subs {
		n += s.missing(want[s.Room])
	}
	return n
}

// Check compares what the subscribers received with want (from Want).
func Check(pubs []*Publisher, subs []*Subscriber, want map[string]map[MsgKey]string) *Result {
	rep := &Result{}
	rooms := map[string]*RoomResult{}
	room := func(name string) *RoomResult {
		r := rooms[name]
		if r == nil {
			r = &RoomResult{Room: name}
			rooms[name] = r
		}
		return r
	}
	for _, p := range pubs {
		r := room(p.Room)
		r.Publishers++
		rep.Publish.Attempts += p.attempts.Load()
		rep.Publish.Retries += p.retries.Load()
		rep.Publish.DuplicateAcks += p.dupAcks.Load()
		rep.Publish.Reconnects += p.reconnects.Load()
		rep.Publish.LogUnavailable += p.logUnavailable.Load()
		rep.Publish.OtherErrors += p.otherErrors.Load()
		p.mu.Lock()
		if _, ok := p.acked[p.sent]; p.sent > 0 && !ok {
			rep.Publish.Unfinished++
		}
		p.mu.Unlock()
	}
	epochs := map[string]bool{}
	for _, s := range subs {
		r := room(s.Room)
		r.Subscribers++
		w := want[s.Room]
		r.Acked = len(w)
		r.Expected += len(w)
		s.mu.Lock()
		for k, pos := range w {
			d, ok := s.got[k]
			if !ok {
				if len(r.LostSample) < 5 {
					r.LostSample = append(r.LostSample, fmt.Sprintf("%s: %s#%d (acked at %s)", s.Name, k.Pub, k.Seq, pos))
				}
				continue
			}
			r.Received++
			if p, err := parsePos(pos); err != nil || p.part != d.pos.part || p.offset != d.pos.offset {
				r.PosMismatch++
			}
		}
		for k := range s.got {
			if _, ok := w[k]; !ok {
				r.Unacked++
			}
		}
		r.Duplicated += s.dups
		r.OutOfOrder += s.ooo
		r.Foreign += s.unknown
		for e := range s.epochs {
			epochs[e] = true
		}
		for _, e := range s.examples {
			rep.Anomalies = append(rep.Anomalies, s.Name+": "+e)
		}
		s.mu.Unlock()
		rep.Subscribe.Reconnects += s.reconnects.Load()
		rep.Subscribe.Churns += s.churns.Load()
		rep.Subscribe.Recovered += s.recovered.Load()
		rep.Subscribe.NotRecovered += s.notRecovered.Load()
		rep.Subscribe.JoinErrors += s.joinErrors.Load()
		rep.Subscribe.Errors += s.errs.Load()
	}
	rep.Subscribe.Epochs = len(epochs)
	names := make([]string, 0, len(rooms))
	for n := range rooms {
		names = append(names, n)
	}
	sort.Strings(names)
	t := &rep.Totals
	t.Room = "total"
	for _, n := range names {
		r := rooms[n]
		r.Lost = r.Expected - r.Received
		rep.Rooms = append(rep.Rooms, r)
		t.Publishers += r.Publishers
		t.Subscribers += r.Subscribers
		t.Acked += r.Acked
		t.Expected += r.Expected
		t.Received += r.Received
		t.Lost += r.Lost
		t.Duplicated += r.Duplicated
		t.OutOfOrder += r.OutOfOrder
		t.Unacked += r.Unacked
		t.Foreign += r.Foreign
		t.PosMismatch += r.PosMismatch
	}
	rep.OK = t.Lost == 0 && t.Duplicated == 0 && t.OutOfOrder == 0 && t.PosMismatch == 0 && t.Acked > 0
	return rep
}

// PrintTable writes the counters, the per-room table, samples of losses and
// the first anomalies, and the verdict.
func (rep *Result) PrintTable(w io.Writer) {
	fmt.Fprintf(w, "publish: %d attempts, %d retries, %d duplicate acks (retries deduplicated), %d reconnects, %d log_unavailable, %d other errors, %d unfinished\n",
		rep.Publish.Attempts, rep.Publish.Retries, rep.Publish.DuplicateAcks, rep.Publish.Reconnects, rep.Publish.LogUnavailable, rep.Publish.OtherErrors, rep.Publish.Unfinished)
	fmt.Fprintf(w, "subscribe: %d reconnects (%d churns), %d recovered joins, %d not recovered, %d join errors, %d error frames\n\n",
		rep.Subscribe.Reconnects, rep.Subscribe.Churns, rep.Subscribe.Recovered, rep.Subscribe.NotRecovered, rep.Subscribe.JoinErrors, rep.Subscribe.Errors)
	fmt.Fprintf(w, "%-14s %5s %5s %8s %9s %9s %7s %6s %6s %8s\n", "room", "pubs", "subs", "acked", "expected", "received", "lost", "dup", "ooo", "unacked")
	row := func(r *RoomResult) {
		fmt.Fprintf(w, "%-14s %5d %5d %8d %9d %9d %7d %6d %6d %8d\n", r.Room, r.Publishers, r.Subscribers, r.Acked, r.Expected, r.Received, r.Lost, r.Duplicated, r.OutOfOrder, r.Unacked)
	}
	for _, r := range rep.Rooms {
		row(r)
	}
	row(&rep.Totals)
	for _, r := range rep.Rooms {
		for _, l := range r.LostSample {
			fmt.Fprintf(w, "  lost: %s\n", l)
		}
	}
	for i, a := range rep.Anomalies {
		if i == 20 {
			fmt.Fprintf(w, "  ... %d more anomalies\n", len(rep.Anomalies)-20)
			break
		}
		fmt.Fprintf(w, "  anomaly: %s\n", a)
	}
	verdict := "PASS: every acked message reached every subscriber of its room once, in log order"
	if !rep.OK {
		verdict = "FAIL"
		if rep.Totals.Acked == 0 {
			verdict += ": nothing was acknowledged"
		}
	}
	fmt.Fprintln(w, verdict)
}
