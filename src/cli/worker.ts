// attune worker: trains jobs from a shared PostgreSQL database on this machine, until SIGINT/SIGTERM, when it
// checkpoints its jobs and releases their leases for another worker. It needs the database, the storage
// every server uses, and the base models in its own data dir.
import { openWorker } from '../service/services.js';
import { databaseTarget, describeTarget } from '../service/store/database.js';
import { parseOptions } from './args.js';
import { UsageError } from './usage-error.js';
import { stateConfig, stateOptions, stateUsage, workerConfig, workerOptions, workerUsage } from './deployment.js';

export const workerCommandUsage = `attune worker --database postgres://… --storage DIR|gs://… [options]   trains queued jobs on this machine
${stateUsage}
${workerUsage('default 1')}`;

export async function workerCommand(argv: string[]): Promise<void> {
  const { values } = parseOptions(argv, { ...stateOptions, ...workerOptions });
  const config = { ...stateConfig(values), ...workerConfig(values, 1), host: '', port: 0, keyless: false };
  if (config.concurrency === 0) throw new UsageError('--concurrency must be at least 1 for a worker');
  let target;
  try {
    target = databaseTarget(config.database, config.dataDir);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (target.dialect !== 'postgres') {
    throw new UsageError('attune worker shares a PostgreSQL database with the servers (--database postgres://…); with SQLite, attune serve trains with its own workers (--concurrency)');
  }
  const worker = await openWorker(config);
  console.error(`attune worker: ${describeTarget(target)}, storage ${worker.artifacts.description}; stop with Ctrl-C (running jobs are checkpointed and released)`);
  console.error(`attune worker: training on ${worker.placement.device} in ${worker.placement.dtype}: ${worker.placement.reason}`);
  await new Promise<void>((resolve) => {
    const shutdown = async (signal: string) => {
      console.error(`attune worker: ${signal}: checkpointing running jobs and releasing their leases`);
      await worker.close();
      resolve();
    };
    process.once('SIGINT', () => void shutdown('SIGINT'));
    process.once('SIGTERM', () => void shutdown('SIGTERM'));
  });
}
