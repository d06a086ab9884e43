// Device and dtype: what `auto` picks and why, lean loading of bfloat16 and sharded checkpoints in any
// compute dtype, mixed-precision training (bfloat16 weights, float32 adapter and optimizer, float32
// PEFT files), and bad device/dtype names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, copyFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { float32BelowParameters, matmulProbe, multipliesIn, parseDevice, parseDtype, resolvePlacement, PlacementError } from '../src/engine/placement.js';
import { loadTransformer } from '../src/engine/model/load.js';
import { readSafetensors, writeSafetensors } from '../src/engine/io/safetensors.js';
import { LoraAdapter, loraConfig } from '../src/engine/lora/lora.js';
import { saveAdapter } from '../src/engine/lora/peft.js';
import { train } from '../src/engine/train/trainer.js';
import { cudaDeviceCount, ids, keep, noGrad, tidy, manualSeed, type Tensor } from '../src/engine/tensor/index.js';
import { logitsOf, maxAbs, maxAbsDiff, readSafetensorsHeader, repoPath, tempDir } from './helpers/engine.js';
import { IGNORE_INDEX } from '../src/engine/data/framing.js';

const fixture = (name: string) => repoPath('test', 'fixtures', 'models', name);

test('auto: the CPU when no GPU is visible; bfloat16 only where the probe measures it much faster, and float32 for tiny models', () => {
  if (cudaDeviceCount() > 0) return; // the GPU suite covers that machine
  const probe = matmulProbe('cpu');
  assert.ok(probe.float32 > 0 && probe.bfloat16 > 0, JSON.stringify(probe));
  const large = resolvePlacement({}, 1e9);
  assert.equal(large.device, 'cpu');
  assert.equal(large.dtype, probe.bfloat16 >= 2 * probe.float32 ? 'bfloat16' : 'float32');
  assert.match(large.reason, /no CUDA GPU is visible/);
  assert.match(large.reason, /bfloat16 matmuls run [\d.]+x as fast as float32 here/);
  const tiny = resolvePlacement({}, float32BelowParameters - 1);
  assert.equal(tiny.dtype, 'float32');
  assert.deepEqual(resolvePlacement({ device: 'cpu', dtype: 'bfloat16' }, 1e3), {
    device: 'cpu', dtype: 'bfloat16', reason: 'cpu (as asked), bfloat16 as asked',
  });
});

test('bad or unavailable devices and dtypes are refused with the accepted values', () => {
  assert.throws(() => parseDevice('gpu'), /unknown device 'gpu'; use auto, cpu, cuda or cuda:N/);
  assert.throws(() => parseDtype('fp8'), /unknown dtype 'fp8'; use auto, float32, bfloat16, float16/);
  assert.throws(() => resolvePlacement({ device: `cuda:${cudaDeviceCount()}` }), (e: Error) => e instanceof PlacementError && /is not available/.test(e.message));
});

test('a dtype this libtorch cannot multiply in on the device is refused up front, naming it and what to use', () => {
  assert.ok(multipliesIn('cpu', 'float32') && multipliesIn('cpu', 'bfloat16'));
  if (multipliesIn('cpu', 'float16')) {
    assert.equal(resolvePlacement({ device: 'cpu', dtype: 'float16' }).dtype, 'float16');
  } else {
    assert.throws(
      () => resolvePlacement({ device: 'cpu', dtype: 'float16' }),
      (e: Error) => e instanceof PlacementError && /^float16 is not available on cpu: this libtorch \(.+\) has no float16 matrix product there; use bfloat16 or float32$/.test(e.message),
    );
  }
});

/** A copy of a fixture with its weights in bfloat16, split over two shards listed in an index. */
function bf16ShardedCopy(source: string, dir: string): void {
  mkdirSync(dir, { recursive: true });
  copyFileSync(path.join(source, 'config.json'), path.join(dir, 'config.json'));
  const tensors = readSafetensors(path.join(source, 'model.safetensors'));
  const names = [...tensors.keys()].sort();
  const half = Math.floor(names.length / 2);
  const weightMap: Record<string, string> = {};
  for (const [i, part] of [names.slice(0, half), names.slice(half)].entries()) {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    writeSafetensors(path.join(dir, file), new Map(part.map((n) => [n, noGrad(() => tensors.get(n)!.to({ dtype: 'bfloat16' }))])));
    for (const n of part) weightMap[n] = file;
  }
  writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: weightMap }));
}

