// Issue 9, training jobs (findings 8, 10, 11 and 14) with real SQLite, real worker processes and, where a crash is
// the point, real `attune serve` processes killed with SIGKILL: per-project quotas on tuned models and unfinished
// jobs, a cap on the work of one job, hyperparameter ranges, a diverging run that ends FAILED with no non-finite
// metric stored, round-robin claims across projects, attempts that survive restarts, launch errors that fail one
// job instead of the server, and checkpoints and adapters fsynced before they are renamed into place.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openServices, type Services } from '../src/service/services.js';
import { serviceDefaults } from '../src/service/config.js';
import type { ServiceLimits } from '../src/service/limits.js';
import { Database, databaseTarget } from '../src/service/store/database.js';
import { JobQueue } from '../src/service/store/jobs.js';
import { TunedModelStore } from '../src/service/store/tuned-models.js';
import { parseJsonl, type Example } from '../src/engine/data/examples.js';
import type { CreateTunedModelRequest } from '../src/service/tuning/service.js';
import type { TunedModel } from '../src/service/tuning/tuned-model.js';
import { jobNumber } from '../src/service/tuning/ids.js';
import { ServiceError } from '../src/service/errors.js';
import { AttuneServer, call, createKey, repoRoot, waitFor } from './helpers/server.js';

const examples: Example[] = parseJsonl(readFileSync(path.join(repoRoot, 'examples', 'numbers.jsonl'), 'utf8')).examples;

async function open(t: TestContext, { concurrency = 1, limits, dataDir }: { concurrency?: number; limits?: Partial<ServiceLimits>; dataDir?: string } = {}): Promise<Services> {
  const dir = dataDir ?? mkdtempSync(path.join(tmpdir(), 'attune-sec-jobs-'));
  const services = await openServices({ dataDir: dir, host: serviceDefaults.host, port: 0, concurrency, keyless: false, limits });
  t.after(async () => {
    await services.close();
    if (!dataDir) rmSync(dir, { recursive: true, force: true });
  });
  return services;
}

const asSource = (list: Example[]) => ({
  examples: list.map((e) => ({ contents: e.turns.map((turn) => ({ role: turn.role, parts: [{ text: turn.text }] })) })),
  field: 'examples',
});

type CreateOptions = Partial<Omit<CreateTunedModelRequest, 'training'>> & { examples?: Example[] };

function request(project: string, { examples: training = examples, ...rest }: CreateOptions = {}): CreateTunedModelRequest {
  return { surface: 'gemini', project, apiVersion: 'v1beta', baseModel: 'models/stories260K', training: asSource(training), ...rest };
}

const create = (services: Services, project: string, options: CreateOptions = {}) => services.tuning.create(request(project, options));

async function settled<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 120_000): Promise<T> {
  return waitFor(what, async () => (await probe()) || undefined, { timeoutMs, intervalMs: 20 });
}

const done = (services: Services, project: string, id: string) =>
  settled(`${id} to finish`, async () => {
    const model = await services.tuning.get(project, id);
    return model.operationDone && model;
  });

/** The lease a worker holds on a job now (as the database has it). */
async function leaseOf(services: Services, id: string) {
  const job = await services.jobs.get(id);
  return { tunedModelId: id, token: job!.leaseToken, workerId: job!.leaseOwner! };
}

async function rejectsWith(promise: Promise<unknown>, status: string, message: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof ServiceError, String(error));
    assert.equal(error.status, status, error.message);
    assert.match(error.message, message);
    return true;
  });
}

