// Opens everything the service needs, in dependency order, and closes it again.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { sweepTemporaryFiles } from '../engine/io/durable.js';
import type { ServiceConfig } from './config.js';
import { CpuPool } from './cpu/pool.js';
import { limitDefaults, type ServiceLimits } from './limits.js';
import { openDatabase, type Db } from './store/database.js';
import { TunedModelStore } from './store/tuned-models.js';
import { JobQueue } from './store/jobs.js';
import { KeyStore } from './auth/keys.js';
import { BaseModelRegistry } from './models/registry.js';
import { TuningService } from './tuning/service.js';
import { Scheduler } from './jobs/scheduler.js';
import { InferenceService } from './serving/inference.js';
import { ObjectStore } from './storage/object-store.js';
import { ExportService } from './exports/exports.js';

export interface Services {
  config: ServiceConfig;
  /** The size caps and quotas in force: the defaults with the config's overrides. */
  limits: ServiceLimits;
  db: Db;
  keys: KeyStore;
  registry: BaseModelRegistry;
  /** gs:// buckets: datasets users upload. */
  objects: ObjectStore;
  /** Worker threads for CPU-heavy request work (dataset parsing and framing, long prompts). */
  cpu: CpuPool;
  store: TunedModelStore;
  jobs: JobQueue;
  tuning: TuningService;
  scheduler: Scheduler;
  inference: InferenceService;
  /** Tuned models exported as PEFT, merged, GGUF or Ollama files. */
  exports: ExportService;
  /** Stops taking work, checkpoints running jobs, closes the database. */
  close(): Promise<void>;
}

export function openServices(config: ServiceConfig): Services {
  const limits: ServiceLimits = { ...limitDefaults, ...config.limits };
  const db = openDatabase(config.dataDir);
  const store = new TunedModelStore(db);
  const jobs = new JobQueue(db);
  const registry = new BaseModelRegistry(config.dataDir);
  sweepRunLeftovers(config.dataDir);
  const objects = new ObjectStore(config.dataDir, limits);
  void objects.sweepTemporaryFiles().catch((error) => console.error('attune: sweeping the object store\'s temporary files:', error));
  const cpu = new CpuPool();
  const tuning = new TuningService(store, jobs, registry, objects, config.dataDir, { limits, cpu, datasetDir: config.datasetDir });
  const scheduler = new Scheduler(tuning, jobs, config.concurrency);
  tuning.attachScheduler(scheduler);
  const inference = new InferenceService(tuning, registry, { ...config.serving, cpu, promptChars: limits.promptChars, limits });
  tuning.onDeleted((id) => inference.forgetTunedModel(id));
  scheduler.start(); // picks up jobs a crash or shutdown interrupted
  return {
    config, limits, db, keys: new KeyStore(db), registry, objects, cpu, store, jobs, tuning, scheduler, inference,
    exports: new ExportService(tuning),
    async close() {
      await scheduler.stop();
      inference.close();
      await cpu.close();
      db.close();
    },
  };
}

/** Temporary files a killed worker left in checkpoint and adapter directories (their writers are gone by now). */
function sweepRunLeftovers(dataDir: string): void {
  for (const kind of ['checkpoints', 'adapters']) {
    let ids: string[] = [];
    try {
      ids = readdirSync(path.join(dataDir, kind));
    } catch {
      continue; // none yet
    }
    for (const id of ids) sweepTemporaryFiles(path.join(dataDir, kind, id));
  }
}
