package logview

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/record"
)

// The export format: JSON lines. A header line, one line per record (key,
// value, headers, timestamp, and where it was), and a trailer with the count,
// so a truncated file is detected. `roomlog export` writes it, the console's
// export endpoint too, and `roomlog redrive` reads it.

// ExportFormat names the format in the header.
const ExportFormat = "roomlog-export"

// ExportHeader is an export's first line.
type ExportHeader struct {
	Format     string    `json:"format"`
	Version    int       `json:"version"`
	Topic      string    `json:"topic"`
	Epoch      string    `json:"epoch"`
	Partitions int       `json:"partitions"`
	ExportedAt time.Time `json:"exported_at"`
}

// ExportRecord is one record of an export.
type ExportRecord struct {
	Partition int32       `json:"p"`
	Offset    int64       `json:"o"`
	Timestamp int64       `json:"ts"` // Unix milliseconds
	Key       string      `json:"k"`
	Value     []byte      `json:"v,omitempty"` // base64
	Headers   [][2]string `json:"h,omitempty"`
}

// ExportTrailer is an export's last line.
type ExportTrailer struct {
	End     bool  `json:"end"`
	Records int64 `json:"records"`
}

// Exporter writes an export: the header at once, then Add per record, then
// Close writes the trailer. Records that do not decode are exported too
// (the file is the log as it is) unless the filter looks into records.
type Exporter struct {
	enc    *json.Encoder
	filter Filter
	n      int64
}

// NewExporter writes the header of an export of topic to w.
func NewExporter(w io.Writer, topic string, epoch uint64, partitions int, f Filter) (*Exporter, error) {
	e := &Exporter{enc: json.NewEncoder(w), filter: f}
	h := ExportHeader{Format: ExportFormat, Version: 1, Topic: topic, Epoch: fmt.Sprintf("%016x", epoch), Partitions: partitions, ExportedAt: time.Now().UTC()}
	return e, e.enc.Encode(h)
}

// Add writes r if it passes the filter.
func (e *Exporter) Add(r *kgo.Record) error {
	if ev, err := record.Decode(r); err == nil && !e.filter.Match(&ev, r) {
		return nil
	} else if err != nil && e.filter.byContent() {
		return nil // cannot tell whether it matches
	}
	if !utf8.Valid(r.Key) {
		return fmt.Errorf("record at partition %d offset %d has a key that is not UTF-8; it cannot be a room", r.Partition, r.Offset)
	}
	er := ExportRecord{Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UnixMilli(), Key: string(r.Key), Value: r.Value}
	for _, h := range r.Headers {
		er.Headers = append(er.Headers, [2]string{h.Key, string(h.Value)})
	}
	e.n++
	return e.enc.Encode(&er)
}

// Close writes the trailer and returns how many records were written.
func (e *Exporter) Close() (int64, error) {
	return e.n, e.enc.Encode(ExportTrailer{End: true, Records: e.n})
}
