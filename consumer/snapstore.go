package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roomlog/roomlog/internal/logtopic"
	"github.com/roomlog/roomlog/record"
)

// SnapshotStore keeps partition snapshots in a compacted topic (default
// roomlog.snapshots). Ensure creates it with as many partitions as the
// events topic, and events partition p's snapshots go to its partition
// p mod its partition count, so loading one partition's snapshot reads that
// partition only (a relay following partitions on demand loads them one by
// one). A topic created with one partition (before this layout, or shared
// with other events topics) works the same way, reading all of it. Each
// events partition has two slots, A
// and B, written alternately, so the previous snapshot stays as a fallback
// while the next is written. A snapshot is its chunks (at most ChunkBytes
// each, so the topic's default max.message.bytes suffices) followed by a
// manifest naming the offset covered, the events topic's epoch, the chunk
// count and a SHA-256 of the chunks: a snapshot whose manifest does not match
// its chunks (torn, corrupt) is ignored.
//
// Keys: "<events topic>/<partition>/<slot>/m" for the manifest and
// "<events topic>/<partition>/<slot>/<i>" for chunk i.
type SnapshotStore struct {
	Topic       string
	EventsTopic string
	Epoch       uint64
	ClientOpts  []kgo.Opt
	Logger      *slog.Logger

	mu    sync.Mutex
	known map[int32][2]*Manifest // the slots as last seen or written
	parts int32                  // the snapshots topic's partition count; 0: not known yet
}

// Manifest describes one stored snapshot.
type Manifest struct {
	Version   int    `json:"v"`
	Topic     string `json:"topic"`
	Epoch     string `json:"epoch"`
	Partition int32  `json:"partition"`
	Next      int64  `json:"next"`
	Chunks    int    `json:"chunks"`
	Bytes     int    `json:"bytes"`
	SHA256    string `json:"sha256"`
	WrittenBy string `json:"written_by"`
	WrittenAt int64  `json:"written_at"`
	slot      int
}

// ChunkBytes is the size of a snapshot chunk record.
const ChunkBytes = 512 << 10

var slotNames = [2]string{"A", "B"}

func (st *SnapshotStore) key(p int32, slot int, suffix string) string {
	return st.EventsTopic + "/" + strconv.Itoa(int(p)) + "/" + slotNames[slot] + "/" + suffix
}

func (st *SnapshotStore) epochHex() string { return fmt.Sprintf("%016x", st.Epoch) }

// Ensure creates the snapshots topic (compacted, with partitions
// partitions: the events topic's count) if missing, waits until the brokers
// report it, and learns how many partitions it has. cl is the client that
// writes snapshots: its cached metadata is refreshed by the wait.
func (st *SnapshotStore) Ensure(ctx context.Context, cl *kgo.Client, partitions int32, rf int16) error {
	compact := "compact"
	info, err := logtopic.Ensure(ctx, cl, logtopic.Spec{Topic: st.Topic, Partitions: partitions, ReplicationFactor: rf,
		Configs: map[string]*string{"cleanup.policy": &compact}}, st.Logger)
	if err != nil {
		return fmt.Errorf("snapshots topic: %w", err)
	}
	st.mu.Lock()
	st.parts = info.Partitions
	st.mu.Unlock()
	return nil
}

// partitions returns the snapshots topic's partition count (0: no such
// topic), asking the log the first time.
func (st *SnapshotStore) partitions(ctx context.Context, adm *kadm.Client) (int32, error) {
	st.mu.Lock()
	n := st.parts
	st.mu.Unlock()
	if n > 0 {
		return n, nil
	}
	ends, err := st.ends(ctx, adm)
	if err != nil || len(ends) == 0 {
		return 0, err
	}
	return int32(len(ends)), nil
}

// ends lists the snapshots topic's end offsets by partition (none: no such
// topic), and notes its partition count.
func (st *SnapshotStore) ends(ctx context.Context, adm *kadm.Client) (map[int32]int64, error) {
	listed, err := adm.ListEndOffsets(ctx, st.Topic)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			return nil, nil
		}
		return nil, fmt.Errorf("snapshots topic %q: %w", st.Topic, err)
	}
	out := map[int32]int64{}
	listed.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	if len(out) > 0 {
		st.mu.Lock()
		st.parts = int32(len(out))
		st.mu.Unlock()
	}
	return out, nil
}

