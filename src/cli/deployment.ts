// The options every command that touches state shares (where the database and the storage are), and the
// ones that say what a worker can run. One place for their names, defaults and environment variables.
import type { ParseArgsConfig } from 'node:util';
import { serviceDefaults, type ServiceConfig } from '../service/config.js';
import { dtypeChoices } from '../engine/placement.js';
import { schedulerDefaults } from '../service/jobs/scheduler.js';
import { UsageError, numberOption, placementOptions, positive } from './usage-error.js';

export const stateOptions = {
  'data-dir': { type: 'string' },
  database: { type: 'string' },
  storage: { type: 'string' },
  'storage-endpoint': { type: 'string' },
  'storage-key': { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

export const stateUsage = `  --data-dir DIR      base models, local scratch and caches; on one machine also the SQLite file and storage
                      (default ${serviceDefaults.dataDir}; ATTUNE_DATA_DIR)
  --database DB       postgres://USER[:PASSWORD]@HOST:PORT/NAME shared by every server and worker, or a SQLite
                      file (default: attune.sqlite in the data dir; ATTUNE_DATABASE)
  --storage WHERE     checkpoints, adapters and uploaded datasets: a directory every machine mounts, or
                      gs://BUCKET/PREFIX (default: the data dir; ATTUNE_STORAGE)
  --storage-endpoint URL   another Cloud Storage endpoint than Google's (ATTUNE_STORAGE_ENDPOINT)
  --storage-key KEY   an API key sent to that endpoint, e.g. another Attune's (ATTUNE_STORAGE_KEY)`;

export const workerOptions = {
  concurrency: { type: 'string' },
  device: { type: 'string' },
  dtype: { type: 'string' },
  memory: { type: 'string' },
  'lease-seconds': { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

export const workerUsage = (concurrency: string) => `  --concurrency N     jobs trained at once, each in a process of its own (${concurrency})
  --device D          auto, cpu or cuda[:N]: where tuning runs and models are served (default auto: a CUDA GPU if visible)
  --dtype T           ${dtypeChoices.join(', ')}: the compute dtype of base weights (default auto: bfloat16 where this
                      device multiplies it much faster than float32, by a probe at start-up; tiny models in float32)
  --memory SIZE       memory offered to training, e.g. 24GiB (default: free memory on CPU; unchecked on a GPU)
  --lease-seconds N   a job's lease without a heartbeat; a dead worker's jobs move after this (default ${schedulerDefaults.leaseMs / 1000})`;

type Values = Partial<Record<keyof typeof stateOptions | keyof typeof workerOptions, string | undefined>>;

const env = (name: string) => process.env[name] || undefined;

export function dataDirOption(value: string | undefined): string {
  return value ?? env('ATTUNE_DATA_DIR') ?? serviceDefaults.dataDir;
}

/** Where the state is: data dir, database, storage. */
export function stateConfig(values: Values): Pick<ServiceConfig, 'dataDir' | 'database' | 'storage' | 'storageEndpoint' | 'storageKey'> {
  return {
    dataDir: dataDirOption(values['data-dir']),
    database: values.database ?? env('ATTUNE_DATABASE'),
    storage: values.storage ?? env('ATTUNE_STORAGE'),
    storageEndpoint: values['storage-endpoint'] ?? env('ATTUNE_STORAGE_ENDPOINT'),
    storageKey: values['storage-key'] ?? env('ATTUNE_STORAGE_KEY'),
  };
}

/** What the local workers run with. */
export function workerConfig(values: Values, defaultConcurrency: number): Pick<ServiceConfig, 'concurrency' | 'device' | 'dtype' | 'memoryBytes' | 'leaseMs'> {
  const { device, dtype } = placementOptions(values);
  const leaseSeconds = numberOption('lease-seconds', values['lease-seconds'], positive, 'a positive number of seconds');
  return {
    concurrency: numberOption('concurrency', values.concurrency, (n) => Number.isInteger(n) && n >= 0, 'a whole number (0: no local worker)') ?? defaultConcurrency,
    device,
    dtype,
    memoryBytes: values.memory === undefined ? undefined : parseBytes(values.memory),
    leaseMs: leaseSeconds === undefined ? undefined : Math.round(leaseSeconds * 1000),
  };
}

const units: Record<string, number> = { '': 1, b: 1, k: 1e3, kb: 1e3, kib: 2 ** 10, m: 1e6, mb: 1e6, mib: 2 ** 20, g: 1e9, gb: 1e9, gib: 2 ** 30, t: 1e12, tb: 1e12, tib: 2 ** 40 };

/** 24GiB, 512MiB, 8G, 1000000 → bytes. */
export function parseBytes(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = match ? units[match[2].toLowerCase()] : undefined;
  if (!match || unit === undefined) throw new UsageError(`--memory must be a size such as 24GiB, 512MiB or 1000000, not '${text}'`);
  return Math.floor(Number(match[1]) * unit);
}