test('per-project quotas: unfinished jobs and tuned models, RESOURCE_EXHAUSTED naming the limit; other projects go on', async (t) => {
  const services = await open(t, { limits: { queuedJobsPerProject: 2, tunedModelsPerProject: 3 } });
  const long = { hyperparameters: { epochCount: 400, batchSize: 4 } };
  const first = await create(services, 'quota-a', long);
  const second = await create(services, 'quota-a', long);
  await rejectsWith(create(services, 'quota-a', long), 'RESOURCE_EXHAUSTED', /2 tuning jobs queued or running, the limit queuedJobsPerProject/);
  await rejectsWith(services.tuning.plan(request('quota-a', long)), 'RESOURCE_EXHAUSTED', /queuedJobsPerProject/); // validateOnly says so too
  const other = await create(services, 'quota-b', long);
  await services.tuning.cancel('quota-a', first.id);
  await done(services, 'quota-a', first.id);
  const third = await create(services, 'quota-a', long);
  await rejectsWith(create(services, 'quota-a', long), 'RESOURCE_EXHAUSTED', /3 tuned models, the limit tunedModelsPerProject/);
  await services.tuning.delete('quota-a', first.id);
  await services.tuning.cancel('quota-a', second.id);
  await done(services, 'quota-a', second.id);
  const fourth = await create(services, 'quota-a', long);
  for (const [project, id] of [['quota-a', second.id], ['quota-a', third.id], ['quota-a', fourth.id], ['quota-b', other.id]]) await services.tuning.delete(project!, id!);
});

test('one job\'s work is capped (trainedExamplesPerJob): 10,000 epochs × batch 1024 is refused with the numbers', async (t) => {
  const services = await open(t);
  const many = Array.from({ length: 200 }, (_, i) => examples[i % examples.length]!);
  await rejectsWith(
    create(services, 'big-jobs', { examples: many, hyperparameters: { epochCount: 10_000, batchSize: 1024 } }),
    'INVALID_ARGUMENT',
    /train on 2000000 examples \(200 examples × 10000 epochs\), more than 1000000, the limit trainedExamplesPerJob/,
  );
  assert.deepEqual(await services.store.all('big-jobs'), []);
  const fine = await services.tuning.plan(request('big-jobs', { examples: many, hyperparameters: { epochCount: 5_000, batchSize: 1024 } }));
  assert.equal(fine.model.totalSteps, Math.ceil((200 * 5_000) / 1024));
});

test('absurd hyperparameters are refused at create with their range', async (t) => {
  const services = await open(t);
  const cases: [CreateOptions['hyperparameters'], RegExp][] = [
    [{ learningRate: 1e30 }, /learning_rate must be greater than 0 and at most 1, not 1e\+30/],
    [{ learningRate: Infinity }, /learning_rate must be greater than 0 and at most 1/],
    [{ learningRate: Number.NaN }, /learning_rate must be greater than 0 and at most 1/],
    [{ learningRate: -0.001 }, /learning_rate must be greater than 0/],
    [{ learningRateMultiplier: 1e30 }, /learning_rate_multiplier must be greater than 0 and at most 500, not 1e\+30/],
    [{ epochCount: 1e9 }, /epoch_count must be an integer from 1 to 10000/],
    [{ batchSize: 4096 }, /batch_size must be an integer from 1 to 1024/],
  ];
  for (const [hyperparameters, message] of cases) {
    await rejectsWith(create(services, 'ranges', { hyperparameters }), 'INVALID_ARGUMENT', message);
  }
  assert.deepEqual(await services.store.all('ranges'), []);
});

test('a run whose loss stops being finite ends FAILED with a clear message; no non-finite metric or broken adapter is kept', async (t) => {
  const services = await open(t);
  // A data dir from before the range check may hold such a job: queue one directly.
  const { model, training } = await services.tuning.plan(request('diverging', { hyperparameters: { epochCount: 2, batchSize: 4 } }), { keepExamples: true });
  model.hyperparameters.learningRate = 1e30;
  await services.store.insert(model, training!);
  await services.jobs.enqueue(model.id, model.project);
  services.scheduler.wake();
  const failed = await done(services, 'diverging', model.id);
  assert.equal(failed.state, 'FAILED');
  assert.equal(failed.error?.code, 3);
  assert.match(failed.error!.message, /^Training failed: training diverged at step \d+: the (loss|adapter weights) .*; try a lower learning rate\.$/);
  const metrics = await services.store.metrics(model.id, 'train');
  assert.ok(metrics.every((m) => Number.isFinite(m.loss) && Number.isFinite(m.accuracy)), JSON.stringify(metrics));
  assert.ok(metrics.length < failed.totalSteps, 'it stopped where it diverged');
  assert.equal(failed.adapterKey, undefined, 'no adapter');
  assert.equal(existsSync(path.join(services.config.dataDir, 'adapters', model.id)), false, 'no adapter');
  await settled('the checkpoints to go', () => !existsSync(path.join(services.config.dataDir, 'checkpoints', model.id)), 10_000);

  // A non-finite metric reported for a running job fails it and is never stored; its worker's later report cannot revive it.
  const running = await create(services, 'diverging', { hyperparameters: { epochCount: 300, batchSize: 4 } });
  await settled('a few steps', async () => (await services.tuning.get('diverging', running.id)).completedSteps >= 2);
  // Reported under the job's lease (as its worker would): the run fails, and the worker's own later writes are refused.
  const outcome = await services.tuning.recordMetric(await leaseOf(services, running.id), { kind: 'train', step: 1_000, epoch: 1, loss: Number.NaN, accuracy: 0, predictions: 10, time: new Date().toISOString() });
  assert.equal(outcome, 'diverged');
  const stopped = await services.tuning.get('diverging', running.id);
  assert.equal(stopped.state, 'FAILED');
  assert.match(stopped.error!.message, /diverged at step 1000: the loss is NaN/);
  await settled('its worker to exit', () => services.scheduler.runningJobs().length === 0, 20_000);
  assert.equal((await services.tuning.get('diverging', running.id)).state, 'FAILED');
  assert.ok(!(await services.store.metrics(running.id, 'train')).some((m) => m.step === 1_000));
});

