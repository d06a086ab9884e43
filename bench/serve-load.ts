// The serving benchmark's load: `clients` concurrent requests over `adapters` tuned adapters of one base model
// with random weights, mixed prompt lengths, `newTokens` greedy tokens each, through a real runner (the
// continuous scheduler or the earlier swap-per-batch one) with streaming, exactly as the server runs them
// minus HTTP. The PyTorch reference (bench/reference/llama_lora_bench.py --mode serve) builds the same
// requests from the same formulas; keep the two equal.
import { setMaxListeners } from 'node:events';
import { manualSeed, noGrad } from '../src/engine/tensor/index.js';
import { LoraAdapter, loraConfig } from '../src/engine/lora/lora.js';
import { embeddedBaseModelDir, type BaseModel } from '../src/engine/base-model.js';
import { Tokenizer } from '../src/engine/tokenizer/tokenizer.js';
import { ContinuousRunner } from '../src/service/serving/continuous-runner.js';
import { SwapRunner } from '../src/service/serving/swap-runner.js';
import { inferenceDefaults, type SchedulerKind } from '../src/service/serving/inference.js';
import { limitDefaults } from '../src/service/limits.js';
import type { AdapterRef, Job, Runner } from '../src/service/serving/job.js';
import { randomModelDir } from './random-model.js';
import { loadTransformer, readModelConfig } from '../src/engine/model/load.js';
import { parameterCount } from '../src/engine/model/config.js';
import { resolvePlacement } from '../src/engine/placement.js';
import { loraAlpha, loraRank, servingLoad, type BenchShape } from './shapes.js';

export interface LoadResult {
  output_tokens_per_s: number;
  p50_latency_ms: number;
  p99_latency_ms: number;
  ttft_p50_ms: number;
  requests: number;
  output_tokens: number;
  wall_s: number;
}

/** Prompt i's token ids: servingLoad's lengths, ids spread over the vocabulary. */
export function promptOf(i: number, vocab: number): number[] {
  return Array.from({ length: servingLoad.promptLength(i) }, (_, j) => (i * 131 + j * 7 + 3) % vocab);
}

/**
 * Random-weight base model with a real tokenizer (stories260K's) for streaming detokenization, and no EOS,
 * so every request generates all its tokens. Ids map onto the tokenizer's merged pieces (past its 3 special
 * and 256 byte tokens), so each token shows as text at once, as a trained model's mostly do: random bytes
 * would hold text back until they happened to form UTF-8, and time to first token would measure that.
 */
export async function benchBase(shape: BenchShape): Promise<BaseModel> {
  manualSeed(0);
  const dir = randomModelDir(shape);
  // Served as `attune serve` serves it: the auto placement.
  const placement = resolvePlacement({}, parameterCount(readModelConfig(dir)));
  const transformer = loadTransformer(dir, placement);
  const real = await Tokenizer.load(embeddedBaseModelDir);
  const firstPiece = 3 + 256;
  const piece = (id: number) => firstPiece + (id % (real.vocabSize - firstPiece));
  const tokenizer = Object.create(real, {
    eosTokenIds: { value: [] },
    decode: { value: (ids: number[], opts?: { skipSpecialTokens?: boolean }) => real.decode(ids.map(piece), opts) },
  }) as Tokenizer;
  return { dir: '', name: shape.name, transformer, tokenizer, placement };
}

/** `count` adapters (rank and alpha as the training benchmark), B random so each changes the output. */
export function benchAdapters(base: BaseModel, count: number): AdapterRef[] {
  return Array.from({ length: count }, (_, i) => {
    manualSeed(1000 + i);
    const adapter = LoraAdapter.create(base.transformer, loraConfig({ rank: loraRank, alpha: loraAlpha }));
    noGrad(() => {
      for (const { b } of adapter.weights.values()) b.normal_(0, 0.02);
    });
    return {
      key: `adapter-${i}@bench`,
      modelId: `adapter-${i}`,
      // A load hands over a fresh copy, as reading the files would.
      load: async () => new LoraAdapter(adapter.config, new Map([...adapter.weights].map(([path, w]) => [path, { ...w, a: w.a.clone(), b: w.b.clone() }]))),
    };
  });
}

export function benchRunner(base: BaseModel, scheduler: SchedulerKind, queue = { perProject: limitDefaults.queuedGenerationsPerProject, total: limitDefaults.queuedGenerationsPerBaseModel }): Runner {
  if (scheduler === 'swap-per-batch') return new SwapRunner(base, inferenceDefaults.maxBatchRows, inferenceDefaults.maxAdapters);
  return new ContinuousRunner(base, {
    maxBatchRows: inferenceDefaults.maxBatchRows,
    maxAdapters: inferenceDefaults.maxAdapters,
    kvCacheBytes: inferenceDefaults.kvCacheBytes,
    kvBlockSize: inferenceDefaults.kvBlockSize,
    fairStepTokens: inferenceDefaults.fairStepTokens,
    queue,
  });
}

interface Timing {
  firstToken?: number;
  done?: number;
  tokens: number;
  error?: unknown;
}

