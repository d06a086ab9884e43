// One measurement in its own process (so peak RSS is its own): prints one JSON line. The model is the
// shape's random checkpoint on disk (bench/random-model.ts), loaded as Attune loads any model.
//   node dist/bench/measure.js train <shape> [steps] [--threads N[:blas]] [--dtype D]
//   node dist/bench/measure.js decode <shape> [tokens] [--threads ...] [--dtype D]
//   node dist/bench/measure.js soak <shape> <steps> [--threads ...]     (RSS over a long run of the trainer)
//   node dist/bench/measure.js serve <shape> <continuous|swap-per-batch> [--threads ...]
//   node dist/bench/measure.js fairness <shape> continuous [--threads ...]
//   node dist/bench/measure.js matmul <shape>       (oneDNN's bfloat16 rate at one training step's projections)
//   node dist/bench/measure.js packed-ab <shape> [rounds]  (training steps with plain weights and each packing, rotated)
// Without --threads and --dtype, Attune runs in its auto setting (as `attune tune` would).
import { parseArgs } from 'node:util';
import { tidy, setNumThreads, setBlasThreads, manualSeed, noGrad, ids, heapStats, randn, packedKernel, PackedMatrix, type WeightPacking } from '../src/engine/tensor/index.js';
import { LoraAdapter, loraConfig } from '../src/engine/lora/lora.js';
import { AdamW } from '../src/engine/train/optimizer.js';
import { train, trainStep } from '../src/engine/train/trainer.js';
import { KvCache } from '../src/engine/model/kv-cache.js';
import { loadTransformer, readModelConfig } from '../src/engine/model/load.js';
import { parameterCount, parseModelConfig } from '../src/engine/model/config.js';
import { resolvePlacement, type DtypeChoice } from '../src/engine/placement.js';
import { configureThreads } from '../src/engine/runtime.js';
import { planTraining } from '../src/engine/train/memory-plan.js';
import { benchShapes, loraRank, loraAlpha } from './shapes.js';
import { randomModelDir } from './random-model.js';
import { profileOps } from './op-profile.js';
import { blockProjections } from './matmul-headroom.js';
import { runFairness, runLoad } from './serve-load.js';
import type { SchedulerKind } from '../src/service/serving/inference.js';

const { positionals, values } = parseArgs({ allowPositionals: true, options: { threads: { type: 'string' }, dtype: { type: 'string' }, profile: { type: 'boolean' }, shapes: { type: 'boolean' } } });
const [mode, shapeName, countArg] = positionals;
const shape = benchShapes.find((s) => s.name === shapeName);
if (!shape) throw new Error(`unknown shape ${shapeName}`);

if (mode === 'matmul') {
  // One block's projections at the step's rows, forward (x Wᵀ) and backward (g W), in bfloat16: the products
  // that take most of a step (bench/matmul-headroom.ts sets them beside the CPU's own AMX rate).
  const threads = values.threads ?? String(configureThreads(process.env, parseModelConfig(shape.config).hiddenSize).threads);
  if (values.threads) setThreads(values.threads);
  const rows = shape.batch * shape.seqLen;
  const weights = blockProjections(shape);
  // Half a second of runs first, as the AMX probes do: cores that sat idle take milliseconds to come back.
  const seconds = (run: () => void) => {
    for (const started = performance.now(); performance.now() - started < 500; ) run();
    let best = Infinity;
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      run();
      best = Math.min(best, (performance.now() - started) / 1000);
    }
    return best;
  };
  // Beside oneDNN, the addon's packed kernel (where this CPU has one) on the same products: from a copy
  // for each direction (weights packed beside themselves) and from W's one copy (instead of themselves).
  const kernel = packedKernel();
  let flops = 0;
  const total = { onednn: 0, beside: 0, instead: 0 };
  noGrad(() => tidy(() => {
    for (const [out, inFeatures] of weights) {
      const w = randn([out, inFeatures], { dtype: 'bfloat16' });
      const x = randn([rows, inFeatures], { dtype: 'bfloat16' });
      const g = randn([rows, out], { dtype: 'bfloat16' });
      total.onednn += seconds(() => tidy(() => void x.matmul(w.transpose(0, 1)))) + seconds(() => tidy(() => void g.matmul(w)));
      if (kernel) {
        const ofW = PackedMatrix.of(w);
        const ofWt = PackedMatrix.of(w.transpose(0, 1));
        const backward = seconds(() => tidy(() => void ofW.times(g)));
        total.beside += seconds(() => tidy(() => void ofWt.times(x))) + backward;
        total.instead += seconds(() => tidy(() => void ofW.timesTransposed(x))) + backward;
        ofW.dispose();
        ofWt.dispose();
      }
      flops += 2 * 2 * rows * out * inFeatures;
    }
  }));
  const packed = kernel ? { packed_kernel: kernel, packed_tflops: flops / total.beside / 1e12, packed_one_copy_tflops: flops / total.instead / 1e12 } : { packed_kernel: null };
  console.log(JSON.stringify({ impl: 'attune', mode, shape: shape.name, threads, rows, tflops: flops / total.onednn / 1e12, ...packed }));
  process.exit(0);
}

