// Opens everything the service needs, in dependency order, and closes it again.
import type { ServiceConfig } from './config.js';
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

export interface Services {
  config: ServiceConfig;
  /** The size caps and quotas in force: the defaults with the config's overrides. */
  limits: ServiceLimits;
  db: Db;
  keys: KeyStore;
  registry: BaseModelRegistry;
  /** gs:// buckets: datasets users upload. */
  objects: ObjectStore;
  store: TunedModelStore;
  jobs: JobQueue;
  tuning: TuningService;
  scheduler: Scheduler;
  inference: InferenceService;
  /** Stops taking work, checkpoints running jobs, closes the database. */
  close(): Promise<void>;
}

export function openServices(config: ServiceConfig): Services {
  const db = openDatabase(config.dataDir);
  const store = new TunedModelStore(db);
  const jobs = new JobQueue(db);
  const registry = new BaseModelRegistry(config.dataDir);
  const objects = new ObjectStore(config.dataDir);
  const tuning = new TuningService(store, jobs, registry, objects, config.dataDir);
  const scheduler = new Scheduler(tuning, jobs, config.concurrency);
  tuning.attachScheduler(scheduler);
  const limits: ServiceLimits = { ...limitDefaults, ...config.limits };
  const inference = new InferenceService(tuning, registry, { ...config.serving, limits });
  tuning.onDeleted((id) => inference.forgetTunedModel(id));
  scheduler.start(); // picks up jobs a crash or shutdown interrupted
  return {
    config, limits, db, keys: new KeyStore(db), registry, objects, store, jobs, tuning, scheduler, inference,
    async close() {
      await scheduler.stop();
      inference.close();
      db.close();
    },
  };
}
