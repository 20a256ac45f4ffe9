package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/agentgov/agentgov/action"
)

// Bounds on how a call's arguments are shown to the person asked to
// approve it.
const (
	// elicitValueBytes is how much of one string argument is quoted; the
	// rest is counted, not shown.
	elicitValueBytes = 200
	// elicitKeyBytes is how much of one argument name is quoted.
	elicitKeyBytes = 64
	// elicitMaxArgs is how many arguments (nested ones counted one by one)
	// a call may have to be put to a person at all: a list too long to
	// read hides as well as a cut one, so such a call keeps its ticket for
	// an approver, who sees the whole action.
	elicitMaxArgs = 100
)

// mayElicit says whether the person at the client can be asked to approve
// d: the session's client is a person's own (never an HTTP session, whose
// client is the agent), the client can answer elicitation, the Decider can
// approve tickets, and there is a ticket to approve.
func (s *session) mayElicit(d action.Decision) bool {
	if !s.elicitApprovals {
		return false
	}
	s.mu.Lock()
	elicit := s.elicit
	s.mu.Unlock()
	_, ok := s.g.cfg.Decider.(Approver)
	return elicit && ok && d.Approval != nil && d.Approval.ID != ""
}

// approveByElicitation asks the person at the client whether to approve a
// call that needs approval; on yes it approves the ticket in the name of
// Config.ElicitApprover and decides again under it.
func (s *session) approveByElicitation(a action.Action, d action.Decision) action.Decision {
	if !s.mayElicit(d) {
		return d
	}
	args, ok := describeArgs(a.Args)
	if !ok {
		s.g.log.Info("approval not asked through elicitation: too many arguments to show", "ticket", d.Approval.ID)
		return d
	}
	ap := s.g.cfg.Decider.(Approver)
	var msg strings.Builder
	fmt.Fprintf(&msg, "agentgov: approve the call to %s/%s?", a.Tool.Server, a.Tool.Name)
	if len(d.Reasons) > 0 {
		msg.WriteString("\nWhy it needs approval: " + strings.Join(d.Reasons, "; "))
	}
	msg.WriteString("\n" + args)
	resp, err := s.callOn(s.ctx, s.client, s.clientPending, methodElicit, map[string]any{
		"message": msg.String(),
		"requestedSchema": map[string]any{
			"type":       "object",
			"properties": map[string]any{"approve": map[string]any{"type": "boolean", "title": "Approve this call"}},
			"required":   []string{"approve"},
		},
	})
	if err != nil || resp.Error != nil {
		return d
	}
	var r struct {
		Action  string `json:"action"`
		Content struct {
			Approve bool `json:"approve"`
		} `json:"content"`
	}
	if json.Unmarshal(resp.Result, &r) != nil || r.Action != "accept" || !r.Content.Approve {
		return d
	}
	// The approval is recorded before it takes effect (see Approver); if
	// it cannot be, the call keeps waiting for its ticket.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), auditTimeout)
	err = ap.Approve(ctx, d.Approval.ID, s.g.cfg.ElicitApprover, "approved via MCP elicitation on stdio, session "+s.id)
	cancel()
	if err != nil {
		s.g.log.Warn("approval through elicitation failed", "ticket", d.Approval.ID, "err", err)
		return d
	}
	a.ApprovalID = d.Approval.ID
	d2, err := s.g.cfg.Decider.Decide(s.ctx, a)
	if err != nil {
		return denial(fmt.Sprintf("gateway: the decision failed, so the call is denied: %v", err))
	}
	return d2
}

// describeArgs lists every argument of a call for a person to read, one
// to a line, nested ones by their path, in key order. Each value is
// summarised on its own (a long string shows its start and its length),
// so that no amount of padding in one argument pushes another out of
// sight; strings are quoted with every control, format and invisible
// character escaped, so that none can fake a line or hide a character.
// ok is false when there are more arguments than a person can be expected
// to read.
func describeArgs(args map[string]any) (string, bool) {
	var lines []string
	var walk func(path string, v any) bool
	walk = func(path string, v any) bool {
		switch x := v.(type) {
		case map[string]any:
			if len(x) == 0 {
				lines = append(lines, path+": {}")
			}
			for _, k := range slices.Sorted(maps.Keys(x)) {
				p := argName(k)
				if path != "" {
					p = path + "." + p
				}
				if !walk(p, x[k]) {
					return false
				}
			}
		case []any:
			if len(x) == 0 {
				lines = append(lines, path+": []")
			}
			for i, e := range x {
				if !walk(path+"["+strconv.Itoa(i)+"]", e) {
					return false
				}
			}
		default:
			lines = append(lines, path+": "+argValue(x))
		}
		return len(lines) <= elicitMaxArgs
	}
	if !walk("", args) {
		return "", false
	}
	if len(lines) == 0 {
		return "Arguments: none", true
	}
	return fmt.Sprintf("Arguments (%d):\n  %s", len(lines), strings.Join(lines, "\n  ")), true
}

// argName is an argument's name as shown: bare when it is plain, quoted
// otherwise, and cut when long.
func argName(k string) string {
	plain := k != ""
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			plain = false
			break
		}
	}
	if plain && len(k) <= elicitKeyBytes {
		return k
	}
	return quoteCut(k, elicitKeyBytes)
}

func argValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return quoteCut(x, elicitValueBytes)
	case bool:
		return strconv.FormatBool(x)
	case json.Number:
		return x.String()
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return fmt.Sprint(x)
	}
}

// quoteCut quotes the first n bytes of s (whole characters), naming the
// length of what is left out.
func quoteCut(s string, n int) string {
	if len(s) <= n {
		return strconv.QuoteToGraphic(s)
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes in all)", strconv.QuoteToGraphic(s[:cut]), len(s))
}
