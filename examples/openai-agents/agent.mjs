// An OpenAI Agents SDK agent governed by agentgov, with no change to how the
// agent is written: its model calls go to agentgov's model proxy and its
// tools come from agentgov's MCP gateway, both with the agent's token.
//
//   AGENTGOV_URL=http://127.0.0.1:8420 AGENTGOV_TOKEN=agent-secret node agent.mjs "read notes.txt"
//
// With no prompt on the command line it reads one prompt per line from
// stdin and answers each on one line of JSON ({"output": ...} or
// {"error": ...}), in one MCP session, so an approved call can be retried.
import OpenAI from "openai";
import { Agent, MCPServerStreamableHttp, run, setDefaultOpenAIClient, setOpenAIAPI, setTracingDisabled } from "@openai/agents";
import { createInterface } from "node:readline";

const url = process.env.AGENTGOV_URL ?? "http://127.0.0.1:8420";
const token = process.env.AGENTGOV_TOKEN;
if (!token) {
  console.error("AGENTGOV_TOKEN is not set: give the agent its agentgov token");
  process.exit(2);
}

// The model proxy speaks the Chat Completions API at /llm/v1; the agent's
// agentgov token is its API key (the provider's key stays with agentgov).
setDefaultOpenAIClient(new OpenAI({ baseURL: `${url}/llm/v1`, apiKey: token }));
setOpenAIAPI("chat_completions");
setTracingDisabled(true);

// The tools: a filesystem MCP server behind the gateway at /mcp/fs.
const files = new MCPServerStreamableHttp({
  url: `${url}/mcp/${process.env.AGENTGOV_MCP_SERVER ?? "fs"}`,
  name: "files",
  requestInit: { headers: { Authorization: `Bearer ${token}` } },
});

const agent = new Agent({
  name: "clerk",
  instructions: "You keep the team's notes. Use the file tools. If a tool refuses, say why.",
  model: process.env.AGENTGOV_MODEL ?? "gpt-4o-mini",
  mcpServers: [files],
});

async function answer(prompt) {
  try {
    const result = await run(agent, prompt);
    return { output: result.finalOutput };
  } catch (e) {
    return { error: `${e?.constructor?.name ?? "Error"}: ${e?.message ?? e}` };
  }
}

await files.connect();
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
  await files.close();
}