/** A minimal stored model of a project, for queue-level tests. */
function storedModel(id: string, project: string): TunedModel {
  const time = new Date().toISOString();
  const number = jobNumber();
  return {
    id, jobNumber: number, modelNumber: number, modelVersion: 1, tuningMethod: 'supervised', project, location: 'us-central1', labels: {}, apiVersion: 'v1beta',
    displayName: id, description: '', baseModel: 'models/stories260K', baseDir: '/nowhere', state: 'CREATING', createTime: time, updateTime: time,
    hyperparameters: { epochCount: 1, batchSize: 4, adapterRank: 8 }, dataStats: undefined as unknown as TunedModel['dataStats'], totalSteps: 1, completedSteps: 0, operationId: `op-${id}`, operationDone: false, cancelRequested: false,
  };
}

test('the queue takes projects in turns: one project\'s backlog cannot starve another', async (t) => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'attune-sec-queue-'));
  const database = await Database.open(databaseTarget(undefined, dataDir));
  t.after(async () => {
    await database.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  const store = new TunedModelStore(database.db, database.dialect);
  const queue = new JobQueue(database.db, database.dialect);
  const enqueue = async (id: string, project: string) => {
    await store.insert(storedModel(id, project), '[]');
    await queue.enqueue(id, project);
  };
  const claim = async () => (await queue.claim({ workerId: 'queue-test', leaseMs: 60_000 }))?.tunedModelId;
  for (const id of ['a1', 'a2', 'a3', 'a4']) await enqueue(id, 'project-a');
  await enqueue('b1', 'project-b');
  await enqueue('b2', 'project-b');
  await enqueue('c1', 'project-c');
  const order: string[] = [];
  order.push((await claim())!, (await claim())!);
  await enqueue('b3', 'project-b'); // arrives while the queue is served
  for (let id = await claim(); id; id = await claim()) order.push(id);
  assert.deepEqual(order, ['a1', 'b1', 'c1', 'a2', 'b2', 'a3', 'b3', 'a4']);
});

test('with one worker, a project that queued later is served before the first project\'s backlog', async (t) => {
  const services = await open(t, { concurrency: 1 });
  const short = { hyperparameters: { epochCount: 1, batchSize: 4 } };
  const a = [await create(services, 'fair-a', short), await create(services, 'fair-a', short), await create(services, 'fair-a', short)];
  const b = await create(services, 'fair-b', short);
  const finished = await Promise.all([...a.map((m) => done(services, 'fair-a', m.id)), done(services, 'fair-b', b.id)]);
  for (const model of finished) assert.equal(model.state, 'ACTIVE', JSON.stringify(model.error));
  const started = (m: TunedModel) => Date.parse(m.startTime!);
  const [a1, a2, a3, b1] = finished;
  assert.ok(started(a1!) < started(b1!) && started(b1!) < started(a2!) && started(a2!) < started(a3!), finished.map((m) => `${m.project} ${m.startTime}`).join('\n'));
});

