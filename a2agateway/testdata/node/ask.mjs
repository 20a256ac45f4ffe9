// The A2A JavaScript SDK's client sending one message through agentgov's
// gateway: node ask.mjs BASE_URL TOKEN SESSION TEXT. SESSION, when not
// empty, goes in the X-Agentgov-Session header. Prints the reply (or the
// error) as one JSON object.
import { randomUUID } from 'node:crypto';
import { ClientFactory, ClientFactoryOptions, JsonRpcTransportFactory, DefaultAgentCardResolver } from '@a2a-js/sdk/client';

const [gateway, token, session, text] = process.argv.slice(2);
const base = gateway.endsWith('/') ? gateway : gateway + '/';
const authFetch = (url, init = {}) => {
  const headers = new Headers(init.headers || {});
  headers.set('Authorization', `Bearer ${token}`);
  if (session) headers.set('X-Agentgov-Session', session);
  return fetch(url, { ...init, headers });
};
const factory = new ClientFactory(ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
  transports: [new JsonRpcTransportFactory({ fetchImpl: authFetch })],
  cardResolver: new DefaultAgentCardResolver({ fetchImpl: authFetch }),
}));
const client = await factory.createFromUrl(base);
try {
  const r = await client.sendMessage({ message: { kind: 'message', messageId: randomUUID(), role: 'user', parts: [{ kind: 'text', text }] } });
  console.log(JSON.stringify({ reply: r }));
} catch (e) {
  console.log(JSON.stringify({ error: String(e && (e.message || e)) }));
}
