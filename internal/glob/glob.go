// Package glob matches the patterns of roomlog's settings: room patterns in
// tokens and allowed origins. '*' matches any run of bytes (including none,
// and '/'), '?' any one byte. It has no state: safe for concurrent use.
package glob

// Match reports whether s matches pattern. Iterative, linear in
// len(s)×len(pattern) at worst.
func Match(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
