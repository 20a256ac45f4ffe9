package govern

import "github.com/agentgov/agentgov/trust"

// QuarantinedCall tells the trust keeper that agent called tool of server
// while the MCP gateway keeps it quarantined: the gateway refuses such a
// call itself, before any decision, so this is the only way it reaches
// the agent's score (DESIGN §9 counts quarantined-tool use against it).
// The gateway records the refusal (kind mcp.call) first.
func (e *Engine) QuarantinedCall(agent, server, tool string) {
	if e.trust == nil || agent == "" {
		return
	}
	e.trust.Observe(trust.Signal{Agent: agent, Kind: trust.KindQuarantinedTool, Detail: "called quarantined tool " + server + "/" + tool})
}
