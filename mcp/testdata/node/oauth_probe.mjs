// The TypeScript SDK's OAuth client against a protected MCP endpoint: it
// connects without a token, and the SDK discovers the endpoint's
// protected-resource metadata (RFC 9728) from the 401's WWW-Authenticate,
// then the authorization server's metadata, and sends the user to the
// authorization endpoint. Prints {"authURL", "error", "discovery"} as JSON.
//
// usage: node oauth_probe.mjs URL
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url] = process.argv.slice(2);
const redirect = "http://127.0.0.1:9/callback";
let authURL = null;
let discovery = null;
const provider = {
  get redirectUrl() { return redirect; },
  get clientMetadata() { return { redirect_uris: [redirect], client_name: "ts-oauth-probe" }; },
  clientInformation() { return { client_id: "probe-client" }; },
  tokens() { return undefined; },
  saveTokens() {},
  redirectToAuthorization(u) { authURL = u.toString(); },
  saveCodeVerifier() {},
  codeVerifier() { return "unused"; },
  saveDiscoveryState(s) { discovery = s; },
};
const client = new Client({ name: "ts-oauth-probe", version: "1.0.0" });
let error = null;
try {
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { authProvider: provider }));
} catch (e) {
  error = String(e);
}
console.log(JSON.stringify({ authURL, error, discovery }));
