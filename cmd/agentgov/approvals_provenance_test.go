package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/agentgov/agentgov/approval"
)

func TestApprovalsListSaysWhereValuesCameFrom(t *testing.T) {
	var out bytes.Buffer
	printTickets(&out, []approval.Ticket{
		{ID: "apr_1", Status: approval.Pending, Provenance: map[string][]string{"args.recipient": {"tool:bank/read_file"}, "args.amount": {"tool:bank/read_file", "tool:mail/get_inbox"}}},
		{ID: "apr_2", Status: approval.Pending},
	})
	s := out.String()
	for _, want := range []string{
		"apr_1: args.amount came from tool:bank/read_file, tool:mail/get_inbox, not from the user\n",
		"apr_1: args.recipient came from tool:bank/read_file, not from the user\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "apr_2:") {
		t.Errorf("a ticket without provenance got a line:\n%s", s)
	}
}
