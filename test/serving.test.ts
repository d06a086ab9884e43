// Serving over HTTP: a tuned model created through the REST API answers generateContent, its streaming
// forms, countTokens and generateText; base models generate too; errors are google.rpc errors; the
// models collection lists the registry; and @google/genai works against the server unchanged.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GoogleGenAI } from '@google/genai';
import type { FastifyInstance } from 'fastify';
import { openServices, type Services } from '../src/service/services.js';
import { buildServer } from '../src/api/server.js';
import { generate } from '../src/engine/generate/generate.js';
import { loadBaseModel } from '../src/engine/base-model.js';
import { numbersJsonl } from './helpers/engine.js';
import { LeaseCache } from '../src/service/serving/lease-cache.js';
import { InferenceService } from '../src/service/serving/inference.js';

const project = 'serving-project';
const otherProject = 'other-project';
const baseModel = 'models/gemini-1.5-flash-001-tuning';

let services: Services;
let app: FastifyInstance;
let url: string;
let dataDir: string;
let key: string;
let otherKey: string;
/** The tuned model's id, and what generateContent said while it was still CREATING. */
let tunedId: string;
let whileCreating: Reply;

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

async function call(method: string, route: string, body?: unknown, apiKey = key): Promise<Reply> {
  const response = await fetch(`${url}${route}`, {
    method,
    headers: { 'x-goog-api-key': apiKey, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, text, json };
}

const post = (route: string, body: unknown, apiKey?: string) => call('POST', route, body, apiKey);
const user = (text: string) => ({ role: 'user', parts: [{ text }] });
const textOf = (candidate: any): string => (candidate?.content?.parts ?? []).map((p: any) => p.text ?? '').join('');

function assertRpcError(reply: Reply, http: number, status: string, message?: RegExp): void {
  assert.equal(reply.status, http, reply.text);
  assert.match(reply.headers.get('content-type') ?? '', /application\/json/);
  assert.equal(reply.json?.error?.code, http, reply.text);
  assert.equal(reply.json.error.status, status, reply.text);
  if (message) assert.match(reply.json.error.message, message);
}

before(async () => {
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'attune-serving-'));
  services = await openServices({ dataDir, host: '127.0.0.1', port: 0, concurrency: 1, keyless: false });
  app = await buildServer(services);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as { port: number };
  url = `http://127.0.0.1:${port}`;
  key = await services.keys.create(project);
  otherKey = await services.keys.create(otherProject);

  const examples = readFileSync(numbersJsonl, 'utf8').trim().split('\n').map((line) => JSON.parse(line));
  assert.equal(examples.length, 15);
  const created = await post('/v1beta/tunedModels', {
    display_name: 'number generator',
    base_model: baseModel,
    tuning_task: { hyperparameters: { epoch_count: 50, batch_size: 4 }, training_data: { examples: { examples } } },
  });
  assert.equal(created.status, 200, created.text);
  tunedId = created.json.metadata.tunedModel.replace(/^tunedModels\//, '');
  // Asked at once, the model is still CREATING (training takes seconds).
  whileCreating = await post(`/v1beta/tunedModels/${tunedId}:generateContent`, { contents: [user('twenty two')] });

  const deadline = Date.now() + 180_000;
  for (;;) {
    const model = await call('GET', `/v1beta/tunedModels/${tunedId}`);
    assert.equal(model.status, 200, model.text);
    if (model.json.state === 'ACTIVE') break;
    assert.notEqual(model.json.state, 'FAILED', model.text);
    if (Date.now() > deadline) throw new Error(`the tuned model is still ${model.json.state} after 180 s`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
});

after(async () => {
  await app?.close();
  await services?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

test('lease cache: LRU eviction skips leased values; forgotten ones are disposed when released; stale ones reload', async () => {
  const disposed: string[] = [];
  const cache = new LeaseCache<string, string>(2, (v) => disposed.push(v));
  let loads = 0;
  const load = (v: string) => () => (loads++, v);
  const a = await cache.acquire('a', load('a1'));
  const b = await cache.acquire('b', load('b1'));
  const c = await cache.acquire('c', load('c1'));
  assert.equal(cache.size, 3, 'all three leased: over capacity rather than disposing a value in use');
  assert.deepEqual(disposed, []);
  b.release();
  assert.deepEqual(disposed, ['b1'], 'b is the least recently used unleased entry');
  a.release();
  c.release();
  assert.deepEqual(disposed, ['b1']);
  const reused = await cache.acquire('a', load('a2'));
  assert.equal(reused.value, 'a1', 'a cached value is reused');
  reused.release();
  assert.equal(loads, 3);

  const again = await cache.acquire('c', load('c2'));
  cache.forget('c');
  assert.deepEqual(disposed, ['b1'], 'not disposed while leased');
  again.release();
  assert.deepEqual(disposed, ['b1', 'c1']);

  const fresh = await cache.acquire('a', load('a3'), (v) => v === 'a3');
  assert.equal(fresh.value, 'a3', 'a stale value is reloaded');
  assert.deepEqual(disposed, ['b1', 'c1', 'a1']);
  fresh.release();

  await assert.rejects(cache.acquire('x', () => { throw new Error('boom'); }), /boom/);
  assert.equal(cache.has('x'), false, 'a failed load is not cached');
  const [p, q] = await Promise.all([cache.acquire('y', load('y1')), cache.acquire('y', load('y2'))]);
  assert.equal(p.value, q.value, 'concurrent misses share one load');
  p.release();
  q.release();
});

test('a model that is still CREATING answers 400 FAILED_PRECONDITION, naming its state', () => {
  assertRpcError(whileCreating, 400, 'FAILED_PRECONDITION', /CREATING/);
});

test('generateContent: the tuned model answers "twenty three" to "twenty two" at temperature 0', async () => {
  const reply = await post(`/v1beta/tunedModels/${tunedId}:generateContent`, {
    contents: [{ parts: [{ text: 'twenty two' }] }], // no role: user
    generationConfig: { temperature: 0 },
    safetySettings: [],
    someFutureField: { ignored: true },
  });
  assert.equal(reply.status, 200, reply.text);
  const { candidates, usageMetadata, modelVersion, responseId } = reply.json;
  assert.equal(candidates.length, 1);
  assert.deepEqual(candidates[0], { content: { parts: [{ text: 'twenty three' }], role: 'model' }, finishReason: 'STOP', index: 0 });
  assert.ok(usageMetadata.promptTokenCount > 0);
  assert.ok(usageMetadata.candidatesTokenCount > 0);
  assert.equal(usageMetadata.totalTokenCount, usageMetadata.promptTokenCount + usageMetadata.candidatesTokenCount);
  assert.equal(modelVersion, `tunedModels/${tunedId}`);
  assert.match(responseId, /^[A-Za-z0-9_-]{10,}$/);

  // v1, snake_case, role "USER", parts as a single object, and integer enums.
  const v1 = await post(`/v1/tunedModels/${tunedId}:generateContent?$alt=json;enum-encoding=int`, {
    contents: [{ role: 'USER', parts: { text: 'twenty two' } }],
    generation_config: { temperature: 0, max_output_tokens: 20 },
  });
  assert.equal(v1.status, 200, v1.text);
  assert.equal(textOf(v1.json.candidates[0]), 'twenty three');
  assert.equal(v1.json.candidates[0].finishReason, 1);
});

test("sampling defaults: an omitted temperature is the tuned model's own; a seed reproduces the sample", async () => {
  const route = `/v1beta/tunedModels/${tunedId}:generateContent`;
  const texts = (reply: Reply) => reply.json.candidates.map(textOf);
  // A prompt far from the training data, so that sampling has choices to make.
  const body = { contents: [user('Once upon a time')], generationConfig: { seed: 7, candidateCount: 3, maxOutputTokens: 8 } };
  const first = await post(route, body);
  const second = await post(route, body);
  assert.equal(first.status, 200, first.text);
  assert.deepEqual(texts(second), texts(first), 'the same seed samples the same candidates');
  assert.ok(new Set(texts(first)).size > 1, `sampled at the model's temperature 1.0: ${JSON.stringify(texts(first))}`);

  const patched = await call('PATCH', `/v1beta/tunedModels/${tunedId}?updateMask=temperature`, { temperature: 0 });
  assert.equal(patched.status, 200, patched.text);
  try {
    const greedy = await post(route, body);
    const explicit = await post(route, { ...body, generationConfig: { temperature: 0, maxOutputTokens: 8 } });
    assert.deepEqual(texts(greedy), Array(3).fill(texts(explicit)[0]), 'temperature 0 from the model: every candidate is the greedy one');
  } finally {
    await call('PATCH', `/v1beta/tunedModels/${tunedId}?updateMask=temperature`, { temperature: 1 });
  }
});

test('streamGenerateContent: SSE events and the streamed JSON array carry the same text', async () => {
  const body = { contents: [user('twenty two')], generationConfig: { temperature: 0 } };
  const sse = await post(`/v1beta/tunedModels/${tunedId}:streamGenerateContent?alt=sse`, body);
  assert.equal(sse.status, 200, sse.text);
  assert.match(sse.headers.get('content-type') ?? '', /^text\/event-stream/);
  assert.ok(sse.text.endsWith('\r\n\r\n'));
  const events = sse.text.split('\r\n\r\n').filter(Boolean);
  for (const event of events) assert.match(event, /^data: \{.*\}$/, 'one line of JSON after "data: "');
  const chunks = events.map((e) => JSON.parse(e.slice('data: '.length)));
  assert.equal(chunks.map((c) => textOf(c.candidates[0])).join(''), 'twenty three');
  const last = chunks.at(-1);
  assert.equal(last.candidates[0].finishReason, 'STOP');
  assert.ok(last.usageMetadata.totalTokenCount > 0);
  for (const c of chunks.slice(0, -1)) assert.equal(c.candidates[0].finishReason, undefined);
  assert.equal(new Set(chunks.map((c) => c.responseId)).size, 1);

  const array = await post(`/v1beta/tunedModels/${tunedId}:streamGenerateContent`, body);
  assert.equal(array.status, 200, array.text);
  assert.match(array.headers.get('content-type') ?? '', /^application\/json/);
  assert.ok(array.text.startsWith('[{') && array.text.endsWith('}]'), array.text);
  const items = JSON.parse(array.text);
  assert.equal(items.length, chunks.length);
  if (items.length > 1) assert.ok(array.text.includes('},\r\n{'));
  assert.equal(items.map((c: any) => textOf(c.candidates[0])).join(''), 'twenty three');
  assert.deepEqual(items.at(-1).usageMetadata, last.usageMetadata);

  // Refusals come before the stream starts: an ordinary error reply.
  assertRpcError(await post(`/v1beta/tunedModels/${tunedId}:streamGenerateContent?alt=sse`, { contents: [] }), 400, 'INVALID_ARGUMENT');
});

test('countTokens: {contents} and {generateContentRequest} count the prompt as generateContent frames it', async () => {
  const contents = [user('twenty two')];
  const plain = await post(`/v1beta/tunedModels/${tunedId}:countTokens`, { contents });
  const wrapped = await post(`/v1beta/tunedModels/${tunedId}:countTokens`, {
    generateContentRequest: { model: `tunedModels/${tunedId}`, contents, generationConfig: {}, safetySettings: [] },
  });
  const generated = await post(`/v1beta/tunedModels/${tunedId}:generateContent`, { contents, generationConfig: { temperature: 0 } });
  assert.equal(plain.status, 200, plain.text);
  assert.deepEqual(Object.keys(plain.json), ['totalTokens']);
  assert.equal(wrapped.json.totalTokens, plain.json.totalTokens);
  assert.equal(plain.json.totalTokens, generated.json.usageMetadata.promptTokenCount);
});

test('generateText (PaLM): output and NEGLIGIBLE safety ratings; candidateCount 2', async () => {
  const reply = await post(`/v1beta3/tunedModels/${tunedId}:generateText`, { prompt: { text: 'twenty two' }, temperature: 0 });
  assert.equal(reply.status, 200, reply.text);
  assert.equal(reply.json.candidates.length, 1);
  assert.equal(reply.json.candidates[0].output, 'twenty three');
  assert.deepEqual(
    reply.json.candidates[0].safetyRatings.map((r: any) => `${r.category}:${r.probability}`),
    ['DEROGATORY', 'TOXICITY', 'VIOLENCE', 'SEXUAL', 'MEDICAL', 'DANGEROUS'].map((c) => `HARM_CATEGORY_${c}:NEGLIGIBLE`),
  );
  const two = await post(`/v1beta3/tunedModels/${tunedId}:generateText`, { prompt: { text: '8' }, temperature: 1.0, candidate_count: 2 });
  assert.equal(two.status, 200, two.text);
  assert.equal(two.json.candidates.length, 2);
  assertRpcError(await post(`/v1beta3/tunedModels/${tunedId}:generateText`, { prompt: { text: '8' }, candidateCount: 9 }), 400, 'INVALID_ARGUMENT');
  assertRpcError(await post(`/v1beta3/tunedModels/${tunedId}:generateText`, {}), 400, 'INVALID_ARGUMENT', /prompt/);
  assertRpcError(await post(`/v1/tunedModels/${tunedId}:generateText`, { prompt: { text: '8' } }), 404, 'NOT_FOUND');
  assertRpcError(await post(`/v1beta3/tunedModels/${tunedId}:generateContent`, { contents: [user('8')] }), 404, 'NOT_FOUND');
});

test('candidateCount 2: two candidates, indexed, tokens counted for both', async () => {
  const one = await post(`/v1beta/tunedModels/${tunedId}:generateContent`, { contents: [user('thirteen')], generationConfig: { temperature: 0 } });
  const two = await post(`/v1beta/tunedModels/${tunedId}:generateContent`, {
    contents: [user('thirteen')],
    generationConfig: { temperature: 0, candidateCount: 2 },
  });
  assert.equal(two.status, 200, two.text);
  assert.deepEqual(two.json.candidates.map((c: any) => c.index), [0, 1]);
  for (const c of two.json.candidates) assert.equal(textOf(c), 'fourteen');
  assert.equal(two.json.usageMetadata.candidatesTokenCount, 2 * one.json.usageMetadata.candidatesTokenCount);
  const sampled = await post(`/v1beta/tunedModels/${tunedId}:generateContent`, {
    contents: [user('thirteen')],
    generationConfig: { temperature: 1, candidateCount: 2, maxOutputTokens: 6 },
  });
  assert.equal(sampled.json.candidates.length, 2);
});

test('base models generate by any registry name: plain continuation of the text, as the engine does', async () => {
  const base = await loadBaseModel(services.registry.resolve(baseModel).dir);
  const prompt = 'Once upon a time';
  const expected = await generate(base.transformer, base.tokenizer, base.tokenizer.encode(prompt), { temperature: 0, maxOutputTokens: 16 });
  for (const name of [baseModel, 'models/stories260K']) {
    const reply = await post(`/v1beta/${name}:generateContent`, {
      contents: [user(prompt)],
      generationConfig: { temperature: 0, maxOutputTokens: 16 },
    });
    assert.equal(reply.status, 200, reply.text);
    assert.equal(textOf(reply.json.candidates[0]), expected.candidates[0].text);
    assert.equal(reply.json.candidates[0].finishReason, expected.candidates[0].finishReason);
    assert.equal(reply.json.usageMetadata.promptTokenCount, expected.promptTokenCount);
    assert.equal(reply.json.modelVersion, name.replace('models/', ''));
  }
  const unknown = await post('/v1beta/models/no-such-model:generateContent', { contents: [user(prompt)] });
  assertRpcError(unknown, 404, 'NOT_FOUND', /models\/no-such-model is not found for API version v1beta/);
});

test('continuous batching: concurrent tuned and base requests with different prompts share decode steps and stay apart', async () => {
  const inference = services.inference;
  const tuned = { project, collection: 'tunedModels' as const, id: tunedId, apiVersion: 'v1beta' };
  const base = { project, collection: 'models' as const, id: 'stories260K', apiVersion: 'v1beta' };
  const ask = (text: string) => ({ turns: [{ role: 'user' as const, text }], config: { temperature: 0, maxOutputTokens: 12 } });
  const alone = await inference.generate(base, ask('Once upon a time'));

  const stepsBefore = inference.stats().forwards;
  const results = await Promise.all([
    inference.generate(tuned, ask('twenty two')),
    inference.generate(base, ask('Once upon a time')),
    inference.generate(tuned, ask('twenty two')),
    inference.generate(tuned, ask('ninety nine')),
    inference.generate(tuned, ask('twenty two')),
  ]);
  assert.deepEqual(results.map((r) => r.candidates[0].text), ['twenty three', alone.candidates[0].text, 'twenty three', 'one hundred', 'twenty three']);
  // One request after another would take a step per token of each; together they take about as many as the longest.
  const steps = inference.stats().forwards - stepsBefore;
  const tokens = results.reduce((n, r) => n + r.candidatesTokenCount, 0);
  assert.ok(steps < tokens, `${steps} steps for ${tokens} tokens: the requests decoded side by side`);
  assert.ok(steps <= alone.candidatesTokenCount + 3, `${steps} steps, the longest request has ${alone.candidatesTokenCount} tokens`);
  assert.equal(inference.stats().baseModels, 1, 'the tuned model and its base share one loaded base model');
});

test('50 concurrent seeded requests decode side by side (issue 9: they ran one at a time), each as it samples alone', async () => {
  const inference = services.inference;
  const base = { project, collection: 'models' as const, id: 'stories260K', apiVersion: 'v1beta' };
  const ask = (i: number) => ({
    turns: [{ role: 'user' as const, text: ['Once upon a time', 'The dog', 'Lily went to the park', 'Tom had a red ball'][i % 4] }],
    config: { temperature: 1, seed: 500 + i, maxOutputTokens: 24 },
  });
  const alone = [];
  for (let i = 0; i < 6; i++) alone.push((await inference.generate(base, ask(i))).candidates[0].text);
  const stepsBefore = inference.stats().forwards;
  const together = await Promise.all(Array.from({ length: 50 }, (_, i) => inference.generate(base, ask(i))));
  const steps = inference.stats().forwards - stepsBefore;
  const tokens = together.reduce((n, r) => n + r.candidatesTokenCount, 0);
  assert.deepEqual(together.slice(0, 6).map((r) => r.candidates[0].text), alone, 'a seed samples the same text in a batch of 50');
  assert.ok(steps <= 3 * 25, `${steps} steps for ${tokens} tokens of 50 requests (32 rows at a time)`);
});

test('a cancelled stream ends with CANCELLED and leaves the service usable', async () => {
  const inference = services.inference;
  const base = { project, collection: 'models' as const, id: 'stories260K', apiVersion: 'v1beta' };
  const controller = new AbortController();
  const stream = await inference.stream(base, { turns: [{ role: 'user', text: 'Once upon a time' }], config: { temperature: 0, maxOutputTokens: 200 } }, controller.signal);
  let deltas = 0;
  await assert.rejects(
    (async () => {
      for await (const _ of stream) if (++deltas === 2) controller.abort();
    })(),
    (error: any) => error.status === 'CANCELLED',
  );
  assert.ok(deltas < 20, `stopped soon after the abort (${deltas} deltas)`);
  await assert.rejects(stream.result, (error: any) => error.status === 'CANCELLED');
  const after = await inference.generate(base, { turns: [{ role: 'user', text: 'Once upon a time' }], config: { temperature: 0, maxOutputTokens: 4 } });
  assert.equal(after.candidates.length, 1);
});

test('close(): a running generation ends UNAVAILABLE, queued ones too, and new ones are refused', async () => {
  const inference = new InferenceService(services.tuning, services.registry);
  const base = { project, collection: 'models' as const, id: 'stories260K', apiVersion: 'v1beta' };
  const request = { turns: [{ role: 'user' as const, text: 'Once upon a time' }], config: { temperature: 0, maxOutputTokens: 200 } };
  const running = await inference.stream(base, request);
  const queued = await inference.stream(base, { ...request, config: { temperature: 1, maxOutputTokens: 5 } });
  let deltas = 0;
  await assert.rejects(
    (async () => {
      for await (const _ of running) if (++deltas === 1) inference.close();
    })(),
    (error: any) => error.status === 'UNAVAILABLE',
  );
  await assert.rejects(queued.result, (error: any) => error.status === 'UNAVAILABLE');
  await assert.rejects(inference.generate(base, request), (error: any) => error.status === 'UNAVAILABLE');
});

test('project isolation: another project\'s model answers 404 like an unknown one', async () => {
  const denied = await post(`/v1beta/tunedModels/${tunedId}:generateContent`, { contents: [user('1')] }, otherKey);
  assertRpcError(denied, 404, 'NOT_FOUND', new RegExp(`^Tuned model tunedModels/${tunedId} does not exist\\.$`));
  assertRpcError(await post(`/v1beta/tunedModels/${tunedId}:countTokens`, { contents: [user('1')] }, otherKey), 404, 'NOT_FOUND');
  assertRpcError(await post('/v1beta/tunedModels/nope-123:generateContent', { contents: [user('1')] }), 404, 'NOT_FOUND', /does not exist/);
  assertRpcError(await post(`/v1beta/tunedModels/${tunedId}:generateContent`, { contents: [user('1')] }, 'atk_wrong'), 400, 'INVALID_ARGUMENT', /API key not valid/);
});

test('bad requests are google.rpc 400s', async () => {
  const route = `/v1beta/tunedModels/${tunedId}:generateContent`;
  const image = await post(route, { contents: [{ role: 'user', parts: [{ text: 'hi' }, { inlineData: { mimeType: 'image/png', data: 'AAAA' } }] }] });
  assertRpcError(image, 400, 'INVALID_ARGUMENT', /Only text is supported/);
  assert.equal(image.json.error.details[0].fieldViolations[0].field, 'contents[0].parts[1]');
  const stops = await post(route, { contents: [user('1')], generationConfig: { stopSequences: ['a', 'b', 'c', 'd', 'e', 'f'] } });
  assertRpcError(stops, 400, 'INVALID_ARGUMENT', /at most 5/);
  assertRpcError(await post(route, { contents: [user('1')], generationConfig: { temperature: 5 } }), 400, 'INVALID_ARGUMENT', /temperature/);
  assertRpcError(await post(route, { contents: [user('1')], generationConfig: { topP: 1.5 } }), 400, 'INVALID_ARGUMENT', /topP/);
  assertRpcError(await post(route, { contents: [user('1')], generationConfig: { candidateCount: 0 } }), 400, 'INVALID_ARGUMENT');
  assertRpcError(await post(route, { contents: [user('1')], generationConfig: { temperature: 'hot' } }), 400, 'INVALID_ARGUMENT');
  assertRpcError(await post(route, { contents: [{ role: 'assistant', parts: [{ text: '1' }] }] }), 400, 'INVALID_ARGUMENT', /valid role: user, model/);
  assertRpcError(await post(route, { contents: [] }), 400, 'INVALID_ARGUMENT', /contents is not specified/);
  assertRpcError(await post(route, { contents: [{ role: 'user', parts: [] }] }), 400, 'INVALID_ARGUMENT', /parts must not be empty/);
  assertRpcError(await post(route, { contents: [user('1'), { role: 'model', parts: [{ text: '2' }] }] }), 400, 'INVALID_ARGUMENT', /role "user"/);
  assertRpcError(await post(route, { contents: [user('1')], generationConfig: { responseMimeType: 'application/json' } }), 400, 'INVALID_ARGUMENT', /JSON mode/);
  const long = await post(route, { contents: [user('x'.repeat(40_001))] });
  assertRpcError(long, 400, 'INVALID_ARGUMENT', /40000 characters/);
  // The base model's context is 512 tokens: a longer prompt is refused, not truncated.
  const tooMany = await post(`/v1beta/${baseModel}:generateContent`, { contents: [user('one two three four five '.repeat(200))] });
  assertRpcError(tooMany, 400, 'INVALID_ARGUMENT', /input token count/);
});

test('models: list with paging, get by name, 404 for unknown', async () => {
  const all = await call('GET', '/v1beta/models');
  assert.equal(all.status, 200, all.text);
  const names = all.json.models.map((m: any) => m.name);
  assert.ok(names.includes(baseModel) && names.includes('models/stories260K'), names.join(', '));
  assert.equal(all.json.nextPageToken, undefined);

  const pages: string[] = [];
  let token: string | undefined;
  do {
    const page = await call('GET', `/v1beta/models?page_size=5${token ? `&pageToken=${token}` : ''}`);
    assert.equal(page.status, 200, page.text);
    assert.ok(page.json.models.length <= 5);
    pages.push(...page.json.models.map((m: any) => m.name));
    token = page.json.nextPageToken;
  } while (token);
  assert.deepEqual(pages, names);
  assertRpcError(await call('GET', '/v1beta/models?pageToken=garbage'), 400, 'INVALID_ARGUMENT');

  const model = await call('GET', `/v1/${baseModel}`);
  assert.equal(model.status, 200, model.text);
  assert.equal(model.json.name, baseModel);
  assert.equal(model.json.version, '001');
  assert.ok(model.json.supportedGenerationMethods.includes('createTunedModel'));
  assert.ok(model.json.supportedGenerationMethods.includes('generateContent'));
  assert.equal(model.json.temperature, 1);
  assert.equal(model.json.topP, 0.95);
  assert.equal(model.json.topK, 64);
  assert.equal(model.json.maxTemperature, 2);
  assert.equal(model.json.inputTokenLimit, 512);
  assert.equal((await call('GET', '/v1beta/models/gemini-1.5-flash-001-tuning')).json.name, baseModel);
  assertRpcError(await call('GET', '/v1beta/models/no-such-model'), 404, 'NOT_FOUND', /models\/no-such-model/);
});

test('@google/genai against the server: generateContent, generateContentStream, models.list, tunings.get', async () => {
  const ai = new GoogleGenAI({ apiKey: key, httpOptions: { baseUrl: url } });
  const model = `tunedModels/${tunedId}`;
  const response = await ai.models.generateContent({ model, contents: 'twenty two', config: { temperature: 0 } });
  assert.equal(response.text, 'twenty three');
  assert.equal(response.candidates?.[0].finishReason, 'STOP');
  assert.ok((response.usageMetadata?.totalTokenCount ?? 0) > 0);

  let streamed = '';
  let chunks = 0;
  for await (const chunk of await ai.models.generateContentStream({ model, contents: 'twenty two', config: { temperature: 0 } })) {
    streamed += chunk.text ?? '';
    chunks++;
  }
  assert.equal(streamed, 'twenty three');
  assert.ok(chunks >= 1);

  const counted = await ai.models.countTokens({ model, contents: 'twenty two' });
  assert.equal(counted.totalTokens, response.usageMetadata?.promptTokenCount);

  const tuned: string[] = [];
  for await (const m of await ai.models.list({ config: { queryBase: false } })) tuned.push(m.name ?? '');
  assert.deepEqual(tuned, [model]);
  const bases: string[] = [];
  for await (const m of await ai.models.list()) bases.push(m.name ?? '');
  assert.ok(bases.includes(baseModel));

  const job = await ai.tunings.get({ name: model });
  assert.equal(job.state, 'JOB_STATE_SUCCEEDED');

  await assert.rejects(ai.models.generateContent({ model, contents: 'hi', config: { temperature: 5 } }), (error: any) => {
    assert.equal(error.status, 400);
    assert.match(error.message, /temperature/);
    return true;
  });
});

test('a deleted tuned model is gone: 404, and its adapter can be forgotten', async () => {
  const deleted = await call('DELETE', `/v1beta/tunedModels/${tunedId}`);
  assert.equal(deleted.status, 200, deleted.text);
  services.inference.forgetTunedModel(tunedId);
  assertRpcError(await post(`/v1beta/tunedModels/${tunedId}:generateContent`, { contents: [user('1')] }), 404, 'NOT_FOUND');
  assert.equal(services.inference.stats().adapters, 0);
});
