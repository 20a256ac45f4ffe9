package budget

import (
	"slices"
	"strings"
)

// index finds the budgets that apply to an identity without touching the
// store. Configs are grouped by their exact scope; the lookup probes one map
// key per distinct scope shape in use (which fields a scope sets, at most 32
// and usually one or two), so its cost does not grow with the number of
// budgets.
type index struct {
	byScope map[Scope][]*compiled
	shapes  []uint8
	all     []*compiled // sorted by id
}

const (
	bitOrg = 1 << iota
	bitTeam
	bitUser
	bitAgent
	bitSession
)

func shapeOf(s Scope) uint8 {
	var m uint8
	if s.Org != "" {
		m |= bitOrg
	}
	if s.Team != "" {
		m |= bitTeam
	}
	if s.User != "" {
		m |= bitUser
	}
	if s.Agent != "" {
		m |= bitAgent
	}
	if s.Session != "" {
		m |= bitSession
	}
	return m
}

func mask(s Scope, m uint8) Scope {
	var out Scope
	if m&bitOrg != 0 {
		out.Org = s.Org
	}
	if m&bitTeam != 0 {
		out.Team = s.Team
	}
	if m&bitUser != 0 {
		out.User = s.User
	}
	if m&bitAgent != 0 {
		out.Agent = s.Agent
	}
	if m&bitSession != 0 {
		out.Session = s.Session
	}
	return out
}

func newIndex(cs []*compiled) *index {
	ix := &index{byScope: map[Scope][]*compiled{}}
	slices.SortFunc(cs, func(a, b *compiled) int { return strings.Compare(a.cfg.ID, b.cfg.ID) })
	ix.all = cs
	for _, c := range cs {
		s := c.cfg.Scope
		if _, ok := ix.byScope[s]; !ok {
			if m := shapeOf(s); !slices.Contains(ix.shapes, m) {
				ix.shapes = append(ix.shapes, m)
			}
		}
		ix.byScope[s] = append(ix.byScope[s], c)
	}
	return ix
}

// applicable returns the budgets covering id, sorted by budget id.
func (ix *index) applicable(id Scope) []*compiled {
	var out []*compiled
	have := shapeOf(id)
	for _, m := range ix.shapes {
		if m&have != m {
			continue // the scope sets a field the identity lacks
		}
		out = append(out, ix.byScope[mask(id, m)]...)
	}
	if len(ix.shapes) > 1 {
		slices.SortFunc(out, func(a, b *compiled) int { return strings.Compare(a.cfg.ID, b.cfg.ID) })
	}
	return out
}

func (ix *index) get(id string) (*compiled, bool) {
	i, ok := slices.BinarySearchFunc(ix.all, id, func(c *compiled, id string) int { return strings.Compare(c.cfg.ID, id) })
	if !ok {
		return nil, false
	}
	return ix.all[i], true
}
