package relay

import (
	"fmt"
	"maps"
	"testing"
)

// TestJoinedRooms checks the slice-then-map room set against a plain map
// through sequences that cross smallRooms both ways.
func TestJoinedRooms(t *testing.T) {
	type op struct {
		set  bool // else remove
		room int
	}
	seq := func(ops ...op) []op { return ops }
	var fill, churn []op
	for i := 0; i < 20; i++ {
		fill = append(fill, op{true, i})
	}
	for i := 0; i < 60; i++ {
		churn = append(churn, op{i%3 != 2, (i * 7) % 13})
	}
	for _, tc := range []struct {
		name string
		ops  []op
	}{
		{"empty", nil},
		{"one", seq(op{true, 1})},
		{"set twice", seq(op{true, 1}, op{true, 1})},
		{"remove missing", seq(op{true, 1}, op{false, 2})},
		{"remove middle", seq(op{true, 1}, op{true, 2}, op{true, 3}, op{false, 2})},
		{"fill past the slice", fill},
		{"fill then empty", append(append([]op{}, fill...), func() (o []op) {
			for i := 19; i >= 0; i-- {
				o = append(o, op{false, i})
			}
			return o
		}()...)},
		{"churn", churn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r joinedRooms
			want := map[string]*joined{}
			for i, o := range tc.ops {
				name := fmt.Sprintf("room-%d", o.room)
				if o.set {
					j := &joined{id: []byte(fmt.Sprint(i))}
					r.set(name, j)
					want[name] = j
					continue
				}
				_, had := want[name]
				delete(want, name)
				if got := r.remove(name); got != had {
					t.Fatalf("op %d: remove(%s) = %v, want %v", i, name, got, had)
				}
			}
			if r.len() != len(want) {
				t.Fatalf("len %d, want %d", r.len(), len(want))
			}
			got := map[string]*joined{}
			r.each(func(name string, j *joined) {
				if _, dup := got[name]; dup {
					t.Fatalf("each gave %s twice", name)
				}
				got[name] = j
			})
			if !maps.Equal(got, want) {
				t.Fatalf("each gave %v, want %v", got, want)
			}
			for i := 0; i < 25; i++ {
				name := fmt.Sprintf("room-%d", i)
				if r.get(name) != want[name] {
					t.Fatalf("get(%s) = %v, want %v", name, r.get(name), want[name])
				}
			}
		})
	}
}
