// The job scheduler with real worker processes and a real SQLite file: a run to ACTIVE with every
// snapshot, cancellation of running and queued jobs, validation metrics, bad data, workers that die,
// and deleted models.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openServices, type Services } from '../src/service/services.js';
import { serviceDefaults } from '../src/service/config.js';
import { embeddedBaseModelDir } from '../src/engine/base-model.js';
import { parseJsonl, type Example } from '../src/engine/data/examples.js';
import type { CreateTunedModelRequest } from '../src/service/tuning/service.js';
import type { TunedModel } from '../src/service/tuning/tuned-model.js';
import { ServiceError } from '../src/service/errors.js';
import { Database, databaseTarget } from '../src/service/store/database.js';
import { JobQueue } from '../src/service/store/jobs.js';
import { numbersJsonl } from './helpers/engine.js';

const examples: Example[] = parseJsonl(readFileSync(numbersJsonl, 'utf8')).examples;
const project = 'jobs-test';

async function open(t: TestContext, { concurrency = 1, prepare }: { concurrency?: number; prepare?: (dataDir: string) => void } = {}): Promise<Services> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'attune-jobs-'));
  prepare?.(dataDir);
  const services = await openServices({ dataDir, host: serviceDefaults.host, port: 0, concurrency, keyless: false });
  t.after(async () => {
    await services.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  return services;
}

/** Examples as a request carries them (the {contents} shape). */
const asSource = (list: Example[]) => ({
  examples: list.map((e) => ({ contents: e.turns.map((t) => ({ role: t.role, parts: [{ text: t.text }] })) })),
  field: 'examples',
});

type CreateOptions = Partial<Omit<CreateTunedModelRequest, 'training' | 'validation'>> & { examples?: Example[]; validation?: Example[] };

function create(services: Services, { examples: training = examples, validation, ...request }: CreateOptions = {}): Promise<TunedModel> {
  return services.tuning.create({
    surface: 'gemini',
    project,
    apiVersion: 'v1beta',
    baseModel: 'models/stories260K',
    training: asSource(training),
    validation: validation && asSource(validation),
    ...request,
  });
}

const model = (services: Services, id: string): Promise<TunedModel> => services.tuning.get(project, id);

async function waitFor<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const done = (services: Services, id: string, timeoutMs?: number) =>
  waitFor(`${id} to finish`, async () => {
    const m = await model(services, id);
    return m.operationDone && m;
  }, timeoutMs);

const steps = async (services: Services, id: string, kind: 'train' | 'eval' = 'train') => (await services.store.metrics(id, kind)).map((m) => m.step);
/** The job as the database holds it, read with the services closed. */
async function jobOnDisk(dataDir: string, id: string) {
  const database = await Database.open(databaseTarget(undefined, dataDir));
  try {
    return await new JobQueue(database.db, database.dialect).get(id);
  } finally {
    await database.close();
  }
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
}

test('a job trains in a worker to ACTIVE: 15 examples × 50 epochs / batch 4, every snapshot recorded', async (t) => {
  const services = await open(t);
  const started = performance.now();
  const created = await create(services, { displayName: 'numbers', hyperparameters: { epochCount: 50, batchSize: 4 } });
  assert.equal(created.state, 'CREATING');
  assert.equal(created.totalSteps, 188);
  const finished = await done(services, created.id);
  const seconds = (performance.now() - started) / 1000;
  t.diagnostic(`create → ACTIVE for 188 steps: ${seconds.toFixed(2)} s`);

  assert.equal(finished.state, 'ACTIVE', JSON.stringify(finished.error));
  assert.equal(finished.error, undefined);
  assert.equal(finished.completedSteps, 188);
  assert.ok(finished.startTime && finished.completeTime);
  assert.deepEqual(await steps(services, created.id), range(1, 188));
  const snapshots = await services.store.metrics(created.id, 'train');
  assert.ok(snapshots.every((s) => Number.isFinite(s.loss) && s.predictions > 0 && /^\d{4}-\d\d-\d\dT.*\.\d{6}Z$/.test(s.time)));
  assert.ok(snapshots.at(-1)!.loss < snapshots[0].loss / 10, 'the loss fell');
  assert.equal(snapshots.at(-1)!.epoch, 50);
  assert.deepEqual(await steps(services, created.id, 'eval'), [], 'no validation set, no eval metrics');

  assert.match(finished.adapterKey ?? '', new RegExp(`^adapters/${created.id}/\\d+$`), 'the adapter is stored under its lease');
  const adapterDir = await services.tuning.adapterDirectory(finished);
  for (const file of ['adapter_config.json', 'adapter_model.safetensors', 'attune.json']) assert.ok(existsSync(path.join(adapterDir, file)), file);
  assert.equal(JSON.parse(readFileSync(path.join(adapterDir, 'adapter_config.json'), 'utf8')).r, 8);
  assert.equal(JSON.parse(readFileSync(path.join(adapterDir, 'attune.json'), 'utf8')).training.totalSteps, 188);
  await waitFor('the checkpoints to be removed once the adapter is saved', () => !existsSync(path.join(services.config.dataDir, 'checkpoints', created.id)), 10_000);
  assert.equal((await services.jobs.get(created.id))?.state, 'finished');
  await waitFor('the worker to exit', () => services.scheduler.runningJobs().length === 0, 10_000);
});

test('cancelling a running job stops it; the adapter of the steps done is saved and the model is ACTIVE', async (t) => {
  const services = await open(t);
  const { id, totalSteps } = await create(services, { hyperparameters: { epochCount: 100, batchSize: 4 } });
  await waitFor('a few steps', async () => (await model(services, id)).completedSteps >= 5);
  const pid = services.scheduler.workerPid(id)!;
  await services.tuning.cancel(project, id);
  const finished = await done(services, id);
  assert.equal(finished.operationDone, true);
  assert.deepEqual(finished.error, { code: 1, message: 'Operation cancelled.' });
  assert.equal(finished.state, 'ACTIVE');
  assert.ok(finished.completedSteps >= 5 && finished.completedSteps < totalSteps, `completed ${finished.completedSteps}`);
  assert.deepEqual(await steps(services, id), range(1, finished.completedSteps));
  const adapterDir = await services.tuning.adapterDirectory(finished);
  const record = JSON.parse(readFileSync(path.join(adapterDir, 'attune.json'), 'utf8'));
  assert.equal(record.training.cancelled, true);
  assert.equal(record.training.completedSteps, finished.completedSteps);
  assert.ok(existsSync(path.join(adapterDir, 'adapter_model.safetensors')));
  await waitFor('the worker to exit', () => processGone(pid), 10_000);
});

test('cancelling a queued job ends it without running it; the running one goes on', async (t) => {
  const services = await open(t, { concurrency: 1 });
  const first = await create(services, { hyperparameters: { epochCount: 8, batchSize: 4 } });
  const second = await create(services, { hyperparameters: { epochCount: 8, batchSize: 4 } });
  await waitFor('the first job to start', () => services.scheduler.runningJobs().length === 1);
  assert.deepEqual(services.scheduler.runningJobs(), [first.id]);
  assert.equal((await services.jobs.get(second.id))?.state, 'queued');
  await services.tuning.cancel(project, second.id);
  const cancelled = await model(services, second.id);
  assert.equal(cancelled.operationDone, true, 'a queued job is cancelled at once');
  assert.equal(cancelled.state, 'FAILED', 'no step ran, so there is no adapter');
  assert.deepEqual(cancelled.error, { code: 1, message: 'Operation cancelled.' });
  assert.equal(cancelled.startTime, undefined);
  assert.equal((await services.jobs.get(second.id))?.state, 'finished');

  const finished = await done(services, first.id);
  assert.equal(finished.state, 'ACTIVE');
  assert.equal(finished.completedSteps, finished.totalSteps);
  assert.deepEqual(await steps(services, second.id), [], 'the cancelled job never trained');
  assert.equal(cancelled.adapterKey, undefined);
  assert.equal(existsSync(path.join(services.config.dataDir, 'adapters', second.id)), false);
  await waitFor('the worker to exit', () => services.scheduler.runningJobs().length === 0, 10_000);
});

test('validation examples produce eval metrics', async (t) => {
  const services = await open(t);
  const created = await create(services, { examples: examples.slice(5), validation: examples.slice(0, 5), hyperparameters: { epochCount: 3, batchSize: 4 } });
  assert.equal(created.totalSteps, 8);
  const finished = await done(services, created.id);
  assert.equal(finished.state, 'ACTIVE', JSON.stringify(finished.error));
  assert.deepEqual(await steps(services, created.id), range(1, 8));
  const evals = await services.store.metrics(created.id, 'eval');
  assert.equal(evals.at(-1)?.step, 8, 'evaluated at the end');
  assert.ok(evals.length >= 2);
  for (const e of evals) {
    assert.equal(e.kind, 'eval');
    assert.equal(e.epoch, Math.floor((e.step * 4) / 10));
    assert.ok(Number.isFinite(e.loss) && e.loss > 0 && e.accuracy >= 0 && e.accuracy <= 1 && e.predictions > 0);
  }
});

test('an example the framing rejects is refused at create with INVALID_ARGUMENT naming it, before any training', async (t) => {
  // A base model whose chat template renders a final "rewrite me" user turn differently from the same
  // turn followed by a model turn: its generation prompt is not how the model turn begins, so training on
  // such an example would train on a misaligned split.
  const template =
    "{% for m in messages %}{% if loop.last and m.role == 'user' and m.content == 'rewrite me' %}[{{ m.content }}]{% else %}{{ m.content }}{% endif %}\n{% endfor %}";
  const services = await open(t, {
    prepare: (dataDir) => {
      const dir = path.join(dataDir, 'models', 'templated');
      mkdirSync(dir, { recursive: true });
      for (const file of ['config.json', 'model.safetensors', 'tokenizer.json']) copyFileSync(path.join(embeddedBaseModelDir, file), path.join(dir, file));
      const config = JSON.parse(readFileSync(path.join(embeddedBaseModelDir, 'tokenizer_config.json'), 'utf8'));
      writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ ...config, chat_template: template }));
    },
  });
  const bad: Example = { turns: [{ role: 'user', text: 'rewrite me' }, { role: 'model', text: 'no' }] };
  await assert.rejects(
    create(services, { baseModel: 'models/templated', examples: [...examples.slice(0, 3), bad], hyperparameters: { epochCount: 2 } }),
    (error: unknown) =>
      error instanceof ServiceError && error.status === 'INVALID_ARGUMENT' &&
      /^example 4: the chat template's generation prompt is not the start of its rendering of turn 2/.test(error.message),
  );
  assert.deepEqual(await services.store.all(project), [], 'nothing was stored');

  // The same base model trains on good examples: the failure was the example's.
  const good = await create(services, { baseModel: 'models/templated', examples: examples.slice(0, 3), hyperparameters: { epochCount: 2, batchSize: 3 } });
  assert.equal((await done(services, good.id)).state, 'ACTIVE');
});

