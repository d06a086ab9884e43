// The batch decoder (continuous batching over a paged KV cache, with every row's own adapter) against
// single-prompt generation: mixed prompts, adapters of different ranks and targets, the base model, and
// sampling settings give the same text batched as each gives alone; sequences join and leave mid-batch;
// the block pool bounds memory and gives every block back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generate, type GenerateOptions } from '../src/engine/generate/generate.js';
import { BatchDecoder, type Sequence, type SequenceSpec } from '../src/engine/generate/batch-decoder.js';
import { uniformStream } from '../src/engine/generate/sampling.js';
import { KvBlockPool } from '../src/engine/model/paged-kv-cache.js';
import { AdapterStack, type MixStrategy } from '../src/engine/lora/adapter-stack.js';
import { LoraAdapter, loraConfig } from '../src/engine/lora/lora.js';
import { manualSeed, noGrad } from '../src/engine/tensor/index.js';
import type { BaseModel } from '../src/engine/base-model.js';
import { loadStories, repoPath } from './helpers/engine.js';
import { loadTransformer } from '../src/engine/model/load.js';

let shared: Promise<BaseModel> | undefined;
const stories = () => (shared ??= loadStories());

/** A LoRA adapter with random (nonzero) B, so it changes what the model says. */
function randomAdapter(base: BaseModel, seed: number, rank: number, targetModules?: string[]): LoraAdapter {
  manualSeed(seed);
  const adapter = LoraAdapter.create(base.transformer, loraConfig({ rank, targetModules }));
  noGrad(() => {
    for (const { b } of adapter.weights.values()) b.normal_(0, 0.15);
  });
  return adapter;
}

interface Case {
  prompt: string;
  adapter: number; // index into adapters, -1 for none
  options: GenerateOptions;
}

function newDecoder(base: BaseModel, adapters: LoraAdapter[], blocks = 64, blockSize = 16, strategy: MixStrategy = 'auto') {
  const { config } = base.transformer;
  const pool = new KvBlockPool({ layers: config.numLayers, kvHeads: config.numKvHeads, headDim: config.headDim }, blocks, blockSize);
  const stack = new AdapterStack(base.transformer, Math.max(1, adapters.length), strategy);
  adapters.forEach((a, slot) => stack.install(slot, a));
  return { decoder: new BatchDecoder(base.transformer, base.tokenizer, pool, stack), pool, stack };
}

function specOf(base: BaseModel, c: Case): SequenceSpec {
  return {
    promptIds: base.tokenizer.encode(c.prompt),
    adapterSlot: c.adapter,
    sampling: { temperature: c.options.temperature ?? 0, topK: c.options.topK, topP: c.options.topP },
    uniforms: uniformStream(c.options.seed ?? 0, 0),
    maxOutputTokens: c.options.maxOutputTokens ?? 256,
    stopSequences: c.options.stopSequences,
  };
}

/** Every case alone through generate(), with its adapter attached the classic way. */
async function alone(base: BaseModel, adapters: LoraAdapter[], cases: Case[]): Promise<string[]> {
  const texts: string[] = [];
  for (const c of cases) {
    if (c.adapter >= 0) adapters[c.adapter].attach(base.transformer);
    else LoraAdapter.detach(base.transformer);
    const result = await generate(base.transformer, base.tokenizer, base.tokenizer.encode(c.prompt), c.options);
    texts.push(result.candidates[0].text);
  }
  LoraAdapter.detach(base.transformer);
  return texts;
}

/** Runs the decoder until every sequence finished; the texts, in order. */
function drain(decoder: BatchDecoder, sequences: Sequence[]): string[] {
  const streamed = new Map<Sequence, string>(sequences.map((s) => [s, '']));
  while (decoder.size) {
    for (const { sequence, delta } of decoder.step()) streamed.set(sequence, (streamed.get(sequence) ?? '') + delta);
  }
  for (const s of sequences) assert.equal(streamed.get(s), s.text.text, 'the streamed deltas add up to the text');
  return sequences.map((s) => s.text.text);
}

const prompts = [
  'Once upon a time',
  'The little dog ran to the park and saw a big red ball. He',
  'Lily',
  'One day, a girl named Sue went to the store with her mom. They wanted to buy some',
  'Tom and',
];

