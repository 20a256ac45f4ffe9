package detect

import (
	"fmt"
	"slices"
	"strings"

	"github.com/agentgov/agentgov/action"
)

// Shadowing finds tool names on one server that are identical to, or within
// Levenshtein distance 2 of, a tool name on a different server (servers maps
// a server name to its tool names). A model choosing between "send_email"
// and "send_emall" can be steered to the wrong server; an identical name on
// two servers is the strongest case. Names are compared case-insensitively;
// duplicates within one server are not shadowing. Each finding names both
// tools and both servers and has no position.
func Shadowing(servers map[string][]string) []Finding {
	type tool struct{ server, name, key string }
	names := make([]string, 0, len(servers))
	for s := range servers {
		names = append(names, s)
	}
	slices.Sort(names)
	var tools []tool
	for _, s := range names {
		seen := map[string]bool{}
		for _, n := range servers[s] {
			if seen[n] {
				continue
			}
			seen[n] = true
			tools = append(tools, tool{server: s, name: n, key: strings.ToLower(n)})
		}
	}
	var out []Finding
	for i := range tools {
		a := tools[i]
		for _, b := range tools[i+1:] {
			if a.server == b.server {
				continue
			}
			d, ok := withinDistance(a.key, b.key, 2)
			if !ok {
				continue
			}
			f := Finding{Kind: KindShadowing}
			switch d {
			case 0:
				f.Rule, f.Severity = "tool_name_collision", action.SeverityHigh
				f.Detail = fmt.Sprintf("tool %q on server %q has the same name as tool %q on server %q", a.name, a.server, b.name, b.server)
			default:
				f.Rule, f.Severity = "tool_name_lookalike", action.SeverityMedium
				if d == 2 {
					f.Severity = action.SeverityLow
				}
				f.Detail = fmt.Sprintf("tool %q on server %q is within edit distance %d of tool %q on server %q", a.name, a.server, d, b.name, b.server)
			}
			out = append(out, f)
		}
	}
	return out
}

// withinDistance computes the Levenshtein distance between a and b (over
// runes) if it is at most limit. It gives up as soon as the lengths or a whole
// row of the table show the distance must exceed limit, so comparing long,
// different names costs little.
func withinDistance(a, b string, limit int) (int, bool) {
	ra, rb := []rune(a), []rune(b)
	if abs(len(ra)-len(rb)) > limit {
		return 0, false
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		best := cur[0]
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			best = min(best, cur[j])
		}
		if best > limit {
			return 0, false
		}
		prev, cur = cur, prev
	}
	d := prev[len(rb)]
	return d, d <= limit
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