const dir = randomModelDir(shape);
const config = readModelConfig(dir);
const placement = resolvePlacement({ dtype: (values.dtype ?? 'auto') as DtypeChoice }, parameterCount(config));
const rssMb = () => process.memoryUsage.rss() / 2 ** 20;
const peakRssMb = () => process.resourceUsage().maxRSS / 1024;

function setThreads(setting: string): void {
  const [intraOp, blas] = setting.split(':').map(Number);
  setNumThreads(intraOp);
  if (blas) setBlasThreads(blas);
}

if (mode === 'serve' || mode === 'fairness') {
  // The serving load loads its own base model (bench/serve-load.ts).
  const threads = values.threads ?? String(configureThreads(process.env, config.hiddenSize).threads);
  if (values.threads) setThreads(values.threads);
  manualSeed(0);
  const scheduler = countArg as SchedulerKind;
  const result = mode === 'serve' ? await runLoad(shape, scheduler) : await runFairness(shape);
  console.log(JSON.stringify({ impl: 'attune', mode, shape: shape.name, threads, scheduler, ...result, peak_rss_mb: peakRssMb() }));
  process.exit(0);
}

const loadStarted = performance.now();
const model = loadTransformer(dir, placement);
const loadSeconds = (performance.now() - loadStarted) / 1000;
const loadPeakRssMb = peakRssMb();
let threads: string;
if (values.threads) {
  setThreads(values.threads);
  threads = values.threads;
} else threads = String(configureThreads(process.env, config.hiddenSize).threads);
manualSeed(0);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const common = { impl: 'attune', mode, shape: shape.name, threads, dtype: placement.dtype, device: placement.device };

function randomExamples() {
  return Array.from({ length: shape!.batch }, () => {
    const tokens = Array.from({ length: shape!.seqLen + 1 }, () => Math.floor(Math.random() * config.vocabSize));
    return { ids: tokens.slice(0, -1), targets: tokens.slice(1) };
  });
}

