// The continuous-batching runner on stories260K with real LoRA adapters: mixed requests (eight tuned
// models through four resident slots, the base model, greedy, seeded and filtered sampling) give the same
// text batched as alone; a loading adapter does not hold the batch up; projects take turns; full queues,
// deadlines and disconnects; the KV pool bounds what runs at once; and native memory returns to where it was.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { BaseModel } from '../src/engine/base-model.js';
import type { Generation } from '../src/engine/generate/generate.js';
import { LoraAdapter, loraConfig } from '../src/engine/lora/lora.js';
import { liveTensorCount, manualSeed, noGrad } from '../src/engine/tensor/index.js';
import { KvBlockPool } from '../src/engine/model/paged-kv-cache.js';
import { ContinuousRunner, type ContinuousOptions } from '../src/service/serving/continuous-runner.js';
import type { AdapterRef, Job, JobOptions } from '../src/service/serving/job.js';
import { ServiceError } from '../src/service/errors.js';
import { loadStories, settleGarbage } from './helpers/engine.js';

let base: BaseModel;
/** Eight adapters' weights (ranks 2 to 16, some on q/v only), cloned for each load as a file load would be. */
const adapterWeights: LoraAdapter[] = [];

before(async () => {
  base = await loadStories();
  const ranks = [2, 4, 8, 16, 4, 8, 2, 8];
  ranks.forEach((rank, i) => {
    manualSeed(100 + i);
    const adapter = LoraAdapter.create(base.transformer, loraConfig({ rank, targetModules: i % 3 === 1 ? ['q_proj', 'v_proj'] : undefined }));
    noGrad(() => {
      for (const { b } of adapter.weights.values()) b.normal_(0, 0.15);
    });
    adapterWeights.push(adapter);
  });
});

const loads: string[] = [];
/** `loaded`: the load finishes only once it settles (a slow disk the test controls). */
function adapterRef(i: number, loaded?: Promise<unknown>): AdapterRef {
  return {
    key: `model-${i}@1`,
    modelId: `model-${i}`,
    load: async () => {
      loads.push(`model-${i}`);
      await loaded;
      const source = adapterWeights[i];
      const weights = new Map([...source.weights].map(([path, w]) => [path, { ...w, a: w.a.clone(), b: w.b.clone() }]));
      return new LoraAdapter(source.config, weights);
    },
  };
}

const defaults: ContinuousOptions = { maxBatchRows: 32, maxAdapters: 4, kvCacheBytes: 64 * 1024 * 1024, kvBlockSize: 16, fairStepTokens: 16, queue: { perProject: 100, total: 200 } };

interface Outcome {
  result?: Generation;
  error?: ServiceError;
  text: string[];
  /** Completion order across the test's jobs. */
  order: number;
  /** The runner's step count when the first text arrived. */
  firstStep?: number;
}

let finished = 0;
function job(runner: ContinuousRunner, spec: { project?: string; adapter?: AdapterRef | null; prompt: string; options?: Partial<JobOptions>; signal?: AbortSignal; deadlineMs?: number }): { done: Promise<Outcome>; submitted: Promise<void> } {
  const text: string[] = [];
  let firstStep: number | undefined;
  let settle!: (o: Outcome) => void;
  const done = new Promise<Outcome>((resolve) => (settle = resolve));
  const j: Job = {
    project: spec.project ?? 'p',
    adapter: spec.adapter ?? null,
    promptIds: base.tokenizer.encode(spec.prompt),
    options: { temperature: 0, candidateCount: 1, maxOutputTokens: 24, stopSequences: [], ...spec.options },
    signal: spec.signal,
    deadline: Date.now() + (spec.deadlineMs ?? 60_000),
    onDelta: ({ candidate, text: t }) => {
      firstStep ??= runner.stats().forwards;
      text[candidate] = (text[candidate] ?? '') + t;
    },
    onDone: (result) => settle({ result, text, order: finished++, firstStep }),
    onError: (error) => settle({ error: error as ServiceError, text, order: finished++, firstStep }),
  };
  const submitted = runner.submit(j);
  submitted.catch((error) => settle({ error, text, order: finished++ }));
  return { done, submitted };
}

