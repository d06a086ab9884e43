// Generation on stories260K: sampling with candidates and seeds, token limits, stop sequences and
// stop tokens, top-k/top-p edge cases, streaming, and token counts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { generate, streamGenerate, type GenerateOptions, type Generation, type TextDelta } from '../src/engine/generate/generate.js';
import type { BaseModel } from '../src/engine/base-model.js';
import { goldenGreedyFile, loadStories, storyPrompt } from './helpers/engine.js';

let shared: Promise<BaseModel> | undefined;
const stories = () => (shared ??= loadStories());
const golden = readFileSync(goldenGreedyFile, 'utf8');

async function run(prompt: number[], options: GenerateOptions): Promise<Generation> {
  const { transformer, tokenizer } = await stories();
  return generate(transformer, tokenizer, prompt, options);
}

/** Every delta, and the generator's return value. */
async function stream(prompt: number[], options: GenerateOptions): Promise<{ deltas: TextDelta[]; result: Generation }> {
  const { transformer, tokenizer } = await stories();
  const iterator = streamGenerate(transformer, tokenizer, prompt, options);
  const deltas: TextDelta[] = [];
  for (;;) {
    const next = await iterator.next();
    if (next.done) return { deltas, result: next.value };
    deltas.push(next.value);
  }
}

const bos = async () => [(await stories()).tokenizer.bosTokenId!];
const storyIds = async () => (await stories()).tokenizer.encode(storyPrompt);

test('candidateCount 3 at temperature 1 with a seed: 3 candidates, reproducible', async () => {
  const prompt = await storyIds();
  const options = { temperature: 1, candidateCount: 3, seed: 1234, maxOutputTokens: 40 };
  const first = await run(prompt, options);
  assert.equal(first.candidates.length, 3);
  for (const c of first.candidates) {
    assert.ok(c.tokenIds.length > 0 && c.tokenIds.length <= 40);
    assert.ok(c.text.length > 0);
    assert.ok(['STOP', 'MAX_TOKENS'].includes(c.finishReason));
    if (c.finishReason === 'MAX_TOKENS') assert.equal(c.tokenIds.length, 40);
  }
  assert.ok(new Set(first.candidates.map((c) => c.text)).size > 1, 'sampled candidates differ from one another');

  const again = await run(prompt, options);
  assert.deepEqual(again, first, 'the same seed gives the same candidates');
  const otherSeed = await run(prompt, { ...options, seed: 99 });
  assert.notDeepEqual(otherSeed.candidates.map((c) => c.tokenIds), first.candidates.map((c) => c.tokenIds));
});

test('greedy candidates are all the greedy decode', async () => {
  const prompt = await storyIds();
  const single = await run(prompt, { maxOutputTokens: 30 });
  const triple = await run(prompt, { maxOutputTokens: 30, candidateCount: 3 });
  assert.equal(triple.candidates.length, 3);
  for (const c of triple.candidates) assert.deepEqual(c, single.candidates[0]);
  assert.equal(triple.candidatesTokenCount, 3 * single.candidatesTokenCount);
});