if (mode === 'soak') {
  // The trainer's own loop (it manages memory between steps), over a fixed set of examples.
  const steps = Number(countArg);
  const data = Array.from({ length: 8 }, () => randomExamples()).flat();
  const adapter = LoraAdapter.create(model, loraConfig({ rank: loraRank, alpha: loraAlpha }));
  const rssAt: Record<number, number> = {};
  const memoryAt: Record<number, Record<string, number>> = {};
  const started = performance.now();
  await train(model, adapter, data, {
    epochs: Math.ceil((steps * shape.batch) / data.length), batchSize: shape.batch, learningRate: 1e-3,
    onStep: (m) => {
      if (m.step === 100 || m.step % 1000 === 0) {
        rssAt[m.step] = rssMb();
        const heap = heapStats();
        memoryAt[m.step] = { v8_mb: process.memoryUsage().heapTotal / 2 ** 20, malloc_in_use_mb: heap.inUseBytes / 2 ** 20, malloc_free_mb: heap.freeBytes / 2 ** 20 };
      }
    },
  });
  console.log(JSON.stringify({ ...common, steps, seconds: (performance.now() - started) / 1000, rss_mb_at_step: rssAt, memory_at_step: memoryAt, peak_rss_mb: peakRssMb() }));
} else if (mode === 'train') {
  const count = Number(countArg ?? shape.trainSteps);
  const adapter = LoraAdapter.create(model, loraConfig({ rank: loraRank, alpha: loraAlpha }));
  adapter.attach(model);
  for (const p of adapter.parameters()) p.requiresGrad_(true);
  const optimizer = new AdamW(adapter.parameters());
  const plan = planTraining({ config, dtype: placement.dtype, device: placement.device, rank: loraRank, lengths: Array(shape.batch).fill(shape.seqLen) });
  if (plan.step.packedWeights) model.packProjections(plan.step.packedWeights); // as a training run does (trainer.ts)
  const timings: number[] = [];
  const cpuTimes: number[] = [];
  const pageFaults: number[] = [];
  const warmup = 1;
  for (let step = 1; step <= warmup + count; step++) {
    const started = performance.now();
    const cpuStarted = process.cpuUsage();
    const faultsBefore = process.resourceUsage().minorPageFault;
    tidy(() => trainStep(model, optimizer, randomExamples(), 1e-3, 1.0, plan.step));
    if (step > warmup) {
      timings.push(performance.now() - started);
      const cpu = process.cpuUsage(cpuStarted);
      cpuTimes.push((cpu.user + cpu.system) / 1000);
      pageFaults.push(process.resourceUsage().minorPageFault - faultsBefore);
    }
  }
  if (values.profile) {
    const { table } = profileOps(() => tidy(() => trainStep(model, optimizer, randomExamples(), 1e-3, 1.0, plan.step)), { byShape: values.shapes, top: 40 });
    console.error(table);
  }
  const stepMs = median(timings);
  const tokensPerStep = shape.batch * shape.seqLen;
  console.log(JSON.stringify({
    ...common, step_ms: stepMs, step_ms_min: Math.min(...timings), cpu_ms: median(cpuTimes), step_page_faults: median(pageFaults),
    train_tokens_per_s: (tokensPerStep * 1000) / stepMs, peak_rss_mb: peakRssMb(), load_s: loadSeconds, load_peak_rss_mb: loadPeakRssMb,
    micro_batch_tokens: plan.step.microBatchTokens, checkpointing: plan.step.checkpointing, packed_weights: plan.step.packedWeights ?? 'no', planned_peak_mb: plan.estimate.totalBytes / 2 ** 20,
    heap_mb: process.memoryUsage().heapTotal / 2 ** 20, malloc_free_mb: heapStats().freeBytes / 2 ** 20,
  }));
} else if (mode === 'packed-ab') {
  // One process, one model, steps rotated between plain weights and each packing that fits (beside the
  // weights only where their copies fit): the host's drift, which swings a step's time by up to 2x within
  // minutes here, hits them all alike.
  const rounds = Number(countArg ?? 4);
  const adapter = LoraAdapter.create(model, loraConfig({ rank: loraRank, alpha: loraAlpha }));
  adapter.attach(model);
  for (const p of adapter.parameters()) p.requiresGrad_(true);
  const optimizer = new AdamW(adapter.parameters());
  const plan = planTraining({ config, dtype: placement.dtype, device: placement.device, rank: loraRank, lengths: Array(shape.batch).fill(shape.seqLen) });
  const step = () => {
    const started = performance.now();
    tidy(() => trainStep(model, optimizer, randomExamples(), 1e-3, 1.0, plan.step));
    return performance.now() - started;
  };
  const kinds: ('plain' | WeightPacking)[] = plan.step.packedWeights === 'beside' ? ['plain', 'beside', 'instead'] : ['plain', 'instead'];
  const times = new Map(kinds.map((kind) => [kind, [] as number[]]));
  for (let round = 0; round < rounds; round++) {
    for (const kind of round % 2 ? [...kinds].reverse() : kinds) {
      const unpack = kind === 'plain' ? () => {} : model.packProjections(kind);
      step(); // the first step after a switch warms the other path's buffers
      times.get(kind)!.push(step(), step());
      unpack();
    }
  }
  const stepMs = (kind: 'plain' | WeightPacking) => (times.has(kind) ? median(times.get(kind)!) : null);
  console.log(JSON.stringify({
    ...common, plan_packs: plan.step.packedWeights ?? 'no', plain_step_ms: stepMs('plain'), beside_step_ms: stepMs('beside'),
    instead_step_ms: stepMs('instead'), steps_each: times.get('plain')!.length, peak_rss_mb: peakRssMb(),
  }));
} else if (mode === 'decode') {
  const count = Number(countArg ?? 128);
  const { numLayers, numKvHeads, headDim } = model.config;
  const prompt = Array.from({ length: 16 }, (_, i) => (i * 7) % config.vocabSize);
  const run = () =>
    noGrad(() => {
      const cache = new KvCache(numLayers, 1, numKvHeads, prompt.length + count, headDim, { dtype: model.dtype, device: model.device });
      let next = tidy(() => model.forward(ids(prompt, [1, prompt.length]), { cache }).select(1, prompt.length - 1).argmax(-1).item());
      const started = performance.now();
      for (let i = 0; i < count - 1; i++) {
        next = tidy(() => model.forward(ids([next], [1, 1]), { cache }).select(1, 0).argmax(-1).item());
      }
      cache.dispose();
      return performance.now() - started;
    });
  run();
  const ms = run();
  console.log(JSON.stringify({ ...common, decode_tokens_per_s: ((count - 1) * 1000) / ms, peak_rss_mb: peakRssMb(), load_s: loadSeconds, load_peak_rss_mb: loadPeakRssMb }));
} else throw new Error(`unknown mode ${mode}`);