test('mixed adapters (ranks 2, 8, 4; some on q/v only), the base model and sampling settings: the same text batched as alone, masked or grouped', async () => {
  const base = await stories();
  const adapters = [randomAdapter(base, 1, 2), randomAdapter(base, 2, 8, ['q_proj', 'v_proj']), randomAdapter(base, 3, 4)];
  const cases: Case[] = [
    { prompt: prompts[0], adapter: 0, options: { temperature: 0, maxOutputTokens: 40 } },
    { prompt: prompts[1], adapter: 1, options: { temperature: 0, maxOutputTokens: 30 } },
    { prompt: prompts[2], adapter: -1, options: { temperature: 0, maxOutputTokens: 50 } },
    { prompt: prompts[3], adapter: 2, options: { temperature: 0, maxOutputTokens: 20, stopSequences: ['.'] } },
    { prompt: prompts[4], adapter: 0, options: { temperature: 0.9, seed: 11, maxOutputTokens: 35 } },
    { prompt: prompts[0], adapter: 1, options: { temperature: 1.2, topK: 20, seed: 12, maxOutputTokens: 35 } },
    { prompt: prompts[1], adapter: -1, options: { temperature: 0.8, topP: 0.9, seed: 13, maxOutputTokens: 35 } },
    { prompt: prompts[2], adapter: 2, options: { temperature: 1, topK: 40, topP: 0.95, seed: 14, maxOutputTokens: 35 } },
  ];
  const expected = await alone(base, adapters, cases);
  assert.ok(new Set(expected).size >= 6, `the adapters and settings make different texts: ${JSON.stringify(expected)}`);

  for (const strategy of ['mask', 'group'] as const) {
    const { decoder, pool, stack } = newDecoder(base, adapters, 64, 16, strategy);
    const sequences = cases.map((c) => decoder.add(specOf(base, c))!);
    assert.deepEqual(drain(decoder, sequences), expected, strategy);
    assert.equal(pool.freeBlocks, pool.blocks, 'every block is back in the pool');
    stack.dispose();
    pool.dispose();
  }
});

test('sequences join between steps and leave when they finish; a late one decodes as it would alone', async () => {
  const base = await stories();
  const adapters = [randomAdapter(base, 4, 4), randomAdapter(base, 5, 8)];
  const cases: Case[] = prompts.map((prompt, i) => ({
    prompt,
    adapter: (i % 3) - 1,
    options: { temperature: i % 2 ? 0.7 : 0, seed: 100 + i, maxOutputTokens: 10 + 7 * i },
  }));
  const expected = await alone(base, adapters, cases);
  const { decoder, pool, stack } = newDecoder(base, adapters);
  const texts = new Map<number, string>();
  const pending = [...cases.entries()];
  const running = new Map<Sequence, number>();
  let step = 0;
  while (pending.length || decoder.size) {
    // One more sequence joins every third step, whatever the others are doing.
    if (pending.length && step % 3 === 0) {
      const [i, c] = pending.shift()!;
      running.set(decoder.add(specOf(base, c))!, i);
    }
    const sizeBefore = decoder.size;
    const outputs = decoder.step();
    assert.equal(outputs.length, sizeBefore, 'one token for every live sequence');
    for (const { sequence, finished } of outputs) {
      if (finished) texts.set(running.get(sequence)!, sequence.text.text);
    }
    step++;
  }
  assert.deepEqual(cases.map((_, i) => texts.get(i)), expected);
  assert.equal(pool.freeBlocks, pool.blocks);
  stack.dispose();
  pool.dispose();
});

test('the block pool: a sequence that does not fit waits (add answers undefined) until another leaves; removal frees at once', async () => {
  const base = await stories();
  const { decoder, pool, stack } = newDecoder(base, [], 6, 16);
  const spec = (maxOutputTokens: number): SequenceSpec => ({
    promptIds: base.tokenizer.encode(prompts[1]),
    adapterSlot: -1,
    sampling: { temperature: 0 },
    uniforms: uniformStream(0),
    maxOutputTokens,
  });
  assert.equal(decoder.blocksNeeded(spec(40).promptIds, 40), 4, 'prompt and output: 4 blocks of 16');
  const first = decoder.add(spec(40))!;
  assert.ok(first);
  assert.equal(pool.freeBlocks, 2);
  assert.equal(decoder.add(spec(40)), undefined, 'no room: the caller must wait');
  decoder.step();
  decoder.remove(first);
  assert.equal(pool.freeBlocks, 6, 'an abandoned sequence gives its blocks back at once');
  const second = decoder.add(spec(40));
  assert.ok(second);
  decoder.clear();
  assert.equal(pool.freeBlocks, 6);
  assert.throws(() => decoder.blocksNeeded(new Array(base.transformer.config.maxPositions).fill(1), 4), /context holds/);
  stack.dispose();
  pool.dispose();
});

