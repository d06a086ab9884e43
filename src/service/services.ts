// Opens everything the service needs, in dependency order, and closes it again. `attune serve` opens all of
// it (with its local workers, unless --concurrency 0); `attune worker` opens what a worker needs.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { sweepTemporaryFiles } from '../engine/io/durable.js';
import type { ServiceConfig } from './config.js';
import { CpuPool } from './cpu/pool.js';
import { limitDefaults, type ServiceLimits } from './limits.js';
import { Database, databaseTarget } from './store/database.js';
import { openEventBus, type EventBus } from './store/events.js';
import { TunedModelStore } from './store/tuned-models.js';
import { JobQueue } from './store/jobs.js';
import { KeyStore } from './auth/keys.js';
import { BaseModelRegistry } from './models/registry.js';
import { TuningService } from './tuning/service.js';
import { Scheduler, schedulerDefaults } from './jobs/scheduler.js';
import { InferenceService } from './serving/inference.js';
import { ObjectStore } from './storage/object-store.js';
import { openArtifactStore, type ArtifactStore } from './storage/artifacts.js';
import { ExportService } from './exports/exports.js';
import { SharingService } from './sharing/sharing.js';
import { PermissionStore } from './store/permissions.js';
import { defaultPlacement, type Placement } from '../engine/placement.js';

export interface Services {
  config: ServiceConfig;
  /** The device and dtype runs and serving use (auto resolved for models of real size), and why. */
  placement: Placement;
  /** The size caps and quotas in force: the defaults with the config's overrides. */
  limits: ServiceLimits;
  database: Database;
  events: EventBus;
  keys: KeyStore;
  registry: BaseModelRegistry;
  /** gs:// buckets: datasets users upload. */
  objects: ObjectStore;
  /** Checkpoints and adapters. */
  artifacts: ArtifactStore;
  /** Worker threads for CPU-heavy request work (dataset parsing and framing, long prompts). */
  cpu: CpuPool;
  store: TunedModelStore;
  jobs: JobQueue;
  tuning: TuningService;
  /** This process's local workers (concurrency 0: none). */
  scheduler: Scheduler;
  inference: InferenceService;
  /** Who may use, change and share each tuned model (Gemini PermissionService, readerProjectNumbers). */
  sharing: SharingService;
  /** Tuned models exported as PEFT, merged, GGUF or Ollama files (made and kept in this server's data dir). */
  exports: ExportService;
  /** Stops taking work, checkpoints running jobs (releasing their leases), closes the database. */
  close(): Promise<void>;
}

export type WorkerServices = Omit<Services, 'inference' | 'keys' | 'exports' | 'sharing'>;

/** What a worker needs; the API server adds keys and serving. Undone again if a later part fails to open. */
async function openCore(config: ServiceConfig): Promise<WorkerServices> {
  const limits: ServiceLimits = { ...limitDefaults, ...config.limits };
  const database = await Database.open(databaseTarget(config.database, config.dataDir));
  let events: EventBus | undefined;
  try {
    events = await openEventBus(database);
    const storageRoot = config.storage && !config.storage.startsWith('gs://') ? path.resolve(config.storage) : config.dataDir;
    const artifacts = await openArtifactStore({ location: config.storage, endpoint: config.storageEndpoint, apiKey: config.storageKey, dataDir: config.dataDir });
    sweepRunLeftovers(storageRoot);
    const store = new TunedModelStore(database.db, database.dialect);
    const jobs = new JobQueue(database.db, database.dialect);
    const registry = new BaseModelRegistry(config.dataDir);
    const objects = new ObjectStore(storageRoot, limits);
    objects.alsoCount((project) => store.checkpointBytes(project)); // checkpoints share the storage quota
    void objects.sweepTemporaryFiles().catch((error) => console.error("attune: sweeping the object store's temporary files:", error));
    const cpu = new CpuPool();
    const requested = { device: config.device, dtype: config.dtype };
    const placement = defaultPlacement(requested); // also checks the device exists before anything starts
    const tuning = new TuningService(database, store, new PermissionStore(database.db), jobs, registry, objects, artifacts, events, {
      limits, cpu, datasetDir: config.datasetDir, placement: requested,
      trainsHere: config.concurrency > 0, workerLiveMs: config.leaseMs ?? schedulerDefaults.leaseMs,
    });
    const scheduler = new Scheduler(tuning, jobs, artifacts, events, {
      concurrency: config.concurrency,
      device: placement.device,
      dtype: config.dtype ?? 'auto',
      memoryBytes: config.memoryBytes,
      leaseMs: config.leaseMs,
      workDir: path.join(config.dataDir, 'work'),
    });
    const opened = events;
    return {
      config, placement, limits, database, events: opened, registry, objects, artifacts, cpu, store, jobs, tuning, scheduler,
      async close() {
        await scheduler.stop();
        await cpu.close();
        await opened.close();
        await database.close();
      },
    };
  } catch (error) {
    await events?.close();
    await database.close();
    throw error;
  }
}

export async function openServices(config: ServiceConfig): Promise<Services> {
  const core = await openCore(config);
  const inference = new InferenceService(core.tuning, core.registry, { ...config.serving, cpu: core.cpu, promptChars: core.limits.promptChars, limits: core.limits, placement: core.tuning.placement });
  core.tuning.onDeleted((id) => inference.forgetTunedModel(id));
  await core.scheduler.start(); // claims queued jobs, and running ones whose worker is gone
  const keys = new KeyStore(core.database.db);
  return {
    ...core, keys, inference,
    sharing: new SharingService(core.tuning, keys, core.database, { limits: core.limits, keyless: config.keyless }),
    exports: new ExportService(core.tuning, path.join(config.dataDir, 'exports')),
    async close() {
      await core.scheduler.stop();
      inference.close();
      await core.close();
    },
  };
}

/** A worker alone (`attune worker`): the queue, the storage and its training processes. */
export async function openWorker(config: ServiceConfig): Promise<WorkerServices> {
  const core = await openCore(config);
  await core.scheduler.start();
  return core;
}

/**
 * Temporary files a killed writer left in checkpoint and adapter directories of the storage (from before
 * runs wrote in scratch directories of their own; their writers are gone by now).
 */
function sweepRunLeftovers(storageRoot: string): void {
  for (const kind of ['checkpoints', 'adapters']) {
    let ids: string[] = [];
    try {
      ids = readdirSync(path.join(storageRoot, kind));
    } catch {
      continue; // none yet
    }
    for (const id of ids) sweepTemporaryFiles(path.join(storageRoot, kind, id));
  }
}
