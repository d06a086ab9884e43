// LoRA adapters on stories260K: a fresh adapter is a no-op, merge/unmerge agree with the attached
// adapter, the PEFT files have exactly PEFT's layout, and loading them back gives identical logits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { LoraAdapter, adapterSizeRanks, allProjectionModules, loraConfig } from '../src/engine/lora/lora.js';
import { adapterFiles, loadAdapter, saveAdapter } from '../src/engine/lora/peft.js';
import { loadTunedAdapter, saveTunedAdapter } from '../src/engine/lora/tuned-adapter.js';
import { parseModelConfig } from '../src/engine/model/config.js';
import { manualSeed, noGrad } from '../src/engine/tensor/index.js';
import type { BaseModel } from '../src/engine/base-model.js';
import {
  embeddedBaseModelDir,
  entryFloats,
  loadStories,
  logitsOf,
  maxAbs,
  maxAbsDiff,
  softmaxRows,
  readSafetensorsHeader,
  storyPrompt,
  tempDir,
} from './helpers/engine.js';

const config = parseModelConfig(JSON.parse(readFileSync(path.join(embeddedBaseModelDir, 'config.json'), 'utf8')));
/** [in, out] of each projection, from config.json. */
const projectionShapes: Record<string, [string, number, number]> = {
  q_proj: ['self_attn', config.hiddenSize, config.numHeads * config.headDim],
  k_proj: ['self_attn', config.hiddenSize, config.numKvHeads * config.headDim],
  v_proj: ['self_attn', config.hiddenSize, config.numKvHeads * config.headDim],
  o_proj: ['self_attn', config.numHeads * config.headDim, config.hiddenSize],
  gate_proj: ['mlp', config.hiddenSize, config.intermediateSize],
  up_proj: ['mlp', config.hiddenSize, config.intermediateSize],
  down_proj: ['mlp', config.intermediateSize, config.hiddenSize],
};

let shared: Promise<BaseModel> | undefined;
const stories = () => (shared ??= loadStories());
const promptIds = async () => (await stories()).tokenizer.encode(storyPrompt);

/** Gives every B a random value, so that the adapter changes the model's output. */
function perturb(adapter: LoraAdapter, std = 0.05): void {
  noGrad(() => {
    for (const { b } of adapter.weights.values()) b.normal_(0, std);
  });
}

test('adapterSizeRanks maps ADAPTER_SIZE_ONE..THIRTY_TWO to ranks 1..32', () => {
  assert.deepEqual(adapterSizeRanks, {
    ADAPTER_SIZE_ONE: 1,
    ADAPTER_SIZE_TWO: 2,
    ADAPTER_SIZE_FOUR: 4,
    ADAPTER_SIZE_EIGHT: 8,
    ADAPTER_SIZE_SIXTEEN: 16,
    ADAPTER_SIZE_THIRTY_TWO: 32,
  });
});

test('loraConfig defaults and validation', () => {
  assert.deepEqual(loraConfig(), { rank: 8, alpha: 16, dropout: 0, targetModules: allProjectionModules });
  assert.deepEqual(loraConfig({ rank: 4 }).alpha, 8);
  assert.deepEqual(allProjectionModules, ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);
  assert.throws(() => loraConfig({ rank: 0 }), /LoRA rank must be a positive integer, not 0/);
  assert.throws(() => loraConfig({ rank: 2.5 }), /positive integer/);
  assert.throws(() => loraConfig({ targetModules: ['q_proj', 'lm_head'] }), /unknown LoRA target modules: lm_head/);
});

test('a fresh adapter (B = 0) leaves the logits unchanged', async () => {
  const { transformer } = await stories();
  const tokens = await promptIds();
  const base = logitsOf(transformer, tokens);
  manualSeed(3);
  const adapter = LoraAdapter.create(transformer, loraConfig({ rank: 4 }));
  try {
    assert.equal(adapter.weights.size, config.numLayers * 7);
    for (const [module, { a, b, scale }] of adapter.weights) {
      const [, inFeatures] = projectionShapes[module.split('.').at(-1)!];
      assert.deepEqual(b.toNumbers(), new Array(b.numel).fill(0), `${module} B starts at zero`);
      const bound = 1 / Math.sqrt(inFeatures);
      const values = a.toNumbers();
      assert.ok(values.every((v) => Math.abs(v) <= bound), `${module} A within ±1/√in`);
      assert.ok(values.some((v) => v !== 0), `${module} A is not zero`);
      assert.equal(scale, 2);
    }
    adapter.attach(transformer);
    // B = 0 adds exact zeros; only the memory layout of the projections' outputs changes, which may
    // reorder float32 sums: at most rounding, relative to the largest logit.
    const attached = logitsOf(transformer, tokens);
    assert.ok(maxAbsDiff(attached, base) / maxAbs(base) < 1e-6, `logits moved by ${maxAbsDiff(attached, base)}`);
  } finally {
    LoraAdapter.detach(transformer);
    adapter.dispose();
  }
});

