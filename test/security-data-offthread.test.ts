// Issue 9, CPU-heavy request work (finding 7), against a real `attune serve`: a 3 MB JSONL validateOnly (parsing
// and framing every example for its data statistics takes seconds) runs in worker threads while /healthz keeps
// answering; the prompt cap (promptChars) applies to base models too, and a prompt long enough to be tokenized in
// the pool gets exactly the token count the engine's tokenizer gives. (`npm run bench` measures /healthz's latency
// during a 10 MB validateOnly against the 100 ms target; this test only asserts that it is never held up.)
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Tokenizer } from '../src/engine/tokenizer/tokenizer.js';
import { embeddedBaseModelDir } from '../src/engine/base-model.js';
import { call, useServer } from './helpers/server.js';

const project = 'busy-project';

/** About `megabytes` MB of examples of about 1 KB each. */
function jsonlOf(megabytes: number): { text: string; examples: number } {
  const lines: string[] = [];
  let size = 0;
  while (size < megabytes * 1024 * 1024) {
    const i = lines.length;
    const line = JSON.stringify({ text_input: `question ${i} ${'lorem ipsum dolor sit amet '.repeat(30)}`, output: `answer ${i} ${'consectetur adipiscing '.repeat(10)}` });
    lines.push(line);
    size += line.length + 1;
  }
  return { text: lines.join('\n') + '\n', examples: lines.length };
}

describe('CPU-heavy request work runs off the event loop', { timeout: 300_000 }, () => {
  const fixture = useServer({ projects: [project] });
  const key = () => fixture.keys[project]!;

  test('/healthz keeps answering while a 3 MB JSONL validateOnly is parsed and framed', async () => {
    const { text, examples } = jsonlOf(3);
    const up = await call(`${fixture.url}/upload/storage/v1/b/busy-data/o?uploadType=media&name=big.jsonl`, {
      method: 'POST',
      key: key(),
      body: text,
      headers: { 'content-type': 'application/jsonl' },
    });
    assert.equal(up.status, 200, up.text);

    let done = false;
    const validation = call(`${fixture.url}/v1/projects/${project}/locations/us-central1/tuningJobs?validateOnly=true`, {
      method: 'POST',
      key: key(),
      body: { baseModel: 'gemini-2.5-flash', supervisedTuningSpec: { trainingDatasetUri: 'gs://busy-data/big.jsonl' } },
      timeoutMs: 240_000,
    }).finally(() => (done = true));
    const latencies: number[] = [];
    while (!done) {
      const started = performance.now();
      const health = await call(`${fixture.url}/healthz`, { timeoutMs: 30_000 });
      if (done) break; // only answers given while the validation was still running count
      latencies.push(performance.now() - started);
      assert.equal(health.status, 200);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const reply = await validation;
    assert.equal(reply.status, 200, reply.text);
    const stats = reply.json.tuningDataStats.supervisedTuningDataStats;
    assert.equal(stats.tuningDatasetExampleCount, String(examples));
    assert.ok(Number(stats.totalBillableTokenCount) > examples * 100, JSON.stringify(stats).slice(0, 300));
    // The framing takes seconds: /healthz answered all along, never waiting on it (before: not once until it ended).
    assert.ok(latencies.length >= 10, `only ${latencies.length} /healthz answers while it ran`);
    assert.ok(Math.max(...latencies) < 1_000, `a /healthz took ${Math.round(Math.max(...latencies))} ms`);
  });

  test('promptChars caps prompts for base models as for tuned ones, naming the limit', async () => {
    const countTokens = (text: string) =>
      call(`${fixture.url}/v1beta/models/stories260K:countTokens`, { method: 'POST', key: key(), body: { contents: [{ parts: [{ text }] }] } });
    for (const text of ['a'.repeat(40_001), 'b'.repeat(4 * 1024 * 1024)]) {
      const reply = await countTokens(text);
      assert.equal(reply.status, 400, reply.text.slice(0, 300));
      assert.match(reply.json.error.message, /the limit promptChars is 40000/);
    }
    assert.equal((await countTokens('a'.repeat(100))).status, 200);
  });

  test('a prompt tokenized in the worker threads gets the tokenizer\'s own count', async () => {
    const tokenizer = await Tokenizer.load(embeddedBaseModelDir);
    const text = 'Once upon a time, there was a little dog named Max. '.repeat(120); // > 4,096 characters: the pool tokenizes it
    const expected = [tokenizer.bosTokenId!, ...tokenizer.encode(text, { addSpecialTokens: false })].length;
    const reply = await call(`${fixture.url}/v1beta/models/stories260K:countTokens`, { method: 'POST', key: key(), body: { contents: [{ parts: [{ text }] }] } });
    // stories260K holds 512 positions: the count is in the error that refuses the prompt.
    assert.equal(reply.status, 400, reply.text);
    assert.match(reply.json.error.message, new RegExp(`input token count \\(${expected}\\)`));
  });
});
