// A real A2A agent on the A2A JavaScript SDK's server (express), the
// upstream of the gateway's tests. JSON-RPC at /, the card at the
// well-known path. What it answers depends on the message's text:
//   echo X  -> a message "X"
//   leak    -> a message carrying a credential
//   task X  -> a task, streamed: working, X as an artifact in two chunks, completed
//   invoice ACCOUNT CONTACT -> a message naming ACCOUNT, CONTACT only in a data part
// Prints "listening PORT" once it takes connections.
import express from 'express';
import { randomUUID } from 'node:crypto';
import { AGENT_CARD_PATH } from '@a2a-js/sdk';
import { DefaultRequestHandler, InMemoryTaskStore } from '@a2a-js/sdk/server';
import { agentCardHandler, jsonRpcHandler, UserBuilder } from '@a2a-js/sdk/server/express';

const card = {
  name: 'js-billing',
  description: 'An A2A agent on the JavaScript SDK',
  protocolVersion: '0.3.0',
  version: '1.0.0',
  url: 'http://127.0.0.1:1/', // replaced once the port is known
  skills: [{ id: 'bill', name: 'Bill', description: 'bills', tags: ['billing'] }],
  capabilities: { streaming: true, pushNotifications: true },
  defaultInputModes: ['text'],
  defaultOutputModes: ['text'],
  additionalInterfaces: [],
};

const token = 'ghp_' + 'a1B2c3D4e5'.repeat(3) + 'abcdef';

class Executor {
  async execute(ctx, bus) {
    const text = ctx.userMessage.parts.filter((p) => p.kind === 'text').map((p) => p.text).join('');
    const { taskId, contextId } = ctx;
    const reply = (t) => {
      bus.publish({ kind: 'message', messageId: randomUUID(), role: 'agent', parts: [{ kind: 'text', text: t }], contextId });
      bus.finished();
    };
    if (text.startsWith('echo ')) return reply(text.slice(5));
    if (text === 'leak') return reply('the deploy key is ' + token);
    if (text.startsWith('invoice ')) {
      const [, account, contact] = text.split(/\s+/);
      bus.publish({ kind: 'message', messageId: randomUUID(), role: 'agent', contextId, parts: [
        { kind: 'text', text: `Invoice 118 is due: pay 1250 EUR to ${account}.` },
        { kind: 'data', data: { contact, amount: 1250 } },
      ] });
      bus.finished();
      return;
    }
    if (text.startsWith('task ')) {
      const body = text.slice(5);
      const half = Math.floor(body.length / 2);
      if (!ctx.task) {
        bus.publish({ kind: 'task', id: taskId, contextId, status: { state: 'submitted', timestamp: new Date().toISOString() }, history: [ctx.userMessage] });
      }
      bus.publish({ kind: 'status-update', taskId, contextId, status: { state: 'working', timestamp: new Date().toISOString() }, final: false });
      const artifactId = randomUUID();
      bus.publish({ kind: 'artifact-update', taskId, contextId, artifact: { artifactId, parts: [{ kind: 'text', text: body.slice(0, half) }] } });
      bus.publish({ kind: 'artifact-update', taskId, contextId, append: true, lastChunk: true, artifact: { artifactId, parts: [{ kind: 'text', text: body.slice(half) }] } });
      bus.publish({ kind: 'status-update', taskId, contextId, status: { state: 'completed', timestamp: new Date().toISOString() }, final: true });
      bus.finished();
      return;
    }
    reply('unknown request');
  }
  cancelTask = async () => {};
}

const handler = new DefaultRequestHandler(card, new InMemoryTaskStore(), new Executor());
const app = express();
app.use(`/${AGENT_CARD_PATH}`, agentCardHandler({ agentCardProvider: handler }));
app.use('/', jsonRpcHandler({ requestHandler: handler, userBuilder: UserBuilder.noAuthentication }));
const server = app.listen(0, '127.0.0.1', () => {
  const port = server.address().port;
  card.url = `http://127.0.0.1:${port}/`;
  console.log(`listening ${port}`);
});
