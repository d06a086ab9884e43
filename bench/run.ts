// npm run bench [-- --only SHAPE[,SHAPE…]] [--quick]: each figure for Attune beside the same work in PyTorch
// eager in the same run, one JSON line per figure. Attune runs in its auto setting (the device, dtype,
// threads and memory plan `attune tune` would pick); PyTorch in its best setting among float32 and
// bfloat16 autocast, eager and fused (SDPA) attention, 1 and 2 threads. Every measurement runs in its own
// process, one at a time, so peak RSS is its own and the cores are not shared. The reference is the
// newest PyTorch here: .venv-torch (scripts/setup-reference.sh), else Debian's python3-torch.
// --only also takes soak, seed-job, healthz, serving (bench/serving.ts; serving-throughput or
// serving-fairness for one part of it, --serving-shapes a,b for some of its shapes), queue (bench/queue.ts)
// matmul-headroom (bench/matmul-headroom.ts) and packed-weights (1B training steps with and without the
// weights packed for the CPU's bfloat16 kernel, rotated in one process).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { totalmem } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { benchShapes, type BenchShape } from './shapes.js';
import { createToActiveSeconds } from './tune-latency.js';
import { queueBenchmark } from './queue.js';
import { servingFigures, servingShapes } from './serving.js';
import { healthzLatency } from './healthz-latency.js';
import { amxMatmul, amxPeak } from './matmul-headroom.js';
import { parseModelConfig, parameterCount } from '../src/engine/model/config.js';
import { libtorchVersion, type WeightPacking } from '../src/engine/tensor/index.js';
import { packingNames } from '../src/engine/train/memory-plan.js';
import { packageRoot } from '../src/engine/package-root.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const measureScript = path.join(here, 'measure.js');
const referenceScript = path.join(packageRoot, 'bench', 'reference', 'llama_lora_bench.py');
const venvPython = path.join(packageRoot, '.venv-torch', 'bin', 'python');
const python = process.env.ATTUNE_BENCH_PYTHON ?? (existsSync(venvPython) ? venvPython : '/usr/bin/python3');

const { values } = parseArgs({ options: { only: { type: 'string' }, quick: { type: 'boolean' }, 'serving-shapes': { type: 'string' } } });
const quick = values.quick ?? false;
const only = values.only?.split(',');
const extras = ['soak', 'seed-job', 'healthz', 'serving', 'serving-throughput', 'serving-fairness', 'queue', 'matmul-headroom', 'packed-weights'];
const unknown = only?.filter((name) => !extras.includes(name) && !benchShapes.some((s) => s.name === name));
if (unknown?.length) {
  console.error(`unknown shape ${unknown.join(', ')}; shapes: ${benchShapes.map((s) => s.name).join(', ')}, ${extras.join(', ')}`);
  process.exit(2);
}
const selected = (name: string) => !only || only.includes(name);
const servingShapesChosen = values['serving-shapes']?.split(',') ?? servingShapes;
const unknownServing = servingShapesChosen.filter((name) => !servingShapes.includes(name));
if (unknownServing.length) {
  console.error(`unknown serving shape ${unknownServing.join(', ')}; serving shapes: ${servingShapes.join(', ')}`);
  process.exit(2);
}

type Line = Record<string, unknown>;

