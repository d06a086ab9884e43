// The memory plan of a tuning run, made before it starts: peak memory estimated from the model's shape
// (frozen weights, the adapter and its optimizer, activations per micro-batch, the loss's logits) and
// held against the memory the run may use, to choose the micro-batch size and whether to checkpoint
// activations, or to say that the run cannot fit and what would.
import { freemem, totalmem } from 'node:os';
import { readFileSync } from 'node:fs';
import { packedKernel, cudaMemory, sdpaSupport, type WeightPacking } from '../tensor/index.js';
import { parameterCount, type ModelConfig } from '../model/config.js';
import { keepsAttentionProbabilities } from '../model/transformer.js';
import type { StepPlan } from './step.js';

export interface TrainingShape {
  config: ModelConfig;
  dtype: string;
  device: string;
  /** LoRA rank (every projection adapted). */
  rank: number;
  /** Token length of each training (and validation) example, after truncation. */
  lengths: number[];
  /** Examples per step; all of lengths by default. */
  batchSize?: number;
  /** Bytes the whole run may use (weights included); by default what the device has free now plus this process's own. */
  budgetBytes?: number;
}

export interface MemoryEstimate {
  weightsBytes: number;
  /** LoRA master weights, their gradients and AdamW's two moments (float32). */
  adapterBytes: number;
  /** Activations kept for the backward pass, plus one block's temporaries. */
  activationBytes: number;
  /** The loss's logits chunk and the hidden states' gradient. */
  lossBytes: number;
  /** The projection and head weights packed beside them, a copy for each product (0 when not, or instead of them). */
  packedBytes: number;
  /** The runtime itself (Node, libtorch, allocator slack). */
  overheadBytes: number;
  totalBytes: number;
}

export interface TrainingPlan {
  step: StepPlan;
  estimate: MemoryEstimate;
  budgetBytes: number;
  fits: boolean;
  /** What the plan chose and why, or (when it does not fit) what would. */
  summary: string;
}

const GiB = 2 ** 30;
const bytesOf: Record<string, number> = { float32: 4, bfloat16: 2, float16: 2 };
/** The process before any model: Node, libtorch and its kernels' libraries. */
const runtimeBytes = 0.5 * GiB;
/** Freed activations are kept by the allocator and reused imperfectly: margin on the step's share. */
const allocatorSlack = 1.15;
/** The vocabulary logits one loss chunk may hold (float32 and compute-dtype copies together): at most this, or 5% of the budget. */
const lossChunkBytes = GiB;
/** A plan uses at most this fraction of its budget: the rest absorbs estimation error. */
const headroom = 0.9;

