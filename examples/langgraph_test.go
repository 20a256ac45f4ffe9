package examples

import "testing"

// A LangGraph.js graph (a model node and a tool node over the MCP
// adapters' tools), unchanged, pointed at agentgov: an allowed tool, a
// denied tool whose reason the model reads, a write that a person approves
// with the CLI and that then runs, a budget that stops the model, a kill
// switch that stops the agent; all in an audit log that verifies.
func TestLangGraphGovernedEndToEnd(t *testing.T) {
	governedScenario(t, "langgraph", "the tool answered: ")
}
