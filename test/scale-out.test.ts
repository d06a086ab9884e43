// Attune across machines, all on this one: one PostgreSQL, two `attune serve` API servers (--concurrency 0)
// on different ports, workers as separate `attune worker` processes, one shared storage directory, and a
// data dir of its own for every process (as separate machines have). Six jobs go in through alternating
// servers; one worker is killed with kill -9 while it trains, another is frozen (SIGSTOP) until its lease
// expires and then thawed, an API server is killed with kill -9. Afterwards every job is ACTIVE with every
// snapshot once, the lease history and the metrics' fencing tokens show no job was trained by two workers
// at once, both servers list the same models, and a metrics stream opened on one server followed a job
// that workers reported into the database.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AttuneServer, call, repoRoot, runCli, waitFor } from './helpers/server.js';
import { AttuneProcess } from './helpers/processes.js';
import { usePostgres } from './helpers/postgres.js';
import { sql } from 'kysely';
import { Database, databaseTarget } from '../src/service/store/database.js';

const postgres = usePostgres();
const project = 'scale-out-test';
const location = 'us-central1';
const leaseSeconds = 4;
const examples = readFileSync(path.join(repoRoot, 'examples', 'numbers.jsonl'), 'utf8');
/** 15 examples × 24 epochs / batch 4 = 90 steps, checkpointed every 5 (a few seconds of training each). */
const epochs = 24;
const totalSteps = Math.ceil((15 * epochs) / 4);

interface SseEvent {
  data: any;
}