export function planTraining(shape: TrainingShape): TrainingPlan {
  const { config, dtype, rank, lengths } = shape;
  const e = bytesOf[dtype] ?? 4;
  const batchSize = Math.min(shape.batchSize ?? lengths.length, lengths.length);
  const longest = Math.max(1, ...lengths);
  // The largest step packs the batchSize longest examples; its rows are as long as the longest one.
  const sorted = [...lengths].sort((a, b) => b - a);
  const stepTokens = Math.max(longest, Math.min(sorted.slice(0, batchSize).reduce((a, b) => a + b, 0), batchSize * longest));
  const budgetBytes = shape.budgetBytes ?? deviceBudget(shape.device);
  const usable = budgetBytes * headroom;
  // One chunk of logits for the whole micro-batch where memory allows: the head's matmul is most efficient over many rows.
  const lossChunkRows = Math.max(16, Math.min(4096, Math.floor(Math.min(lossChunkBytes, 0.05 * usable) / (config.vocabSize * (2 * e + 8)))));
  const fixed = {
    weightsBytes: parameterCount(config) * e + ropeBytes(config),
    adapterBytes: loraParameters(config, rank) * (16 + e),
    overheadBytes: runtimeBytes,
  };
  const estimate = (tokens: number, checkpointing: boolean, packedWeights?: WeightPacking): MemoryEstimate => {
    const activationBytes = activationEstimate(shape, e, tokens, longest, checkpointing) * allocatorSlack;
    const trained = Math.min(tokens, stepTokens);
    const lossBytes = Math.min(trained, lossChunkRows) * config.vocabSize * (2 * e + 8) + 3 * trained * config.hiddenSize * e;
    // Tiles instead of the weights cost one weight's tiles more while they are packed, before the first step's activations exist.
    const packedBytes = packedWeights === 'beside' ? 2 * packedParameters(config) * e : 0;
    const totalBytes = fixed.weightsBytes + fixed.adapterBytes + fixed.overheadBytes + activationBytes + lossBytes + packedBytes;
    return { ...fixed, activationBytes, lossBytes, packedBytes, totalBytes };
  };
  // Largest micro-batch first, without checkpointing (it costs a second forward pass), then with it; at
  // each, where this CPU has a packed kernel (AMX or AVX512-BF16), with the weights packed beside them
  // (1B steps 16% faster with AMX, README), else instead of them (no memory, and the same products' speed at 8B's 256 rows; slower than
  // beside them at 512 rows, where the forward's transposed product streams more).
  const sizes: number[] = [];
  for (let tokens = stepTokens; tokens > longest; tokens = Math.floor(tokens / 2)) sizes.push(tokens);
  sizes.push(longest);
  const packings: (WeightPacking | undefined)[] = packsWeights(shape) ? ['beside', 'instead'] : [undefined];
  for (const checkpointing of [false, true]) {
    for (const tokens of sizes) {
      for (const packedWeights of packings) {
        const planned = estimate(tokens, checkpointing, packedWeights);
        if (planned.totalBytes > usable) continue;
        const split = tokens < stepTokens ? `micro-batches of up to ${tokens} tokens` : `one pass per step (${stepTokens} tokens)`;
        const choices = `${split}${checkpointing ? ', activation checkpointing' : ''}${packedWeights ? `, ${packingNames[packedWeights]}` : ''}`;
        return {
          step: { microBatchTokens: tokens, checkpointing, lossChunkRows, packedWeights },
          estimate: planned,
          budgetBytes,
          fits: true,
          summary: `${choices}: about ${gib(planned.totalBytes)} of ${gib(budgetBytes)} (${describe(planned)})`,
        };
      }
    }
  }
  const leanest = estimate(longest, true);
  return {
    step: { microBatchTokens: longest, checkpointing: true, lossChunkRows },
    estimate: leanest,
    budgetBytes,
    fits: false,
    summary: notFitting(leanest, budgetBytes, shape, longest, (tokens) => estimate(tokens, true).totalBytes <= usable),
  };
}

function notFitting(
  leanest: MemoryEstimate,
  budgetBytes: number,
  shape: TrainingShape,
  longest: number,
  fitsWith: (tokens: number) => boolean,
): string {
  const needs = leanest.totalBytes / headroom;
  const parts = [`needs about ${gib(needs)} (${describe(leanest)}) but ${gib(budgetBytes)} is available on ${shape.device}`];
  let shortest = 0;
  for (let tokens = longest; tokens >= 16; tokens = Math.floor(tokens / 2)) {
    if (fitsWith(tokens)) {
      shortest = tokens;
      break;
    }
  }
  const fixedBytes = leanest.weightsBytes + leanest.adapterBytes + leanest.overheadBytes;
  if (shortest > 0) parts.push(`examples of at most ${shortest} tokens would fit (the longest has ${longest})`);
  else if (fixedBytes > budgetBytes * headroom) parts.push(`the model's weights alone (${gib(leanest.weightsBytes)} in ${shape.dtype}) leave no room: use a smaller model`);
  else parts.push('use a smaller model');
  const gpu = shape.device.startsWith('cuda') ? 'a GPU' : 'a GPU or a machine';
  parts.push(`or ${gpu} with at least ${gib(needs)} of memory`);
  return parts.join('; ');
}

/**
 * Bytes kept for the backward pass per token of a micro-batch, over all layers, plus one block's
 * temporaries while its backward runs. With checkpointing only each block's input is kept, and one block
 * is recomputed at a time.
 */
function activationEstimate(shape: TrainingShape, e: number, tokens: number, rowLength: number, checkpointing: boolean): number {
  const { config } = shape;
  const { hiddenSize: d, intermediateSize: ff, numHeads: H, numKvHeads: K, headDim: D, numLayers: L } = config;
  let perToken = e * (4 * d + (H + 2 * K) * D + 2 * H * D + 3 * ff) + 4 * (2 + H);
  if (config.qkNorm) perToken += e * (H + K) * D;
  if (config.gemma) perToken += e * 2 * d;
  if (keepsAttentionProbabilities(shape.device, shape.dtype, rowLength)) perToken += H * rowLength * e; // probabilities
  else if (!sdpaSupport().sdpa) perToken += H * rowLength * (4 + 2 * e); // scores and probabilities
  const temporaries = tokens * e * 6 * ff;
  const block = tokens * perToken + temporaries;
  return checkpointing ? tokens * L * e * d + block : tokens * L * perToken + temporaries;
}