// Load reads the snapshots topic and returns, per events partition, the
// newest snapshot that verifies: right topic and epoch, all chunks present,
// checksum and version good. Bad ones are logged and skipped (falling back
// to the other slot, or to no snapshot: the full log).
func (st *SnapshotStore) Load(ctx context.Context, window int) (map[int32]*Partition, error) {
	return st.load(ctx, window, -1)
}

// LoadPartition returns events partition p's newest valid snapshot (nil:
// none), reading only the snapshots topic's partition that holds it.
func (st *SnapshotStore) LoadPartition(ctx context.Context, window int, p int32) (*Partition, error) {
	parts, err := st.load(ctx, window, p)
	if err != nil {
		return nil, err
	}
	return parts[p], nil
}

// load reads the snapshots topic and decodes every events partition's
// snapshot, or (one >= 0) reads the partition that holds events partition
// one's and decodes that one only.
func (st *SnapshotStore) load(ctx context.Context, window int, one int32) (map[int32]*Partition, error) {
	manifests := map[string]*Manifest{}
	chunks := map[string][]byte{}
	prefix := st.EventsTopic + "/"
	err := st.read(ctx, one, func(r *kgo.Record) {
		k := string(r.Key)
		if !strings.HasPrefix(k, prefix) {
			return
		}
		if one >= 0 {
			pn, _, _ := strings.Cut(k[len(prefix):], "/")
			if n, err := strconv.Atoi(pn); err != nil || int32(n) != one {
				return
			}
		}
		if r.Value == nil { // tombstone
			delete(manifests, k)
			delete(chunks, k)
			return
		}
		if strings.HasSuffix(k, "/m") {
			var m Manifest
			if err := json.Unmarshal(r.Value, &m); err != nil {
				st.Logger.Warn("ignoring an unreadable snapshot manifest", "key", k, "offset", r.Offset, "err", err)
				delete(manifests, k)
				return
			}
			manifests[k] = &m
			return
		}
		chunks[k] = r.Value
	})
	if err != nil {
		return nil, err
	}
	out := map[int32]*Partition{}
	known := map[int32][2]*Manifest{}
	for k, m := range manifests {
		parts := strings.Split(strings.TrimPrefix(k, prefix), "/")
		if len(parts) != 3 {
			continue
		}
		slot := 0
		if parts[1] == "B" {
			slot = 1
		}
		m.slot = slot
		pn, _ := strconv.Atoi(parts[0])
		kn := known[int32(pn)]
		kn[slot] = m
		known[int32(pn)] = kn
	}
	// Decode the partitions in parallel: a snapshot can hold a large
	// dedupe window, and a start waits for all of them.
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		sem = make(chan struct{}, runtime.GOMAXPROCS(0))
	)
	for pn, slots := range known {
		cands := []*Manifest{}
		for _, m := range slots {
			if m != nil {
				cands = append(cands, m)
			}
		}
		sort.Slice(cands, func(i, j int) bool { return cands[i].Next > cands[j].Next })
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			for _, m := range cands {
				p, err := st.assemble(pn, m, chunks, window)
				if err != nil {
					st.Logger.Warn("ignoring snapshot", "partition", pn, "slot", slotNames[m.slot], "next", m.Next, "err", err)
					continue
				}
				mu.Lock()
				out[pn] = p
				mu.Unlock()
				return
			}
		}()
	}
	wg.Wait()
	st.mu.Lock()
	if one < 0 || st.known == nil {
		st.known = known
	} else {
		for pn, slots := range known {
			st.known[pn] = slots
		}
	}
	st.mu.Unlock()
	return out, nil
}

func (st *SnapshotStore) assemble(pn int32, m *Manifest, chunks map[string][]byte, window int) (*Partition, error) {
	switch {
	case m.Version != SnapshotVersion && m.Version != 1:
		return nil, fmt.Errorf("%w %d", ErrSnapshotVersion, m.Version)
	case m.Topic != st.EventsTopic || m.Partition != pn:
		return nil, fmt.Errorf("manifest names %s/%d", m.Topic, m.Partition)
	case m.Epoch != st.epochHex():
		return nil, fmt.Errorf("epoch %s is not the topic's current %s (topic recreated)", m.Epoch, st.epochHex())
	case m.Chunks <= 0 || m.Chunks > 1<<16:
		return nil, fmt.Errorf("bad chunk count %d", m.Chunks)
	}
	data := make([]byte, 0, m.Bytes)
	for i := 0; i < m.Chunks; i++ {
		c, ok := chunks[st.key(pn, m.slot, strconv.Itoa(i))]
		if !ok {
			return nil, fmt.Errorf("chunk %d of %d missing", i, m.Chunks)
		}
		data = append(data, c...)
	}
	if Checksum(data) != m.SHA256 {
		return nil, errors.New("checksum mismatch (torn or corrupt snapshot)")
	}
	p, err := DecodeSnapshot(data, window)
	if err != nil {
		return nil, err
	}
	if p.id != pn || p.next != m.Next {
		return nil, fmt.Errorf("body is partition %d at %d, manifest says %d at %d", p.id, p.next, pn, m.Next)
	}
	return p, nil
}

