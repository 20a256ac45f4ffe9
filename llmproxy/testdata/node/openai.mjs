// Drives the model proxy with the real openai SDK and prints what the SDK
// saw as one JSON object; llmproxy's Go tests check it.
import OpenAI from 'openai';

const client = new OpenAI({
  apiKey: process.env.AGENTGOV_TOKEN,
  baseURL: `${process.env.PROXY_URL}/llm/v1`,
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
      type: e.type ?? e.error?.type,
      code: e.code,
      message: e.message,
    };
  }
}

const chat = await client.chat.completions.create({
  model: 'gpt-4o-mini',
  max_tokens: 50,
  messages: [{ role: 'user', content: 'hello from the openai sdk' }],
});
out.chat = { content: chat.choices[0].message.content, usage: chat.usage };

const stream = await client.chat.completions.create({
  model: 'gpt-4o-mini',
  stream: true,
  messages: [{ role: 'user', content: 'stream please' }],
});
let text = '';
let chunks = 0;
let usageChunks = 0;
for await (const chunk of stream) {
  chunks++;
  if (chunk.usage) usageChunks++;
  for (const c of chunk.choices) text += c.delta?.content ?? '';
}
out.stream = { text, chunks, usageChunks };

const withUsage = await client.chat.completions.create({
  model: 'gpt-4o-mini',
  stream: true,
  stream_options: { include_usage: true },
  messages: [{ role: 'user', content: 'stream with usage' }],
});
let lastUsage = null;
for await (const chunk of withUsage) if (chunk.usage) lastUsage = chunk.usage;
out.streamWithUsage = { usage: lastUsage };

// The helper the SDK offers for streams, which runs its own accumulation.
const runner = client.chat.completions.stream({
  model: 'gpt-4o-mini',
  messages: [{ role: 'user', content: 'stream helper' }],
});
const final = await runner.finalChatCompletion();
out.streamHelper = { content: final.choices[0].message.content };

const emb = await client.embeddings.create({ model: 'text-embedding-3-small', input: 'embed me' });
out.embeddings = { dims: emb.data[0].embedding.length, usage: emb.usage };

const list = await client.models.list();
const ids = [];
for await (const m of list) ids.push(m.id);
out.models = { count: ids.length, hasMini: ids.includes('gpt-4o-mini') };

out.denied = await refusal(() => client.chat.completions.create({
  model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'a forbidden topic' }],
}));
out.budget = await refusal(() => client.chat.completions.create({
  model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'over budget' }],
}));
out.approval = await refusal(() => client.chat.completions.create({
  model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'approve me' }],
}));
out.approved = (await client.chat.completions.create(
  { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'approve me' }] },
  { headers: { 'X-Agentgov-Approval': 'apr_1' } },
)).choices[0].message.content;
out.unknownModel = await refusal(() => client.chat.completions.create({
  model: 'llama-9000', messages: [{ role: 'user', content: 'hi' }],
}));
out.badRequest = await refusal(() => client.chat.completions.create({
  model: 'gpt-4o-mini', messages: [],
}));
out.upstreamError = await refusal(() => client.chat.completions.create({
  model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'upstream-error' }],
}));
// Content policies see the whole request, not only the last user message.
out.deniedSystem = await refusal(() => client.chat.completions.create({
  model: 'gpt-4o-mini',
  messages: [{ role: 'system', content: 'a forbidden topic' }, { role: 'user', content: 'hello' }],
}));
out.deniedTool = await refusal(() => client.chat.completions.create({
  model: 'gpt-4o-mini',
  messages: [{ role: 'user', content: 'hello' }],
  tools: [{ type: 'function', function: { name: 'search', description: 'a forbidden topic', parameters: { type: 'object', properties: {} } } }],
}));
// No max_tokens and two answers: the proxy reserves and caps for both.
out.twoAnswers = (await client.chat.completions.create({
  model: 'gpt-4o-mini', n: 2, messages: [{ role: 'user', content: 'two answers please' }],
})).choices[0].message.content;

const badKey = new OpenAI({ apiKey: 'sk-not-an-agentgov-token', baseURL: `${process.env.PROXY_URL}/llm/v1`, maxRetries: 0 });
out.badKey = await refusal(() => badKey.chat.completions.create({
  model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }],
}));

console.log(JSON.stringify(out));