/** How a plan's summary names its packing. */
export const packingNames: Record<WeightPacking, string> = {
  beside: 'weights packed beside them',
  instead: 'weights packed instead of them',
};

/** Whether the run's frozen weights can be packed: bfloat16 on a CPU with a packed kernel, every projection's sizes multiples of 32. */
function packsWeights(shape: TrainingShape): boolean {
  const { hiddenSize: d, intermediateSize: ff, numHeads: H, numKvHeads: K, headDim: D } = shape.config;
  const sizes = [d, ff, H * D, K * D];
  return shape.dtype === 'bfloat16' && shape.device === 'cpu' && sizes.every((n) => n % 32 === 0) && packedKernel() !== null;
}

/** The weights Transformer.packProjections packs beside themselves: every layer's projections (q, k, v, o, gate, up, down), and the head where its vocabulary fits the tiles. */
function packedParameters(config: ModelConfig): number {
  const { hiddenSize: d, intermediateSize: ff, numHeads: H, numKvHeads: K, headDim: D, numLayers: L, vocabSize: V } = config;
  return L * (d * (H + 2 * K) * D + H * D * d + 3 * d * ff) + (V % 32 === 0 ? V * d : 0);
}

function loraParameters(config: ModelConfig, rank: number): number {
  const { hiddenSize: d, intermediateSize: ff, numHeads: H, numKvHeads: K, headDim: D, numLayers: L } = config;
  const perLayer = rank * ((d + H * D) + 2 * (d + K * D) + (H * D + d) + 3 * (d + ff));
  return L * perLayer;
}

/** The rotary tables (float32 cos and sin), for the positions a run may reach. */
function ropeBytes(config: ModelConfig): number {
  const positions = Math.min(config.maxPositions, 8192);
  return (config.gemma ? 2 : 1) * 2 * positions * config.headDim * 4;
}

/** Bytes a run on the device may use: free memory now plus what this process already holds. */
export function deviceBudget(device: string): number {
  if (device.startsWith('cuda')) {
    const memory = cudaMemory(device === 'cuda' ? 0 : Number(device.slice(5)));
    return memory ? memory.freeBytes : Number.MAX_SAFE_INTEGER;
  }
  return hostMemory().availableBytes + process.memoryUsage.rss();
}

/**
 * Bytes a run started in a separate process could have on an otherwise idle device: the host's memory
 * less what this (calling) process holds, or the GPU's whole memory. Whether a job can fit at all is
 * judged against this; the run itself plans against what is free when it starts (deviceBudget).
 */
export function machineBudget(device: string): number {
  if (device.startsWith('cuda')) {
    const memory = cudaMemory(device === 'cuda' ? 0 : Number(device.slice(5)));
    return memory ? memory.totalBytes : Number.MAX_SAFE_INTEGER;
  }
  return hostMemory().totalBytes - process.memoryUsage.rss();
}

/** The host's memory as this process may use it: the cgroup's limit where one is set, else the machine's. */
export function hostMemory(): { totalBytes: number; availableBytes: number } {
  let total = totalmem();
  let available = memAvailable() ?? freemem();
  const limit = cgroupNumber('/sys/fs/cgroup/memory.max');
  const used = cgroupNumber('/sys/fs/cgroup/memory.current');
  if (limit !== undefined && limit < total) {
    total = limit;
    if (used !== undefined) available = Math.min(available, limit - used);
  }
  return { totalBytes: total, availableBytes: Math.max(0, available) };
}

function memAvailable(): number | undefined {
  try {
    const match = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

function cgroupNumber(file: string): number | undefined {
  try {
    const text = readFileSync(file, 'utf8').trim();
    return /^\d+$/.test(text) ? Number(text) : undefined;
  } catch {
    return undefined;
  }
}

const gib = (bytes: number) => (bytes >= GiB ? `${(bytes / GiB).toFixed(1)} GiB` : `${Math.round(bytes / 2 ** 20)} MiB`);

function describe(estimate: MemoryEstimate): string {
  const packed = estimate.packedBytes ? `, packed weights ${gib(estimate.packedBytes)}` : '';
  return `weights ${gib(estimate.weightsBytes)}${packed}, activations ${gib(estimate.activationBytes)}, loss ${gib(estimate.lossBytes)}, adapter and optimizer ${gib(estimate.adapterBytes)}`;
}
