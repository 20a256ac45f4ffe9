// Drives the model proxy with the real @anthropic-ai/sdk and prints what the
// SDK saw as one JSON object; llmproxy's Go tests check it.
import Anthropic from '@anthropic-ai/sdk';

const client = new Anthropic({
  apiKey: process.env.AGENTGOV_TOKEN,
  baseURL: `${process.env.PROXY_URL}/llm/anthropic`,
});
const out = {};

async function refusal(fn) {
  try {
    await fn();
    return { error: 'no error raised' };
  } catch (e) {
    return {
      class: e.constructor.name,
      status: e.status,
      type: e.error?.error?.type,
      message: e.message,
    };
  }
}

const msg = await client.messages.create({
  model: 'claude-haiku-4-5',
  max_tokens: 64,
  messages: [{ role: 'user', content: 'hello from the anthropic sdk' }],
});
out.message = { text: msg.content[0].text, usage: msg.usage };

const stream = client.messages.stream({
  model: 'claude-sonnet-4-5',
  max_tokens: 64,
  messages: [{ role: 'user', content: 'stream please' }],
});
let text = '';
stream.on('text', (t) => { text += t; });
const final = await stream.finalMessage();
out.stream = { text, finalText: final.content[0].text, usage: final.usage };

const raw = await client.messages.create({
  model: 'claude-haiku-4-5',
  max_tokens: 64,
  stream: true,
  messages: [{ role: 'user', content: 'raw stream' }],
});
const types = [];
for await (const ev of raw) types.push(ev.type);
out.rawStream = { types };

out.denied = await refusal(() => client.messages.create({
  model: 'claude-haiku-4-5', max_tokens: 10, messages: [{ role: 'user', content: 'a forbidden topic' }],
}));
out.budget = await refusal(() => client.messages.create({
  model: 'claude-haiku-4-5', max_tokens: 10, messages: [{ role: 'user', content: 'over budget' }],
}));
out.streamDenied = await refusal(async () => {
  const s = client.messages.stream({
    model: 'claude-haiku-4-5', max_tokens: 10, messages: [{ role: 'user', content: 'a forbidden topic' }],
  });
  await s.finalMessage();
});
out.approval = await refusal(() => client.messages.create({
  model: 'claude-haiku-4-5', max_tokens: 10, messages: [{ role: 'user', content: 'approve me' }],
}));
out.upstreamError = await refusal(() => client.messages.create({
  model: 'claude-haiku-4-5', max_tokens: 10, messages: [{ role: 'user', content: 'upstream-error' }],
}));
out.badRequest = await refusal(() => client.messages.create({
  model: 'claude-haiku-4-5', messages: [{ role: 'user', content: 'no max_tokens' }],
}));

// Content policies see the separate system prompt and every block.
out.deniedSystem = await refusal(() => client.messages.create({
  model: 'claude-haiku-4-5', max_tokens: 10, system: 'a forbidden topic',
  messages: [{ role: 'user', content: 'hello' }],
}));
out.deniedToolResult = await refusal(() => client.messages.create({
  model: 'claude-haiku-4-5', max_tokens: 10,
  messages: [
    { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'search', input: { q: 'x' } }] },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'a forbidden topic' }, { type: 'text', text: 'go on' }] },
  ],
}));

console.log(JSON.stringify(out));