test('a worker that dies is replaced and resumes from its checkpoint; one that keeps dying fails the job', async (t) => {
  const services = await open(t);
  const { id, totalSteps } = await create(services, { hyperparameters: { epochCount: 20, batchSize: 4 } }); // 75 steps, checkpoints every 4
  await waitFor('step 10', async () => (await model(services, id)).completedSteps >= 10);
  const first = services.scheduler.workerPid(id)!;
  process.kill(first, 'SIGKILL');
  const second = await waitFor('a new worker', () => {
    const pid = services.scheduler.workerPid(id);
    return pid !== undefined && pid !== first && pid;
  });
  assert.ok(second);
  const finished = await done(services, id);
  assert.equal(finished.state, 'ACTIVE', JSON.stringify(finished.error));
  assert.deepEqual(await steps(services, id), range(1, totalSteps), 'the resumed run re-recorded the steps after its checkpoint');

  // Kill every worker as soon as it appears: after three attempts the job fails.
  const doomed = await create(services, { hyperparameters: { epochCount: 50, batchSize: 4 } });
  const killed = new Set<number>();
  while (!(await model(services, doomed.id)).operationDone) {
    const pid = services.scheduler.workerPid(doomed.id);
    if (pid !== undefined && !killed.has(pid)) {
      killed.add(pid);
      process.kill(pid, 'SIGKILL');
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const failed = await model(services, doomed.id);
  assert.equal(killed.size, 3);
  assert.equal(failed.state, 'FAILED');
  assert.equal(failed.error?.code, 13);
  assert.match(failed.error!.message, /killed by SIGKILL/);
  assert.equal((await services.jobs.get(doomed.id))?.state, 'finished');
});

test('a worker stopped by a signal of its own checkpoints and is started again where it stopped', async (t) => {
  const services = await open(t);
  const { id, totalSteps } = await create(services, { hyperparameters: { epochCount: 30, batchSize: 4 } }); // 113 steps, checkpoints every 6
  await waitFor('step 7', async () => (await model(services, id)).completedSteps >= 7);
  const first = services.scheduler.workerPid(id)!;
  process.kill(first, 'SIGTERM');
  await waitFor('the worker to exit', () => processGone(first), 10_000);
  const stoppedAt = Date.now();
  const state = { completedSteps: await waitFor('the checkpoint to be recorded', async () => (await services.jobs.get(id))?.checkpoint?.step) };
  assert.ok(state.completedSteps >= 7, `checkpointed at step ${state.completedSteps}`);
  const finished = await done(services, id);
  assert.equal(finished.state, 'ACTIVE', JSON.stringify(finished.error));
  assert.deepEqual(await steps(services, id), range(1, totalSteps));
  const snapshots = await services.store.metrics(id, 'train');
  assert.ok(Date.parse(snapshots[state.completedSteps - 1].time) < stoppedAt, 'steps up to the checkpoint were kept');
  assert.ok(Date.parse(snapshots[state.completedSteps].time) >= stoppedAt, 'the new worker started right after the checkpoint');
});

test('deleting a model while it trains kills its worker, drops the job and starts the next', async (t) => {
  const services = await open(t, { concurrency: 1 });
  const doomed = await create(services, { hyperparameters: { epochCount: 100, batchSize: 4 } });
  const next = await create(services, { hyperparameters: { epochCount: 2, batchSize: 4 } });
  await waitFor('a few steps', async () => (await model(services, doomed.id)).completedSteps >= 3);
  const pid = services.scheduler.workerPid(doomed.id)!;
  await services.tuning.delete(project, doomed.id);
  await waitFor('the worker to exit', () => processGone(pid), 10_000);
  const finished = await done(services, next.id);
  assert.equal(finished.state, 'ACTIVE');
  assert.equal(await services.store.exists(doomed.id), false);
  assert.deepEqual(await steps(services, doomed.id), [], 'no metric outlives its model');
  assert.equal(existsSync(path.join(services.config.dataDir, 'adapters', doomed.id)), false);
  assert.equal(existsSync(path.join(services.config.dataDir, 'checkpoints', doomed.id)), false);
});

test('stop() checkpoints running jobs where they are and leaves them to resume at the next start', async (t) => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'attune-jobs-'));
  const config = { dataDir, host: serviceDefaults.host, port: 0, concurrency: 1, keyless: false };
  let services = await openServices(config);
  t.after(async () => {
    await services.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  const { id, totalSteps } = await create(services, { hyperparameters: { epochCount: 20, batchSize: 4 } });
  await waitFor('step 6', async () => (await model(services, id)).completedSteps >= 6);
  await services.close();
  const stopped = await jobOnDisk(dataDir, id);
  assert.equal(stopped?.state, 'queued', 'the lease was released');
  const state = { completedSteps: stopped?.checkpoint?.step ?? 0 };
  const stored = JSON.parse(readFileSync(path.join(dataDir, ...stopped!.checkpoint!.key.split('/'), 'state.json'), 'utf8'));
  assert.equal(stored.completedSteps, state.completedSteps, 'the recorded checkpoint is in storage');
  services = await openServices(config);
  assert.ok(state.completedSteps >= 6, `checkpointed at step ${state.completedSteps}`);
  assert.ok((await steps(services, id)).length >= state.completedSteps);
  assert.equal((await services.jobs.get(id))?.state, 'running', 'requeued and claimed again');
  const finished = await done(services, id);
  assert.equal(finished.state, 'ACTIVE');
  assert.deepEqual(await steps(services, id), range(1, totalSteps));
});
