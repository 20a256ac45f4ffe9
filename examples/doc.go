// Package examples holds no Go code of its own: its tests run the examples
// of examples/ (real agent frameworks governed by agentgov: the OpenAI
// Agents SDK, LangGraph.js) against a real agentgov server, so that `./test`
// keeps them working.
package examples
