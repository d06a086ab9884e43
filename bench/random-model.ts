// A Hugging Face model directory with random weights (std 0.02, norms 1) for a benchmark shape:
// config.json plus safetensors in the real checkpoint's dtype, sharded as the real checkpoint is, so
// the benchmark loads it exactly as it would load the real model. Written once per shape and reused.
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { noGrad, ones, randn, manualSeed } from '../src/engine/tensor/index.js';
import { writeSafetensors, type DeferredTensor } from '../src/engine/io/safetensors.js';
import { parseModelConfig } from '../src/engine/model/config.js';
import type { BenchShape } from './shapes.js';

const bytesPer = { float32: 4, bfloat16: 2 } as const;

/** The directory of the shape's random model, written first if it is not there yet. */
export function randomModelDir(shape: BenchShape, root = path.join(os.tmpdir(), 'attune-bench-models')): string {
  const dir = path.join(root, `${shape.name}-${shape.fileDtype}`);
  const done = path.join(dir, '.complete');
  if (existsSync(done)) return dir;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  writeRandomModel(shape, dir);
  writeFileSync(done, '');
  return dir;
}

function writeRandomModel(shape: BenchShape, dir: string): void {
  const raw = shape.config;
  const config = parseModelConfig(raw);
  const dtype = shape.fileDtype;
  manualSeed(0);
  const matrix = (rows: number, cols: number): DeferredTensor => ({
    dtype, shape: [rows, cols], make: () => noGrad(() => randn([rows, cols], { dtype }).mul_(0.02)),
  });
  const vector = (size: number, value: 'ones' | 'random'): DeferredTensor => ({
    dtype, shape: [size], make: () => noGrad(() => (value === 'ones' ? ones([size], { dtype }) : randn([size], { dtype }).mul_(0.02))),
  });
  const { hiddenSize: d, intermediateSize: ff, numHeads: H, numKvHeads: K, headDim: D, vocabSize: V } = config;
  const tensors = new Map<string, DeferredTensor>();
  tensors.set('model.embed_tokens.weight', matrix(V, d));
  for (let i = 0; i < config.numLayers; i++) {
    const p = `model.layers.${i}`;
    tensors.set(`${p}.input_layernorm.weight`, vector(d, 'ones'));
    tensors.set(`${p}.post_attention_layernorm.weight`, vector(d, 'ones'));
    for (const [name, rows, cols] of [['q_proj', H * D, d], ['k_proj', K * D, d], ['v_proj', K * D, d], ['o_proj', d, H * D]] as const) {
      tensors.set(`${p}.self_attn.${name}.weight`, matrix(rows, cols));
      if (config.attentionBias && name !== 'o_proj') tensors.set(`${p}.self_attn.${name}.bias`, vector(rows, 'random'));
    }
    tensors.set(`${p}.mlp.gate_proj.weight`, matrix(ff, d));
    tensors.set(`${p}.mlp.up_proj.weight`, matrix(ff, d));
    tensors.set(`${p}.mlp.down_proj.weight`, matrix(d, ff));
  }
  tensors.set('model.norm.weight', vector(d, 'ones'));
  if (!config.tieWordEmbeddings) tensors.set('lm_head.weight', matrix(V, d));

  writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...raw, torch_dtype: dtype }, null, 2));
  const shards = shard(tensors, shape.shardBytes ?? Infinity);
  if (shards.length === 1) {
    writeSafetensors(path.join(dir, 'model.safetensors'), tensors, { format: 'pt' });
    return;
  }
  const weightMap: Record<string, string> = {};
  let total = 0;
  for (const [i, names] of shards.entries()) {
    const file = `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
    writeSafetensors(path.join(dir, file), new Map(names.map((n) => [n, tensors.get(n)!])), { format: 'pt' });
    for (const n of names) {
      weightMap[n] = file;
      total += tensors.get(n)!.shape.reduce((a, b) => a * b, 1) * bytesPer[dtype];
    }
  }
  writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2));
}

/** Consecutive tensors grouped into shards of at most maxBytes each (a larger tensor gets its own). */
function shard(tensors: Map<string, DeferredTensor>, maxBytes: number): string[][] {
  const shards: string[][] = [[]];
  let size = 0;
  for (const [name, t] of tensors) {
    const bytes = t.shape.reduce((a, b) => a * b, 1) * bytesPer[t.dtype as 'float32' | 'bfloat16'];
    if (size + bytes > maxBytes && shards.at(-1)!.length) {
      shards.push([]);
      size = 0;
    }
    shards.at(-1)!.push(name);
    size += bytes;
  }
  return shards;
}
