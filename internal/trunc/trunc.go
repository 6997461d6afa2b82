// Package trunc shortens text that is quoted back to a client or written to
// a log: a room name, a kid, a token's complaint. No state: safe for
// concurrent use.
package trunc

import "unicode/utf8"

// String returns s cut to at most n bytes on a rune boundary, with "…"
// marking a cut.
func String(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