test('maxOutputTokens: finishReason MAX_TOKENS after exactly that many tokens', async () => {
  for (const n of [1, 7, 25]) {
    const result = await run(await bos(), { temperature: 0, maxOutputTokens: n });
    const [c] = result.candidates;
    assert.equal(c.finishReason, 'MAX_TOKENS');
    assert.equal(c.tokenIds.length, n);
    assert.equal(result.candidatesTokenCount, n);
    assert.ok(golden.startsWith(c.text), `${n} tokens are a prefix of the golden decode: ${JSON.stringify(c.text)}`);
  }
  // Capped by the model's context (512 positions).
  const { transformer } = await stories();
  const long = Array.from({ length: transformer.config.maxPositions - 3 }, () => 1);
  const capped = await run(long, { maxOutputTokens: 100 });
  assert.equal(capped.candidates[0].tokenIds.length <= 3, true);
  await assert.rejects(run(new Array(transformer.config.maxPositions).fill(1), {}), /the prompt has 512 tokens; the model's context holds 512/);
  await assert.rejects(run([], {}), /the prompt has no tokens/);
});

test('stop sequences cut the text before the stop sequence, with finishReason STOP', async () => {
  const prompt = await bos();
  for (const stop of [', there', 'Lily', 'park.', ' a']) {
    const result = await run(prompt, { maxOutputTokens: 200, stopSequences: [stop] });
    const [c] = result.candidates;
    assert.equal(c.finishReason, 'STOP', stop);
    assert.equal(c.text, golden.slice(0, golden.indexOf(stop)), `stop ${JSON.stringify(stop)}`);
    assert.ok(!c.text.includes(stop));
  }
  // The earliest of several stop sequences wins; one that never occurs changes nothing.
  const both = await run(prompt, { maxOutputTokens: 200, stopSequences: ['park', 'girl', 'never-occurs'] });
  assert.equal(both.candidates[0].text, golden.slice(0, golden.indexOf('girl')));
  const none = await run(prompt, { maxOutputTokens: 50, stopSequences: ['never-occurs', ''] });
  assert.equal(none.candidates[0].finishReason, 'MAX_TOKENS');
});

test('stop token ids end a candidate without being part of it', async () => {
  const prompt = await bos();
  const greedy = (await run(prompt, { maxOutputTokens: 20 })).candidates[0];
  const stopAt = greedy.tokenIds.indexOf(greedy.tokenIds[5]); // first occurrence of the 6th token
  const result = await run(prompt, { maxOutputTokens: 20, stopTokenIds: [greedy.tokenIds[5]] });
  const [c] = result.candidates;
  assert.equal(c.finishReason, 'STOP');
  assert.deepEqual(c.tokenIds, greedy.tokenIds.slice(0, stopAt));
  assert.equal(result.candidatesTokenCount, stopAt);
});

test('topK 1 and a tiny topP are greedy, whatever the temperature and seed', async () => {
  const prompt = await storyIds();
  const greedy = await run(prompt, { temperature: 0, maxOutputTokens: 50 });
  for (const seed of [1, 2]) {
    const topK = await run(prompt, { temperature: 1.5, topK: 1, seed, maxOutputTokens: 50 });
    assert.deepEqual(topK.candidates, greedy.candidates, `topK 1, seed ${seed}`);
    const topP = await run(prompt, { temperature: 1.5, topP: 1e-6, seed, maxOutputTokens: 50 });
    assert.deepEqual(topP.candidates, greedy.candidates, `topP 1e-6, seed ${seed}`);
  }
});

test('streamGenerate: the concatenated deltas equal each final text', async () => {
  const prompt = await storyIds();
  const cases: GenerateOptions[] = [
    { maxOutputTokens: 60 },
    { maxOutputTokens: 200, stopSequences: ['Lily', '. '] },
    { temperature: 1, candidateCount: 3, seed: 7, maxOutputTokens: 60, stopSequences: ['.'] },
  ];
  for (const options of cases) {
    const { deltas, result } = await stream(prompt, options);
    assert.ok(deltas.length > 1, 'text streams in several pieces');
    assert.ok(deltas.every((d) => d.text.length > 0), 'no empty deltas');
    result.candidates.forEach((c, i) => {
      const joined = deltas.filter((d) => d.candidate === i).map((d) => d.text).join('');
      assert.equal(joined, c.text, `candidate ${i} with ${JSON.stringify(options)}`);
    });
    // Streaming and generate() agree.
    assert.deepEqual(await run(prompt, options), result);
    for (const stop of options.stopSequences ?? []) {
      for (const d of deltas) assert.ok(!d.text.includes(stop), 'a stop sequence is never streamed');
    }
  }
});

test('promptTokenCount and candidatesTokenCount', async () => {
  const prompt = await storyIds();
  const result = await run(prompt, { temperature: 1, seed: 5, candidateCount: 2, maxOutputTokens: 20, stopSequences: ['.'] });
  assert.equal(result.promptTokenCount, prompt.length);
  assert.equal(result.candidatesTokenCount, result.candidates.reduce((n, c) => n + c.tokenIds.length, 0));
  const { tokenizer } = await stories();
  for (const c of result.candidates) {
    // The text is the decode of the tokens, up to (not including) the stop sequence.
    const decoded = tokenizer.decode([...prompt.slice(-4), ...c.tokenIds], { skipSpecialTokens: true });
    const context = tokenizer.decode(prompt.slice(-4), { skipSpecialTokens: true });
    assert.ok(decoded.slice(context.length).startsWith(c.text));
  }
});

test('an aborted signal stops generation early', async () => {
  const controller = new AbortController();
  const { transformer, tokenizer } = await stories();
  const iterator = streamGenerate(transformer, tokenizer, await bos(), { maxOutputTokens: 200, signal: controller.signal });
  let pieces = 0;
  let result: Generation | undefined;
  for (;;) {
    const next = await iterator.next();
    if (next.done) {
      result = next.value;
      break;
    }
    if (++pieces === 3) controller.abort();
  }
  assert.ok(result.candidates[0].tokenIds.length < 200);
  assert.equal(result.candidates[0].finishReason, 'MAX_TOKENS');
});
