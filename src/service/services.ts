// Opens everything the service needs, in dependency order, and closes it again.
import type { ServiceConfig } from './config.js';
import { limitDefaults, type ServiceLimits } from './limits.js';
import { Database, databaseTarget } from './store/database.js';
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
  database: Database;
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

export async function openServices(config: ServiceConfig): Promise<Services> {
  const database = await Database.open(databaseTarget(config.database, config.dataDir));
  const store = new TunedModelStore(database.db, database.dialect);
  const jobs = new JobQueue(database.db, database.dialect);
  const registry = new BaseModelRegistry(config.dataDir);
  const objects = new ObjectStore(config.dataDir);
  const tuning = new TuningService(database, store, jobs, registry, objects, config.dataDir);
  const scheduler = new Scheduler(tuning, jobs, config.concurrency);
  tuning.attachScheduler(scheduler);
  const inference = new InferenceService(tuning, registry);
  tuning.onDeleted((id) => inference.forgetTunedModel(id));
  await scheduler.start(); // picks up jobs a crash or shutdown interrupted
  const limits: ServiceLimits = { ...limitDefaults, ...config.limits };
  return {
    config, limits, database, keys: new KeyStore(database.db), registry, objects, store, jobs, tuning, scheduler, inference,
    async close() {
      await scheduler.stop();
      inference.close();
      await database.close();
    },
  };
}
