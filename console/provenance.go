package console

import (
	"slices"
	"strings"

	"github.com/agentgov/agentgov/provenance"
)

// provView is where one value of an action came from, laid out for a
// person: which argument, each source in words, and whether any of them is
// untrusted, said in text (not by colour alone).
type provView struct {
	// Path is the value's place in the action without the "args."
	// prefix: "recipient", "payment.account", or "content".
	Path      string
	Sources   []sourceView
	Untrusted bool
	// Summary is the sentence a person reads: "recipient came from the
	// result of tool read_file, not from the user".
	Summary string
}

type sourceView struct {
	Label     string // "the result of tool read_file", "the user"
	Untrusted bool
}

func describeSource(src string) sourceView {
	switch {
	case src == provenance.User:
		return sourceView{Label: "the user"}
	case strings.HasPrefix(src, provenance.ToolPrefix):
		return sourceView{Label: "the result of tool " + strings.TrimPrefix(src, provenance.ToolPrefix), Untrusted: true}
	case strings.HasPrefix(src, provenance.AgentPrefix):
		return sourceView{Label: "a message from agent " + strings.TrimPrefix(src, provenance.AgentPrefix), Untrusted: true}
	}
	return sourceView{Label: src, Untrusted: true}
}

// viewProvenance lays a decision's provenance out, sorted by path.
func viewProvenance(p map[string][]string) []provView {
	out := make([]provView, 0, len(p))
	for path, srcs := range p {
		v := provView{Path: strings.TrimPrefix(path, "args.")}
		fromUser := false
		var labels []string
		for _, s := range srcs {
			sv := describeSource(s)
			v.Sources = append(v.Sources, sv)
			v.Untrusted = v.Untrusted || sv.Untrusted
			if s == provenance.User {
				fromUser = true
			} else {
				labels = append(labels, sv.Label)
			}
		}
		switch {
		case len(labels) == 0:
			v.Summary = v.Path + " came from the user"
		case fromUser:
			v.Summary = v.Path + " came from the user and also from " + andList(labels)
		default:
			v.Summary = v.Path + " came from " + andList(labels) + ", not from the user"
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b provView) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// provenanceOf returns the provenance of argument arg (and of the values
// inside it), and the rest.
func provenanceOf(arg string, all []provView) (mine, rest []provView) {
	for _, p := range all {
		if p.Path == arg || strings.HasPrefix(p.Path, arg+".") || strings.HasPrefix(p.Path, arg+"[") {
			mine = append(mine, p)
		} else {
			rest = append(rest, p)
		}
	}
	return mine, rest
}

func andList(s []string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}