test('merge() equals the attached adapter, and unmerge() restores the base logits', async () => {
  const { transformer } = await stories();
  const tokens = await promptIds();
  const base = logitsOf(transformer, tokens);
  manualSeed(4);
  const adapter = LoraAdapter.create(transformer, loraConfig({ rank: 8 }));
  try {
    perturb(adapter);
    adapter.attach(transformer);
    const attached = logitsOf(transformer, tokens);
    assert.ok(maxAbsDiff(attached, base) > 0.05, `the perturbed adapter changes the logits (by ${maxAbsDiff(attached, base)})`);
    LoraAdapter.detach(transformer);
    assert.equal(maxAbsDiff(logitsOf(transformer, tokens), base), 0, 'detach() restores the base model');

    // Folding W + s·BA rounds each weight in float32, so merged logits differ from the attached
    // adapter's by float32 rounding only: within 1e-5 relative to the largest logit (|logits| reach
    // about 20 here, where one float32 ulp is 2e-6), and within 1e-5 absolute as probabilities.
    const vocab = config.vocabSize;
    const close = (actual: Float32Array, expected: Float32Array, what: string) => {
      const relative = maxAbsDiff(actual, expected) / maxAbs(expected);
      assert.ok(relative < 1e-5, `${what}: logits differ by ${maxAbsDiff(actual, expected)} (relative ${relative})`);
      const probabilities = maxAbsDiff(softmaxRows(actual, vocab), softmaxRows(expected, vocab));
      assert.ok(probabilities < 1e-5, `${what}: probabilities differ by ${probabilities}`);
    };
    adapter.merge(transformer);
    const merged = logitsOf(transformer, tokens);
    close(merged, attached, 'merged vs attached');
    assert.ok(maxAbsDiff(merged, base) > 0.05, 'merging changed the base weights');
    adapter.unmerge(transformer);
    const restored = logitsOf(transformer, tokens);
    close(restored, base, 'unmerged vs base');
  } finally {
    LoraAdapter.detach(transformer);
    adapter.dispose();
  }
});

test('only the target modules get an adapter', async () => {
  const { transformer } = await stories();
  const adapter = LoraAdapter.create(transformer, loraConfig({ rank: 2, targetModules: ['q_proj', 'v_proj'] }));
  try {
    const modules = [...adapter.weights.keys()];
    assert.equal(modules.length, config.numLayers * 2);
    assert.ok(modules.every((m) => /^model\.layers\.\d+\.self_attn\.[qv]_proj$/.test(m)), modules.join(', '));
    adapter.attach(transformer);
    const attached = [...transformer.linears()].filter(([, linear]) => linear.lora !== null).map(([p]) => p);
    assert.deepEqual(attached.sort(), modules.sort());
  } finally {
    LoraAdapter.detach(transformer);
    adapter.dispose();
  }
});

test('saveAdapter writes PEFT adapter_config.json and adapter_model.safetensors', async (t) => {
  const { transformer } = await stories();
  const dir = tempDir(t);
  const rank = 4;
  manualSeed(5);
  const adapter = LoraAdapter.create(transformer, loraConfig({ rank, alpha: 12 }));
  try {
    perturb(adapter);
    saveAdapter(dir, adapter, 'stories260K');

    const peft = JSON.parse(readFileSync(path.join(dir, 'adapter_config.json'), 'utf8'));
    assert.equal(peft.peft_type, 'LORA');
    assert.equal(peft.task_type, 'CAUSAL_LM');
    assert.equal(peft.base_model_name_or_path, 'stories260K');
    assert.equal(peft.r, rank);
    assert.equal(peft.lora_alpha, 12);
    assert.equal(peft.lora_dropout, 0);
    assert.deepEqual(peft.target_modules, ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);
    assert.equal(peft.bias, 'none');
    assert.equal(peft.fan_in_fan_out, false);
    assert.equal(peft.use_dora, false);
    assert.equal(peft.use_rslora, false);
    assert.equal(peft.inference_mode, true);
    assert.equal(peft.modules_to_save, null);

    const file = path.join(dir, 'adapter_model.safetensors');
    const { headerLength, header, data, bytes } = readSafetensorsHeader(file);
    assert.equal((8 + headerLength) % 8, 0, 'tensor data starts 8-byte aligned');
    assert.deepEqual(header.__metadata__, { format: 'pt' });
    const expectedKeys: string[] = [];
    for (let i = 0; i < config.numLayers; i++) {
      for (const [module, [group]] of Object.entries(projectionShapes)) {
        for (const ab of ['A', 'B']) expectedKeys.push(`base_model.model.model.layers.${i}.${group}.${module}.lora_${ab}.weight`);
      }
    }
    const keys = Object.keys(header).filter((k) => k !== '__metadata__');
    assert.deepEqual([...keys].sort(), [...expectedKeys].sort());

    let end = 0;
    for (const key of keys) {
      const entry = header[key];
      const module = key.match(/\.(\w+_proj)\.lora_/)![1];
      const [, inFeatures, outFeatures] = projectionShapes[module];
      const expectedShape = key.includes('lora_A') ? [rank, inFeatures] : [outFeatures, rank];
      assert.equal(entry.dtype, 'F32', key);
      assert.deepEqual(entry.shape, expectedShape, key);
      const [begin, stop] = entry.data_offsets;
      assert.equal(stop - begin, expectedShape[0] * expectedShape[1] * 4, `${key} byte length`);
      end = Math.max(end, stop);
      // The stored values are the adapter's.
      const layerModule = key.slice('base_model.model.'.length, key.indexOf('.lora_'));
      const weights = adapter.weights.get(layerModule)!;
      const tensor = key.includes('lora_A') ? weights.a : weights.b;
      assert.deepEqual(Array.from(entryFloats(data, entry)), Array.from(tensor.toFloat32Array()), `${key} values`);
    }
    assert.equal(bytes.length, 8 + headerLength + end, 'no bytes after the last tensor');
  } finally {
    adapter.dispose();
  }
});

