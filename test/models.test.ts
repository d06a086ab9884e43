// Llama (llama3 RoPE scaling, untied head), Qwen2 (qkv biases), Qwen3 (q/k norms) and Gemma 3 (sliding
// window, local RoPE, (1+w) norms, softcapping) against a PyTorch transcription of Hugging Face's modeling
// code on random weights (test/fixtures/make_reference.py): logits to 1e-4, and KV-cached greedy decoding
// equal to full recomputation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../src/engine/package-root.js';
import { loadTransformer } from '../src/engine/model/load.js';
import { readSafetensors } from '../src/engine/io/safetensors.js';
import { KvCache } from '../src/engine/model/kv-cache.js';
import { ids, noGrad, tidy } from '../src/engine/tensor/index.js';

const fixtures = path.join(packageRoot, 'test', 'fixtures', 'models');

for (const name of readdirSync(fixtures)) {
  const dir = path.join(fixtures, name);

  test(`${name}: logits match the PyTorch transcription of Hugging Face to 1e-4`, () => {
    const model = loadTransformer(dir);
    const reference = readSafetensors(path.join(dir, 'reference.safetensors'));
    const input = reference.get('input_ids')!;
    const expected = reference.get('logits')!.toFloat32Array();
    const actual = noGrad(() => tidy(() => model.forward(input).toFloat32Array()));
    assert.equal(actual.length, expected.length);
    let worst = 0;
    for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
    assert.ok(worst < 1e-4, `largest logit difference ${worst}`);
  });

  test(`${name}: KV-cached greedy decoding reproduces the reference's full recomputation`, () => {
    const model = loadTransformer(dir);
    const reference = readSafetensors(path.join(dir, 'reference.safetensors'));
    const [rows, promptLength] = reference.get('input_ids')!.shape;
    const generated = reference.get('generated_ids')!;
    const total = generated.size(1);
    const expected = generated.toNumbers();
    const prompts = reference.get('input_ids')!.toNumbers();
    const { numLayers, numKvHeads, headDim } = model.config;
    const cache = new KvCache(numLayers, rows, numKvHeads, total, headDim);
    const produced: number[][] = Array.from({ length: rows }, (_, r) => prompts.slice(r * promptLength, (r + 1) * promptLength));
    noGrad(() => {
      let step = produced.map((row) => [...row]);
      while (produced[0].length < total) {
        const next = tidy(() => {
          const logits = model.forward(ids(step.flat(), [rows, step[0].length]), { cache });
          return logits.select(1, step[0].length - 1).argmax(-1).toNumbers();
        });
        next.forEach((t, r) => produced[r].push(t));
        step = next.map((t) => [t]);
      }
    });
    cache.dispose();
    assert.deepEqual(produced.flat(), expected);
  });
}
