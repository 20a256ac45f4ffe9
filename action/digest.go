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
