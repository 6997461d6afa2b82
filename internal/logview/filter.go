package logview

import (
	"path"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/record"
)

// Filter selects records: every non-empty field must match.
type Filter struct {
	Rooms  []string // glob patterns (path.Match)
	Events []string // publishes of these events only
	Types  []string // record types
	From   string   // connection id of the sender
	User   string
	Since  time.Time // at or after
	Until  time.Time // before
}

// Match reports whether the decoded record ev, read as r, passes f.
func (f *Filter) Match(ev *record.Event, r *kgo.Record) bool {
	switch {
	case len(f.Rooms) > 0 && !slices.ContainsFunc(f.Rooms, func(p string) bool { ok, _ := path.Match(p, ev.Room); return ok }):
	case len(f.Events) > 0 && (ev.Type != record.TypePublish || !slices.Contains(f.Events, ev.Event)):
	case len(f.Types) > 0 && !slices.Contains(f.Types, string(ev.Type)):
	case f.From != "" && ev.From != f.From:
	case f.User != "" && ev.User != f.User:
	case !f.Since.IsZero() && r.Timestamp.Before(f.Since):
	case !f.Until.IsZero() && !r.Timestamp.Before(f.Until):
	default:
		return true
	}
	return false
}

// byContent reports whether f looks into records (not only at their time):
// a record that does not decode cannot be said to match it.
func (f *Filter) byContent() bool {
	return len(f.Rooms) > 0 || len(f.Events) > 0 || len(f.Types) > 0 || f.From != "" || f.User != ""
}

// Types are the record types a Filter may name.
var Types = []string{"publish", "join", "leave", "set", "del", "incr", "cas", "lease", "expire", "revoke", "disconnect", "remove"}