test('loadAdapter round trip gives identical logits', async (t) => {
  const { transformer } = await stories();
  const tokens = await promptIds();
  const dir = tempDir(t);
  manualSeed(6);
  const adapter = LoraAdapter.create(transformer, loraConfig({ rank: 8, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'down_proj'] }));
  let loaded: LoraAdapter | undefined;
  try {
    perturb(adapter);
    adapter.attach(transformer);
    const before = logitsOf(transformer, tokens);
    LoraAdapter.detach(transformer);
    saveAdapter(dir, adapter, embeddedBaseModelDir);

    loaded = loadAdapter(dir, transformer);
    assert.deepEqual(loaded.config, adapter.config);
    assert.deepEqual([...loaded.weights.keys()].sort(), [...adapter.weights.keys()].sort());
    for (const [module, { a, b, scale }] of loaded.weights) {
      const original = adapter.weights.get(module)!;
      assert.deepEqual(a.toNumbers(), original.a.toNumbers(), `${module} A`);
      assert.deepEqual(b.toNumbers(), original.b.toNumbers(), `${module} B`);
      assert.equal(scale, original.scale);
    }
    loaded.attach(transformer);
    const after = logitsOf(transformer, tokens);
    assert.equal(maxAbsDiff(after, before), 0, 'identical logits');
  } finally {
    LoraAdapter.detach(transformer);
    adapter.dispose();
    loaded?.dispose();
  }
});

test('a tuned adapter directory records base model and framing, and loads back', async (t) => {
  const { transformer } = await stories();
  const dir = tempDir(t);
  const adapter = LoraAdapter.create(transformer, loraConfig({ rank: 1 }));
  try {
    saveTunedAdapter(dir, adapter, { baseModel: embeddedBaseModelDir, framing: { kind: 'plain', terminator: '\n' }, training: { epochs: 1 } });
    for (const file of [adapterFiles.config, adapterFiles.weights, 'attune.json']) assert.ok(existsSync(path.join(dir, file)), file);
    const { adapter: loaded, record } = loadTunedAdapter(dir, transformer);
    assert.deepEqual(record, { baseModel: embeddedBaseModelDir, framing: { kind: 'plain', terminator: '\n' }, training: { epochs: 1 } });
    assert.equal(loaded.config.rank, 1);
    loaded.dispose();
    // A bad framing record is refused.
    writeFileSync(path.join(dir, 'attune.json'), '{"framing": {"kind": "bogus"}}');
    assert.throws(() => loadTunedAdapter(dir, transformer), /invalid framing descriptor/);
    // Without attune.json it is a plain PEFT adapter, with no record.
    rmSync(path.join(dir, 'attune.json'));
    const plain = loadTunedAdapter(dir, transformer);
    assert.equal(plain.record, undefined);
    plain.adapter.dispose();
  } finally {
    adapter.dispose();
  }
});

test('PEFT use_rslora scales by alpha / √r', async (t) => {
  const { transformer } = await stories();
  const dir = tempDir(t);
  const adapter = LoraAdapter.create(transformer, loraConfig({ rank: 4, alpha: 8 }));
  try {
    saveAdapter(dir, adapter, 'x');
    const file = path.join(dir, adapterFiles.config);
    writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), use_rslora: true }));
    const loaded = loadAdapter(dir, transformer);
    assert.ok([...loaded.weights.values()].every((w) => w.scale === 8 / 2));
    loaded.dispose();
  } finally {
    adapter.dispose();
  }
});
