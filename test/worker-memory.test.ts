// An API-only server (`attune serve --concurrency 0`) plans a job's memory against the workers that will train it,
// not its own machine: real PostgreSQL, a real server and real `attune worker` processes sharing storage.
//   - no worker registered: the job is accepted and waits in the queue;
//   - only a worker whose --memory cannot hold it: RESOURCE_EXHAUSTED naming that worker's offer;
//   - a worker that can: accepted, and the queued jobs train to ACTIVE;
//   - a worker with --dtype auto records what auto means on its device (auto:float32 or auto:bfloat16).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AttuneServer, call, repoRoot, runCli, waitFor } from './helpers/server.js';
import { AttuneProcess } from './helpers/processes.js';
import { usePostgres } from './helpers/postgres.js';
import { Database, databaseTarget } from '../src/service/store/database.js';

const postgres = usePostgres();
const project = 'worker-memory-test';
const examples = readFileSync(path.join(repoRoot, 'examples', 'numbers.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));

describe('an API-only server plans jobs against its live workers', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'attune-worker-memory-'));
  const storage = path.join(root, 'storage');
  let url: string;
  let key: string;
  let server: AttuneServer;
  let database: Database;
  const workers: AttuneProcess[] = [];
  const state = (name: string) => ['--database', url, '--storage', storage, '--data-dir', path.join(root, name)];

  before(async () => {
    url = await postgres.cluster.createDatabase('workermemory');
    const created = await runCli(['keys', 'create', '--project', project, '--database', url]);
    assert.equal(created.code, 0, created.stderr);
    key = created.stdout.trim();
    server = await AttuneServer.start({ dataDir: path.join(root, 'api'), concurrency: 0, args: ['--database', url, '--storage', storage] });
    database = await Database.open(databaseTarget(url, root));
  });

  after(async () => {
    await Promise.all(workers.map((w) => w.stop('SIGKILL')));
    await server?.stop({ graceMs: 5_000 });
    await database?.close();
    rmSync(root, { recursive: true, force: true });
  });

  const create = (epochCount = 1) =>
    call(`${server.url}/v1beta/tunedModels`, {
      method: 'POST', key,
      body: { baseModel: 'models/stories260K', tuningTask: { hyperparameters: { epochCount, batchSize: 4 }, trainingData: { examples: { examples } } } },
    });
  const startWorker = async (name: string, args: string[]) => {
    const worker = AttuneProcess.spawn(['worker', ...state(name), ...args]);
    workers.push(worker);
    return (await worker.waitForOutput(/attune worker (\S+): ready/))[1]!;
  };
  const workerRow = (id: string) => database.db.selectFrom('workers').selectAll().where('id', '=', id).executeTakeFirstOrThrow();

  test('no worker: accepted and queued; too small a worker: RESOURCE_EXHAUSTED naming its offer; a large one: accepted and trained', { timeout: 300_000 }, async () => {
    const queued = await create();
    assert.equal(queued.status, 200, queued.text);
    const queuedId = queued.json.metadata.tunedModel.replace('tunedModels/', '');
    assert.match(server.logs(), new RegExp(`tuned model ${queuedId} is queued while no worker is registered`));
    assert.equal((await database.db.selectFrom('jobs').select('state').where('tuned_model_id', '=', queuedId).executeTakeFirstOrThrow()).state, 'queued');

    const { job_number: jobNumber } = await database.db.selectFrom('tuned_models').select('job_number').where('id', '=', queuedId).executeTakeFirstOrThrow();
    const events = async () => (await call(`${server.url}/v1beta1/projects/${project}/locations/us-central1/tuningJobs/${jobNumber}/events`, { key })).json.events as { type: string; message: string }[];
    assert.match((await events()).find((e) => e.type === 'waiting')?.message ?? '', /Waiting for a worker: this server does not train, and no worker is registered yet/);

    // stories260K needs about 0.5 GiB (the runtime itself): a worker offering 200 MiB cannot hold it.
    const small = await startWorker('small', ['--memory', '200MiB', '--dtype', 'float32']);
    assert.equal((await workerRow(small)).dtype, 'float32');
    assert.equal(Number((await workerRow(small)).memory_bytes), 200 * 2 ** 20);
    const refused = await create();
    assert.equal(refused.status, 429, refused.text);
    assert.equal(refused.json.error.status, 'RESOURCE_EXHAUSTED');
    assert.match(refused.json.error.message, new RegExp(`does not fit in memory on the one live worker: the largest, ${small} \\(cpu, float32\\), offers 200 MiB, and there it needs about`));
    // A worker that can hold it: accepted, and it trains both queued jobs (the small one never claims them).
    const large = await startWorker('large', ['--memory', '4GiB']);
    assert.ok(!(await events()).some((e) => e.type === 'waiting'), 'a worker is registered now');
    const record = await workerRow(large);
    assert.match(record.dtype, /^auto:(float32|bfloat16)$/, 'auto records what it means on this machine');
    assert.equal(Number(record.memory_bytes), 4 * 2 ** 30);
    const accepted = await create();
    assert.equal(accepted.status, 200, accepted.text);
    for (const id of [queuedId, accepted.json.metadata.tunedModel.replace('tunedModels/', '')]) {
      const done = await waitFor(`${id} to finish`, async () => {
        const reply = await call(`${server.url}/v1beta/tunedModels/${id}`, { key });
        return reply.json.state === 'CREATING' ? undefined : reply.json;
      }, { timeoutMs: 180_000 });
      assert.equal(done.state, 'ACTIVE', JSON.stringify(done));
      const holder = await database.db.selectFrom('leases').select('worker_id').where('tuned_model_id', '=', id).execute();
      assert.deepEqual(holder.map((l) => l.worker_id), [large]);
    }
  });
});