test('bfloat16 sharded checkpoints load in bfloat16 as they are, and in float32 by widening, with the same logits', (t) => {
  const dir = path.join(tempDir(t), 'llama3-bf16');
  bf16ShardedCopy(fixture('llama3-tiny'), dir);
  const header = readSafetensorsHeader(path.join(dir, 'model-00001-of-00002.safetensors')).header;
  assert.ok(Object.values(header).some((e) => typeof e === 'object' && 'dtype' in e && e.dtype === 'BF16'));
  const inBf16 = loadTransformer(dir, { dtype: 'bfloat16' });
  const inFloat32 = loadTransformer(dir, { dtype: 'float32' });
  assert.equal(inBf16.dtype, 'bfloat16');
  assert.equal(inBf16.weights.blocks[0].qkv!.parts[0].weight.dtype, 'bfloat16');
  assert.equal(inFloat32.dtype, 'float32');
  // The same bf16 values either way: widening them to float32 is exact.
  const widened = noGrad(() => tidy(() => inBf16.weights.blocks[1].down.weight.float().toFloat32Array()));
  assert.deepEqual(widened, inFloat32.weights.blocks[1].down.weight.toFloat32Array());
  const tokens = [1, 5, 9, 2, 7, 3];
  const reference = logitsOf(inFloat32, tokens);
  const mixed = logitsOf(inBf16, tokens);
  assert.ok(maxAbsDiff(reference, mixed) < 0.05 * Math.max(1, maxAbs(reference)), `bf16 logits stay close: ${maxAbsDiff(reference, mixed)}`);
});

test('mixed precision: bfloat16 weights train a float32 adapter with float32 moments, saved as float32 PEFT files', async (t) => {
  const model = loadTransformer(fixture('qwen3-tiny'), { dtype: 'bfloat16' });
  manualSeed(0);
  const adapter = LoraAdapter.create(model, loraConfig({ rank: 4 }));
  const examples = Array.from({ length: 4 }, (_, i) => {
    const tokens = Array.from({ length: 12 }, (_, j) => (i * 7 + j * 3) % model.config.vocabSize);
    return { ids: tokens.slice(0, -1), targets: tokens.slice(1).map((tk, j) => (j < 3 ? IGNORE_INDEX : tk)) };
  });
  const result = await train(model, adapter, examples, { epochs: 30, batchSize: 4, learningRate: 1e-2 });
  assert.ok(result.history.at(-1)!.loss < 0.5 * result.history[0].loss, `it learned: ${result.history[0].loss} → ${result.history.at(-1)!.loss}`);
  for (const p of adapter.parameters()) assert.equal(p.dtype, 'float32');
  for (const block of model.weights.blocks) assert.equal(block.q.weight.dtype, 'bfloat16', 'the base weights stay bfloat16');
  const dir = tempDir(t);
  saveAdapter(dir, adapter, 'qwen3-tiny');
  const saved = readSafetensorsHeader(path.join(dir, 'adapter_model.safetensors')).header;
  const dtypes = new Set(Object.entries(saved).filter(([k]) => k !== '__metadata__').map(([, e]) => (e as { dtype: string }).dtype));
  assert.deepEqual([...dtypes], ['F32']);
  LoraAdapter.detach(model);
  adapter.dispose();
});

test('a weight of the wrong shape, or an index naming a file outside the model, is refused', (t) => {
  const dir = path.join(tempDir(t), 'bad');
  bf16ShardedCopy(fixture('llama3-tiny'), dir);
  writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { 'model.norm.weight': '../x.safetensors' } }));
  assert.throws(() => loadTransformer(dir), /weight_map must name \.safetensors files in/);
  const one: Tensor = keep(ids([1, 2, 3]).float());
  const file = path.join(dir, 'model.safetensors');
  writeFileSync(path.join(dir, 'model.safetensors.index.json'), '{}');
  const tensors = readSafetensors(path.join(fixture('llama3-tiny'), 'model.safetensors'));
  tensors.set('model.norm.weight', one);
  writeSafetensors(file, tensors);
  assert.throws(() => loadTransformer(dir), /model\.norm\.weight has shape \[3\], not the model's \[\d+\]/);
});
