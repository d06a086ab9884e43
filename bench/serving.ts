// The serving benchmark (`npm run bench -- --only serving`): 32 concurrent clients over 8 tuned adapters of
// one base model, mixed prompt lengths, 64 new tokens each (bench/serve-load.ts), on the continuous
// scheduler, on the earlier swap-per-batch scheduler, and decoded one request after another by PyTorch
// eager, each in its own process, in the same run. Then the fairness figure: one project's single request
// alone and while another project floods the model with 200 requests.
//
// Threads: ATen's intra-op threads by model size as engine/runtime.ts chooses, OpenBLAS's as many (tiny
// matrices lose more to a second BLAS thread than they gain: stories260K served at half the speed with
// OpenBLAS on both cores of a busy 2-core machine), and PyTorch with as many threads.
import { execFileSync } from 'node:child_process';
import { threadsFor } from '../src/engine/runtime.js';
import { benchShapes, servingLoad } from './shapes.js';

type Line = Record<string, number | string | boolean>;

const servingShapes = ['stories260K', 'smollm2-135M'];

export function servingFigures({ measureScript, referenceScript, python }: { measureScript: string; referenceScript: string; python: string }): Line[] {
  const lines: Line[] = [];
  for (const shape of benchShapes.filter((s) => servingShapes.includes(s.name))) {
    const threads = threadsFor(shape.dim);
    const attuneThreads = `${threads}:${threads}`;
    const measure = (mode: string, scheduler: string): Line => {
      const out = execFileSync(process.execPath, [measureScript, mode, shape.name, attuneThreads, scheduler], { encoding: 'utf8', maxBuffer: 1 << 24 });
      return JSON.parse(out.trim().split('\n').at(-1)!);
    };
    const swap = measure('serve', 'swap-per-batch');
    const continuous = measure('serve', 'continuous');
    const out = execFileSync(python, [referenceScript, '--shape', shape.name, '--threads', String(threads), '--mode', 'serve'], { encoding: 'utf8' });
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
    lines.push(figure('serving_output_tokens_per_s', 'output_tokens_per_s'));
    lines.push(figure('serving_p50_latency_ms', 'p50_latency_ms', 0));
    lines.push(figure('serving_p99_latency_ms', 'p99_latency_ms', 0));
    lines.push(figure('serving_ttft_p50_ms', 'ttft_p50_ms', 0));
    lines.push({
      figure: 'serving_peak_rss_mb',
      ...common,
      attune: round(Number(continuous.peak_rss_mb)),
      swap_per_batch: round(Number(swap.peak_rss_mb)),
      pytorch_sequential: round(Number(pytorch.max_rss_mb)),
    });
    const fairness = measure('fairness', 'continuous');
    lines.push({
      figure: 'serving_fairness_latency_ratio',
      shape: shape.name,
      flood_requests: Number(fairness.flood),
      new_tokens: servingLoad.newTokens,
      unloaded_ms: round(Number(fairness.unloaded_ms), 0),
      loaded_ms: round(Number(fairness.loaded_ms), 0),
      unloaded_ttft_ms: round(Number(fairness.unloaded_ttft_ms), 0),
      loaded_ttft_ms: round(Number(fairness.loaded_ttft_ms), 0),
      attune: round(Number(fairness.loaded_ms) / Number(fairness.unloaded_ms), 2),
      peak_rss_mb: round(Number(fairness.peak_rss_mb)),
      target: 2,
    });
  }
  return lines;
}

function round(value: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