// read reads the snapshots topic once: every partition, or (one >= 0)
// the partition that holds events partition one's snapshots.
func (st *SnapshotStore) read(ctx context.Context, one int32, fn func(*kgo.Record)) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.ClientID("roomlog-snapshots")}, st.ClientOpts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ends, err := st.ends(ctx, kadm.NewClient(cl))
	if err != nil || len(ends) == 0 {
		return err
	}
	for part := range int32(len(ends)) {
		if one >= 0 && part != one%int32(len(ends)) {
			continue
		}
		if ends[part] == 0 {
			continue
		}
		if _, err := ReadRange(ctx, st.ClientOpts, st.Topic, part, 0, ends[part], func(r *kgo.Record) bool {
			fn(r)
			return true
		}); err != nil {
			return err
		}
	}
	return nil
}

// Write stores a snapshot of p in its older slot and then, when the new
// snapshot has fewer chunks than the slot's previous one, deletes the extra
// chunks. It returns the new manifest. prod must place records marked with
// record.ManualPartition where they say (record.NewPartitioner does).
func (st *SnapshotStore) Write(ctx context.Context, prod *kgo.Client, p *Partition, writer string) (*Manifest, error) {
	data, next, err := p.EncodeSnapshot()
	if err != nil {
		return nil, err
	}
	nparts, err := st.partitions(ctx, kadm.NewClient(prod))
	if err != nil {
		return nil, err
	}
	if nparts == 0 {
		return nil, fmt.Errorf("write snapshot of partition %d: no snapshots topic %q (Ensure creates it)", p.id, st.Topic)
	}
	home := p.id % nparts
	st.mu.Lock()
	if st.known == nil {
		st.known = map[int32][2]*Manifest{}
	}
	slots := st.known[p.id]
	slot := 0
	switch {
	case slots[0] == nil:
	case slots[1] == nil:
		slot = 1
	case slots[1].Next < slots[0].Next:
		slot = 1
	}
	old := slots[slot]
	st.mu.Unlock()
	if old != nil && old.Next >= next {
		return old, nil // nothing new since
	}

	m := &Manifest{Version: SnapshotVersion, Topic: st.EventsTopic, Epoch: st.epochHex(), Partition: p.id, Next: next,
		Bytes: len(data), SHA256: Checksum(data), WrittenBy: writer, WrittenAt: time.Now().UnixMilli(), slot: slot}
	var recs []*kgo.Record
	for off := 0; off < len(data); off += ChunkBytes {
		end := min(off+ChunkBytes, len(data))
		recs = append(recs, &kgo.Record{Topic: st.Topic, Key: []byte(st.key(p.id, slot, strconv.Itoa(m.Chunks))), Value: data[off:end]})
		m.Chunks++
	}
	mb, _ := json.Marshal(m)
	recs = append(recs, &kgo.Record{Topic: st.Topic, Key: []byte(st.key(p.id, slot, "m")), Value: mb})
	if old != nil {
		for i := m.Chunks; i < old.Chunks; i++ {
			recs = append(recs, &kgo.Record{Topic: st.Topic, Key: []byte(st.key(p.id, slot, strconv.Itoa(i)))})
		}
	}
	for _, r := range recs {
		record.ManualPartition(r, home)
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return nil, fmt.Errorf("write snapshot of partition %d at %d: %w", p.id, next, err)
	}
	st.mu.Lock()
	slots = st.known[p.id]
	slots[slot] = m
	st.known[p.id] = slots
	st.mu.Unlock()
	return m, nil
}

// Owner is the relay that writes partition p's snapshots: the relays with a
// live lease in the partition's folded state, sorted by name, take the
// partitions in turn. Every relay computes the same answer from the same
// state.
func Owner(p *Partition) string {
	p.mu.RLock()
	var names []string
	for name, l := range p.relays {
		if !l.Expired {
			names = append(names, name)
		}
	}
	p.mu.RUnlock()
	if len(names) == 0 {
		return ""
	}
	sort.Strings(names)
	return names[int(p.id)%len(names)]
}
