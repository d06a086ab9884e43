// The data-access layer against both databases it serves: the same tests on a SQLite file and on a real
// PostgreSQL (a throwaway cluster). Migrations, tuned models with their datasets and metrics, API keys, and a
// SQLite data dir written before migrations existed.
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import BetterSqlite3 from 'better-sqlite3';
import path from 'node:path';
import { Database, databaseTarget, idleInTransactionTimeoutMs, isUnavailable, type DatabaseTarget } from '../src/service/store/database.js';
import { TunedModelStore, type ListScope } from '../src/service/store/tuned-models.js';
import { PermissionStore, everyone } from '../src/service/store/permissions.js';
import { JobQueue, LeaseLostError } from '../src/service/store/jobs.js';
import { KeyStore } from '../src/service/auth/keys.js';
import { now, type TunedModel } from '../src/service/tuning/tuned-model.js';
import { jobNumber, operationId } from '../src/service/tuning/ids.js';
import type { Example } from '../src/engine/data/examples.js';
import { runCli, tempDir } from './helpers/engine.js';
import { waitFor } from './helpers/server.js';
import { usePostgres } from './helpers/postgres.js';

const postgres = usePostgres();

export const dialects = ['sqlite', 'postgres'] as const;

/** A fresh, migrated database of the dialect, closed when the test ends. */
async function openFresh(t: TestContext, dialect: (typeof dialects)[number]): Promise<Database> {
  const target: DatabaseTarget =
    dialect === 'sqlite' ? databaseTarget(undefined, tempDir(t, 'attune-store-')) : databaseTarget(await postgres.cluster.createDatabase('store'), '/unused');
  const database = await Database.open(target);
  t.after(() => database.close());
  return database;
}

function modelFor(id: string, overrides: Partial<TunedModel> = {}): TunedModel {
  const time = now();
  const number = jobNumber();
  return {
    id, jobNumber: number, modelNumber: number, modelVersion: 1, tuningMethod: 'supervised', project: 'store-test', location: 'us-central1', labels: { team: 'a' }, apiVersion: 'v1beta',
    displayName: `Model ${id}`, description: '', baseModel: 'models/stories260K', baseDir: '/models/stories260K',
    state: 'CREATING', createTime: time, updateTime: time, temperature: 0.9, topP: 1, topK: 40,
    hyperparameters: { epochCount: 2, batchSize: 4, learningRate: 0.001, adapterRank: 8 },
    dataStats: undefined as unknown as TunedModel['dataStats'], totalSteps: 8, completedSteps: 0,
    operationId: operationId(), operationDone: false, cancelRequested: false,
    ...overrides,
  };
}

const examples: Example[] = [{ turns: [{ role: 'user', text: '1' }, { role: 'model', text: '2' }] }];
/** As the store takes them: JSON (the CPU pool serialises datasets off the event loop). */
const examplesJson = JSON.stringify(examples);

