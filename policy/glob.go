package policy

import "strings"

// glob matches s against a pattern where * matches any run of bytes
// (including none) and ? matches exactly one byte. It never allocates and
// never backtracks more than once per star, so a hostile pattern costs
// O(len(pattern)·len(s)) at worst.
func glob(pattern, s string) bool {
	px, sx := 0, 0
	starP, starS := -1, 0
	for sx < len(s) {
		if px < len(pattern) {
			switch c := pattern[px]; c {
			case '*':
				starP, starS = px, sx
				px++
				continue
			case '?':
				px++
				sx++
				continue
			default:
				if c == s[sx] {
					px++
					sx++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starS++
		px, sx = starP+1, starS
	}
	for px < len(pattern) && pattern[px] == '*' {
		px++
	}
	return px == len(pattern)
}

func isGlob(pattern string) bool { return strings.ContainsAny(pattern, "*?") }

// toolPattern is a compiled `tools` entry: "name" matches the tool name on
// any server; "server/name" matches both parts, each a glob.
type toolPattern struct {
	server    string
	name      string
	hasServer bool
}

func parseToolPattern(s string) toolPattern {
	if srv, name, ok := strings.Cut(s, "/"); ok {
		return toolPattern{server: srv, name: name, hasServer: true}
	}
	return toolPattern{name: s}
}

func (t toolPattern) matches(server, name string) bool {
	if t.hasServer && !glob(t.server, server) {
		return false
	}
	return glob(t.name, name)
}

func (t toolPattern) exact() bool {
	return !isGlob(t.name) && (!t.hasServer || !isGlob(t.server))
}

func anyGlob(patterns []string, s string) bool {
	for _, p := range patterns {
		if glob(p, s) {
			return true
		}
	}
	return false
}

// Glob reports whether s matches pattern, as the globs of policy documents
// do: * any run of bytes, ? exactly one.
func Glob(pattern, s string) bool { return glob(pattern, s) }