const prompts = ['Once upon a time', 'The little dog ran to the park. He', 'Lily and Tom', 'One day, a girl named Sue went to the store with her mom. They wanted to buy'];

test('mixed requests (8 tuned models through 4 slots, the base model, greedy, seeded, top-k/top-p, 2 candidates): the same text batched as alone', async () => {
  const specs = Array.from({ length: 18 }, (_, i) => ({
    adapter: i % 9 === 8 ? null : adapterRef(i % 9),
    prompt: prompts[i % prompts.length],
    options: [
      { temperature: 0 },
      { temperature: 0.9, seed: i },
      { temperature: 1.2, topK: 30, seed: 1000 + i, candidateCount: 2 },
      { temperature: 0.8, topP: 0.9, seed: 7 * i, stopSequences: ['.'] },
    ][i % 4] as Partial<JobOptions>,
  }));
  const runner = new ContinuousRunner(base, defaults);
  const alone: string[][] = [];
  for (const spec of specs) {
    const outcome = await job(runner, spec).done;
    assert.equal(outcome.error, undefined);
    alone.push(outcome.result!.candidates.map((c) => c.text));
    assert.deepEqual(outcome.text.map((t) => t ?? ''), alone.at(-1), 'the deltas add up to the result');
  }
  assert.ok(new Set(alone.map((t) => t[0])).size >= 12, 'the models and settings say different things');
  assert.ok(runner.stats().adapters <= 4, 'at most maxAdapters resident');

  const stepsBefore = runner.stats().forwards;
  const together = await Promise.all(specs.map((spec) => job(runner, spec).done));
  assert.deepEqual(together.map((o) => o.result!.candidates.map((c) => c.text)), alone);
  const steps = runner.stats().forwards - stepsBefore;
  const tokens = together.reduce((n, o) => n + o.result!.candidatesTokenCount, 0);
  assert.ok(steps < tokens / 3, `${steps} steps for ${tokens} tokens: decoded side by side`);
  runner.close();
});

test('an adapter loading in the background does not hold up the batch; it joins when resident', async () => {
  const runner = new ContinuousRunner(base, defaults);
  const running = job(runner, { prompt: prompts[0], options: { maxOutputTokens: 200 } });
  await running.submitted;
  let finishLoading!: () => void;
  const slow = job(runner, { adapter: adapterRef(5, new Promise<void>((resolve) => (finishLoading = resolve))), prompt: prompts[1], options: { maxOutputTokens: 4 } });
  const stepsAtSubmit = runner.stats().forwards;
  // Steps, not wall time: the load ends only after the base request has decoded 10 more tokens without it.
  const giveUp = Date.now() + 30_000;
  while (runner.stats().forwards <= stepsAtSubmit + 10 && Date.now() < giveUp) await new Promise((resolve) => setTimeout(resolve, 1));
  assert.ok(runner.stats().forwards > stepsAtSubmit + 10, 'the base request kept decoding while the adapter loaded');
  finishLoading();
  const [a, b] = await Promise.all([running.done, slow.done]);
  assert.equal(a.error, undefined);
  assert.equal(b.error, undefined);
  assert.ok(b.order < a.order, 'the late request finished inside the long one');

  // An adapter that cannot be read: the request is refused before it streams anything; its slot is free again.
  const broken: AdapterRef = { key: 'broken@1', modelId: 'broken', load: async () => Promise.reject(new Error('adapter_model.safetensors is truncated')) };
  await assert.rejects(job(runner, { adapter: broken, prompt: prompts[0] }).submitted, (error: ServiceError) => {
    assert.equal(error.status, 'INTERNAL');
    assert.match(error.message, /tunedModels\/broken cannot be loaded: adapter_model.safetensors is truncated/);
    return true;
  });
  const adaptersBefore = runner.stats().adapters;
  assert.equal((await job(runner, { adapter: adapterRef(6), prompt: prompts[0] }).done).error, undefined);
  assert.equal(runner.stats().adapters, adaptersBefore + 1);
  runner.close();
});

