// The serving benchmark (`npm run bench -- --only serving`): 32 concurrent clients over 8 tuned adapters of
// one base model, mixed prompt lengths, 64 new tokens each (bench/serve-load.ts), on the continuous
// scheduler, on the earlier swap-per-batch scheduler, and decoded one request after another by PyTorch
// eager, each in its own process, in the same run. Then the fairness figure: one project's single request
// alone and while another project floods the model with 200 requests, in three rounds, the median round's
// ratio reported. `--only serving-throughput` or `--only serving-fairness` runs one part, and
// `--serving-shapes` picks the shapes.
//
// Threads: ATen's intra-op threads by model size as engine/runtime.ts chooses, OpenBLAS's as many (tiny
// matrices lose more to a second BLAS thread than they gain: stories260K served at half the speed with
// OpenBLAS on both cores of a busy 2-core machine), and PyTorch with as many threads.
import { execFileSync } from 'node:child_process';
import { threadsFor } from '../src/engine/runtime.js';
import { parseModelConfig } from '../src/engine/model/config.js';
import { benchShapes, servingLoad, type BenchShape } from './shapes.js';
import type { FairnessRound } from './serve-load.js';

type Line = Record<string, unknown>;

export const servingShapes = ['stories260K', 'smollm2-135M'];

/** Which parts run, at which shapes. */
export interface ServingParts {
  throughput: boolean;
  fairness: boolean;
  shapes: string[];
}

interface Scripts {
  measureScript: string;
  referenceScript: string;
  python: string;
}

export function servingFigures(scripts: Scripts, parts: ServingParts = { throughput: true, fairness: true, shapes: servingShapes }): Line[] {
  const lines: Line[] = [];
  for (const shape of benchShapes.filter((s) => parts.shapes.includes(s.name))) {
    if (parts.throughput) lines.push(...throughputFigures(scripts, shape));
    if (parts.fairness) lines.push(fairnessFigure(scripts, shape));
  }
  return lines;
}

const threadsOf = (shape: BenchShape) => threadsFor(parseModelConfig(shape.config).hiddenSize);

function measure({ measureScript }: Scripts, shape: BenchShape, mode: string, scheduler: string): Line {
  const threads = threadsOf(shape);
  const out = execFileSync(process.execPath, [measureScript, mode, shape.name, scheduler, '--threads', `${threads}:${threads}`], { encoding: 'utf8', maxBuffer: 1 << 24 });
  return JSON.parse(out.trim().split('\n').at(-1)!);
}

function throughputFigures(scripts: Scripts, shape: BenchShape): Line[] {
  const threads = threadsOf(shape);
  const attuneThreads = `${threads}:${threads}`;
  const swap = measure(scripts, shape, 'serve', 'swap-per-batch');
  const continuous = measure(scripts, shape, 'serve', 'continuous');
  const out = execFileSync(scripts.python, [scripts.referenceScript, '--shape', shape.name, '--threads', String(threads), '--mode', 'serve'], { encoding: 'utf8' });
  const pytorch: Line = JSON.parse(out.trim().split('\n').at(-1)!);
  const common = { shape: shape.name, clients: servingLoad.clients, adapters: servingLoad.adapters, new_tokens: servingLoad.newTokens, attune_threads: attuneThreads, pytorch_threads: threads };
  const figure = (name: string, metric: string, digits = 1): Line => ({
    figure: name,
    ...common,
    attune: round(Number(continuous[metric]), digits),
    swap_per_batch: round(Number(swap[metric]), digits),
    pytorch_sequential: round(Number(pytorch[metric]), digits),
    ratio: round(Number(continuous[metric]) / Number(swap[metric]), 3),
    ratio_vs_pytorch: round(Number(continuous[metric]) / Number(pytorch[metric]), 3),
  });
  return [
    figure('serving_output_tokens_per_s', 'output_tokens_per_s'),
    figure('serving_p50_latency_ms', 'p50_latency_ms', 0),
    figure('serving_p99_latency_ms', 'p99_latency_ms', 0),
    figure('serving_ttft_p50_ms', 'ttft_p50_ms', 0),
    {
      figure: 'serving_peak_rss_mb',
      ...common,
      attune: round(Number(continuous.peak_rss_mb)),
      swap_per_batch: round(Number(swap.peak_rss_mb)),
      pytorch_sequential: round(Number(pytorch.max_rss_mb)),
    },
  ];
}

/** The median round's figures (rounds alone and loaded back to back, bench/serve-load.ts's runFairness). */
function fairnessFigure(scripts: Scripts, shape: BenchShape): Line {
  const fairness = measure(scripts, shape, 'fairness', 'continuous');
  const rounds = fairness.rounds as FairnessRound[];
  const ratio = (r: FairnessRound) => r.loaded_ms / r.unloaded_ms;
  const median = [...rounds].sort((a, b) => ratio(a) - ratio(b))[Math.floor(rounds.length / 2)];
  return {
    figure: 'serving_fairness_latency_ratio',
    shape: shape.name,
    flood_requests: Number(fairness.flood),
    new_tokens: servingLoad.newTokens,
    unloaded_ms: round(median.unloaded_ms, 0),
    loaded_ms: round(median.loaded_ms, 0),
    unloaded_ttft_ms: round(median.unloaded_ttft_ms, 0),
    loaded_ttft_ms: round(median.loaded_ttft_ms, 0),
    attune: round(ratio(median), 2),
    round_ratios: rounds.map((r) => round(ratio(r), 2)),
    // CPU time over the request, loaded against alone: what the wall-clock ratio is without the machine's other load.
    round_cpu_ratios: rounds.map((r) => round(r.loaded_cpu_ms / r.unloaded_cpu_ms, 2)),
    peak_rss_mb: round(Number(fairness.peak_rss_mb)),
    target: 2,
  };
}

function round(value: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
