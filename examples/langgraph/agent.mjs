// A LangGraph.js agent governed by agentgov, with no change to how the
// agent is written: its model calls go to agentgov's model proxy and its
// tools come from agentgov's MCP gateway, both with the agent's token.
//
//   AGENTGOV_URL=http://127.0.0.1:8420 AGENTGOV_TOKEN=agent-secret node agent.mjs "read notes.txt"
//
// With no prompt on the command line it reads one prompt per line from
// stdin and answers each on one line of JSON ({"output": ...} or
// {"error": ...}), in one MCP session, so an approved call can be retried.
import { createInterface } from "node:readline";
import { ChatOpenAI } from "@langchain/openai";
import { MultiServerMCPClient } from "@langchain/mcp-adapters";
import { END, MessagesAnnotation, START, StateGraph } from "@langchain/langgraph";
import { ToolNode } from "@langchain/langgraph/prebuilt";

const url = process.env.AGENTGOV_URL ?? "http://127.0.0.1:8420";
const token = process.env.AGENTGOV_TOKEN;
if (!token) {
  console.error("AGENTGOV_TOKEN is not set: give the agent its agentgov token");
  process.exit(2);
}

// The tools: a filesystem MCP server behind the gateway at /mcp/fs. A
// refused call comes back as an MCP error result, which the tool node
// hands to the model as the tool's answer, reason and all.
const mcp = new MultiServerMCPClient({
  mcpServers: {
    files: {
      transport: "http",
      url: `${url}/mcp/${process.env.AGENTGOV_MCP_SERVER ?? "fs"}`,
      headers: { Authorization: `Bearer ${token}` },
      automaticSSEFallback: false,
    },
  },
  prefixToolNameWithServerName: false,
});
const tools = await mcp.getTools();

// The model proxy speaks the Chat Completions API at /llm/v1; the agent's
// agentgov token is its API key (the provider's key stays with agentgov).
// A refusal is final: retrying a denied call only asks again.
const model = new ChatOpenAI({
  model: process.env.AGENTGOV_MODEL ?? "gpt-4o-mini",
  apiKey: token,
  configuration: { baseURL: `${url}/llm/v1` },
  maxRetries: 0,
}).bindTools(tools);

// The graph: the model answers or calls tools; tool results go back to it.
const graph = new StateGraph(MessagesAnnotation)
  .addNode("model", async (state) => ({ messages: [await model.invoke(state.messages)] }))
  .addNode("tools", new ToolNode(tools))
  .addEdge(START, "model")
  .addConditionalEdges("model", (state) => (state.messages.at(-1).tool_calls?.length ? "tools" : END))
  .addEdge("tools", "model")
  .compile();

const instructions = "You keep the team's notes. Use the file tools. If a tool refuses, say why.";

async function answer(prompt) {
  try {
    const out = await graph.invoke(
      { messages: [{ role: "system", content: instructions }, { role: "user", content: prompt }] },
      { recursionLimit: 10 },
    );
    const last = out.messages.at(-1);
    return { output: typeof last.content === "string" ? last.content : JSON.stringify(last.content) };
  } catch (e) {
    return { error: `${e?.constructor?.name ?? "Error"}: ${e?.message ?? e}` };
  }
}

try {
  if (process.argv.length > 2) {
    const r = await answer(process.argv.slice(2).join(" "));
    console.log(r.output ?? r.error);
    process.exitCode = r.error ? 1 : 0;
  } else {
    for await (const line of createInterface({ input: process.stdin })) {
      if (line.trim()) console.log(JSON.stringify(await answer(line)));
    }
  }
} finally {
  await mcp.close();
}
