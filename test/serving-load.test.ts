// Generation under load over real HTTP: full queues answer 429 RESOURCE_EXHAUSTED with google.rpc.RetryInfo
// and Retry-After (never a 5xx), before any streamed byte, and @google/genai sees a 429; a client's
// X-Server-Timeout ends a request that waits too long with 504 DEADLINE_EXCEEDED; the rest succeed. SSE
// events leave as each step decodes them, and a client that hangs up mid-stream frees its row at once.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GoogleGenAI } from '@google/genai';
import type { FastifyInstance } from 'fastify';
import { openServices, type Services } from '../src/service/services.js';
import { buildServer } from '../src/api/server.js';

let services: Services;
let app: FastifyInstance;
let url: string;
let dataDir: string;
const keys: Record<string, string> = {};
const route = '/v1beta/models/stories260K:generateContent';

before(async () => {
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'attune-serving-load-'));
  services = await openServices({
    dataDir,
    host: '127.0.0.1',
    port: 0,
    concurrency: 1,
    keyless: false,
    limits: { queuedGenerationsPerProject: 3, queuedGenerationsPerBaseModel: 4 },
    serving: { maxBatchRows: 1 },
  });
  app = await buildServer(services);
  await app.listen({ host: '127.0.0.1', port: 0 });
  url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  for (const project of ['a', 'c']) keys[project] = await services.keys.create(`project-${project}`);
});

after(async () => {
  await app?.close();
  await services?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

async function generate(project: string, maxOutputTokens: number, headers: Record<string, string> = {}, path = route) {
  const response = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-goog-api-key': keys[project], ...headers },
    body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'Once upon a time' }] }], generationConfig: { temperature: 0, maxOutputTokens } }),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, text, json: JSON.parse(text) };
}

/** Waits until the model's runner has `running` rows busy and `queued` requests waiting. */
async function until(check: (stats: ReturnType<Services['inference']['stats']>) => boolean): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!check(services.inference.stats())) {
    if (Date.now() > deadline) throw new Error(`the runner never got there: ${JSON.stringify(services.inference.stats())}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

test('full queues: 429 RESOURCE_EXHAUSTED with RetryInfo and Retry-After, per project and per model; never a 5xx', async () => {
  // One row (maxBatchRows 1): project a's first request runs, three wait (queuedGenerationsPerProject), the rest are refused.
  const first = generate('a', 500);
  await until((s) => s.running === 1);
  const flood = Array.from({ length: 6 }, () => generate('a', 20));
  await until((s) => s.queued === 3);
  const c = [generate('c', 20)]; // the model's fourth waiting request (queuedGenerationsPerBaseModel 4)
  await until((s) => s.queued === 4);
  c.push(generate('c', 20));
  const streamed = await generate('c', 20, {}, '/v1beta/models/stories260K:streamGenerateContent?alt=sse');
  const ai = new GoogleGenAI({ apiKey: keys.c, httpOptions: { baseUrl: url } });
  await assert.rejects(ai.models.generateContent({ model: 'models/stories260K', contents: 'hello' }), (error: any) => error.status === 429);

  const replies = await Promise.all([first, ...flood, ...c]);
  const refused = [...replies, streamed].filter((r) => r.status === 429);
  assert.equal(refused.length, 3 + 1 + 1, replies.map((r) => r.status).join(' '));
  for (const reply of refused) {
    assert.equal(reply.json.error.status, 'RESOURCE_EXHAUSTED');
    assert.equal(reply.json.error.code, 429);
    assert.match(reply.json.error.message, /queuedGenerationsPer(Project|BaseModel)/);
    const retry = reply.json.error.details.find((d: any) => d['@type'] === 'type.googleapis.com/google.rpc.RetryInfo');
    assert.match(retry?.retryDelay ?? '', /^\d+s$/, reply.text);
    assert.equal(reply.headers.get('retry-after'), retry.retryDelay.slice(0, -1));
  }
  assert.equal(replies.filter((r) => r.status === 200).length, 1 + 3 + 1);
  assert.ok(replies.every((r) => r.status < 500), 'no 5xx');
  assert.equal(streamed.status, 429, 'a streamed request is refused before its first byte');
});

test('X-Server-Timeout: a request still waiting at its deadline ends 504 DEADLINE_EXCEEDED; the others finish', async () => {
  // Three long requests ahead of it on the one row: it cannot start, let alone finish, within a second.
  const ahead = [generate('a', 500)];
  await until((s) => s.running === 1);
  ahead.push(generate('a', 500), generate('a', 500));
  await until((s) => s.queued === 2);
  const late = await generate('a', 4, { 'x-server-timeout': '1' });
  assert.equal(late.status, 504, late.text);
  assert.equal(late.json.error.status, 'DEADLINE_EXCEEDED');
  for (const reply of await Promise.all(ahead)) assert.equal(reply.status, 200, reply.text);
  await until((s) => s.queued === 0 && s.running === 0);
});

test('SSE: each step\'s text is flushed as it is decoded; a client that hangs up mid-stream frees its row at once', async () => {
  const controller = new AbortController();
  const response = await fetch(`${url}/v1beta/models/stories260K:streamGenerateContent?alt=sse`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-goog-api-key': keys.a },
    body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'Once upon a time' }] }], generationConfig: { temperature: 0, maxOutputTokens: 400 } }),
    signal: controller.signal,
  });
  assert.equal(response.status, 200);
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  /** The runner's step count as each event arrived. */
  const stepsAtEvent: number[] = [];
  while (stepsAtEvent.length < 8) {
    const { value, done } = await reader.read();
    assert.ok(!done, `the stream ended after ${stepsAtEvent.length} events`);
    buffered += decoder.decode(value, { stream: true });
    const events = buffered.split('\r\n\r\n');
    buffered = events.pop()!;
    for (const event of events) {
      assert.match(event, /^data: \{/);
      stepsAtEvent.push(services.inference.stats().forwards);
    }
  }
  assert.equal(services.inference.stats().running, 1, 'the request is still decoding: its events came before its end');
  assert.ok(new Set(stepsAtEvent).size >= 4, `events arrived step by step, not in one burst (steps ${stepsAtEvent.join(' ')})`);

  const stepsAtHangUp = services.inference.stats().forwards;
  controller.abort();
  await until((s) => s.running === 0);
  const steps = services.inference.stats().forwards - stepsAtHangUp;
  assert.ok(steps <= 5, `its row was decoded ${steps} more steps after the client left`);
  const next = await generate('c', 4);
  assert.equal(next.status, 200, next.text);
});
