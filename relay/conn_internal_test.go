package relay

import "testing"

// TestWriteMarks: the newest offset per partition, raised never lowered, 0
// for a partition never written to.
func TestWriteMarks(t *testing.T) {
	var w writeMarks
	for _, step := range []struct {
		p         int32
		off, want int64
	}{
		{3, 10, 10},
		{5, 7, 7},
		{3, 12, 12},
		{3, 11, 12}, // an older callback after a newer one
		{0, 1, 1},
	} {
		w.note(step.p, step.off)
		if got := w.get(step.p); got != step.want {
			t.Fatalf("after note(%d, %d): get = %d, want %d", step.p, step.off, got, step.want)
		}
	}
	if got := w.get(9); got != 0 {
		t.Fatalf("unwritten partition: %d", got)
	}
	if got := w.get(5); got != 7 {
		t.Fatalf("partition 5: %d", got)
	}
}