for (const dialect of dialects) {
  describe(`store on ${dialect}`, () => {
    test('migrating twice is a no-op, and servers opening together migrate once', async (t) => {
      if (dialect === 'sqlite') {
        // Two processes on a fresh data dir (a server and `attune keys create`): the migration runs under one write lock.
        const dir = tempDir(t, 'attune-store-');
        const results = await Promise.all([1, 2, 3].map((i) => runCli(['keys', 'create', '--project', `project-${i}x`, '--data-dir', dir])));
        for (const result of results) assert.equal(result.code, 0, result.stderr);
        const again = await Database.open(databaseTarget(undefined, dir));
        t.after(() => again.close());
        assert.equal(await again.ping(), true);
        assert.equal((await new KeyStore(again.db).list()).length, 3);
      } else {
        const url = await postgres.cluster.createDatabase('migrate');
        const opened = await Promise.all([1, 2, 3].map(() => Database.open(databaseTarget(url, '/unused'))));
        t.after(() => Promise.all(opened.map((d) => d.close())));
        for (const database of opened) assert.equal(await database.ping(), true);
      }
    });

    test('a tuned model round-trips with its datasets, by id and by Vertex number', async (t) => {
      const database = await openFresh(t, dialect);
      const store = new TunedModelStore(database.db, database.dialect);
      const model = modelFor('round-trip', { temperature: 0.123456789, labels: { a: 'b' } });
      await store.insert(model, examplesJson, examplesJson);
      const read = await store.get('round-trip');
      assert.deepEqual(read as unknown, { ...model, dataStats: undefined, sourceTunedModel: undefined, preTunedModel: undefined, sourceAdapterKey: undefined, startTime: undefined, completeTime: undefined, error: undefined, trainingDatasetUri: undefined, validationDatasetUri: undefined, adapterKey: undefined, defaultCheckpointId: undefined, exportLastCheckpointOnly: undefined, customBaseModel: undefined, outputUri: undefined });
      assert.equal(read!.temperature, 0.123456789, 'floats keep double precision');
      assert.equal((await store.get(model.jobNumber))?.id, 'round-trip');
      assert.deepEqual(await store.examples('round-trip', 'training'), examples);
      assert.deepEqual(await store.examples('round-trip', 'validation'), examples);
      assert.equal(await store.exists('round-trip'), true);
      assert.equal(await store.get('missing'), undefined);
    });

    test('update writes only the named fields; a concurrent writer of others keeps its change', async (t) => {
      const database = await openFresh(t, dialect);
      const store = new TunedModelStore(database.db, database.dialect);
      await store.insert(modelFor('patched'), examplesJson);
      await Promise.all([store.update('patched', { displayName: 'renamed' }), store.update('patched', { completedSteps: 5, startTime: '2025-01-01T00:00:00.000000Z' })]);
      const read = await store.get('patched');
      assert.equal(read?.displayName, 'renamed');
      assert.equal(read?.completedSteps, 5);
      assert.equal(read?.startTime, '2025-01-01T00:00:00.000000Z');
      await store.update('patched', { error: { code: 1, message: 'Operation cancelled.' }, operationDone: true });
      assert.deepEqual((await store.get('patched'))?.error, { code: 1, message: 'Operation cancelled.' });
    });

    test('lists page by creation time, filter text ignoring case, and delete removes everything', async (t) => {
      const database = await openFresh(t, dialect);
      const store = new TunedModelStore(database.db, database.dialect);
      const ids = ['m-a', 'm-b', 'm-c', 'm-d'];
      for (const [i, id] of ids.entries()) {
        await store.insert(modelFor(id, { createTime: `2025-01-0${i + 1}T00:00:00.000000Z`, displayName: i % 2 ? 'Numbers' : 'letters' }), examplesJson);
      }
      await store.insert(modelFor('other', { project: 'other-project' }), examplesJson);
      const first = await store.list({ project: 'store-test', show: ['owned'] }, undefined, 3);
      assert.deepEqual(first.map((m) => m.id), ['m-a', 'm-b', 'm-c']);
      const last = first.at(-1)!;
      assert.deepEqual((await store.list({ project: 'store-test', show: ['owned'] }, { createTime: last.createTime, id: last.id }, 3)).map((m) => m.id), ['m-d']);
      assert.deepEqual((await store.list({ project: 'store-test', show: ['owned'] }, undefined, 10, 'NUMB')).map((m) => m.id), ['m-b', 'm-d']);
      assert.deepEqual((await store.all('store-test')).map((m) => m.id), ['m-d', 'm-c', 'm-b', 'm-a']);

      await store.addMetric('m-a', { kind: 'train', step: 1, epoch: 0, loss: 2.5, accuracy: 0.1, predictions: 10, time: now() });
      await store.delete('m-a');
      assert.equal(await store.get('m-a'), undefined);
      assert.deepEqual(await store.metrics('m-a', 'train'), []);
      assert.deepEqual(await store.examples('m-a', 'training'), []);
    });

    test('permissions: grants list models to their grantees, transfer moves the owner, delete removes them', async (t) => {
      const database = await openFresh(t, dialect);
      const store = new TunedModelStore(database.db, database.dialect);
      const permissions = new PermissionStore(database.db);
      const time = (day: number) => `2025-02-0${day}T00:00:00.000000Z`;
      await store.insert(modelFor('shared', { createTime: time(1), displayName: 'Shared numbers' }), examplesJson);
      await store.insert(modelFor('public', { createTime: time(2) }), examplesJson);
      await store.insert(modelFor('private', { createTime: time(3) }), examplesJson);
      await permissions.insert({ tunedModelId: 'shared', grantee: 'reader-project', granteeType: 'USER', role: 'READER', createTime: time(4) });
      await permissions.insert({ tunedModelId: 'shared', grantee: 'writer-project', granteeType: 'GROUP', role: 'READER', createTime: time(5) });
      await permissions.setRole('shared', 'writer-project', 'WRITER');
      await permissions.insert({ tunedModelId: 'public', grantee: everyone, granteeType: 'EVERYONE', role: 'READER', createTime: time(4) });
      await assert.rejects(permissions.insert({ tunedModelId: 'shared', grantee: 'reader-project', granteeType: 'USER', role: 'WRITER', createTime: time(6) }));
      assert.deepEqual((await permissions.grants('shared')).map((g) => [g.grantee, g.granteeType, g.role]), [
        ['reader-project', 'USER', 'READER'],
        ['writer-project', 'GROUP', 'WRITER'],
      ]);

      const listed = async (project: string, show: ListScope['show'], text?: string) => (await store.list({ project, show }, undefined, 10, text)).map((m) => m.id);
      assert.deepEqual(await listed('reader-project', ['readable']), ['shared']);
      assert.deepEqual(await listed('reader-project', ['writable']), []);
      assert.deepEqual(await listed('writer-project', ['writable']), ['shared']);
      assert.deepEqual(await listed('stranger', ['readable']), []);
      assert.deepEqual(await listed('stranger', ['everyone']), ['public']);
      assert.deepEqual(await listed('store-test', ['owned', 'everyone']), ['public']);
      assert.deepEqual(await listed('store-test', ['readable']), ['shared', 'public', 'private']);
      assert.deepEqual(await listed('reader-project', ['readable'], 'NUMBERS'), ['shared']);

      // Transfer: the model and its job move; the new owner's grant goes, the old owner becomes a WRITER.
      await new JobQueue(database.db, database.dialect).enqueue('shared', 'store-test');
      await permissions.transfer('shared', 'store-test', 'reader-project', time(7));
      assert.equal((await store.get('shared'))?.project, 'reader-project');
      assert.deepEqual((await permissions.grants('shared')).map((g) => [g.grantee, g.role]).sort(), [['store-test', 'WRITER'], ['writer-project', 'WRITER']]);
      assert.deepEqual(await listed('reader-project', ['owned']), ['shared']);
      assert.deepEqual(await listed('store-test', ['writable']), ['shared', 'public', 'private']);
      const job = await database.db.selectFrom('jobs').select('project').where('tuned_model_id', '=', 'shared').executeTakeFirstOrThrow();
      assert.equal(job.project, 'reader-project');

      await permissions.delete('shared', 'writer-project');
      assert.deepEqual(await listed('writer-project', ['readable']), []);
      await store.delete('shared');
      assert.deepEqual(await permissions.grants('shared'), [], 'a deleted model keeps no grants');
    });

    test('metrics: a step recorded again replaces the first, and truncation drops the steps past a checkpoint', async (t) => {
      const database = await openFresh(t, dialect);
      const store = new TunedModelStore(database.db, database.dialect);
      await store.insert(modelFor('metered'), examplesJson);
      const metric = (step: number, loss: number) => ({ kind: 'train' as const, step, epoch: 0, loss, accuracy: 0.5, predictions: 3, time: now() });
      for (const step of [1, 2, 3, 4]) await store.addMetric('metered', metric(step, 1 / step));
      await store.addMetric('metered', metric(2, 9.75));
      assert.deepEqual((await store.metrics('metered', 'train')).map((m) => [m.step, m.loss]), [[1, 1], [2, 9.75], [3, 1 / 3], [4, 0.25]]);
      await store.truncateMetrics('metered', 2);
      assert.deepEqual((await store.metrics('metered', 'train')).map((m) => m.step), [1, 2]);
      assert.deepEqual(await store.metrics('metered', 'eval'), []);
    });

    test('tuned checkpoints: recorded again replaces the adapter (keeps the endpoint), found by endpoint, summed per project, deleted with the model', async (t) => {
      const database = await openFresh(t, dialect);
      const store = new TunedModelStore(database.db, dialect);
      const model = modelFor('ckpt-model', { defaultCheckpointId: '1', exportLastCheckpointOnly: true, customBaseModel: 'gs://b/models/x/', outputUri: 'gs://b/out' });
      await store.insert(model, examplesJson);
      const stored = await store.get(model.id);
      assert.equal(stored?.defaultCheckpointId, '1');
      assert.equal(stored?.exportLastCheckpointOnly, true);
      assert.equal(stored?.customBaseModel, 'gs://b/models/x/');
      assert.equal(stored?.outputUri, 'gs://b/out');
      const first = { checkpointId: '1', step: 4, epoch: 1, endpointNumber: jobNumber(), adapterKey: 'adapters/ckpt-model/1-step-4', bytes: 3_000_000_000, createTime: now() };
      await store.putTunedCheckpoint(model.id, model.project, first);
      await store.putTunedCheckpoint(model.id, model.project, { ...first, endpointNumber: jobNumber(), adapterKey: 'adapters/ckpt-model/2-step-4' });
      await store.putTunedCheckpoint(model.id, model.project, { ...first, checkpointId: '2', step: 8, epoch: 2, endpointNumber: model.jobNumber, bytes: 0, adapterKey: 'adapters/ckpt-model/2' });
      const listed = await store.tunedCheckpoints(model.id);
      assert.deepEqual(listed.map((c) => [c.checkpointId, c.step, c.adapterKey]), [['1', 4, 'adapters/ckpt-model/2-step-4'], ['2', 8, 'adapters/ckpt-model/2']]);
      assert.equal(listed[0]!.endpointNumber, first.endpointNumber, 'the endpoint stays');
      assert.deepEqual(await store.checkpointOfEndpoint(first.endpointNumber), { tunedModelId: model.id, checkpointId: '1' });
      assert.equal(await store.checkpointBytes(model.project), 3_000_000_000); // past 2^31: bigint on PostgreSQL
      assert.equal(await store.checkpointBytes('another'), 0);
      await store.delete(model.id);
      assert.deepEqual(await store.tunedCheckpoints(model.id), []);
      assert.equal(await store.checkpointOfEndpoint(first.endpointNumber), undefined);
    });

    test('a model and its job are stored in one transaction: a failure stores neither', async (t) => {
      const database = await openFresh(t, dialect);
      const store = new TunedModelStore(database.db, database.dialect);
      const jobs = new JobQueue(database.db, database.dialect);
      await assert.rejects(
        database.transaction(async (trx) => {
          await store.in(trx).insert(modelFor('half'), examplesJson);
          await jobs.in(trx).enqueue('half', 'store-test');
          throw new Error('the quota said no');
        }),
        /the quota said no/,
      );
      assert.equal(await store.exists('half'), false);
      assert.equal(await jobs.get('half'), undefined);
    });

    test('claims: concurrent claimers never take the same job, and every job is taken once', async (t) => {
      const database = await openFresh(t, dialect);
      const store = new TunedModelStore(database.db, database.dialect);
      const jobs = new JobQueue(database.db, database.dialect);
      for (let i = 0; i < 40; i++) {
        await store.insert(modelFor(`job-${i}`, { project: `project-${i % 3}x` }), examplesJson);
        await jobs.enqueue(`job-${i}`, `project-${i % 3}x`);
      }
      // Eight claimers, each on its own connection for PostgreSQL (another database handle), race for the jobs.
      const handles = dialect === 'postgres' ? await Promise.all(Array.from({ length: 8 }, () => Database.open(database.target))) : [database];
      t.after(() => Promise.all(handles.filter((h) => h !== database).map((h) => h.close())));
      const claimed: string[] = [];
      await Promise.all(
        Array.from({ length: 8 }, async (_, i) => {
          const queue = new JobQueue(handles[i % handles.length].db, dialect);
          for (;;) {
            const job = await queue.claim({ workerId: `worker-${i}`, leaseMs: 60_000 });
            if (!job) return;
            claimed.push(job.tunedModelId);
            assert.equal(job.lease.token, 1);
          }
        }),
      );
      assert.equal(claimed.length, 40, 'every job claimed');
      assert.equal(new Set(claimed).size, 40, 'no job claimed twice');
    });

    test('fairness: projects take turns, oldest first within one', async (t) => {
      const database = await openFresh(t, dialect);
      const store = new TunedModelStore(database.db, database.dialect);
      const jobs = new JobQueue(database.db, database.dialect);
      const queue = async (id: string, project: string) => {
        await store.insert(modelFor(id, { project }), examplesJson);
        await jobs.enqueue(id, project);
      };
      for (const id of ['busy-1', 'busy-2', 'busy-3', 'busy-4']) await queue(id, 'busy-project');
      await queue('quiet-1', 'quiet-project');
      const order: string[] = [];
      for (;;) {
        const job = await jobs.claim({ workerId: 'w', leaseMs: 60_000 });
        if (!job) break;
        order.push(job.tunedModelId);
      }
      assert.deepEqual(order, ['busy-1', 'quiet-1', 'busy-2', 'busy-3', 'busy-4']);
    });

    test('leases: an expired lease is taken over with a new token; the old holder is fenced out of every write', async (t) => {
      const database = await openFresh(t, dialect);
      const store = new TunedModelStore(database.db, database.dialect);
      const jobs = new JobQueue(database.db, database.dialect);
      await store.insert(modelFor('leased'), examplesJson);
      await jobs.enqueue('leased', 'store-test');
      const first = (await jobs.claim({ workerId: 'worker-a', leaseMs: 300 }))!;
      assert.equal(first.lease.token, 1);
      assert.equal(await jobs.claim({ workerId: 'worker-b', leaseMs: 300 }), undefined, 'a live lease is not taken');
      assert.deepEqual(await jobs.heartbeat(first.lease, 300), { held: true, cancelRequested: false });
      await jobs.recordCheckpoint(first.lease, { key: 'checkpoints/leased/1-4', step: 4 });
      await new Promise((resolve) => setTimeout(resolve, 450));

      const second = (await jobs.claim({ workerId: 'worker-b', leaseMs: 60_000 }))!;
      assert.equal(second.lease.token, 2, 'the claim moved the fencing token on');
      assert.deepEqual(second.tookOverFrom, { token: 1, workerId: 'worker-a' });
      assert.deepEqual(second.checkpoint, { key: 'checkpoints/leased/1-4', step: 4 }, 'resumed from the recorded checkpoint');

      // Worker A wakes up: its heartbeat and every write it tries are refused.
      assert.deepEqual(await jobs.heartbeat(first.lease, 300), { held: false, cancelRequested: false });
      await assert.rejects(jobs.recordCheckpoint(first.lease, { key: 'checkpoints/leased/1-9', step: 9 }), (e: unknown) => e instanceof LeaseLostError && e.reason === 'taken');
      await assert.rejects(
        jobs.fenced(first.lease, (trx) => new TunedModelStore(trx, dialect).addMetric('leased', { kind: 'train', step: 5, epoch: 0, loss: 1, accuracy: 0, predictions: 1, time: now() }, 1)),
        LeaseLostError,
      );
      assert.deepEqual(await store.metrics('leased', 'train'), [], 'nothing of the stale worker was recorded');
      assert.equal((await jobs.get('leased'))?.checkpoint?.step, 4);

      // Worker B's writes go through; the lease history shows who held the job when.
      await jobs.fenced(second.lease, (trx) => new TunedModelStore(trx, dialect).addMetric('leased', { kind: 'train', step: 5, epoch: 0, loss: 1, accuracy: 0, predictions: 1, time: now() }, second.lease.token));
      assert.deepEqual(await store.metricLeases('leased'), [{ step: 5, leaseToken: 2 }]);
      await jobs.fenced(second.lease, (trx) => new JobQueue(trx, dialect).finish(second.lease));
      const history = await jobs.leases('leased');
      assert.deepEqual(history.map((l) => [Number(l.token), l.worker_id, l.outcome]), [[1, 'worker-a', 'expired'], [2, 'worker-b', 'finished']]);
      assert.ok(Number(history[1].claim_ms) >= Number(history[0].end_ms), 'the second lease began after the first ended');
      await assert.rejects(jobs.heartbeat(second.lease, 1000).then((h) => assert.equal(h.held, false)).then(() => jobs.recordCheckpoint(second.lease, { key: 'x/y', step: 1 })), (e: unknown) => e instanceof LeaseLostError && e.reason === 'ended');
    });

    test('release gives the job back (and the attempt, when it stopped cleanly); a known-dead worker loses its lease at once', async (t) => {
      const database = await openFresh(t, dialect);
      const store = new TunedModelStore(database.db, database.dialect);
      const jobs = new JobQueue(database.db, database.dialect);
      await store.insert(modelFor('released'), examplesJson);
      await jobs.enqueue('released', 'store-test');
      const first = (await jobs.claim({ workerId: 'worker-a', leaseMs: 60_000 }))!;
      assert.equal(await jobs.attemptStarted(first.lease), 1);
      await jobs.release(first.lease, { cleanly: true });
      assert.deepEqual([(await jobs.get('released'))?.state, (await jobs.get('released'))?.attempts], ['queued', 0]);
      const second = (await jobs.claim({ workerId: 'worker-b', leaseMs: 60_000 }))!;
      assert.equal(second.lease.token, 2);
      assert.equal(await jobs.attemptStarted(second.lease), 1);
      assert.equal(await jobs.claim({ workerId: 'worker-c', leaseMs: 60_000 }), undefined);
      const third = (await jobs.claim({ workerId: 'worker-c', leaseMs: 60_000, deadWorkers: ['worker-b'] }))!;
      assert.equal(third.lease.token, 3, "a dead worker's lease is taken before it expires");
      assert.equal(third.attempts, 1, 'the dead worker did not give its attempt back');
    });

    test('a worker that cannot hold a job leaves it for one that can', async (t) => {
      const database = await openFresh(t, dialect);
      const store = new TunedModelStore(database.db, database.dialect);
      const jobs = new JobQueue(database.db, database.dialect);
      await store.insert(modelFor('big-one', { hyperparameters: { epochCount: 1, batchSize: 64, adapterRank: 8, learningRate: 0.001 } }), examplesJson);
      await jobs.enqueue('big-one', 'store-test');
      await store.insert(modelFor('small-one'), examplesJson);
      await jobs.enqueue('small-one', 'store-test');
      const refused: string[] = [];
      const small = await jobs.claim({
        workerId: 'small-worker',
        leaseMs: 60_000,
        canHold: (c) => (JSON.parse(c.hyperparameters).batchSize > 8 ? (refused.push(c.tunedModelId), 'too big') : true),
      });
      assert.equal(small?.tunedModelId, 'small-one');
      assert.deepEqual(refused, ['big-one']);
      assert.equal((await jobs.get('big-one'))?.state, 'queued');
      assert.equal((await jobs.claim({ workerId: 'big-worker', leaseMs: 60_000 }))?.tunedModelId, 'big-one');
    });

    test('a claimer judging the candidates hides none of them from other claimers', { timeout: 60_000 }, async (t) => {
      const database = await openFresh(t, dialect);
      const store = new TunedModelStore(database.db, database.dialect);
      const jobs = new JobQueue(database.db, database.dialect);
      await store.insert(modelFor('judged'), examplesJson);
      await jobs.enqueue('judged', 'store-test');
      // A worker that is slow to decide (a loaded machine) and then finds it cannot hold the job.
      let judging!: () => void;
      const started = new Promise<void>((resolve) => (judging = resolve));
      let decide!: () => void;
      const decided = new Promise<void>((resolve) => (decide = resolve));
      const slow = jobs.claim({ workerId: 'slow-worker', leaseMs: 60_000, canHold: async () => (judging(), await decided, 'too big') });
      await started;
      const other = dialect === 'postgres' ? await Database.open(database.target) : database;
      t.after(() => (other === database ? undefined : other.close()));
      const taken = await new JobQueue(other.db, dialect).claim({ workerId: 'other-worker', leaseMs: 60_000 }).finally(decide);
      assert.equal(taken?.tunedModelId, 'judged', 'another worker took the job while the first was still judging it');
      assert.equal(await slow, undefined);
    });

    test('a holder stalled inside a transaction (its process frozen) does not keep its lapsed job from a takeover', { skip: dialect === 'sqlite' && 'PostgreSQL only: one SQLite writer at a time, no row locks' }, async (t) => {
      const database = await openFresh(t, dialect);
      const store = new TunedModelStore(database.db, database.dialect);
      const jobs = new JobQueue(database.db, database.dialect);
      await store.insert(modelFor('stalled'), examplesJson);
      await jobs.enqueue('stalled', 'store-test');
      const holder = (await jobs.claim({ workerId: 'frozen-worker', leaseMs: 300 }))!;
      // The holder stops between two statements of a fenced write, holding the job's row, as SIGSTOP would leave it.
      let thaw!: () => void;
      const frozen = new Promise<void>((resolve) => (thaw = resolve));
      const metric = { kind: 'train' as const, step: 1, epoch: 0, loss: 1, accuracy: 0, predictions: 1, time: now() };
      const write = jobs.fenced(holder.lease, async (trx) => {
        await frozen;
        await new TunedModelStore(trx, dialect).addMetric('stalled', metric, holder.lease.token);
      });
      t.after(thaw);
      const other = await Database.open(database.target);
      t.after(() => other.close());
      const claimer = new JobQueue(other.db, dialect);
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.equal(await claimer.claim({ workerId: 'other-worker', leaseMs: 60_000 }), undefined, 'the lease lapsed, but the stalled transaction still holds the row');
      // PostgreSQL ends the idle transaction, and the row with it.
      const taken = await waitFor('the lapsed job to be taken over', () => claimer.claim({ workerId: 'other-worker', leaseMs: 60_000 }), { timeoutMs: idleInTransactionTimeoutMs + 20_000 });
      assert.deepEqual([taken.tunedModelId, taken.lease.token, taken.tookOverFrom], ['stalled', 2, { token: 1, workerId: 'frozen-worker' }]);
      // Thawed, the holder's write fails as a lost connection (worth a retry), and the retry finds its lease taken.
      thaw();
      await assert.rejects(write, (e: unknown) => isUnavailable(e));
      await assert.rejects(jobs.fenced(holder.lease, (trx) => new TunedModelStore(trx, dialect).addMetric('stalled', metric, holder.lease.token)), (e: unknown) => e instanceof LeaseLostError && e.reason === 'taken');
      assert.deepEqual(await store.metrics('stalled', 'train'), [], 'nothing of the stalled holder was recorded');
    });

    test('a cancel asked for reaches the lease holder at its heartbeat', async (t) => {
      const database = await openFresh(t, dialect);
      const store = new TunedModelStore(database.db, database.dialect);
      const jobs = new JobQueue(database.db, database.dialect);
      await store.insert(modelFor('cancelled'), examplesJson);
      await jobs.enqueue('cancelled', 'store-test');
      const claimed = (await jobs.claim({ workerId: 'w', leaseMs: 60_000 }))!;
      assert.equal((await jobs.requestCancel('cancelled'))?.state, 'running');
      assert.deepEqual(await jobs.heartbeat(claimed.lease, 60_000), { held: true, cancelRequested: true });
      assert.equal((await store.get('cancelled'))?.cancelRequested, true);
    });

    test('API keys: hashed, one project each', async (t) => {
      const database = await openFresh(t, dialect);
      const keys = new KeyStore(database.db);
      const key = await keys.create('key-project', { label: 'ci' });
      assert.match(key, /^atk_/);
      assert.equal(await keys.projectOf(key), 'key-project');
      assert.equal(await keys.projectOf(key + 'x'), undefined);
      assert.equal(await keys.hasProject('key-project'), true);
      assert.equal(await keys.hasProject('nobody-here'), false);
      assert.deepEqual((await keys.list()).map((k) => [k.project, k.label]), [['key-project', 'ci']]);
      const [info] = await keys.list();
      assert.equal((await keys.revoke(info!.id.slice(0, 8))).project, 'key-project', 'revoked by a prefix of its id');
      assert.deepEqual(await keys.check(key), { problem: 'revoked' });
      const expiring = await keys.create('key-project', { expireTime: new Date(Date.now() + 300).toISOString() });
      assert.equal(await keys.projectOf(expiring), 'key-project');
      await new Promise((resolve) => setTimeout(resolve, 400));
      assert.deepEqual(await keys.check(expiring), { problem: 'expired' });
      const { rows } = await database.db.selectFrom('api_keys').select('key_hash').execute().then((r) => ({ rows: r }));
      assert.ok(rows.every((r) => !r.key_hash.includes(key)), 'only the hash is stored');
    });
  });
}

