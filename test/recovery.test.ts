// Crash recovery and graceful shutdown of the real server (`attune serve` in a child process): a kill -9
// during a run leaves no worker training, and a restart on the same data dir resumes the run from its
// checkpoint to ACTIVE under the same operation, with every snapshot; a SIGTERM checkpoints where the run
// is, and a restart completes it.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { cliPath, numbersJsonl, packageRoot } from './helpers/engine.js';
import { Database, databaseTarget } from '../src/service/store/database.js';
import { JobQueue } from '../src/service/store/jobs.js';

const rawExamples = readFileSync(numbersJsonl, 'utf8')
  .split('\n')
  .filter((line) => line.trim())
  .map((line) => JSON.parse(line));

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

function cli(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [cliPath, ...args], { cwd: packageRoot, timeout: 30_000 }, (error, stdout, stderr) =>
      error ? reject(new Error(`attune ${args.join(' ')}: ${stderr || error.message}`)) : resolve(stdout.trim()),
    );
  });
}

interface Server {
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  logs: () => string;
}

/** `attune serve` on the data dir and port; resolves once /healthz answers. */
async function serve(t: TestContext, dataDir: string, port: number): Promise<Server> {
  const child = spawn(process.execPath, [cliPath, 'serve', '--data-dir', dataDir, '--port', String(port), '--grpc-port', '0', '--host', '127.0.0.1'], {
    cwd: packageRoot,
    env: { ...process.env, ATTUNE_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (output += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (output += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`attune serve exited with ${child.exitCode}:\n${output}`);
    try {
      if ((await fetch(`http://127.0.0.1:${port}/healthz`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`attune serve did not start:\n${output}`);
    await sleep(50);
  }
  return { child, exited, logs: () => output };
}

async function api(port: number, key: string, method: string, route: string, body?: unknown): Promise<any> {
  const response = await fetch(`http://127.0.0.1:${port}/v1beta/${route}`, {
    method,
    headers: { 'x-goog-api-key': key, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = await response.json();
  assert.equal(response.status, 200, JSON.stringify(json));
  return json;
}

async function poll<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** Processes whose parent is pid (from /proc). */
function childrenOf(pid: number): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((entry) => {
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
      } catch {
        return false; // exited meanwhile
      }
    })
    .map(Number);
}

/** Alive and not a zombie (an orphan's zombie lingers if nothing reaps it). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

async function setUp(t: TestContext) {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'attune-recovery-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const key = await cli(['keys', 'create', '--project', 'recovery-test', '--data-dir', dataDir]);
  const port = await freePort();
  return { dataDir, key, port };
}

const createBody = (epochCount: number, batchSize: number) => ({
  displayName: 'recovery',
  baseModel: 'models/stories260K',
  tuningTask: { hyperparameters: { epochCount, batchSize }, trainingData: { examples: { examples: rawExamples } } },
});

/** The checkpoint the job's record names (read from the stopped server's database), as stored. */
async function recordedCheckpoint(dataDir: string, id: string): Promise<{ completedSteps: number }> {
  const database = await Database.open(databaseTarget(undefined, dataDir));
  try {
    const job = await new JobQueue(database.db, database.dialect).get(id);
    assert.ok(job?.checkpoint, 'a checkpoint is recorded');
    const stored = JSON.parse(readFileSync(path.join(dataDir, ...job.checkpoint.key.split('/'), 'state.json'), 'utf8'));
    assert.equal(stored.completedSteps, job.checkpoint.step, 'the recorded checkpoint is complete in storage');
    return stored;
  } finally {
    await database.close();
  }
}

const snapshotSteps = (operation: any): number[] => (operation.metadata.snapshots ?? []).map((s: any) => s.step);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** The first step recorded at or after `since`: where the restarted run resumed. */
const firstStepSince = (operation: any, since: number): number =>
  Math.min(...operation.metadata.snapshots.filter((s: any) => Date.parse(s.computeTime) >= since).map((s: any) => s.step));

test('kill -9 of the server mid-run: no worker keeps training, and a restart resumes from the checkpoint to ACTIVE', async (t) => {
  if (!existsSync('/proc/self/stat')) return t.skip('needs /proc to find the worker process');
  const { dataDir, key, port } = await setUp(t);
  let server = await serve(t, dataDir, port);

  const created = await api(port, key, 'POST', 'tunedModels', createBody(100, 3));
  const name: string = created.name;
  const id = created.metadata.tunedModel.replace('tunedModels/', '');
  assert.equal(created.metadata.totalSteps, 500);
  const before = await poll('completedSteps > 50', async () => {
    const operation = await api(port, key, 'GET', name);
    return (operation.metadata.completedSteps ?? 0) > 50 ? operation : undefined;
  });
  assert.ok(!before.done, 'the run was still going when the server was killed');

  const workers = childrenOf(server.child.pid!);
  assert.equal(workers.length, 1, 'one worker process trains the job');
  server.child.kill('SIGKILL');
  assert.equal((await server.exited).signal, 'SIGKILL');
  await poll('the orphaned worker to exit', async () => (workers.some(running) ? undefined : true), 10_000);

  const checkpoint = await recordedCheckpoint(dataDir, id);
  assert.ok(checkpoint.completedSteps >= 25 && checkpoint.completedSteps < 500, `checkpoint at ${checkpoint.completedSteps}`);

  const restarted = Date.now();
  server = await serve(t, dataDir, port);
  const operation = await poll('the operation to finish', async () => {
    const current = await api(port, key, 'GET', name);
    return current.done ? current : undefined;
  });
  assert.equal(operation.name, name, 'the same operation');
  assert.equal(operation.error, undefined, JSON.stringify(operation.error));
  assert.equal(operation.response.state, 'ACTIVE');
  assert.equal(operation.metadata.completedSteps, 500);
  assert.equal(operation.metadata.completedPercent, 100);
  assert.deepEqual(snapshotSteps(operation), range(1, 500), 'snapshots cover every step, with no gap');
  assert.equal(firstStepSince(operation, restarted), checkpoint.completedSteps + 1, 'resumed after the checkpoint, not from step 0');

  const model = await api(port, key, 'GET', `tunedModels/${id}`);
  assert.equal(model.state, 'ACTIVE');
  assert.deepEqual(model.tuningTask.snapshots.map((s: any) => s.step), range(1, 500));
  const stored = readdirSync(path.join(dataDir, 'adapters', id));
  const adapters = stored.filter((name) => !name.includes('-step-'));
  assert.equal(adapters.length, 1, 'one adapter, stored under the lease that finished the run');
  // Beside it, one copy per intermediate checkpoint: one reached again after the restart replaced the first copy.
  const checkpoints = stored.filter((name) => name.includes('-step-'));
  assert.equal(new Set(checkpoints.map((name) => name.split('-step-')[1])).size, checkpoints.length, checkpoints.join(', '));
  assert.ok(existsSync(path.join(dataDir, 'adapters', id, adapters[0], 'adapter_config.json')));

  server.child.kill('SIGTERM');
  assert.equal((await server.exited).code, 0, server.logs());
});

test('SIGTERM mid-run checkpoints where the run is; a restart completes it', async (t) => {
  const { dataDir, key, port } = await setUp(t);
  let server = await serve(t, dataDir, port);
  const created = await api(port, key, 'POST', 'tunedModels', createBody(40, 3));
  const name: string = created.name;
  const id = created.metadata.tunedModel.replace('tunedModels/', '');
  assert.equal(created.metadata.totalSteps, 200);
  const seen = await poll('completedSteps > 30', async () => {
    const steps = (await api(port, key, 'GET', name)).metadata.completedSteps ?? 0;
    return steps > 30 ? steps : undefined;
  });

  const stopping = Date.now();
  server.child.kill('SIGTERM');
  const exit = await server.exited;
  assert.equal(exit.code, 0, server.logs());
  assert.ok(Date.now() - stopping < 10_000, 'shutdown does not wait for the run to finish');
  const checkpoint = await recordedCheckpoint(dataDir, id);
  assert.ok(checkpoint.completedSteps >= seen, `checkpointed at step ${checkpoint.completedSteps}, the run had done ${seen}`);
  assert.ok(checkpoint.completedSteps < 200);

  const restarted = Date.now();
  server = await serve(t, dataDir, port);
  const operation = await poll('the operation to finish', async () => {
    const current = await api(port, key, 'GET', name);
    return current.done ? current : undefined;
  });
  assert.equal(operation.response?.state, 'ACTIVE', JSON.stringify(operation.error));
  assert.deepEqual(snapshotSteps(operation), range(1, 200));
  assert.equal(firstStepSince(operation, restarted), checkpoint.completedSteps + 1, 'no step was trained twice');
  assert.equal((await api(port, key, 'GET', `tunedModels/${id}`)).state, 'ACTIVE');

  server.child.kill('SIGTERM');
  assert.equal((await server.exited).code, 0, server.logs());
});