test('a job that keeps going down with the server is FAILED after 3 attempts, across restarts', { timeout: 240_000 }, async (t) => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'attune-sec-attempts-'));
  let server: AttuneServer | undefined;
  t.after(async () => {
    await server?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });
  const key = await createKey(dataDir, 'crash-project');
  const job = (url: string, name: string) => call(`${url}/v1/${name}`, { key });
  server = await AttuneServer.start({ dataDir });
  const created = await call(`${server.url}/v1/projects/crash-project/locations/us-central1/tuningJobs`, {
    method: 'POST',
    key,
    body: { baseModel: 'gemini-2.5-flash', supervisedTuningSpec: { trainingDatasetUri: await upload(server.url, key), hyperParameters: { epochCount: 2000 } } },
  });
  assert.equal(created.status, 200, created.text);
  const name: string = created.json.name;
  for (let crash = 1; crash <= 3; crash++) {
    const url = server.url;
    await waitFor(`the run to be going (start ${crash})`, async () => {
      const reply = await job(url, name);
      return reply.json.state === 'JOB_STATE_RUNNING' && Number(reply.json.tuningJobMetadata?.completedStepCount ?? 0) > 0 ? true : undefined;
    }, { timeoutMs: 60_000, intervalMs: 100 });
    server.child.kill('SIGKILL');
    await server.stop({ keepDataDir: true });
    server = await AttuneServer.start({ dataDir });
  }
  const url = server.url;
  const failed = await waitFor('the job to be FAILED', async () => {
    const reply = await job(url, name);
    return reply.json.state === 'JOB_STATE_FAILED' ? reply.json : undefined;
  }, { timeoutMs: 20_000, intervalMs: 100 });
  assert.match(failed.error.message, /ended without reporting 3 times.*not started again/);
  const steps = Number(failed.tuningJobMetadata?.completedStepCount ?? 0);
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  assert.equal(Number((await job(url, name)).json.tuningJobMetadata?.completedStepCount ?? 0), steps, 'no worker trains it any more');
});

async function upload(url: string, key: string): Promise<string> {
  const reply = await call(`${url}/upload/storage/v1/b/crash-data/o?uploadType=media&name=numbers.jsonl`, {
    method: 'POST',
    key,
    body: readFileSync(path.join(repoRoot, 'examples', 'numbers.jsonl')),
    headers: { 'content-type': 'application/jsonl' },
  });
  assert.equal(reply.status, 200, reply.text);
  return 'gs://crash-data/numbers.jsonl';
}

test('a job that cannot be launched fails alone: the server still starts and the job is FAILED', async (t) => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'attune-sec-launch-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  let services = await openServices({ dataDir, host: serviceDefaults.host, port: 0, concurrency: 1, keyless: false });
  const model = await create(services, 'launch-project', { hyperparameters: { epochCount: 300, batchSize: 4 } });
  await settled('a step', async () => (await services.tuning.get('launch-project', model.id)).completedSteps >= 1);
  await services.close(); // the job goes back to the queue, to resume at the next start
  const database = await Database.open(databaseTarget(undefined, dataDir));
  await database.db.updateTable('datasets').set({ examples: '{not json' }).where('tuned_model_id', '=', model.id).execute();
  await database.close();
  services = await openServices({ dataDir, host: serviceDefaults.host, port: 0, concurrency: 1, keyless: false });
  t.after(() => services.close());
  const failed = await services.tuning.get('launch-project', model.id);
  assert.equal(failed.state, 'FAILED');
  assert.match(failed.error!.message, /^Training failed: the run could not be started: /);
  // The server goes on taking work.
  const next = await create(services, 'launch-project', { hyperparameters: { epochCount: 1, batchSize: 4 } });
  assert.equal((await done(services, 'launch-project', next.id)).state, 'ACTIVE');
});

