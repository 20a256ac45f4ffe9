package action

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/agentgov/agentgov/jcs"
)

// ArgsDigest identifies a call's arguments: "sha256:" and the hex SHA-256 of
// their canonical JSON (RFC 8785), returned with that canonical text. No
// arguments and empty arguments are the same. Audit entries, approval
// tickets and MCP call records all bind arguments with it, so the same
// arguments carry the same digest everywhere.
func ArgsDigest(args map[string]any) (digest string, canonical []byte, err error) {
	if args == nil {
		args = map[string]any{}
	}
	canonical, err = jcs.Marshal(args)
	if err != nil {
		return "", nil, err
	}
	sum := sha256.Sum256(canonical)
	return "sha256:" + hex.EncodeToString(sum[:]), canonical, nil
}

// Digest identifies an action as decided: "sha256:" and the hex SHA-256 of
// the canonical JSON (RFC 8785) of every field a policy can read — agent,
// principal, session, point, tool with its annotations, target, arguments,
// resource, destination, model, content and estimate. The approval id is
// left out: it names the ticket, not the action. The point is written out
// (pre_tool_call when absent) and an empty map counts as none, so that two
// spellings of one action have one digest. An approval ticket is bound to
// this digest: change any of these fields and it no longer matches.
func Digest(a *Action) (string, error) {
	c := *a
	c.ApprovalID = ""
	c.Point = a.PointOrDefault()
	if len(c.Args) == 0 {
		c.Args = nil
	}
	if len(c.Agent.Labels) == 0 {
		c.Agent.Labels = nil
	}
	// The credential says how the agent proved itself, not what it asks:
	// an approved call retried with a fresh token is the same call.
	c.Agent.Credential = nil
	if len(c.Target.Labels) == 0 {
		c.Target.Labels = nil
	}
	if len(c.Tool.Annotations) == 0 {
		c.Tool.Annotations = nil
	}
	canonical, err := jcs.Marshal(c)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(canonical)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}