test('every architecture (Llama, Llama 3, Qwen 2, Qwen 3, Gemma 3 with sliding windows): batched greedy tokens equal lone ones', async () => {
  const { tokenizer } = await stories();
  for (const name of ['llama-tiny', 'llama3-tiny', 'qwen2-tiny', 'qwen3-tiny', 'gemma3-tiny', 'gemma3-tiny-layer-types']) {
    const model = loadTransformer(repoPath('test', 'fixtures', 'models', name));
    const { vocabSize, numLayers, numKvHeads, headDim } = model.config;
    const promptsIds = [3, 7, 12].map((length, p) => Array.from({ length }, (_, i) => (p * 31 + i * 7 + 5) % vocabSize));
    const alone: number[][] = [];
    for (const promptIds of promptsIds) {
      const result = await generate(model, tokenizer, promptIds, { maxOutputTokens: 12, stopTokenIds: [] });
      alone.push(result.candidates[0].tokenIds);
    }
    const pool = new KvBlockPool({ layers: numLayers, kvHeads: numKvHeads, headDim }, 16, 4);
    const decoder = new BatchDecoder(model, tokenizer, pool);
    const sequences = promptsIds.map((promptIds) =>
      decoder.add({ promptIds, adapterSlot: -1, sampling: { temperature: 0 }, uniforms: uniformStream(0), maxOutputTokens: 12, stopTokenIds: [] })!,
    );
    drain(decoder, sequences);
    assert.deepEqual(sequences.map((s) => s.text.tokenIds), alone, name);
    pool.dispose();
  }
});

test('a step budget (vLLM max_num_batched_tokens): rows and prompts within it, prompts that do not fit wait, exempt prompts go past it, a lone prompt always goes; the text is unchanged', async () => {
  const base = await stories();
  const { decoder, pool, stack } = newDecoder(base, []);
  const caseOf = (prompt: string): Case => ({ prompt, adapter: -1, options: { temperature: 0, maxOutputTokens: 12 } });
  const spec = (prompt: string) => specOf(base, caseOf(prompt));
  const running = [prompts[0], prompts[2], prompts[4]].map((p) => decoder.add(spec(p))!);
  decoder.step();
  const long = decoder.add(spec(prompts[1]))!; // 16 tokens
  const short = decoder.add(spec(prompts[2]))!;
  const longTokens = long.spec.promptIds.length;
  assert.ok(longTokens > 8);

  decoder.step({ tokens: 8 });
  assert.deepEqual(decoder.lastStep, { decodeRows: 3, prefillTokens: 0 }, 'the long prompt does not fit the 5 tokens left, and the short one waits behind it');
  decoder.step({ tokens: 8, exempt: (s) => s === long });
  assert.deepEqual(decoder.lastStep, { decodeRows: 3, prefillTokens: longTokens }, 'an exempt prompt goes past the budget; nothing else fits after it');
  assert.equal(short.cached, 0);
  for (const s of running) decoder.remove(s);
  decoder.remove(long);
  decoder.step({ tokens: 1 });
  assert.deepEqual(decoder.lastStep, { decodeRows: 0, prefillTokens: short.spec.promptIds.length }, 'with nothing else to run, the first prompt goes whatever its length');
  while (decoder.size) decoder.step();

  // The long prompt, prefilled beside running rows under a budget, says what it says alone.
  const again = decoder.add(spec(prompts[1]))!;
  const others = [prompts[0], prompts[3]].map((p) => decoder.add(spec(p))!);
  decoder.step({ tokens: 2, exempt: (s) => s === again });
  assert.equal(others.filter((s) => s.cached > 0).length, 0, 'the others wait for a step with room');
  while (decoder.size) decoder.step();
  assert.deepEqual([again.text.text, short.text.text], await alone(base, [], [caseOf(prompts[1]), caseOf(prompts[2])]));
  assert.equal(pool.freeBlocks, pool.blocks);
  stack.dispose();
  pool.dispose();
});
