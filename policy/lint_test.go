package policy

import (
	"strings"
	"testing"
)

func TestPrefixComparisonOfAPathWarns(t *testing.T) {
	s := mustSet(t, `
version: agentgov/v1
name: w
default: allow
rules:
  - id: by-name
    when: 'args.path.startsWith("/srv/")'
    effect: deny
  - id: by-prefix
    match: {tools: [t]}
    when: >-
      args.input.name.matches("^/etc/")
    effect: deny
  - id: cleaned
    when: 'clean_path(args.path).startsWith("/srv/")'
    effect: deny
  - id: not-a-path
    when: 'args.url.startsWith("https://")'
    effect: deny
`)
	w := s.Warnings()
	if len(w) != 2 {
		t.Fatalf("warnings %v, want 2", w)
	}
	if w[0].Error() != "doca.yaml:7: rule by-name: when: args.path is compared by prefix without clean_path, so /x/../ and // in it walk around the rule; compare clean_path(args.path) instead" {
		t.Errorf("warning 0: %v", w[0])
	}
	if !strings.HasPrefix(w[1].Error(), "doca.yaml:12: rule by-prefix: when: args.input.name is compared by prefix") {
		t.Errorf("warning 1: %v", w[1])
	}
}
