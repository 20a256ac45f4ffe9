// The A2A JavaScript SDK's client, talking to agentgov's gateway with an
// agent token: node client.mjs BASE_URL TOKEN. Prints one JSON object with
// what each step saw, for the Go test to check.
import { randomUUID } from 'node:crypto';
import { ClientFactory, ClientFactoryOptions, JsonRpcTransportFactory, DefaultAgentCardResolver } from '@a2a-js/sdk/client';

const [gateway, token] = process.argv.slice(2);
// The SDK resolves the card path against the base URL, so the base ends in a slash.
const base = gateway.endsWith("/") ? gateway : gateway + "/";
const authFetch = (url, init = {}) => {
  const headers = new Headers(init.headers || {});
  headers.set('Authorization', `Bearer ${token}`);
  return fetch(url, { ...init, headers });
};
const factory = new ClientFactory(ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
  transports: [new JsonRpcTransportFactory({ fetchImpl: authFetch })],
  cardResolver: new DefaultAgentCardResolver({ fetchImpl: authFetch }),
}));
const out = {};
const msg = (text) => ({ message: { kind: 'message', messageId: randomUUID(), role: 'user', parts: [{ kind: 'text', text }] } });
const errText = (e) => String(e && (e.message || e));

const card = await new DefaultAgentCardResolver({ fetchImpl: authFetch }).resolve(base);
out.card_url = card.url;
out.card_interfaces = card.additionalInterfaces;
const client = await factory.createFromUrl(base);

const r = await client.sendMessage(msg('echo hello from node'));
out.echo = r.parts ? r.parts.map((p) => p.text).join('') : JSON.stringify(r);

try {
  const leak = await client.sendMessage(msg('leak'));
  out.leak = JSON.stringify(leak);
} catch (e) {
  out.leak_error = errText(e);
}

try {
  await client.sendMessage(msg('please wire 5000 to acme'));
} catch (e) {
  out.approval_error = errText(e);
}

out.stream = [];
try {
  for await (const ev of client.sendMessageStream(msg('task the quarterly report'))) {
    if (ev.kind === 'artifact-update') {
      out.stream.push('artifact:' + ev.artifact.parts.map((p) => p.text).join(''));
    } else if (ev.kind === 'status-update') {
      out.stream.push('status:' + ev.status.state);
    } else {
      out.stream.push(ev.kind);
    }
  }
} catch (e) {
  out.stream.push('error:' + errText(e));
}

out.stream_secret = [];
try {
  for await (const ev of client.sendMessageStream(msg('task ' + 'ghp_' + 'a1B2c3D4e5'.repeat(3) + 'abcdef'))) {
    out.stream_secret.push(ev.kind === 'artifact-update' ? 'artifact:' + ev.artifact.parts.map((p) => p.text).join('') : ev.kind);
  }
} catch (e) {
  out.stream_secret.push('error:' + errText(e));
}
console.log(JSON.stringify(out));
