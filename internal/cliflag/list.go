// Package cliflag holds the flag types roomlog's commands (cmd/roomlog,
// cmd/roomlog-bench) share. A flag value is used only by the goroutine that
// parses the command line; nothing here starts a goroutine.
package cliflag

import "strings"

// List is a flag of comma-separated values that may also be repeated:
// --x a,b --x c is [a b c]. Blank items are dropped.
type List []string

func (l *List) String() string { return strings.Join(*l, ",") }

// Set adds the items of one use of the flag.
func (l *List) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}