test("projects share rows: another project's request starts at the next step during a 60-request flood; paused requests go on unchanged", async () => {
  const runner = new ContinuousRunner(base, { ...defaults, maxBatchRows: 4 });
  const alone = await Promise.all(prompts.map((prompt) => job(runner, { prompt, options: { maxOutputTokens: 16 } }).done));
  const flood = Array.from({ length: 60 }, (_, i) => job(runner, { project: 'flood', prompt: prompts[i % 4], options: { maxOutputTokens: 16 } }));
  while (runner.stats().running < 4) await new Promise((resolve) => setImmediate(resolve));
  const stepsAtArrival = runner.stats().forwards;
  const single = job(runner, { project: 'quiet', prompt: prompts[0], options: { maxOutputTokens: 16 } });
  const quiet = await single.done;
  const outcomes = await Promise.all(flood.map((f) => f.done));
  const before = outcomes.filter((o) => o.order < quiet.order).length;
  assert.ok(quiet.firstStep! <= stepsAtArrival + 2, `its first token came ${quiet.firstStep! - stepsAtArrival} steps after it arrived`);
  assert.ok(before <= 4, `${before} flood requests finished before it (56 were waiting when it came)`);
  assert.equal(quiet.result!.candidates[0].text, alone[0].result!.candidates[0].text);
  outcomes.forEach((o, i) => assert.equal(o.result!.candidates[0].text, alone[i % 4].result!.candidates[0].text, `flood request ${i}`));
  runner.close();
});

test("a light project's steps stay short during another project's flood: at most fairStepTokens tokens besides its own prompt, a token every step; the batch grows back after it; paused requests go on unchanged", async () => {
  const steps: { tokens: number; rowsByProject: ReadonlyMap<string, number> }[] = [];
  const runner = new ContinuousRunner(base, { ...defaults, maxBatchRows: 8, fairStepTokens: 4, onStep: (step) => steps.push(step) });
  const alone = await Promise.all(prompts.map((prompt) => job(runner, { prompt, options: { maxOutputTokens: 16 } }).done));
  const flood = Array.from({ length: 40 }, (_, i) => job(runner, { project: 'flood', prompt: prompts[i % 4], options: { maxOutputTokens: 16 } }));
  while (runner.stats().running < 8) await new Promise((resolve) => setImmediate(resolve));
  const arrival = steps.length;
  const quiet = await job(runner, { project: 'quiet', prompt: prompts[3], options: { maxOutputTokens: 16 } }).done;
  const outcomes = await Promise.all(flood.map((f) => f.done));

  const carried = steps.flatMap((step, i) => (step.rowsByProject.has('quiet') ? [i] : []));
  const tokens = quiet.result!.candidatesTokenCount;
  assert.ok(carried[0] <= arrival + 1, `it started ${carried[0] - arrival} steps after it arrived`);
  assert.deepEqual(carried, Array.from({ length: tokens }, (_, k) => carried[0] + k), 'a token every step from its first to its last');
  const promptTokens = base.tokenizer.encode(prompts[3]).length;
  assert.ok(steps[carried[0]].tokens <= 4 + promptTokens, `its prefill step carried ${steps[carried[0]].tokens} tokens`);
  for (const i of carried.slice(1)) assert.ok(steps[i].tokens <= 4, `step ${i - carried[0]} of it carried ${steps[i].tokens} tokens`);
  assert.ok(steps.slice(carried.at(-1)! + 1).some((step) => step.rowsByProject.get('flood') === 8), 'the flood decodes on all 8 rows again after it');
  assert.equal(steps[arrival - 1].rowsByProject.get('flood'), 8, 'the flood had the whole batch before it');

  assert.equal(quiet.result!.candidates[0].text, alone[3].result!.candidates[0].text);
  outcomes.forEach((o, i) => assert.equal(o.result!.candidates[0].text, alone[i % 4].result!.candidates[0].text, `flood request ${i}`));
  runner.close();
});