function runJson(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Line {
  const out = execFileSync(command, args, { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 * 2 ** 20 });
  return JSON.parse(out.trim().split('\n').at(-1)!);
}

const attune = (mode: string, shape: BenchShape, count?: number): Line =>
  runJson(process.execPath, [measureScript, mode, shape.name, ...(count === undefined ? [] : [String(count)])]);

interface ReferenceSetting {
  precision: 'float32' | 'bf16';
  attention: 'eager' | 'sdpa';
  threads: number;
}

const referenceTorch = runJson(python, ['-c', 'import json, torch; print(json.dumps({"version": torch.__version__}))']).version as string;
const referenceHasSdpa = Number(referenceTorch.split('.')[0]) >= 2;

/**
 * The PyTorch settings worth trying at a shape: float32 only where its weights fit comfortably in memory
 * (an 8B model's do not), fused attention only where the reference has it, and one thread only where a
 * step is short enough to try it (2 threads win at every larger shape).
 */
function referenceSettings(shape: BenchShape): ReferenceSetting[] {
  const parameters = parameterCount(parseModelConfig(shape.config));
  const precisions: ReferenceSetting['precision'][] = parameters * 4 < 0.45 * totalmem() ? ['float32', 'bf16'] : ['bf16'];
  const attentions: ReferenceSetting['attention'][] = referenceHasSdpa ? ['eager', 'sdpa'] : ['eager'];
  const threads = parameters < 2e9 ? [1, 2] : [2];
  return precisions.flatMap((precision) => attentions.flatMap((attention) => threads.map((t) => ({ precision, attention, threads: t }))));
}

function pytorch(mode: 'train' | 'decode', shape: BenchShape, setting: ReferenceSetting, newTokens: number): Line {
  const args = [referenceScript, '--shape', shape.name, '--mode', mode, '--threads', String(setting.threads),
    '--precision', setting.precision, '--attention', setting.attention];
  if (mode === 'train') args.push('--steps', String(quick ? 1 : shape.trainSteps), '--warmup', '1');
  else args.push('--steps', '1', '--warmup', '1', '--new-tokens', String(newTokens));
  return runJson(python, args);
}

function bestOf(lines: Line[], metric: string): Line {
  return lines.reduce((a, b) => (Number(b[metric]) > Number(a[metric]) ? b : a));
}

const settingOf = (line: Line) => `${line.precision} ${line.attention} attention, ${line.threads} thread${line.threads === 1 ? '' : 's'}`;

function emit(line: Line): void {
  console.log(JSON.stringify(line));
}

function round(value: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** The reference runs interleaved with Attune's, so drift in the machine's load hits both alike. */
function compare(shape: BenchShape, mode: 'train' | 'decode', metric: string, newTokens: number) {
  const settings = referenceSettings(shape);
  const attuneRuns: Line[] = [];
  const references: Line[] = [];
  for (const [i, setting] of settings.entries()) {
    if (i === 0 || i === Math.floor(settings.length / 2)) attuneRuns.push(attune(mode, shape, mode === 'decode' ? newTokens : quick ? 1 : undefined));
    references.push(pytorch(mode, shape, setting, newTokens));
  }
  return { attune: bestOf(attuneRuns, metric), pytorch: bestOf(references, metric), tried: settings.length };
}

const meta = { attune_libtorch: libtorchVersion(), pytorch_version: referenceTorch };
for (const shape of benchShapes.filter((s) => selected(s.name))) {
  const batch = `${shape.batch}x${shape.seqLen}`;
  const train = compare(shape, 'train', 'train_tokens_per_s', 0);
  const a = train.attune;
  const p = train.pytorch;
  emit({
    figure: 'lora_train_tokens_per_s', shape: shape.name, batch, rank: 8,
    attune: round(Number(a.train_tokens_per_s)), attune_setting: `auto: ${a.dtype} on ${a.device}, ${a.threads} threads`,
    pytorch: round(Number(p.train_tokens_per_s)), pytorch_setting: settingOf(p), pytorch_settings_tried: train.tried,
    ratio: round(Number(a.train_tokens_per_s) / Number(p.train_tokens_per_s), 2), ...meta,
  });
  emit({
    figure: 'train_peak_rss_mb', shape: shape.name, batch,
    attune: round(Number(a.peak_rss_mb)), attune_planned: round(Number(a.planned_peak_mb)),
    attune_plan: `${a.checkpointing ? 'checkpointing, ' : ''}micro-batches of ${a.micro_batch_tokens} tokens${a.packed_weights !== 'no' ? `, ${packingNames[a.packed_weights as WeightPacking]}` : ''}`,
    pytorch: round(Number(p.max_rss_mb)), pytorch_setting: settingOf(p),
    ratio: round(Number(a.peak_rss_mb) / Number(p.max_rss_mb), 2),
  });
  const weightsMb = (parameterCount(parseModelConfig(shape.config)) * (a.dtype === 'float32' ? 4 : 2)) / 2 ** 20;
  emit({
    figure: 'load_peak_rss_mb', shape: shape.name, file_dtype: shape.fileDtype, attune_dtype: a.dtype,
    attune: round(Number(a.load_peak_rss_mb)), weights_mb: round(weightsMb), ratio: round(Number(a.load_peak_rss_mb) / weightsMb, 2),
    attune_load_s: round(Number(a.load_s), 2),
  });
  const newTokens = quick ? 16 : parameterCount(parseModelConfig(shape.config)) > 2e9 ? 32 : 128;
  const decode = compare(shape, 'decode', 'decode_tokens_per_s', newTokens);
  emit({
    figure: 'decode_tokens_per_s', shape: shape.name, prompt_tokens: 16, new_tokens: newTokens,
    attune: round(Number(decode.attune.decode_tokens_per_s)), attune_setting: `auto: ${decode.attune.dtype}, ${decode.attune.threads} threads`,
    pytorch: round(Number(decode.pytorch.decode_tokens_per_s)), pytorch_setting: settingOf(decode.pytorch),
    ratio: round(Number(decode.attune.decode_tokens_per_s) / Number(decode.pytorch.decode_tokens_per_s), 2),
  });
}

// oneDNN's bfloat16 rate at the 1B and 8B steps' projections beside the CPU's own ceiling (AMX units, or
// VDPBF16PS), beside the addon's packed kernel in the same process, and beside the standalone AMX probe on
// weights packed ahead of time (when asked for by name).
if (only?.includes('matmul-headroom')) {
  const shapes = ['llama-3.2-1b', 'llama-3.1-8b'].map((name) => benchShapes.find((s) => s.name === name)!);
  // Each shape's two matmuls back to back, so that drift in the host's load hits both alike.
  const measured = shapes.map((shape) => {
    const rate = attune('matmul', shape);
    return { rate, prepacked: amxMatmul(Number(rate.threads), shape) };
  });
  const peak = amxPeak(Number(measured[0].rate.threads));
  for (const { rate, prepacked } of measured) {
    emit({
      figure: 'bf16_matmul_tflops', shape: rate.shape, rows: rate.rows, threads: rate.threads,
      onednn: round(Number(rate.tflops), 2), amx_in_l1: peak.in_l1_tflops ?? null, amx_in_l2: peak.in_l2_tflops ?? null,
      amx_streamed_from_l2: peak.streamed_from_l2_tflops ?? null, amx_streamed_from_memory: peak.streamed_from_memory_tflops ?? null,
      ...(peak.amx ? { ratio: round(Number(rate.tflops) / peak.streamed_from_l2_tflops!, 2) } : { note: peak.why }),
      ...(peak.avx512_bf16_tflops !== undefined
        ? { avx512_bf16_in_registers: peak.avx512_bf16_tflops, ratio: round(Number(rate.tflops) / peak.avx512_bf16_tflops, 2) }
        : {}),
      packed_kernel: rate.packed_kernel,
      ...(rate.packed_kernel
        ? { packed_matmul: round(Number(rate.packed_tflops), 2), packed_one_copy_matmul: round(Number(rate.packed_one_copy_tflops), 2), packed_over_onednn: round(Number(rate.packed_tflops) / Number(rate.tflops), 2) }
        : {}),
      amx_prepacked_matmul: prepacked.tflops === undefined ? null : round(prepacked.tflops, 2),
      ...(prepacked.amx
        ? { prepacked_over_onednn: round(prepacked.tflops! / Number(rate.tflops), 2), prepacked_forward_ms: prepacked.forward_ms, one_copy_forward_ms: prepacked.one_copy_forward_ms }
        : { prepacked_note: prepacked.why }),
    });
  }
}

// What packing the projection weights for the CPU's bfloat16 kernel gives a 1B training step, beside the weights and
// instead of them (when asked for by name).
if (only?.includes('packed-weights')) {
  const shape = benchShapes.find((s) => s.name === 'llama-3.2-1b')!;
  const line = runJson(process.execPath, [measureScript, 'packed-ab', shape.name, quick ? '1' : '4']);
  const plain = Number(line.plain_step_ms);
  const gain = (packed: unknown) => (packed === null ? null : round(plain / Number(packed), 3));
  emit({
    figure: 'packed_weights_step_gain', shape: shape.name, batch: `${shape.batch}x${shape.seqLen}`, dtype: line.dtype, threads: line.threads,
    plain_step_ms: round(plain), beside_step_ms: line.beside_step_ms === null ? null : round(Number(line.beside_step_ms)),
    instead_step_ms: round(Number(line.instead_step_ms)), steps_each: line.steps_each,
    ratio: gain(line.beside_step_ms), instead_ratio: gain(line.instead_step_ms), auto_plan_packs: line.plan_packs,
  });
}

// Native memory must stay flat over a long run: RSS at step 1,000 (warmed up) against RSS at the end.
if (selected('soak')) {
  const steps = quick ? 2000 : 10_000;
  const soak = attune('soak', benchShapes.find((s) => s.name === 'stories260K')!, steps);
  const rss = soak.rss_mb_at_step as Record<string, number>;
  emit({
    figure: 'rss_growth_mb', shape: 'stories260K', steps: `1000..${steps}`,
    attune_rss_mb_at_1000: round(rss['1000']), attune_rss_mb_at_end: round(rss[String(steps)]),
    attune: round(rss[String(steps)] - rss['1000']), rss_mb_by_step: rss,
  });
}

{
  const throughput = selected('serving') || selected('serving-throughput');
  const fairness = selected('serving') || selected('serving-fairness');
  if (throughput || fairness) {
    for (const line of servingFigures({ measureScript, referenceScript, python }, { throughput, fairness, shapes: servingShapesChosen })) emit(line);
  }
}

// The Gemini API seed job end to end: create → ACTIVE through HTTP and a worker process (target < 5 s).
if (selected('seed-job')) {
  const latencies = await createToActiveSeconds(quick ? 1 : 3);
  emit({
    figure: 'seed_job_create_to_active_s',
    steps: 188,
    attune: round([...latencies].sort((x, y) => x - y)[Math.floor(latencies.length / 2)], 2),
    runs: latencies.map((s) => round(s, 2)).join(' '),
    target: 5,
  });
}

// The job queue on PostgreSQL under load (no training: it measures claiming).
if (selected('queue')) for (const line of await queueBenchmark()) emit(line);
// CPU-heavy request work runs in worker threads: /healthz while a 10 MB JSONL validateOnly is framed, beside
// /healthz on the same idle server (target: under 100 ms).
if (selected('healthz')) {
  const health = await healthzLatency();
  const percentile = (values: number[], q: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(q * values.length))];
  emit({
    figure: 'healthz_ms_during_10mb_validate',
    attune_p50: round(percentile(health.busyMs, 0.5), 2),
    attune_max: round(Math.max(...health.busyMs), 2),
    idle_p50: round(percentile(health.idleMs, 0.5), 2),
    idle_max: round(Math.max(...health.idleMs), 2),
    ratio_p50: round(percentile(health.busyMs, 0.5) / percentile(health.idleMs, 0.5), 2),
    samples: health.busyMs.length,
    validate_s: round(health.validateSeconds, 1),
    target: 100,
  });
}
