package relay

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/consumer"
	"github.com/roomlog/roomlog/internal/logview"
	"github.com/roomlog/roomlog/record"
)

// The console's reads of the log (admin.go): a room's records in a slice of
// its partition, its state at a position (and a diff between two), and an
// export of a slice. Each reads one partition with a client of its own
// (consumer.ReadRange), within ReadTimeout and a record budget, and checks
// its parameters first: a bad one is a 400, never a read.

// Bounds of the console's log reads.
const (
	AdminScanDefault = 10_000  // records scanned when a slice has no from
	AdminScanMax     = 200_000 // records one records or export request may scan
	AdminFoldBudget  = 1 << 20 // records a state request may fold
	adminRecordsDef  = 500
	adminRecordsMax  = 5000
)

// adminSlice is a validated slice of a room's partition: [from, to).
type adminSlice struct {
	room     string
	part     *consumer.Partition
	from, to int64
	filter   logview.Filter
}

// adminSliceOf reads room, from and to (positions, inclusive; default: the newest
// AdminScanDefault records up to what this relay has folded) and the
// filters event, sender, user and type.
func (s *Server) adminSliceOf(w http.ResponseWriter, r *http.Request) (*adminSlice, bool) {
	room, ok := queryRoom(w, r)
	if !ok {
		return nil, false
	}
	q := r.URL.Query()
	sl := &adminSlice{room: room, part: s.partitionOf(room)}
	next, _ := sl.part.Progress()
	sl.to = next
	if pos, ok := s.queryPos(w, q, "to", room, next); !ok {
		return nil, false
	} else if pos != nil {
		sl.to = pos.Offset + 1
	}
	sl.from = max(sl.to-AdminScanDefault, 0)
	if pos, ok := s.queryPos(w, q, "from", room, next); !ok {
		return nil, false
	} else if pos != nil {
		sl.from = pos.Offset
	}
	if sl.from > sl.to {
		badRequest(w, "bad_range", "from is after to")
		return nil, false
	}
	if sl.to-sl.from > AdminScanMax {
		badRequest(w, "range_too_large", fmt.Sprintf("the slice holds %d records of the partition; one request scans at most %d: narrow from and to", sl.to-sl.from, AdminScanMax))
		return nil, false
	}
	sl.filter = logview.Filter{From: q.Get("sender"), User: q.Get("user")}
	if e := q.Get("event"); e != "" {
		sl.filter.Events = []string{e}
	}
	if t := q.Get("type"); t != "" {
		if !slices.Contains(logview.Types, t) {
			badRequest(w, "bad_type", "type "+strconv.Quote(t)+" is not a record type")
			return nil, false
		}
		sl.filter.Types = []string{t}
	}
	return sl, true
}

// queryPos reads a position parameter: nil when absent. It must be a
// position of this topic's incarnation, in room's partition, and not past
// next (what this relay has folded).
func (s *Server) queryPos(w http.ResponseWriter, q url.Values, name, room string, next int64) (*record.Pos, bool) {
	v := q.Get(name)
	if v == "" {
		return nil, true
	}
	p, err := record.ParsePos(v)
	if err != nil {
		badRequest(w, string(CodeBadPosition), name+": "+err.Error())
		return nil, false
	}
	if ferr := s.checkPos(name, p, room, s.partitionOf(room).ID()); ferr != nil {
		badRequest(w, string(ferr.Code), ferr.Message)
		return nil, false
	}
	if p.Offset >= next {
		badRequest(w, "past_end", fmt.Sprintf("%s %s is past the end of the log as this relay has read it (next offset %d)", name, v, next))
		return nil, false
	}
	return &p, true
}

// adminDeadline bounds one request's reads of the log by ReadTimeout; a
// client that goes away ends them too.
func (s *Server) adminDeadline(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.cfg.ReadTimeout)
}

// adminRead reads [from, to) of partition pn, calling fn for each record
// (false stops). It answers the error itself.
func (s *Server) adminRead(ctx context.Context, w http.ResponseWriter, pn int32, from, to int64, fn func(*kgo.Record) bool) bool {
	if _, err := consumer.ReadRange(ctx, s.clientOpts(kafkaClientAdmin), s.cfg.Topic, pn, from, to, fn); err != nil {
		s.adminLogError(w, err)
		return false
	}
	return true
}

func (s *Server) adminLogError(w http.ResponseWriter, err error) {
	if errors.Is(err, context.DeadlineExceeded) {
		httpError(w, http.StatusGatewayTimeout, string(CodeTimeout), "reading the log took longer than --read-timeout: narrow the slice")
		return
	}
	httpError(w, http.StatusServiceUnavailable, "log_unavailable", "reading the log: "+err.Error())
}