test('a light project with two requests beside two floods, one arriving while steps are capped: its rows all decode, each flood gets and keeps a row, the step stays within fairStepTokens', async () => {
  const steps: { tokens: number; rowsByProject: ReadonlyMap<string, number> }[] = [];
  const runner = new ContinuousRunner(base, { ...defaults, maxBatchRows: 12, fairStepTokens: 4, onStep: (step) => steps.push(step) });
  const flood = (project: string) => Array.from({ length: 20 }, (_, i) => job(runner, { project, prompt: prompts[i % 4], options: { maxOutputTokens: 16 } }));
  const floodA = flood('flood-a');
  while (runner.stats().running < 12) await new Promise((resolve) => setImmediate(resolve));
  const light = [prompts[0], prompts[2]].map((prompt) => job(runner, { project: 'light', prompt, options: { maxOutputTokens: 16 } }));
  while (!steps.some((step) => step.rowsByProject.get('light') === 2)) await new Promise((resolve) => setImmediate(resolve));
  const floodBArrival = steps.length;
  const floodB = flood('flood-b');
  const outcomes = await Promise.all(light.map((l) => l.done));
  assert.ok(outcomes.every((o) => o.error === undefined));

  const capped = steps.slice(floodBArrival).filter((step) => step.rowsByProject.get('light') === 2);
  assert.ok(capped.length >= 8, `${capped.length} steps decoded both its rows after the second flood came`);
  assert.ok(capped.slice(0, 3).some((step) => step.rowsByProject.get('flood-a') === 1), 'the first flood keeps a row');
  const shared = capped.filter((step) => step.rowsByProject.get('flood-b') === 1);
  assert.ok(shared.length >= capped.length - 3, `the second flood got a row within 3 steps (${shared.length} of ${capped.length})`);
  for (const step of shared) assert.equal(step.rowsByProject.get('flood-a'), 1);
  // The second flood's first prompt goes past the budget (it had nothing decoding), once; then 4 tokens a step.
  const longestPrompt = Math.max(...prompts.map((p) => base.tokenizer.encode(p).length));
  assert.ok(shared[0].tokens <= 4 + longestPrompt);
  for (const step of shared.slice(1)) assert.equal(step.tokens, 4, 'its 2 rows and one row of each flood');
  await Promise.all([...floodA, ...floodB].map((f) => f.done));
  runner.close();
});

test('full queues answer RESOURCE_EXHAUSTED with a retry delay, per project and per model; nothing else fails', async () => {
  const runner = new ContinuousRunner(base, { ...defaults, maxBatchRows: 1, queue: { perProject: 3, total: 5 } });
  const first = job(runner, { project: 'a', prompt: prompts[0], options: { maxOutputTokens: 100 } });
  await first.submitted;
  while (runner.stats().running === 0) await new Promise((resolve) => setImmediate(resolve));
  const submitted = [first, ...Array.from({ length: 5 }, () => job(runner, { project: 'a', prompt: prompts[0], options: { maxOutputTokens: 8 } }))];
  const others = Array.from({ length: 4 }, () => job(runner, { project: 'b', prompt: prompts[1], options: { maxOutputTokens: 8 } }));
  const settled = await Promise.allSettled([...submitted, ...others].map((j) => j.submitted));
  const refused = settled.flatMap((s) => (s.status === 'rejected' ? [s.reason as ServiceError] : []));
  // a: the first runs at once (queues are for waiting), 3 wait, 2 refused; b: 2 more fit in the model's 5, 2 refused.
  assert.equal(refused.length, 4, JSON.stringify(settled.map((s) => s.status)));
  for (const error of refused) {
    assert.equal(error.status, 'RESOURCE_EXHAUSTED');
    assert.ok(error.retryDelaySeconds! >= 1);
    assert.match(error.message, /queuedGenerationsPer(Project|BaseModel)/);
  }
  const outcomes = await Promise.all([...submitted, ...others].map((j) => j.done));
  assert.equal(outcomes.filter((o) => o.result).length, 6);
  assert.ok(outcomes.every((o) => o.result || o.error?.status === 'RESOURCE_EXHAUSTED'));
  runner.close();
});

