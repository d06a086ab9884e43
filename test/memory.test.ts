// Native memory: long training leaks no tensor handles and little RSS; whole runs and generation
// give back every handle they made, and a freed weight its memory, without waiting for the garbage collector.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { train } from '../src/engine/train/trainer.js';
import { LoraAdapter, loraConfig } from '../src/engine/lora/lora.js';
import { chooseFraming, frameExample, type FramedExample } from '../src/engine/data/framing.js';
import { generate } from '../src/engine/generate/generate.js';
import { mkdtempSync, rmSync, statSync, truncateSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { empty, liveTensorCount, mallocTrim, manualSeed, randn } from '../src/engine/tensor/index.js';
import { ModelWeightFiles, writeSafetensors } from '../src/engine/io/safetensors.js';
import type { BaseModel } from '../src/engine/base-model.js';
import { loadStories, numberExamples, settleGarbage, storyPrompt } from './helpers/engine.js';

let shared: Promise<BaseModel> | undefined;
const stories = () => (shared ??= loadStories());

async function framedSubset(count: number): Promise<FramedExample[]> {
  const { tokenizer } = await stories();
  const examples = numberExamples().slice(0, count);
  const framing = chooseFraming(tokenizer, examples);
  return examples.map((e) => frameExample(tokenizer, framing, e));
}

const MB = 1024 * 1024;

test('300 training steps: the live tensor count stays at its step-1 value and RSS barely grows', async () => {
  const { transformer } = await stories();
  const data = await framedSubset(4);
  manualSeed(0);
  const adapter = LoraAdapter.create(transformer, loraConfig());
  const counts: number[] = [];
  const rss = new Map<number, number>();
  await settleGarbage();
  try {
    const result = await train(transformer, adapter, data, {
      epochs: 300,
      batchSize: 4,
      onStep: (m) => {
        counts.push(liveTensorCount());
        if (m.step === 50 || m.step === 300) rss.set(m.step, process.memoryUsage.rss());
      },
    });
    assert.equal(result.completedSteps, 300);
    assert.ok(result.history.at(-1)!.loss < result.history[0].loss, 'it trained');
  } finally {
    LoraAdapter.detach(transformer);
    adapter.dispose();
  }
  assert.equal(counts.length, 300);
  const changed = counts.map((c, i) => [i + 1, c] as const).filter(([, c]) => c !== counts[0]);
  assert.deepEqual(changed, [], `live tensors after step 1: ${counts[0]}; steps where it differs: ${JSON.stringify(changed.slice(0, 10))}`);
  const growth = rss.get(300)! - rss.get(50)!;
  assert.ok(growth < 50 * MB, `RSS grew by ${(growth / MB).toFixed(1)} MB between steps 50 and 300`);
});

// AdamW keeps its two moment tensors per parameter (keep()) and has no dispose(); train() drops
// the optimizer without freeing them, so every run leaves 2 × (adapter tensors) native handles for
// the garbage collector (on a GPU, device memory that the GC is not told about).
test('a training run gives back every tensor it made once its adapter is disposed', async () => {
  const { transformer } = await stories();
  const data = await framedSubset(4);
  await settleGarbage();
  const before = liveTensorCount();
  const adapter = LoraAdapter.create(transformer, loraConfig({ rank: 2 }));
  try {
    await train(transformer, adapter, data, { epochs: 2, batchSize: 4 });
  } finally {
    LoraAdapter.detach(transformer);
    adapter.dispose();
  }
  assert.equal(liveTensorCount(), before, `${liveTensorCount() - before} native tensors outlive the run`);
});

// Generation makes its token-id tensors outside any tidy() scope (and tensor() leaves a float64
// staging copy of each), reads sampled ids back through an untracked tensor, and never disposes
// the logits computed after the last token of a MAX_TOKENS run.
test('generation gives back every tensor it made', async () => {
  const { transformer, tokenizer } = await stories();
  const prompt = tokenizer.encode(storyPrompt);
  await generate(transformer, tokenizer, prompt, { maxOutputTokens: 2 }); // warm up
  await settleGarbage();
  const before = liveTensorCount();
  const result = await generate(transformer, tokenizer, prompt, { maxOutputTokens: 40, candidateCount: 2, temperature: 1, seed: 1 });
  assert.ok(result.candidatesTokenCount > 0);
  assert.equal(liveTensorCount(), before, `${liveTensorCount() - before} native tensors outlive one generate() call`);
});

test('repeated generation does not grow RSS', async () => {
  const { transformer, tokenizer } = await stories();
  const prompt = tokenizer.encode(storyPrompt);
  const once = () => generate(transformer, tokenizer, prompt, { maxOutputTokens: 100 });
  for (let i = 0; i < 3; i++) await once();
  await settleGarbage();
  const start = process.memoryUsage.rss();
  for (let i = 0; i < 20; i++) await once();
  await settleGarbage();
  const growth = process.memoryUsage.rss() - start;
  assert.ok(growth < 30 * MB, `RSS grew by ${(growth / MB).toFixed(1)} MB over 20 generations`);
});

// Reading a weight used to go through a Buffer over the tensor's memory, which pinned it until the
// garbage collector got round to the Buffer: a freed weight (or a weight swapped for its AMX tiles)
// kept its memory all the same. The read now goes straight into the tensor.
test('a weight read from a checkpoint gives its memory back as soon as it is freed', (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'attune-read-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const written = randn([2048, 8192], { dtype: 'bfloat16' }); // 32 MiB
  writeSafetensors(path.join(dir, 'model.safetensors'), new Map([['w', written]]));
  const files = ModelWeightFiles.open(dir);
  try {
    const read = empty([2048, 8192], { dtype: 'bfloat16' });
    files.readInto('w', read);
    assert.equal(read.sub(written).abs().amax([0, 1]).item(), 0, 'the bytes read are the bytes written');
    written.dispose();
    mallocTrim();
    const holding = process.memoryUsage.rss();
    read.dispose();
    mallocTrim();
    const released = holding - process.memoryUsage.rss();
    assert.ok(released > 24 * MB, `freeing the 32 MiB weight gave back only ${(released / MB).toFixed(1)} MB`);
  } finally {
    files.close();
  }
});

test('a checkpoint cut short is refused by name', (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'attune-read-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'model.safetensors');
  writeSafetensors(file, new Map([['w', randn([64, 64], { dtype: 'bfloat16' })]]));
  truncateSync(file, statSync(file).size - 100);
  assert.throws(() => {
    const files = ModelWeightFiles.open(dir);
    try {
      files.readInto('w', empty([64, 64], { dtype: 'bfloat16' }));
    } finally {
      files.close();
    }
  }, /model\.safetensors/);
});
