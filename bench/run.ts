// npm run bench: each figure for Attune beside the same work in PyTorch eager (Debian python3-torch) in the
// same run, each implementation in its best thread setting, one JSON line per figure. Every measurement
// runs in its own process, one at a time, so peak RSS is its own and the cores are not shared.
// `--only NAME[,NAME]` runs some sections: train, decode, soak, seed-job, healthz, serving. `--quick` runs less.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchShapes } from './shapes.js';
import { createToActiveSeconds } from './tune-latency.js';
import { queueBenchmark } from './queue.js';
import { servingFigures } from './serving.js';
import { healthzLatency } from './healthz-latency.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const measureScript = path.join(here, 'measure.js');
const referenceScript = path.resolve(here, '../../bench/reference/llama_lora_bench.py');
const python = process.env.ATTUNE_BENCH_PYTHON ?? '/usr/bin/python3';
// Attune sets ATen's and OpenBLAS's pools apart (intra:blas); Debian's PyTorch sizes only ATen's.
const threadSettings = { attune: ['1:1', '1:2', '2:2'], pytorch: ['1', '2'] };
const quick = process.argv.includes('--quick');
const sections = ['train', 'decode', 'soak', 'seed-job', 'healthz', 'serving', 'queue'];
const onlyAt = process.argv.indexOf('--only');
const only = onlyAt >= 0 ? (process.argv[onlyAt + 1] ?? '').split(',') : sections;
for (const name of only) if (!sections.includes(name)) throw new Error(`--only takes ${sections.join(', ')}; not '${name}'`);
const runs = (section: string) => only.includes(section);

type Line = Record<string, number | string | boolean>;

function attune(mode: string, shape: string, threads: string, count: number): Line {
  const out = execFileSync(process.execPath, [measureScript, mode, shape, threads, String(count)], { encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').at(-1)!);
}

function pytorch(mode: 'train' | 'decode', shape: string, threads: string, steps: number): Line {
  const args = [referenceScript, '--shape', shape, '--threads', threads, '--mode', mode];
  if (mode === 'train') args.push('--steps', String(steps), '--warmup', '2');
  const out = execFileSync(python, args, { encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').at(-1)!);
}

/** Runs both implementations at every thread setting, alternating them so drift hits both alike. */
function best(metric: string, run: (impl: 'attune' | 'pytorch', threads: string) => Line) {
  const results = { attune: [] as Line[], pytorch: [] as Line[] };
  const rounds = Math.max(threadSettings.attune.length, threadSettings.pytorch.length);
  for (let i = 0; i < rounds; i++) {
    if (threadSettings.attune[i]) results.attune.push(run('attune', threadSettings.attune[i]));
    if (threadSettings.pytorch[i]) results.pytorch.push(run('pytorch', threadSettings.pytorch[i]));
  }
  const top = (lines: Line[]) => lines.reduce((a, b) => (Number(b[metric]) > Number(a[metric]) ? b : a));
  return { attune: top(results.attune), pytorch: top(results.pytorch), all: results };
}

/** Both implementations' best figure, their thread settings, and Attune's ratio to PyTorch. */
function comparison(result: { attune: Line; pytorch: Line }, metric: string): Line {
  const attune = Number(result.attune[metric]);
  const pytorch = Number(result.pytorch[metric]);
  return {
    attune: round(attune),
    attune_threads: result.attune.threads,
    pytorch: round(pytorch),
    pytorch_threads: result.pytorch.threads,
    ratio: round(attune / pytorch, 3),
  };
}

function emit(line: Line): void {
  console.log(JSON.stringify(line));
}

const trainSteps: Record<string, number> = { stories260K: 20, stories15M: 8, 'smollm2-135M': 3 };
for (const shape of benchShapes) {
  if (!runs('train')) break;
  const steps = quick ? 2 : trainSteps[shape.name];
  const train = best('train_tokens_per_s', (impl, threads) =>
    impl === 'attune' ? attune('train', shape.name, threads, steps) : pytorch('train', shape.name, threads, steps),
  );
  emit({ figure: 'lora_train_tokens_per_s', shape: shape.name, batch: `${shape.batch}x${shape.seqLen}`, rank: 8, ...comparison(train, 'train_tokens_per_s') });
  emit({
    figure: 'train_peak_rss_mb',
    shape: shape.name,
    attune: round(Number(train.attune.peak_rss_mb)),
    pytorch: round(Number(train.pytorch.max_rss_mb)),
    ratio: round(Number(train.attune.peak_rss_mb) / Number(train.pytorch.max_rss_mb), 3),
  });
}
for (const shape of benchShapes) {
  if (!runs('decode') || (shape.name === 'smollm2-135M' && quick)) continue;
  const decode = best('decode_tokens_per_s', (impl, threads) =>
    impl === 'attune' ? attune('decode', shape.name, threads, 128) : pytorch('decode', shape.name, threads, 0),
  );
  emit({ figure: 'decode_tokens_per_s', shape: shape.name, prompt_tokens: 16, new_tokens: 128, ...comparison(decode, 'decode_tokens_per_s') });
}

// Native memory must not creep over a long run: RSS after step 100 against RSS at the end.
if (runs('soak')) {
  const soakSteps = quick ? 200 : 2000;
  const soak = attune('soak', 'stories260K', '1', soakSteps);
  emit({
    figure: 'rss_growth_mb',
    shape: 'stories260K',
    steps: `100..${soakSteps}`,
    attune_rss_mb_at_100: round(Number(soak.rss_mb_at_step_100)),
    attune_rss_mb_at_end: round(Number(soak[`rss_mb_at_step_${soakSteps}`])),
    attune: round(Number(soak[`rss_mb_at_step_${soakSteps}`]) - Number(soak.rss_mb_at_step_100)),
  });
}

if (runs('serving')) for (const line of servingFigures({ measureScript, referenceScript, python })) emit(line);
if (runs('queue')) for (const line of await queueBenchmark()) console.log(JSON.stringify(line));

function round(value: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

// The Gemini API seed job end to end: create → ACTIVE through HTTP and a worker process (target < 5 s).
if (runs('seed-job')) {
  const latencies = await createToActiveSeconds(quick ? 1 : 3);
  emit({
    figure: 'seed_job_create_to_active_s',
    steps: 188,
    attune: round([...latencies].sort((a, b) => a - b)[Math.floor(latencies.length / 2)], 2),
    runs: latencies.map((s) => round(s, 2)).join(' '),
    target: 5,
  });
}

// The job queue on PostgreSQL under load (no training: it measures claiming).
for (const line of await queueBenchmark()) emit(line);
// CPU-heavy request work runs in worker threads: /healthz while a 10 MB JSONL validateOnly is framed, beside
// /healthz on the same idle server (target: under 100 ms).
if (runs('healthz')) {
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