test('a deadline ends a request DEADLINE_EXCEEDED, queued or running; a disconnect frees its rows and blocks at once', async () => {
  const runner = new ContinuousRunner(base, { ...defaults, maxBatchRows: 1 });
  const long = job(runner, { prompt: prompts[0], options: { maxOutputTokens: 400 }, deadlineMs: 150 });
  const queued = job(runner, { prompt: prompts[1], options: { maxOutputTokens: 4 }, deadlineMs: 50 });
  const [a, b] = await Promise.all([long.done, queued.done]);
  assert.equal(a.error?.status, 'DEADLINE_EXCEEDED');
  assert.ok(a.text[0].length > 0, 'it had streamed text before the deadline');
  assert.equal(b.error?.status, 'DEADLINE_EXCEEDED', 'it waited behind the long one past its deadline');

  const controller = new AbortController();
  const gone = job(runner, { prompt: prompts[0], options: { maxOutputTokens: 400 }, signal: controller.signal });
  await gone.submitted;
  while (runner.stats().forwards === 0 || runner.stats().running === 0) await new Promise((resolve) => setImmediate(resolve));
  controller.abort();
  assert.equal(runner.stats().running, 0, 'its row is free the moment the client leaves');
  assert.equal((await gone.done).error?.status, 'CANCELLED');
  const next = await job(runner, { prompt: prompts[2], options: { maxOutputTokens: 4 } }).done;
  assert.equal(next.error, undefined);
  runner.close();
});

test('the KV pool bounds what runs at once: requests wait for blocks, all finish; one that can never fit is refused', async () => {
  const { config } = base.transformer;
  const perToken = KvBlockPool.bytesPerToken(config, 'float32');
  // Room for 512 tokens (the context): two requests of 16 + 200 tokens fit at once, not three.
  const runner = new ContinuousRunner(base, { ...defaults, kvCacheBytes: 512 * perToken });
  const jobs = Array.from({ length: 6 }, (_, i) => job(runner, { prompt: prompts[i % 4], options: { maxOutputTokens: 200 } }));
  let most = 0;
  const watch = setInterval(() => (most = Math.max(most, runner.stats().running)), 1);
  const outcomes = await Promise.all(jobs.map((j) => j.done));
  clearInterval(watch);
  assert.ok(outcomes.every((o) => o.result), 'every request finished');
  assert.ok(most <= 2, `${most} ran at once`);
  await assert.rejects(
    job(runner, { prompt: prompts[0], options: { maxOutputTokens: 200, temperature: 1, candidateCount: 3 } }).submitted,
    (error: ServiceError) => error.status === 'INVALID_ARGUMENT' && /KV cache/.test(error.message),
  );
  runner.close();
});

test('native memory: a burst of mixed requests leaves no tensors behind', async () => {
  const runner = new ContinuousRunner(base, defaults);
  const warm = await Promise.all(prompts.map((prompt, i) => job(runner, { prompt, adapter: adapterRef(i) }).done));
  assert.ok(warm.every((o) => o.result));
  await settleGarbage();
  const baseline = liveTensorCount();
  const burst = await Promise.all(
    Array.from({ length: 24 }, (_, i) =>
      job(runner, { prompt: prompts[i % 4], adapter: i % 5 === 4 ? null : adapterRef(i % 4), options: { temperature: i % 2, seed: i } }).done,
    ),
  );
  assert.ok(burst.every((o) => o.result));
  await settleGarbage();
  assert.equal(liveTensorCount(), baseline, 'the same live tensors as before the burst');
  runner.close();
});
