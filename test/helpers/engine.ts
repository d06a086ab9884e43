// Shared helpers for the engine tests: repository paths, the embedded base model, temp dirs,
// forced garbage collection, a safetensors header reader, and running the CLI.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { packageRoot } from '../../src/engine/package-root.js';
import { embeddedBaseModelDir, loadBaseModel, type BaseModel } from '../../src/engine/base-model.js';
import { parseJsonl, type Example } from '../../src/engine/data/examples.js';
import { noGrad, tidy, keep, ids, manualSeed, type Tensor } from '../../src/engine/tensor/index.js';
import { LoraAdapter, loraConfig } from '../../src/engine/lora/lora.js';
import type { Transformer } from '../../src/engine/model/transformer.js';

export { packageRoot, embeddedBaseModelDir };

export const repoPath = (...parts: string[]): string => path.join(packageRoot, ...parts);
export const cliPath = repoPath('bin', 'attune.js');
export const numbersJsonl = repoPath('examples', 'numbers.jsonl');
export const goldenGreedyFile = repoPath('test', 'golden-greedy.txt');

export function numberExamples(): Example[] {
  return parseJsonl(readFileSync(numbersJsonl, 'utf8')).examples;
}

/** A fresh copy of stories260K (weights are mutable: merge() writes into them). */
export function loadStories(): Promise<BaseModel> {
  return loadBaseModel(embeddedBaseModelDir);
}

/** A temp directory removed when the test ends. */
export function tempDir(t: { after(fn: () => void): void }, prefix = 'attune-test-'): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

let gcFunction: (() => void) | undefined;
/** Runs a full garbage collection and lets the addon's finalizers run, so that liveTensorCount() is exact. */
export async function settleGarbage(): Promise<void> {
  if (!gcFunction) {
    v8.setFlagsFromString('--expose-gc');
    gcFunction = vm.runInNewContext('gc') as () => void;
  }
  for (let i = 0; i < 3; i++) {
    gcFunction();
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

export interface SafetensorsEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** Parses a safetensors file independently of the engine: 8-byte LE header length, JSON header, data. */
export function readSafetensorsHeader(file: string): {
  headerLength: number;
  header: Record<string, SafetensorsEntry> & { __metadata__?: Record<string, string> };
  data: Buffer;
  bytes: Buffer;
} {
  const bytes = readFileSync(file);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8'));
  return { headerLength, header, data: bytes.subarray(8 + headerLength), bytes };
}

/** Float32 values of one safetensors entry. */
export function entryFloats(data: Buffer, entry: SafetensorsEntry): Float32Array {
  const [begin, end] = entry.data_offsets;
  const copy = Buffer.from(data.subarray(begin, end));
  return new Float32Array(copy.buffer, copy.byteOffset, copy.byteLength / 4);
}

/** Full-sequence logits [T, vocab] of a token sequence, as a flat Float32Array. */
export function logitsOf(model: Transformer, tokenIds: number[]): Float32Array {
  const out: Tensor = noGrad(() => tidy(() => keep(model.forward(ids(tokenIds, [1, tokenIds.length], model.device)))));
  try {
    return out.toFloat32Array();
  } finally {
    out.dispose();
  }
}

export function maxAbsDiff(a: Float32Array | Float64Array, b: Float32Array | Float64Array): number {
  assertSameLength(a, b);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

export const maxAbs = (a: Float32Array): number => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

/** Row-wise softmax of flat [rows, width] logits, in float64. */
export function softmaxRows(logits: Float32Array, width: number): Float64Array {
  const out = new Float64Array(logits.length);
  for (let start = 0; start < logits.length; start += width) {
    let max = -Infinity;
    for (let i = start; i < start + width; i++) max = Math.max(max, logits[i]);
    let sum = 0;
    for (let i = start; i < start + width; i++) sum += out[i] = Math.exp(logits[i] - max);
    for (let i = start; i < start + width; i++) out[i] /= sum;
  }
  return out;
}

function assertSameLength(a: ArrayLike<number>, b: ArrayLike<number>): void {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
}

export interface CliResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/** Runs `node bin/attune.js ...args` with stdout and stderr piped. */
export function runCli(args: string[], options: { timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [cliPath, ...args],
      { cwd: packageRoot, encoding: 'buffer', timeout: options.timeoutMs ?? 60_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error && typeof (error as { code?: unknown }).code !== 'number') return reject(error);
        resolve({ code: error ? Number((error as { code: number }).code) : 0, stdout, stderr: stderr.toString('utf8') });
      },
    );
  });
}

/** A sentence of stories260K text used as a fixed prompt. */
export const storyPrompt = 'Once upon a time, there was a little dog named Max.';

/** A rank-4 adapter attached to the model, trainable, whose B is not zero, so every LoRA parameter gets a gradient. */
export function liveAdapter(model: Transformer): LoraAdapter {
  manualSeed(3);
  const adapter = LoraAdapter.create(model, loraConfig({ rank: 4 }));
  noGrad(() => {
    for (const { b } of adapter.weights.values()) b.normal_(0, 0.05);
  });
  adapter.attach(model);
  for (const p of adapter.parameters()) p.requiresGrad_(true);
  return adapter;
}
