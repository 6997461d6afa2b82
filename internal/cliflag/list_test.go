package cliflag

import (
	"flag"
	"io"
	"slices"
	"testing"
)

func TestList(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want []string
	}{
		{"none", nil, nil},
		{"comma list", []string{"--x", "a,b"}, []string{"a", "b"}},
		{"repeated", []string{"--x", "a", "--x", " b , ,c"}, []string{"a", "b", "c"}},
		{"blank", []string{"--x", ""}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			var l List
			fs.Var(&l, "x", "")
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			if got := []string(l); !slices.Equal(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}
