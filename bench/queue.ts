// The job queue under load, on a throwaway PostgreSQL: 1,000 small jobs created through two `attune serve`
// API servers (--concurrency 0), then claimed by four worker processes. The workers are no-op: each claims
// through the real queue (lease, fairness, fencing token) and finishes the job at once under its lease,
// training nothing, so the figures are the queue's. Reference, in the same run and cluster: four processes
// claiming 1,000 rows of a one-table queue with the bare SELECT … FOR UPDATE SKIP LOCKED claim.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { PostgresCluster } from '../test/helpers/postgres.js';
import { AttuneServer, call, runCli } from '../test/helpers/server.js';

type Line = Record<string, number | string | boolean>;

const here = path.dirname(fileURLToPath(import.meta.url));
const workerScript = path.join(here, 'queue-worker.js');
const jobCount = 1_000;
const workerCount = 4;
const projects = ['bench-alpha', 'bench-bravo', 'bench-charlie', 'bench-delta'];
/** Create requests in flight at once (half on each server). */
const createConcurrency = 16;

interface Claims {
  workerId: string;
  claims: { id: string; token: number; at: number }[];
}

/** Starts the no-op workers, waits until `done()` says every job is finished, stops them, returns their claims. */
async function drain(url: string, mode: 'attune' | 'reference', done: () => Promise<boolean>): Promise<Claims[]> {
  const stopping: (() => void)[] = [];
  const workers = Array.from({ length: workerCount }, (_, i) =>
    new Promise<Claims>((resolve, reject) => {
      const child = execFile(process.execPath, [workerScript, url, `${mode}-${i + 1}`, ...(mode === 'reference' ? ['reference'] : [])], { maxBuffer: 64 * 1024 * 1024 }, (error, stdout) =>
        error ? reject(error) : resolve(JSON.parse(stdout.trim().split('\n').at(-1)!) as Claims),
      );
      stopping.push(() => child.kill('SIGTERM'));
    }),
  );
  const deadline = Date.now() + 600_000;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`the ${mode} workers did not finish the jobs in time`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  for (const stop of stopping) stop();
  return Promise.all(workers);
}

function claimFigures(all: Claims[]) {
  const claims = all.flatMap((w) => w.claims);
  const times = claims.map((c) => c.at);
  const seconds = (Math.max(...times) - Math.min(...times)) / 1000;
  return { claims, perSecond: claims.length / seconds, doubles: claims.length - new Set(claims.map((c) => c.id)).size };
}

export async function queueBenchmark(): Promise<Line[]> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'attune-bench-queue-'));
  const cluster = await PostgresCluster.create();
  const servers: AttuneServer[] = [];
  try {
    const url = await cluster.createDatabase('queue');
    const keys: string[] = [];
    for (const project of projects) {
      const created = await runCli(['keys', 'create', '--project', project, '--database', url]);
      if (created.code !== 0) throw new Error(created.stderr);
      keys.push(created.stdout.trim());
    }
    const limits = ['--limit', `queuedJobsPerProject=${jobCount}`, '--limit', `tunedModelsPerProject=${jobCount}`];
    for (const name of ['a', 'b']) {
      servers.push(await AttuneServer.start({ dataDir: path.join(root, name), concurrency: 0, args: ['--database', url, '--storage', path.join(root, 'storage'), ...limits] }));
    }

    // 1,000 creates, alternating servers and projects.
    const body = { baseModel: 'models/stories260K', tuningTask: { hyperparameters: { epochCount: 1, batchSize: 1 }, trainingData: { examples: { examples: [{ textInput: '1', output: '2' }] } } } };
    let next = 0;
    const createStarted = performance.now();
    await Promise.all(
      Array.from({ length: createConcurrency }, async () => {
        for (let i = next++; i < jobCount; i = next++) {
          const reply = await call(`${servers[i % 2].url}/v1beta/tunedModels`, { method: 'POST', key: keys[i % projects.length], body });
          if (reply.status !== 200) throw new Error(`create ${i} failed: ${reply.text}`);
        }
      }),
    );
    const createSeconds = (performance.now() - createStarted) / 1000;

    const db = new pg.Client({ connectionString: url });
    await db.connect();
    try {
      const count = async (sql: string) => Number((await db.query(sql)).rows[0].n);
      const attune = claimFigures(await drain(url, 'attune', async () => (await count("SELECT COUNT(*) AS n FROM jobs WHERE state = 'finished'")) >= jobCount));
      const finished = await count("SELECT COUNT(*) AS n FROM jobs j JOIN tuned_models m ON m.id = j.tuned_model_id WHERE j.state = 'finished' AND m.state = 'ACTIVE'");
      const created = await count('SELECT COUNT(*) AS n FROM jobs');

      await db.query("CREATE TABLE reference_jobs (id serial PRIMARY KEY, state text NOT NULL DEFAULT 'queued', owner text)");
      await db.query(`INSERT INTO reference_jobs (state) SELECT 'queued' FROM generate_series(1, ${jobCount})`);
      const reference = claimFigures(await drain(url, 'reference', async () => (await count("SELECT COUNT(*) AS n FROM reference_jobs WHERE state = 'finished'")) >= jobCount));

      const common = { jobs: jobCount, api_servers: 2, workers: workerCount, projects: projects.length, workers_kind: 'no-op claim-and-finish (no training)' };
      return [
        { figure: 'queue_create_per_s', ...common, attune: round(jobCount / createSeconds), note: 'POST /v1beta/tunedModels through both servers, 16 in flight' },
        {
          figure: 'queue_claims_per_s', ...common, attune: round(attune.perSecond), reference: round(reference.perSecond),
          reference_kind: 'bare SELECT … FOR UPDATE SKIP LOCKED + UPDATE on a one-table queue, 4 processes', ratio: round(attune.perSecond / reference.perSecond, 3),
        },
        { figure: 'queue_double_claims', ...common, attune: attune.doubles, reference: reference.doubles },
        { figure: 'queue_lost_jobs', ...common, attune: created - finished + (jobCount - created), claimed: attune.claims.length },
      ];
    } finally {
      await db.end();
    }
  } finally {
    await Promise.all(servers.map((s) => s.stop({ graceMs: 10_000 })));
    await cluster.destroy();
    rmSync(root, { recursive: true, force: true });
  }
}

function round(value: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