/** Reads a metrics stream to its end (the job finished) or the deadline. */
async function readSse(url: string, key: string, timeoutMs: number): Promise<SseEvent[]> {
  const response = await fetch(url, { headers: { 'x-goog-api-key': key }, signal: AbortSignal.timeout(timeoutMs) });
  assert.equal(response.status, 200, await response.clone().text());
  const events: SseEvent[] = [];
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of response.body!) {
    buffer += decoder.decode(chunk as Uint8Array, { stream: true });
    let end;
    while ((end = buffer.indexOf('\r\n\r\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 4);
      const data = block.split('\r\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('');
      if (data) events.push({ data: JSON.parse(data) });
    }
  }
  return events;
}

describe('scale-out: two API servers, workers on their own, one PostgreSQL, shared storage', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'attune-scale-'));
  const storage = path.join(root, 'shared-storage');
  const machine = (name: string) => path.join(root, name);
  let url: string;
  let key: string;
  let database: Database;
  const servers: AttuneServer[] = [];
  const workers: AttuneProcess[] = [];

  const state = (id?: string) => ['--database', url, '--storage', storage, ...(id ? ['--data-dir', machine(id)] : [])];
  const startWorker = (name: string, extra: string[] = []) => {
    const worker = AttuneProcess.spawn(['worker', ...state(name), '--lease-seconds', String(leaseSeconds), ...extra]);
    workers.push(worker);
    return worker;
  };
  /** The queue as the database sees it, and the workers' logs: what a failed wait for a claim reports. */
  const queueState = async () => {
    const rows = await database.db.selectFrom('jobs').select(['tuned_model_id', 'state', 'lease_token', 'lease_owner', 'lease_expires_ms', 'checkpoint_step']).execute();
    const now = (await sql<{ ms: number }>`SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint AS ms`.execute(database.db)).rows[0].ms;
    const sessions = await sql<Record<string, unknown>>`SELECT pid, state, (clock_timestamp() - xact_start)::text AS in_transaction, wait_event_type, left(query, 100) AS query FROM pg_stat_activity WHERE datname = current_database() AND state <> 'idle'`.execute(database.db);
    return [
      `database clock ${now}`,
      ...rows.map((r) => `job ${r.tuned_model_id} ${r.state} token ${r.lease_token} ${r.lease_owner ?? '-'} expires ${r.lease_expires_ms === null ? '-' : Number(r.lease_expires_ms) - Number(now)} ms checkpoint ${r.checkpoint_step}`),
      ...sessions.rows.map((s) => `session ${JSON.stringify(s)}`),
      ...workers.flatMap((w) => w.logs().split('\n').filter(Boolean)),
    ].join('\n');
  };
  /** Waits for a claim; a timeout says what the queue looked like. */
  const waitForClaim = async <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number) => {
    try {
      return await waitFor(what, probe, { timeoutMs, intervalMs: 200 });
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${await queueState()}`);
    }
  };
  /** The worker id a process advertised (its first line says it is ready). */
  const workerIdOf = async (worker: AttuneProcess) => (await worker.waitForOutput(/attune worker (\S+): ready/))[1];

  before(async () => {
    url = await postgres.cluster.createDatabase('scale');
    const created = await runCli(['keys', 'create', '--project', project, '--database', url]);
    assert.equal(created.code, 0, created.stderr);
    key = created.stdout.trim();
    for (const name of ['server-a', 'server-b']) {
      servers.push(await AttuneServer.start({ dataDir: machine(name), concurrency: 0, args: ['--database', url, '--storage', storage] }));
    }
    database = await Database.open(databaseTarget(url, root));
  });

  after(async () => {
    await Promise.all(workers.map((w) => w.stop('SIGKILL')));
    await Promise.all(servers.map((s) => s.stop({ graceMs: 5_000 })));
    await database?.close();
    rmSync(root, { recursive: true, force: true });
  });

  test('six jobs through alternating servers survive a killed worker, a frozen worker and a killed server', { timeout: 900_000 }, async (t) => {
    const [serverA, serverB] = servers;
    const rest = (server: AttuneServer, route: string, body?: unknown) =>
      call(`${server.url}${route}`, { method: body ? 'POST' : 'GET', key, body });
    const parent = `/v1beta1/projects/${project}/locations/${location}`;

    // /healthz reaches the database and the storage.
    for (const server of servers) {
      const { device, dtype, ...readiness } = (await call(`${server.url}/healthz`)).json;
      assert.deepEqual(readiness, { status: 'ok', database: 'ok', storage: 'ok' });
      assert.ok(device && dtype, 'and where it runs');
    }

    // The dataset goes in through server A; server B reads it from the shared storage at create.
    const upload = await call(`${serverA.url}/upload/storage/v1/b/scale-data/o?uploadType=media&name=numbers.jsonl`, {
      method: 'POST', key, body: examples, headers: { 'content-type': 'application/jsonl' },
    });
    assert.equal(upload.status, 200, upload.text);

    // A worker that offers too little memory says why and leaves every job.
    const tiny = startWorker('tiny-machine', ['--memory', '64MiB']);
    const tinyId = await workerIdOf(tiny);
    const first = startWorker('worker-1');
    const second = startWorker('worker-2');
    const [firstId, secondId] = [await workerIdOf(first), await workerIdOf(second)];

    const jobs: { name: string; number: string }[] = [];
    let stream: Promise<SseEvent[]> | undefined;
    for (let i = 0; i < 6; i++) {
      const server = servers[i % 2];
      const created = await rest(server, `${parent}/tuningJobs`, {
        baseModel: 'gemini-1.5-flash-002',
        tunedModelDisplayName: `scale-${i}`,
        supervisedTuningSpec: { trainingDatasetUri: 'gs://scale-data/numbers.jsonl', hyperParameters: { epochCount: epochs, batchSize: 4 } },
      });
      assert.equal(created.status, 200, created.text);
      const name: string = created.json.name;
      jobs.push({ name, number: name.split('/').at(-1)! });
      // A live metrics stream on server A for the first job (created on A, trained by whichever worker).
      stream ??= readSse(`${serverA.url}${parent}/tuningJobs/${jobs[0].number}/metrics?alt=sse`, key, 600_000);
    }
    const ids = await Promise.all(jobs.map(async (j) => (await database.db.selectFrom('tuned_models').select('id').where('job_number', '=', j.number).executeTakeFirstOrThrow()).id));

    const heldBy = async (workerId: string) =>
      database.db
        .selectFrom('jobs')
        .innerJoin('tuned_models', 'tuned_models.id', 'jobs.tuned_model_id')
        .select(['jobs.tuned_model_id as id', 'jobs.checkpoint_step as checkpoint', 'tuned_models.completed_steps as steps'])
        .where('jobs.lease_owner', '=', workerId)
        .where('jobs.state', '=', 'running')
        .executeTakeFirst();

    // kill -9 the first worker once it trains a job past a recorded checkpoint.
    const killed = await waitFor('worker 1 to train past a checkpoint', async () => {
      const job = await heldBy(firstId);
      return job && (job.checkpoint ?? 0) >= 10 && job.steps > (job.checkpoint ?? 0) ? job : undefined;
    }, { timeoutMs: 300_000, intervalMs: 100 });
    first.child.kill('SIGKILL');
    await first.exited;
    const third = startWorker('worker-3');
    const thirdId = await workerIdOf(third);

    // Freeze the second worker while it trains past a checkpoint: it stops heartbeating, its lease expires and
    // another worker takes the job over; thawed, it finds its lease taken and records nothing more.
    const frozen = await waitFor('worker 2 to train past a checkpoint', async () => {
      const job = await heldBy(secondId);
      return job && (job.checkpoint ?? 0) >= 10 && job.steps > (job.checkpoint ?? 0) ? job : undefined;
    }, { timeoutMs: 300_000, intervalMs: 100 });
    second.child.kill('SIGSTOP');
    // A worker that joins once the frozen lease has lapsed takes that job first (the oldest candidate), rather
    // than waiting for worker 3 to finish a whole run of its own.
    await new Promise((resolve) => setTimeout(resolve, (leaseSeconds + 1) * 1000));
    const fourth = startWorker('worker-4');
    const fourthId = await workerIdOf(fourth);
    const takenOver = await waitForClaim('the frozen job to be taken over', async () => {
      const leases = await database.db.selectFrom('leases').selectAll().where('tuned_model_id', '=', frozen.id).orderBy('token').execute();
      return leases.length >= 2 && leases.at(-1)!.worker_id !== secondId ? leases : undefined;
    }, 120_000);
    second.child.kill('SIGCONT');
    await second.waitForOutput(new RegExp(`lost the lease of job ${frozen.id}`), 60_000);

    // kill -9 of API server B: nothing is lost, server A carries on.
    serverB.child.kill('SIGKILL');
    await serverB.stop();

    const finished = await waitFor('all six jobs to succeed', async () => {
      const list = await rest(serverA, `${parent}/tuningJobs?pageSize=50`);
      const states = (list.json?.tuningJobs ?? []).map((j: any) => j.state);
      if (states.includes('JOB_STATE_FAILED') || states.includes('JOB_STATE_CANCELLED')) throw new Error(`a job did not succeed: ${list.text}`);
      return states.length === 6 && states.every((s: string) => s === 'JOB_STATE_SUCCEEDED') ? list.json.tuningJobs : undefined;
    }, { timeoutMs: 600_000, intervalMs: 500 });
    assert.deepEqual(finished.map((j: any) => j.name).sort(), jobs.map((j) => j.name).sort());

    for (const id of ids) {
      const leases = await database.db.selectFrom('leases').selectAll().where('tuned_model_id', '=', id).orderBy('token').execute();
      t.diagnostic(`${id}: ${leases.map((l) => `token ${l.token} ${l.worker_id} ${l.claim_ms}-${l.end_ms} hb ${l.heartbeat_ms} ${l.outcome}`).join(', ')}`);
    }
    for (const w of workers) for (const line of w.logs().split('\n').filter(Boolean)) t.diagnostic(line);
    for (const id of ids) {
      // Snapshots 1..N: no gap, no step twice (Gemini's view of the same model, through server A).
      const model = await rest(serverA, `/v1beta/tunedModels/${id}`);
      assert.equal(model.json.state, 'ACTIVE', model.text);
      const steps = model.json.tuningTask.snapshots.map((s: any) => s.step);
      assert.deepEqual(steps, Array.from({ length: totalSteps }, (_, i) => i + 1), `snapshots of ${id}`);

      // The lease history: one holder at a time, each new lease granted after the previous one ended.
      const leases = await database.db.selectFrom('leases').selectAll().where('tuned_model_id', '=', id).orderBy('token').execute();
      for (let i = 1; i < leases.length; i++) {
        assert.ok(leases[i - 1].end_ms !== null && Number(leases[i].claim_ms) >= Number(leases[i - 1].end_ms), `lease ${leases[i].token} of ${id} began after ${leases[i - 1].token} ended`);
      }
      assert.equal(leases.at(-1)!.outcome, 'finished');
      // Each step was recorded under exactly one lease, and the tokens never go back: a run that was taken
      // over kept the steps up to its checkpoint and its successor recorded the rest.
      const tokens = (await database.db.selectFrom('metrics').select(['step', 'lease_token']).where('tuned_model_id', '=', id).where('kind', '=', 'train').orderBy('step').execute()).map((m) => Number(m.lease_token));
      assert.deepEqual(tokens, [...tokens].sort((a, b) => a - b), `fencing tokens of ${id} by step`);
      assert.ok(tokens.every((t) => leases.some((l) => Number(l.token) === t)), 'every metric was written under a granted lease');
      assert.equal(tokens.at(-1), Number(leases.at(-1)!.token), 'the last lease recorded the last step');
    }

    // The killed worker's job and the frozen one's were taken over from their checkpoints.
    for (const [job, from] of [[killed, firstId], [frozen, secondId]] as const) {
      const leases = await database.db.selectFrom('leases').selectAll().where('tuned_model_id', '=', job.id).orderBy('token').execute();
      t.diagnostic(`${job.id}: ${leases.map((l) => `token ${l.token} ${l.worker_id} ${l.outcome}`).join(', ')}`);
      const held = leases.find((l) => l.worker_id === from)!;
      assert.equal(held.outcome, 'expired', `${from}'s lease of ${job.id} expired`);
      const next = leases.find((l) => Number(l.token) === Number(held.token) + 1)!;
      assert.notEqual(next.worker_id, from);
      const stepsOfHolder = (await database.db.selectFrom('metrics').select('step').where('tuned_model_id', '=', job.id).where('lease_token', '=', held.token).execute()).map((m) => m.step);
      assert.ok(Math.max(...stepsOfHolder) <= (job.checkpoint ?? 0) + 5, 'the stale holder kept only the steps up to a checkpoint');
    }
    assert.ok(takenOver.some((l) => l.worker_id === thirdId || l.worker_id === fourthId), 'a replacement worker took the frozen job over');
    assert.doesNotMatch(third.logs() + second.logs(), /could not record/);

    for (const line of (third.logs() + second.logs()).split('\n').filter((l) => /taking it over|lost the lease/.test(l))) t.diagnostic(line);

    // The tiny worker claimed nothing, and said why.
    assert.match(tiny.logs(), /cannot hold job \S+: it needs about .* and this worker offers/);
    assert.equal((await database.db.selectFrom('leases').select('token').where('worker_id', '=', tinyId).execute()).length, 0);

    // Both servers list the same six models: restart B on its data dir and compare.
    const restartedB = await AttuneServer.start({ dataDir: machine('server-b'), concurrency: 0, args: ['--database', url, '--storage', storage] });
    servers.push(restartedB);
    const listA = await rest(serverA, '/v1beta/tunedModels?pageSize=50');
    const listB = await rest(restartedB, '/v1beta/tunedModels?pageSize=50');
    const summary = (list: any) => list.json.tunedModels.map((m: any) => `${m.name} ${m.state}`).sort();
    assert.deepEqual(summary(listA), summary(listB));
    assert.equal(listA.json.tunedModels.length, 6);

    // The stream opened on server A followed the first job to its end, point by point.
    const events = await stream!;
    const stepsSeen = new Set(events.flatMap((e) => (e.data.timeSeriesData ?? []).flatMap((s: any) => s.values.map((v: any) => Number(v.step)))));
    assert.equal(stepsSeen.size, totalSteps, 'the stream carried every step');
    assert.equal(events.at(-1)!.data.tuningJob?.state, 'JOB_STATE_SUCCEEDED', 'the stream ended with the job');
    assert.ok(events.length > 2, 'points arrived as they were recorded, not only in the first event');

    // Serving across servers: both generate with the shared adapter; a delete through one is refused by all.
    const generate = (server: AttuneServer, id: string) =>
      call(`${server.url}/v1beta/tunedModels/${id}:generateContent`, { method: 'POST', key, body: { contents: [{ role: 'user', parts: [{ text: '41' }] }] } });
    for (const server of [serverA, restartedB]) assert.equal((await generate(server, ids[1])).status, 200);
    const deleted = await call(`${restartedB.url}/v1beta/tunedModels/${ids[1]}`, { method: 'DELETE', key });
    assert.equal(deleted.status, 200, deleted.text);
    for (const server of [serverA, restartedB]) assert.equal((await generate(server, ids[1])).status, 404);
  });

  test('cancel and delete through either server reach the worker that trains the job', { timeout: 300_000 }, async () => {
    const [serverA, , serverB] = servers; // B as restarted by the test before
    const create = async (server: AttuneServer, epochCount: number) => {
      const reply = await call(`${server.url}/v1beta/tunedModels`, {
        method: 'POST', key,
        body: { baseModel: 'models/stories260K', tuningTask: { hyperparameters: { epochCount, batchSize: 4 }, trainingData: { examples: { examples: examples.trim().split('\n').map((l) => JSON.parse(l)) } } } },
      });
      assert.equal(reply.status, 200, reply.text);
      return { id: reply.json.metadata.tunedModel.replace('tunedModels/', '') as string, operation: reply.json.name as string };
    };
    const holder = (id: string) => database.db.selectFrom('jobs').select(['lease_owner', 'state']).where('tuned_model_id', '=', id).executeTakeFirst();
    const trainedSteps = async (server: AttuneServer, operation: string) => ((await call(`${server.url}/v1beta/${operation}`, { key })).json.metadata.completedSteps ?? 0) as number;

    // Created on A, cancelled through B while a worker trains it: ACTIVE with the steps done, error code 1.
    const cancelled = await create(serverA, 2_000);
    await waitFor('training to begin', async () => ((await trainedSteps(serverA, cancelled.operation)) >= 3 ? true : undefined), { timeoutMs: 120_000, intervalMs: 100 });
    assert.equal((await holder(cancelled.id))?.state, 'running');
    assert.equal((await call(`${serverB.url}/v1beta/${cancelled.operation}:cancel`, { method: 'POST', key })).status, 200);
    const ended = await waitFor('the cancel to reach the worker', async () => {
      const reply = await call(`${serverA.url}/v1beta/${cancelled.operation}`, { key });
      return reply.json.done ? reply.json : undefined;
    }, { timeoutMs: 60_000, intervalMs: 100 });
    assert.deepEqual(ended.error, { code: 1, message: 'Operation cancelled.' });
    assert.equal((await call(`${serverB.url}/v1beta/tunedModels/${cancelled.id}`, { key })).json.state, 'ACTIVE');

    // Created on B, deleted through A while it trains: the worker stops, nothing of it remains.
    const doomed = await create(serverB, 2_000);
    await waitFor('training to begin', async () => ((await trainedSteps(serverB, doomed.operation)) >= 3 ? true : undefined), { timeoutMs: 120_000, intervalMs: 100 });
    const owner = (await holder(doomed.id))!.lease_owner!;
    assert.equal((await call(`${serverA.url}/v1beta/tunedModels/${doomed.id}`, { method: 'DELETE', key })).status, 200);
    const worker = workers.find((w) => w.logs().includes(`attune worker ${owner}:`))!;
    await worker.waitForOutput(new RegExp(`lost the lease of job ${doomed.id} \\(token \\d+\\): it was deleted`), 60_000);
    assert.equal((await call(`${serverB.url}/v1beta/tunedModels/${doomed.id}`, { key })).status, 404);
    await waitFor('its storage to be gone', async () => {
      const left = await database.db.selectFrom('metrics').select('step').where('tuned_model_id', '=', doomed.id).execute();
      return left.length === 0 && !existsSync(path.join(storage, 'checkpoints', doomed.id)) && !existsSync(path.join(storage, 'adapters', doomed.id)) ? true : undefined;
    }, { timeoutMs: 30_000 });
  });

  test('a worker stopped with SIGTERM checkpoints its job and releases it; another worker resumes it at once', { timeout: 300_000 }, async () => {
    const [serverA] = servers;
    const created = await call(`${serverA.url}/v1beta/tunedModels`, {
      method: 'POST', key,
      body: { baseModel: 'models/stories260K', tuningTask: { hyperparameters: { epochCount: epochs, batchSize: 4 }, trainingData: { examples: { examples: examples.trim().split('\n').map((l) => JSON.parse(l)) } } } },
    });
    assert.equal(created.status, 200, created.text);
    const id: string = created.json.metadata.tunedModel.replace('tunedModels/', '');
    const running = await waitFor('training past a checkpoint', async () => {
      const job = await database.db.selectFrom('jobs').select(['lease_owner', 'checkpoint_step']).where('tuned_model_id', '=', id).where('state', '=', 'running').executeTakeFirst();
      return job?.lease_owner && (job.checkpoint_step ?? 0) >= 5 ? job : undefined;
    }, { timeoutMs: 120_000, intervalMs: 100 });
    const holder = workers.find((w) => w.running && w.logs().includes(`attune worker ${running.lease_owner}:`))!;
    const exit = await holder.stop('SIGTERM');
    assert.equal(exit.code, 0, holder.logs());
    assert.match(holder.logs(), new RegExp(`released job ${id} at step \\d+`));

    const model = await waitFor('another worker to finish it', async () => {
      const reply = await call(`${serverA.url}/v1beta/tunedModels/${id}`, { key });
      return reply.json.state === 'CREATING' ? undefined : reply.json;
    }, { timeoutMs: 240_000, intervalMs: 200 });
    assert.equal(model.state, 'ACTIVE', JSON.stringify(model));
    assert.deepEqual(model.tuningTask.snapshots.map((s: any) => s.step), Array.from({ length: totalSteps }, (_, i) => i + 1));
    const leases = await database.db.selectFrom('leases').selectAll().where('tuned_model_id', '=', id).orderBy('token').execute();
    const released = leases.find((l) => l.worker_id === running.lease_owner)!;
    assert.equal(released.outcome, 'released');
    const next = leases.find((l) => Number(l.token) === Number(released.token) + 1)!;
    assert.notEqual(next.worker_id, released.worker_id);
    const waited = Number(next.claim_ms) - Number(released.end_ms);
    assert.ok(waited < leaseSeconds * 1000, `taken at once, without waiting for the lease to expire (it waited ${waited} ms)\n${waited < leaseSeconds * 1000 ? '' : await queueState()}`);
  });
});