// adminRecords lists the room's records in the slice that pass the filters,
// the first limit of them; next is where to continue.
func (s *Server) adminRecords(w http.ResponseWriter, r *http.Request) {
	sl, ok := s.adminSliceOf(w, r)
	if !ok {
		return
	}
	limit, ok := queryLimit(w, r.URL.Query().Get("limit"), adminRecordsDef, adminRecordsMax)
	if !ok {
		return
	}
	recs := []logview.RecordView{}
	next := sl.to
	ctx, cancel := s.adminDeadline(r)
	defer cancel()
	if !s.adminRead(ctx, w, sl.part.ID(), sl.from, sl.to, func(kr *kgo.Record) bool {
		if string(kr.Key) != sl.room {
			return true
		}
		ev, err := record.Decode(kr)
		if err != nil || ev.Room != sl.room || !sl.filter.Match(&ev, kr) {
			return true
		}
		if len(recs) == limit {
			next = kr.Offset
			return false
		}
		v := logview.ViewOf(&ev, kr, s.epoch)
		v.Place(&ev, s.partitions)
		recs = append(recs, v)
		return true
	}) {
		return
	}
	partNext, _ := sl.part.Progress()
	adminJSON(w, map[string]any{
		"room": sl.room, "partition": sl.part.ID(), "from": sl.part.Pos(s.epoch, sl.from).String(),
		"to": sl.part.Pos(s.epoch, sl.to-1).String(), "end": sl.part.Pos(s.epoch, partNext).String(),
		"records": recs, "more": next < sl.to, "next": sl.part.Pos(s.epoch, next).String(),
	})
}

// adminState is `roomlog state --at` (and `--diff`): the room's state at a
// position, rebuilt by folding its partition from the log's start or a
// snapshot, within AdminFoldBudget records and ReadTimeout.
func (s *Server) adminState(w http.ResponseWriter, r *http.Request) {
	room, ok := queryRoom(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	p := s.partitionOf(room)
	next, _ := p.Progress()
	if next == 0 {
		badRequest(w, "unknown_room", "the room's partition holds no records yet")
		return
	}
	at := logview.Point{Pos: &record.Pos{Epoch: s.epoch, Partition: p.ID(), Offset: next - 1}}
	if pos, ok := s.queryPos(w, q, "at", room, next); !ok {
		return
	} else if pos != nil {
		at.Pos = pos
	}
	var to *logview.Point
	if pos, ok := s.queryPos(w, q, "diff", room, next); !ok {
		return
	} else if pos != nil {
		if pos.Offset < at.Pos.Offset {
			badRequest(w, "bad_range", "diff must be at or after at")
			return
		}
		to = &logview.Point{Pos: pos}
	}
	end := at.Pos.Offset + 1
	if to != nil {
		end = to.Pos.Offset + 1
	}
	ctx, cancel := s.adminDeadline(r)
	defer cancel()
	starts, err := kadm.NewClient(s.prod).ListStartOffsets(ctx, s.cfg.Topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		s.adminLogError(w, err)
		return
	}
	logStart, _ := starts.Lookup(s.cfg.Topic, p.ID())
	part, start, err := logview.StartingPoint(ctx, s.snaps, p.ID(), s.partitions, logStart.Offset, at, consumer.HistoryWindowFor(s.cfg.HistoryWindow), s.cfg.Logger)
	if errors.Is(err, logview.ErrRetention) {
		badRequest(w, "retention", err.Error())
		return
	} else if err != nil {
		s.adminLogError(w, err)
		return
	}
	if end-start > AdminFoldBudget {
		badRequest(w, "budget_exceeded", fmt.Sprintf("rebuilding this state folds %d records from offset %d; a request may fold %d: pick a position nearer a snapshot, or use roomlog state", end-start, start, AdminFoldBudget))
		return
	}
	fold := &logview.Fold{Part: part, Room: room, Epoch: s.epoch, At: at, To: to}
	if !s.adminRead(ctx, w, p.ID(), start, end, func(kr *kgo.Record) bool { return fold.Feed(kr) == nil }) {
		return
	}
	if to == nil {
		adminJSON(w, fold.State())
		return
	}
	adminJSON(w, fold.Diff())
}

// adminExport writes the slice's records of the room that pass the filters
// in the format of `roomlog export` (header, records, trailer). A read that
// fails once the body has begun leaves the trailer out, so the file reads
// as truncated.
func (s *Server) adminExport(w http.ResponseWriter, r *http.Request) {
	sl, ok := s.adminSliceOf(w, r)
	if !ok {
		return
	}
	sl.filter.Rooms = []string{globQuote(sl.room)}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Content-Disposition", `attachment; filename="roomlog-export.jsonl"`)
	ex, err := logview.NewExporter(w, s.cfg.Topic, s.epoch, int(s.partitions), sl.filter)
	if err != nil {
		return
	}
	ctx, cancel := s.adminDeadline(r)
	defer cancel()
	var werr error
	_, err = consumer.ReadRange(ctx, s.clientOpts(kafkaClientAdmin), s.cfg.Topic, sl.part.ID(), sl.from, sl.to, func(kr *kgo.Record) bool {
		werr = ex.Add(kr)
		return werr == nil
	})
	if err != nil || werr != nil {
		s.cfg.Logger.Warn("console export cut short", "room", sl.room, "err", errors.Join(err, werr))
		return
	}
	_, _ = ex.Close()
}

// globQuote escapes s for path.Match, so a room is matched by its exact name.
func globQuote(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', '\\':
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return string(b)
}
