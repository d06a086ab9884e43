// One measurement in its own process (so peak RSS is its own): prints one JSON line.
// <threads> is the intra-op thread count, optionally with OpenBLAS's as intra:blas (e.g. 1:2).
//   node dist/bench/measure.js train <shape> <threads> <steps>
//   node dist/bench/measure.js decode <shape> <threads> <tokens>
//   node dist/bench/measure.js soak <shape> <threads> <steps>
//   node dist/bench/measure.js serve <shape> <threads> <continuous|swap-per-batch>
//   node dist/bench/measure.js fairness <shape> <threads> continuous
import { tidy, setNumThreads, setBlasThreads, manualSeed, noGrad, ids } from '../src/engine/tensor/index.js';
import { LoraAdapter, loraConfig } from '../src/engine/lora/lora.js';
import { AdamW } from '../src/engine/train/optimizer.js';
import { trainStep } from '../src/engine/train/trainer.js';
import { packBatch } from '../src/engine/train/packing.js';
import { KvCache } from '../src/engine/model/kv-cache.js';
import { benchShapes, loraRank, loraAlpha } from './shapes.js';
import { randomLlama } from './random-model.js';
import { runFairness, runLoad } from './serve-load.js';
import type { SchedulerKind } from '../src/service/serving/inference.js';

const [mode, shapeName, threadsArg, countArg] = process.argv.slice(2);
const shape = benchShapes.find((s) => s.name === shapeName);
if (!shape) throw new Error(`unknown shape ${shapeName}`);
const threads = threadsArg;
const [intraOp, blas] = threadsArg.split(':').map(Number);
const count = Number(countArg);
setNumThreads(intraOp);
if (blas) setBlasThreads(blas);
manualSeed(0);
const rssMb = () => process.memoryUsage.rss() / 2 ** 20;
const peakRssMb = () => process.resourceUsage().maxRSS / 1024;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

if (mode === 'serve' || mode === 'fairness') {
  const scheduler = countArg as SchedulerKind;
  const result = mode === 'serve' ? await runLoad(shape, scheduler) : await runFairness(shape);
  console.log(JSON.stringify({ impl: 'attune', mode, shape: shape.name, threads, scheduler, ...result, peak_rss_mb: peakRssMb() }));
  process.exit(0);
}
const model = randomLlama(shape);

function randomBatch() {
  const examples = Array.from({ length: shape!.batch }, () => {
    const tokens = Array.from({ length: shape!.seqLen + 1 }, () => Math.floor(Math.random() * shape!.vocab));
    return { ids: tokens.slice(0, -1), targets: tokens.slice(1) };
  });
  return packBatch(examples);
}

if (mode === 'train' || mode === 'soak') {
  const adapter = LoraAdapter.create(model, loraConfig({ rank: loraRank, alpha: loraAlpha }));
  adapter.attach(model);
  for (const p of adapter.parameters()) p.requiresGrad_(true);
  const optimizer = new AdamW(adapter.parameters());
  const timings: number[] = [];
  const rssAt: Record<number, number> = {};
  const warmup = mode === 'train' ? 2 : 0;
  for (let step = 1; step <= warmup + count; step++) {
    const started = performance.now();
    tidy(() => trainStep(model, optimizer, randomBatch(), 1e-3, 1.0));
    if (step > warmup) timings.push(performance.now() - started);
    if (mode === 'soak' && (step === 100 || step === count)) rssAt[step] = rssMb();
  }
  const stepMs = median(timings);
  const tokensPerStep = shape.batch * shape.seqLen;
  console.log(JSON.stringify({
    impl: 'attune', mode, shape: shape.name, threads, step_ms: stepMs,
    train_tokens_per_s: (tokensPerStep * 1000) / stepMs, peak_rss_mb: peakRssMb(),
    heap_mb: process.memoryUsage().heapTotal / 2 ** 20,
    ...(mode === 'soak' ? { rss_mb_at_step_100: rssAt[100], [`rss_mb_at_step_${count}`]: rssAt[count] } : {}),
  }));
} else if (mode === 'decode') {
  const { numLayers, numKvHeads, headDim } = model.config;
  const prompt = Array.from({ length: 16 }, (_, i) => (i * 7) % shape.vocab);
  const run = () =>
    noGrad(() => {
      const cache = new KvCache(numLayers, 1, numKvHeads, prompt.length + count, headDim);
      let next = tidy(() => model.forward(ids(prompt, [1, prompt.length]), { cache }).select(1, prompt.length - 1).argmax(-1).item());
      const started = performance.now();
      for (let i = 0; i < count; i++) {
        next = tidy(() => model.forward(ids([next], [1, 1]), { cache }).select(1, 0).argmax(-1).item());
      }
      cache.dispose();
      return performance.now() - started;
    });
  run();
  const ms = run();
  console.log(JSON.stringify({ impl: 'attune', mode, shape: shape.name, threads, decode_tokens_per_s: (count * 1000) / ms, peak_rss_mb: peakRssMb() }));
}