test('a SQLite data dir from before migrations opens: its tables are kept and pre-Vertex models get numbers', async (t) => {
  const dir = tempDir(t, 'attune-store-legacy-');
  const legacy = new BetterSqlite3(path.join(dir, 'attune.sqlite'));
  legacy.exec(`
    CREATE TABLE api_keys (key_hash TEXT PRIMARY KEY, project TEXT NOT NULL, label TEXT, create_time TEXT NOT NULL);
    CREATE TABLE tuned_models (
      id TEXT PRIMARY KEY, project TEXT NOT NULL, api_version TEXT NOT NULL, display_name TEXT NOT NULL DEFAULT '',
      description TEXT NOT NULL DEFAULT '', base_model TEXT NOT NULL, base_dir TEXT NOT NULL, source_tuned_model TEXT,
      state TEXT NOT NULL, create_time TEXT NOT NULL, update_time TEXT NOT NULL, start_time TEXT, complete_time TEXT,
      temperature REAL, top_p REAL, top_k INTEGER, hyperparameters TEXT NOT NULL, total_steps INTEGER NOT NULL,
      completed_steps INTEGER NOT NULL DEFAULT 0, error_code INTEGER, error_message TEXT,
      operation_id TEXT NOT NULL UNIQUE, operation_done INTEGER NOT NULL DEFAULT 0);
    CREATE INDEX tuned_models_by_project ON tuned_models(project, create_time);
    CREATE TABLE datasets (tuned_model_id TEXT NOT NULL, role TEXT NOT NULL, examples TEXT NOT NULL, PRIMARY KEY (tuned_model_id, role));
    CREATE TABLE metrics (tuned_model_id TEXT NOT NULL, kind TEXT NOT NULL, step INTEGER NOT NULL, epoch INTEGER NOT NULL,
      loss REAL NOT NULL, accuracy REAL NOT NULL, predictions INTEGER NOT NULL, time TEXT NOT NULL, PRIMARY KEY (tuned_model_id, kind, step));
    CREATE TABLE jobs (tuned_model_id TEXT PRIMARY KEY, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
      cancel_requested INTEGER NOT NULL DEFAULT 0, enqueue_time TEXT NOT NULL);
    INSERT INTO tuned_models (id, project, api_version, base_model, base_dir, state, create_time, update_time, hyperparameters, total_steps, operation_id, operation_done)
      VALUES ('old-model', 'old-project', 'v1beta', 'models/stories260K', '/x', 'ACTIVE', '2024-01-01T00:00:00.000000Z', '2024-01-01T00:00:00.000000Z', '{"epochCount":1,"batchSize":1,"adapterRank":8}', 3, 'op1', 1);
  `);
  legacy.close();
  const database = await Database.open(databaseTarget(undefined, dir));
  t.after(() => database.close());
  const model = await new TunedModelStore(database.db, database.dialect).get('old-model');
  assert.equal(model?.state, 'ACTIVE');
  assert.match(model!.jobNumber, /^\d{19}$/);
  assert.equal(model!.location, 'us-central1');
});