test('checkpoints and adapters are fsynced, renamed into place and their directory fsynced (strace)', { timeout: 120_000 }, async (t) => {
  const work = mkdtempSync(path.join(tmpdir(), 'attune-sec-durable-'));
  t.after(() => rmSync(work, { recursive: true, force: true }));
  const dist = path.join(repoRoot, 'dist', 'src', 'engine');
  const script = path.join(work, 'tune.mjs');
  writeFileSync(
    script,
    `import { loadBaseModel, embeddedBaseModelDir } from ${JSON.stringify(path.join(dist, 'base-model.js'))};
     import { parseJsonl } from ${JSON.stringify(path.join(dist, 'data', 'examples.js'))};
     import { tune } from ${JSON.stringify(path.join(dist, 'tuning.js'))};
     import { readFileSync } from 'node:fs';
     const examples = parseJsonl(readFileSync(${JSON.stringify(path.join(repoRoot, 'examples', 'numbers.jsonl'))}, 'utf8')).examples;
     const base = await loadBaseModel(embeddedBaseModelDir);
     await tune(base, { examples, outDir: ${JSON.stringify(path.join(work, 'adapter'))},
       training: { epochs: 1, batchSize: 4, checkpointDir: ${JSON.stringify(path.join(work, 'checkpoint'))}, checkpointEverySteps: 2 } });`,
  );
  mkdirSync(path.join(work, 'adapter'));
  const trace = path.join(work, 'trace.txt');
  execFileSync('strace', ['-f', '-y', '-qq', '-e', 'trace=fsync,fdatasync,rename,renameat,renameat2', '-o', trace, process.execPath, script], { stdio: 'pipe' });
  const lines = readFileSync(trace, 'utf8').split('\n');
  const synced = (file: string, from: number, to: number) =>
    lines.slice(from, to).some((line) => /\b(fsync|fdatasync)\(\d+<([^>]*)>/.exec(line)?.[2] === file);
  const renames = lines
    .map((line, at) => ({ at, match: /rename(?:at2?)?\((?:[^,]*, )?"([^"]+)", (?:[^,]*, )?"([^"]+)"/.exec(line) }))
    .filter((r) => r.match && r.match[2]!.startsWith(work));
  const finals = renames.map((r) => path.relative(work, r.match![2]!));
  for (const file of ['checkpoint/state.json', 'checkpoint/checkpoint-2.safetensors', 'checkpoint/checkpoint-4.safetensors', 'adapter/adapter_model.safetensors', 'adapter/adapter_config.json', 'adapter/attune.json']) {
    assert.ok(finals.includes(file), `${file} is renamed into place (renames: ${finals.join(', ')})`);
  }
  for (const { at, match } of renames) {
    const [, from, to] = match!;
    assert.ok(synced(from!, 0, at), `${from} is fsynced before it becomes ${to}`);
    assert.ok(synced(path.dirname(to!), at, lines.length), `${path.dirname(to!)} is fsynced after ${to} is renamed into it`);
  }
});

test('temporary files left by a killed writer are swept at start; a live writer\'s are not', async (t) => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'attune-sec-sweep-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const deadPid = Number(execFileSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }));
  const live = spawn('sleep', ['60']);
  t.after(() => void live.kill());
  const checkpoint = path.join(dataDir, 'checkpoints', 'some-model');
  const adapter = path.join(dataDir, 'adapters', 'some-model');
  const uploads = path.join(dataDir, 'objects', '.tmp');
  for (const dir of [checkpoint, adapter, uploads]) mkdirSync(dir, { recursive: true });
  const leftovers = [
    path.join(checkpoint, `state.json.attune-tmp-${deadPid}-0a1b2c`),
    path.join(checkpoint, `checkpoint-8.safetensors.attune-tmp-${deadPid}-0a1b2d`),
    path.join(adapter, `adapter_model.safetensors.attune-tmp-${deadPid}-0a1b2e`),
    path.join(uploads, `object.attune-tmp-${deadPid}-0a1b2f`),
    path.join(uploads, '0123456789abcdef.part'), // the name before process ids
  ];
  const kept = [
    path.join(checkpoint, 'state.json'),
    path.join(checkpoint, `state.json.attune-tmp-${live.pid}-0a1b30`),
    // Another machine's writer, in a directory both mount: its process id means nothing here.
    path.join(uploads, `object.attune-tmp-${deadPid}-h00000000-0a1b31`),
  ];
  for (const file of [...leftovers, ...kept]) writeFileSync(file, 'x');
  const services = await open(t, { dataDir });
  await settled('the sweep', () => leftovers.every((file) => !existsSync(file)), 10_000);
  for (const file of kept) assert.ok(existsSync(file), file);
  assert.ok(services);
});