/** Submits one request; resolves with its timings (relative to `start`) when it ends. */
export function request(runner: Runner, spec: { project: string; adapter: AdapterRef | null; promptIds: number[]; newTokens: number; signal?: AbortSignal }, start: number): Promise<Timing> {
  const timing: Timing = { tokens: 0 };
  return new Promise((resolve) => {
    const job: Job = {
      project: spec.project,
      adapter: spec.adapter,
      promptIds: spec.promptIds,
      options: { temperature: 0, candidateCount: 1, maxOutputTokens: spec.newTokens, stopSequences: [] },
      deadline: Date.now() + 3_600_000,
      signal: spec.signal,
      onDelta: () => (timing.firstToken ??= performance.now() - start),
      onDone: (result) => {
        timing.done = performance.now() - start;
        timing.tokens = result.candidatesTokenCount;
        resolve(timing);
      },
      onError: (error) => resolve({ ...timing, error }),
    };
    runner.submit(job).catch((error) => resolve({ ...timing, error }));
  });
}

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
};

/** The benchmark's load on one scheduler: all clients send at once, each request streams its tokens. */
export async function runLoad(shape: BenchShape, scheduler: SchedulerKind): Promise<LoadResult> {
  const base = await benchBase(shape);
  const adapters = benchAdapters(base, servingLoad.adapters);
  const runner = benchRunner(base, scheduler);
  const specs = Array.from({ length: servingLoad.clients }, (_, i) => ({
    project: 'bench-project',
    adapter: adapters[i % adapters.length],
    promptIds: promptOf(i, base.transformer.config.vocabSize),
    newTokens: servingLoad.newTokens,
  }));
  // Warm-up, untimed: every adapter loaded once, the allocator and kernels warm.
  for (const adapter of adapters) await request(runner, { ...specs[0], adapter, newTokens: 2 }, performance.now());
  const start = performance.now();
  const timings = await Promise.all(specs.map((spec) => request(runner, spec, start)));
  const failed = timings.find((t) => t.error);
  if (failed) throw new Error(`a benchmark request failed: ${(failed.error as Error)?.message ?? failed.error}`);
  const wall = Math.max(...timings.map((t) => t.done!));
  const tokens = timings.reduce((n, t) => n + t.tokens, 0);
  runner.close();
  return {
    output_tokens_per_s: (tokens * 1000) / wall,
    p50_latency_ms: percentile(timings.map((t) => t.done!), 50),
    p99_latency_ms: percentile(timings.map((t) => t.done!), 99),
    ttft_p50_ms: percentile(timings.map((t) => t.firstToken!), 50),
    requests: timings.length,
    output_tokens: tokens,
    wall_s: wall / 1000,
  };
}

/** One round of the fairness measurement, in milliseconds. */
export interface FairnessRound {
  unloaded_ms: number;
  loaded_ms: number;
  unloaded_ttft_ms: number;
  loaded_ttft_ms: number;
  /** This process's CPU time (all its threads) over each request: the machine's other load does not count. */
  unloaded_cpu_ms: number;
  loaded_cpu_ms: number;
}

const cpuMs = (since: NodeJS.CpuUsage) => {
  const { user, system } = process.cpuUsage(since);
  return (user + system) / 1000;
};

/**
 * Fairness: one project's single request alone, then again while another project floods the model with
 * `servingLoad.floodRequests` concurrent requests (queues raised so that all of them wait rather than 429);
 * the flood is then cancelled. `rounds` times, alone and loaded back to back, so that a shared machine's
 * load, which comes and goes, weighs on both sides of each round's ratio alike.
 */
export async function runFairness(shape: BenchShape, rounds = 3): Promise<{ rounds: FairnessRound[]; flood: number }> {
  const base = await benchBase(shape);
  const adapters = benchAdapters(base, servingLoad.adapters);
  const flood = servingLoad.floodRequests;
  const runner = benchRunner(base, 'continuous', { perProject: flood, total: flood + 1 });
  const vocab = base.transformer.config.vocabSize;
  const single = { project: 'quiet-project', adapter: adapters[0], promptIds: promptOf(0, vocab), newTokens: servingLoad.newTokens };
  for (const adapter of adapters) await request(runner, { ...single, adapter, newTokens: 2 }, performance.now());
  await request(runner, single, performance.now()); // warm
  const results: FairnessRound[] = [];
  for (let round = 0; round < rounds; round++) {
    let cpu = process.cpuUsage();
    const unloaded = await request(runner, single, performance.now());
    const unloadedCpu = cpuMs(cpu);
    const cancel = new AbortController();
    setMaxListeners(flood + 1, cancel.signal);
    const floodStart = performance.now();
    const flooding = Array.from({ length: flood }, (_, i) =>
      request(runner, { project: 'flood-project', adapter: adapters[i % adapters.length], promptIds: promptOf(i, vocab), newTokens: servingLoad.newTokens, signal: cancel.signal }, floodStart),
    );
    while (runner.stats().running === 0) await new Promise((resolve) => setImmediate(resolve)); // the flood is decoding
    cpu = process.cpuUsage();
    const loaded = await request(runner, single, performance.now());
    const loadedCpu = cpuMs(cpu);
    if (loaded.error) throw new Error(`the single request failed under the flood: ${(loaded.error as Error)?.message}`);
    cancel.abort(); // the rest of the flood ends CANCELLED
    await Promise.all(flooding);
    results.push({ unloaded_ms: unloaded.done!, loaded_ms: loaded.done!, unloaded_ttft_ms: unloaded.firstToken!, loaded_ttft_ms: loaded.firstToken!, unloaded_cpu_ms: unloadedCpu, loaded_cpu_ms: loadedCpu });
  }
  runner.close();
  return { rounds: results, flood };
}
