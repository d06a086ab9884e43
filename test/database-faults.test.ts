// Faults between Attune and its database or storage, with a real PostgreSQL: an unreachable database at
// start is one plain line and exit 1 (serve, worker, keys); a database that goes away while a job trains is
// answered 503 UNAVAILABLE (and /healthz says so), the run goes on and its writes wait, and once the database
// is back the job ends ACTIVE with every snapshot.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AttuneServer, call, freePort, repoRoot, runCli, sleep, waitFor } from './helpers/server.js';
import { usePostgres } from './helpers/postgres.js';

const postgres = usePostgres();
const project = 'faults-test';
const examples = readFileSync(path.join(repoRoot, 'examples', 'numbers.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));

describe('database faults', () => {
  test('an unreachable database at start: one plain line naming it, exit 1, for every command', async (t) => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'attune-faults-'));
    t.after(() => rmSync(dataDir, { recursive: true, force: true }));
    const url = `postgres://attune:secret-password@127.0.0.1:${await freePort()}/nowhere`;
    for (const args of [
      ['serve', '--database', url, '--data-dir', dataDir, '--port', String(await freePort())],
      ['worker', '--database', url, '--data-dir', dataDir],
      ['keys', 'list', '--database', url],
    ]) {
      const result = await runCli(args, { timeoutMs: 60_000 });
      assert.equal(result.code, 1, `${args[0]}: ${result.stderr}`);
      const lines = result.stderr.trim().split('\n');
      assert.equal(lines.length, 1, `one line from attune ${args[0]}: ${result.stderr}`);
      assert.match(lines[0], new RegExp(`^attune ${args[0]}: cannot reach the database postgres://attune:\\*\\*\\*@127\\.0\\.0\\.1:\\d+/nowhere: .*ECONNREFUSED`));
      assert.doesNotMatch(result.stderr, /secret-password|\n\s+at /, 'no password, no stack trace');
    }
  });

  test('attune worker needs a shared database; SQLite is refused with a plain message', async () => {
    const result = await runCli(['worker', '--data-dir', os.tmpdir()]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^attune worker: attune worker shares a PostgreSQL database/);
  });

  test('the database goes away mid-run: 503 meanwhile, training goes on, and the job ends ACTIVE with every snapshot', { timeout: 600_000 }, async (t) => {
    const url = await postgres.cluster.createDatabase('faults');
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'attune-faults-'));
    t.after(() => rmSync(dataDir, { recursive: true, force: true }));
    const key = (await runCli(['keys', 'create', '--project', project, '--database', url])).stdout.trim();
    const server = await AttuneServer.start({ dataDir, concurrency: 1, args: ['--database', url, '--lease-seconds', '20'] });
    t.after(() => server.stop());
    const created = await call(`${server.url}/v1beta/tunedModels`, {
      method: 'POST', key,
      body: { baseModel: 'models/stories260K', tuningTask: { hyperparameters: { epochCount: 400, batchSize: 4 }, trainingData: { examples: { examples } } } },
    });
    assert.equal(created.status, 200, created.text);
    const id = created.json.metadata.tunedModel.replace('tunedModels/', '');
    const total: number = created.json.metadata.totalSteps;
    const model = () => call(`${server.url}/v1beta/tunedModels/${id}`, { key });
    const progress = async () => ((await call(`${server.url}/v1beta/${created.json.name}`, { key })).json.metadata.completedSteps ?? 0) as number;
    await waitFor('the first steps', async () => ((await progress()) >= 1 ? true : undefined), { intervalMs: 10 });

    const before = await progress();
    await postgres.cluster.stop();
    assert.ok(before < total - 100, `the database went away mid-run (at step ${before} of ${total})`);
    const during = await model().catch((error) => assert.fail(`the server did not answer (${error}):\n${server.logs()}`));
    assert.equal(during.status, 503, during.text);
    assert.equal(during.json.error.status, 'UNAVAILABLE');
    assert.match(during.json.error.message, /database cannot be reached/);
    const health = await call(`${server.url}/healthz`);
    assert.equal(health.status, 503);
    const { device, dtype, ...readiness } = health.json;
    assert.deepEqual(readiness, { status: 'unavailable', database: 'unreachable', storage: 'ok' });
    assert.ok(device && dtype);
    await sleep(3_000); // the run trains on; its writes wait for the database

    await postgres.cluster.start();
    const finished = await waitFor('the job to finish', async () => {
      const reply = await model();
      return reply.status === 200 && reply.json.state !== 'CREATING' ? reply.json : undefined;
    }, { timeoutMs: 300_000, intervalMs: 250 });
    assert.equal(finished.state, 'ACTIVE', JSON.stringify(finished));
    assert.deepEqual(finished.tuningTask.snapshots.map((s: any) => s.step), Array.from({ length: total }, (_, i) => i + 1));
    assert.equal((await call(`${server.url}/healthz`)).status, 200);
    assert.ok(server.running, server.logs());
    assert.match(server.logs(), /retrying/, 'the worker said it was waiting for the database');
  });
});
