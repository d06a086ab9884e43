// A no-op worker for the queue benchmark: it claims jobs through the real JobQueue (leases, fairness, fencing)
// and finishes each at once under its lease, training nothing, so the figure is the queue's alone. On SIGTERM
// it prints every claim it made as one JSON line and exits. The reference mode does the same with the bare
// claim every PostgreSQL queue starts from (SELECT … FOR UPDATE SKIP LOCKED, UPDATE) on a one-table queue.
//   node dist/bench/queue-worker.js <database url> <worker id> [reference]
import pg from 'pg';
import { Database, databaseTarget } from '../src/service/store/database.js';
import { JobQueue } from '../src/service/store/jobs.js';
import { TunedModelStore } from '../src/service/store/tuned-models.js';
import { now } from '../src/service/tuning/tuned-model.js';

const [url, workerId, mode] = process.argv.slice(2);
if (mode === 'reference') await reference();
const database = await Database.open(databaseTarget(url, '/unused'));
const jobs = new JobQueue(database.db, database.dialect);
const claims: { id: string; token: number; at: number }[] = [];
let running = true;
process.once('SIGTERM', () => (running = false));

while (running) {
  const job = await jobs.claim({ workerId, leaseMs: 60_000 });
  if (!job) {
    await new Promise((resolve) => setTimeout(resolve, 5));
    continue;
  }
  claims.push({ id: job.tunedModelId, token: job.lease.token, at: Date.now() });
  // What a real run's last write does, under the lease: the model's outcome and the job's end.
  await jobs.fenced(job.lease, async (trx) => {
    const time = now();
    await new TunedModelStore(trx, database.dialect).update(job.tunedModelId, { state: 'ACTIVE', completeTime: time, updateTime: time, operationDone: true });
    await jobs.in(trx).finish(job.lease);
  });
}
await database.close();
process.stdout.write(JSON.stringify({ workerId, claims }) + '\n');

async function reference(): Promise<never> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const claims: { id: string; token: number; at: number }[] = [];
  let running = true;
  process.once('SIGTERM', () => (running = false));
  while (running) {
    await client.query('BEGIN');
    const { rows } = await client.query("SELECT id FROM reference_jobs WHERE state = 'queued' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED");
    if (rows.length === 0) {
      await client.query('COMMIT');
      await new Promise((resolve) => setTimeout(resolve, 5));
      continue;
    }
    await client.query("UPDATE reference_jobs SET state = 'running', owner = $2 WHERE id = $1", [rows[0].id, workerId]);
    await client.query('COMMIT');
    claims.push({ id: String(rows[0].id), token: 1, at: Date.now() });
    await client.query("UPDATE reference_jobs SET state = 'finished' WHERE id = $1 AND owner = $2", [rows[0].id, workerId]);
  }
  await client.end();
  process.stdout.write(JSON.stringify({ workerId, claims }) + '\n');
  process.exit(0);
}
