package console

import (
	"reflect"
	"testing"
)

// What a person reads about a value's sources, for each kind of source.
func TestProvenanceIsSaidInWords(t *testing.T) {
	got := viewProvenance(map[string][]string{
		"args.recipient":       {"tool:read_file"},
		"args.to":              {"user", "tool:mail/search"},
		"args.payment.account": {"agent:planner-7", "tool:read_file"},
		"args.note":            {"user"},
	})
	want := map[string]struct {
		summary   string
		untrusted bool
	}{
		"note":            {"note came from the user", false},
		"payment.account": {"payment.account came from a message from agent planner-7 and the result of tool read_file, not from the user", true},
		"recipient":       {"recipient came from the result of tool read_file, not from the user", true},
		"to":              {"to came from the user and also from the result of tool mail/search", true},
	}
	if len(got) != len(want) {
		t.Fatalf("%d views, want %d", len(got), len(want))
	}
	for _, v := range got {
		w := want[v.Path]
		if v.Summary != w.summary || v.Untrusted != w.untrusted {
			t.Errorf("%s: %q untrusted=%v, want %q untrusted=%v", v.Path, v.Summary, v.Untrusted, w.summary, w.untrusted)
		}
	}
	// A nested value belongs to its argument; the rest stays apart.
	mine, rest := provenanceOf("payment", got)
	if len(mine) != 1 || mine[0].Path != "payment.account" || len(rest) != 3 {
		t.Fatalf("provenanceOf(payment) = %v, rest %v", mine, rest)
	}
	if p, _ := provenanceOf("pay", got); !reflect.DeepEqual(p, []provView(nil)) {
		t.Fatalf("an argument took the provenance of another whose name it begins: %v", p)
	}
}
