// A TypeScript-SDK MCP client for the gateway's tests: connects over stdio
// (launching COMMAND) or streamable HTTP (to URL), lists the tools, calls
// one, and prints {"tools": [...], "result": {...}} as JSON.
//
// usage: node client.mjs stdio|http COMMAND|URL TOOL ARGS_JSON [BEARER_TOKEN]
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [mode, target, tool, argsJSON, token] = process.argv.slice(2);
const transport =
  mode === "http"
    ? new StreamableHTTPClientTransport(new URL(target), {
        requestInit: { headers: token ? { Authorization: `Bearer ${token}` } : {} },
      })
    : new StdioClientTransport({ command: target, args: [], env: { ...process.env }, stderr: "inherit" });
const client = new Client({ name: "ts-test-client", version: "1.0.0" });
await client.connect(transport);
const tools = await client.listTools();
const result = await client.callTool({ name: tool, arguments: JSON.parse(argsJSON) });
console.log(JSON.stringify({ tools: tools.tools.map((t) => t.name), result }));
await client.close();
