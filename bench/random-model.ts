// A Hugging Face model directory with random weights (std 0.02, norms 1) for a benchmark shape:
// config.json plus safetensors in the real checkpoint's dtype, sharded as the real checkpoint is, so
// the benchmark loads it exactly as it would load the real model. Written once per shape and reused.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { noGrad, ones, randn, manualSeed, tidy, type Tensor } from '../src/engine/tensor/index.js';
import { writeSafetensorsEntries, type SafetensorsEntry } from '../src/engine/io/safetensors.js';
import { parseModelConfig } from '../src/engine/model/config.js';
import { benchShapes, type BenchShape } from './shapes.js';

const bytesPer = { float32: 4, bfloat16: 2 } as const;

const defaultRoot = path.join(os.tmpdir(), 'attune-bench-models');
const thisFile = fileURLToPath(import.meta.url);

/**
 * The directory of the shape's random model, written first if it is not there yet. The writing runs in a
 * child process: the written tensors' buffers are freed only when the garbage collector gets to them, and at
 * 8B they were still held when the caller went on to load the model (24 GiB, killed for memory).
 */
export function randomModelDir(shape: BenchShape, root = defaultRoot): string {
  const dir = path.join(root, `${shape.name}-${shape.fileDtype}`);
  if (existsSync(path.join(dir, '.complete'))) return dir;
  if (!benchShapes.includes(shape)) return writeModelDir(shape, root); // a shape the child could not look up by name
  const child = spawnSync(process.execPath, [thisFile, shape.name, root], { stdio: 'inherit' });
  if (child.status !== 0) throw new Error(`writing the random ${shape.name} model failed (${child.signal ?? `exit ${child.status}`})`);
  return dir;
}

function writeModelDir(shape: BenchShape, root: string): string {
  const dir = path.join(root, `${shape.name}-${shape.fileDtype}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  writeRandomModel(shape, dir);
  writeFileSync(path.join(dir, '.complete'), '');
  return dir;
}

if (process.argv[1] === thisFile) {
  const [name, root] = process.argv.slice(2);
  writeModelDir(benchShapes.find((s) => s.name === name)!, root);
}

function writeRandomModel(shape: BenchShape, dir: string): void {
  const raw = shape.config;
  const config = parseModelConfig(raw);
  const dtype = shape.fileDtype;
  manualSeed(0);
  // Each tensor is made only when its bytes are written, so the file never needs all of them at once.
  const made = (name: string, shape: number[], make: () => Tensor): SafetensorsEntry => ({
    name, dtype, shape, data: () => tidy(() => Buffer.from(noGrad(make).toBuffer())),
  });
  const matrix = (name: string, rows: number, cols: number) => made(name, [rows, cols], () => randn([rows, cols], { dtype }).mul_(0.02));
  const vector = (name: string, size: number, value: 'ones' | 'random') =>
    made(name, [size], () => (value === 'ones' ? ones([size], { dtype }) : randn([size], { dtype }).mul_(0.02)));
  const { hiddenSize: d, intermediateSize: ff, numHeads: H, numKvHeads: K, headDim: D, vocabSize: V } = config;
  const tensors: SafetensorsEntry[] = [];
  tensors.push(matrix('model.embed_tokens.weight', V, d));
  for (let i = 0; i < config.numLayers; i++) {
    const p = `model.layers.${i}`;
    tensors.push(vector(`${p}.input_layernorm.weight`, d, 'ones'));
    tensors.push(vector(`${p}.post_attention_layernorm.weight`, d, 'ones'));
    for (const [name, rows, cols] of [['q_proj', H * D, d], ['k_proj', K * D, d], ['v_proj', K * D, d], ['o_proj', d, H * D]] as const) {
      tensors.push(matrix(`${p}.self_attn.${name}.weight`, rows, cols));
      if (config.attentionBias && name !== 'o_proj') tensors.push(vector(`${p}.self_attn.${name}.bias`, rows, 'random'));
    }
    tensors.push(matrix(`${p}.mlp.gate_proj.weight`, ff, d));
    tensors.push(matrix(`${p}.mlp.up_proj.weight`, ff, d));
    tensors.push(matrix(`${p}.mlp.down_proj.weight`, d, ff));
  }
  tensors.push(vector('model.norm.weight', d, 'ones'));
  if (!config.tieWordEmbeddings) tensors.push(matrix('lm_head.weight', V, d));

  writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...raw, torch_dtype: dtype }, null, 2));
  const shards = shard(tensors, shape.shardBytes ?? Infinity);
  if (shards.length === 1) {
    writeSafetensorsEntries(path.join(dir, 'model.safetensors'), tensors, { format: 'pt' });
    return;
  }
  const weightMap: Record<string, string> = {};
  let total = 0;
  for (const [i, entries] of shards.entries()) {
    const file = `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
    writeSafetensorsEntries(path.join(dir, file), entries, { format: 'pt' });
    for (const { name, shape } of entries) {
      weightMap[name] = file;
      total += shape.reduce((a, b) => a * b, 1) * bytesPer[dtype];
    }
  }
  writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2));
}

/** Consecutive tensors grouped into shards of at most maxBytes each (a larger tensor gets its own). */
function shard(tensors: SafetensorsEntry[], maxBytes: number): SafetensorsEntry[][] {
  const shards: SafetensorsEntry[][] = [[]];
  let size = 0;
  for (const t of tensors) {
    const bytes = t.shape.reduce((a, b) => a * b, 1) * bytesPer[t.dtype as 'float32' | 'bfloat16'];
    if (size + bytes > maxBytes && shards.at(-1)!.length) {
      shards.push([]);
      size = 0;
    }
    shards.at(-1)!.push(t);
    size += bytes;
  }
  return shards;
}
