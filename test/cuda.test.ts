// The GPU path, where the addon is built against a CUDA libtorch and a GPU is visible (skipped otherwise):
// auto picks the GPU, logits agree with the CPU's, bfloat16 training learns, memory is measured.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cudaDeviceCount, cudaMemory, manualSeed } from '../src/engine/tensor/index.js';
import { resolvePlacement } from '../src/engine/placement.js';
import { loadTransformer } from '../src/engine/model/load.js';
import { LoraAdapter, loraConfig } from '../src/engine/lora/lora.js';
import { train } from '../src/engine/train/trainer.js';
import { planTraining } from '../src/engine/train/memory-plan.js';
import { IGNORE_INDEX } from '../src/engine/data/framing.js';
import { logitsOf, maxAbs, maxAbsDiff, repoPath } from './helpers/engine.js';

const gpus = cudaDeviceCount();
const skip = gpus === 0 ? 'no CUDA GPU is visible (or the addon is built against a CPU libtorch)' : false;
const fixture = (name: string) => repoPath('test', 'fixtures', 'models', name);

test('auto places a model on the GPU, in bfloat16 where its matmuls are much faster', { skip }, () => {
  const placement = resolvePlacement({}, 1e9);
  assert.equal(placement.device, 'cuda:0');
  assert.match(placement.reason, /a CUDA GPU is visible/);
  const memory = cudaMemory(0);
  assert.ok(memory && memory.totalBytes > 0 && memory.freeBytes <= memory.totalBytes, JSON.stringify(memory));
});

test('the GPU gives the CPU logits (float32)', { skip }, () => {
  const tokens = [1, 5, 9, 2, 7, 3];
  const cpu = logitsOf(loadTransformer(fixture('gemma3-tiny')), tokens);
  const onGpu = logitsOf(loadTransformer(fixture('gemma3-tiny'), { device: 'cuda' }), tokens);
  assert.ok(maxAbsDiff(cpu, onGpu) < 1e-3 * Math.max(1, maxAbs(cpu)));
});

test('bfloat16 LoRA training on the GPU learns, with a plan made from the GPU memory', { skip }, async () => {
  const model = loadTransformer(fixture('llama3-tiny'), { device: 'cuda', dtype: 'bfloat16' });
  manualSeed(0);
  const adapter = LoraAdapter.create(model, loraConfig({ rank: 4 }));
  const examples = Array.from({ length: 4 }, (_, i) => {
    const tokens = Array.from({ length: 12 }, (_, j) => (i * 7 + j * 3) % model.config.vocabSize);
    return { ids: tokens.slice(0, -1), targets: tokens.slice(1).map((t, j) => (j < 3 ? IGNORE_INDEX : t)) };
  });
  const plan = planTraining({ config: model.config, dtype: 'bfloat16', device: 'cuda:0', rank: 4, lengths: examples.map((e) => e.ids.length) });
  assert.ok(plan.fits, plan.summary);
  const result = await train(model, adapter, examples, { epochs: 30, batchSize: 4, learningRate: 1e-2, stepPlan: plan.step });
  assert.ok(result.history.at(-1)!.loss < 0.5 * result.history[0].loss);
  assert.equal(adapter.parameters()[0].device, 'cuda:0');
  LoraAdapter.detach(model);
  adapter.dispose();
});
