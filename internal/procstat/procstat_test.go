package procstat

import (
	"os"
	"testing"
)

func TestParseStat(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		want     float64
		err      bool
	}{
		{"plain", "42 (roomlog) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 100 0 0", 3, false},
		{"name with spaces and parentheses", "42 (a) b) (c) R 1 42 42 0 -1 0 0 0 0 0 7 3 0 0", 0.1, false},
		{"no name", "42 roomlog S 1", 0, true},
		{"too few fields", "42 (roomlog) S 1 2 3", 0, true},
		{"not a number", "42 (roomlog) S 1 42 42 0 -1 0 0 0 0 0 x 3 0 0", 0, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat([]byte(tt.in))
			if (err != nil) != tt.err || got != tt.want {
				t.Fatalf("parseStat = %v, %v; want %v, error %v", got, err, tt.want, tt.err)
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	st, err := parseStatus([]byte("Name:\troomlog\nVmRSS:\t  2048 kB\nThreads:\t9\n"))
	if err != nil || st.RSS != 2048*1024 || st.Threads != 9 {
		t.Fatalf("parseStatus = %+v, %v", st, err)
	}
	for _, bad := range []string{"Name:\troomlog\n", "VmRSS:\tlots kB\n"} {
		if _, err := parseStatus([]byte(bad)); err == nil {
			t.Fatalf("parseStatus(%q): no error", bad)
		}
	}
}

// TestSelf reads this test process.
func TestSelf(t *testing.T) {
	if _, err := CPUSeconds(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	st, err := ReadStatus(os.Getpid())
	if err != nil || st.RSS <= 0 || st.Threads < 1 {
		t.Fatalf("ReadStatus(self) = %+v, %v", st, err)
	}
	if _, err := CPUSeconds(-1); err == nil {
		t.Fatal("CPUSeconds(-1): no error")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("42 (roomlog) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0"))
	f.Add([]byte("VmRSS:\t  2048 kB\nThreads:\t9\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if s, err := parseStat(b); err == nil && s < 0 {
			t.Fatalf("negative CPU time %v", s)
		}
		_, _ = parseStatus(b)
	})
}
