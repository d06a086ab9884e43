// A worker: claims jobs from the shared queue under leases and trains each in a training process of its
// own (training.ts), up to `concurrency` at once, recording what the processes report under the lease. It
// runs inside `attune serve` (its local workers; --concurrency 0 runs none) or alone as `attune worker`, on
// any machine that reaches the database and the storage.
//
// Leases: the worker heartbeats every lease it holds. One that stops heartbeating (killed, cut off) loses
// them at expiry, and another worker takes each job from its last recorded checkpoint. Every write carries
// the lease's fencing token, so a worker whose lease was taken writes nothing more: it hears so from the
// refused write or heartbeat and kills its training process. A worker's own process gone (same host and
// boot) frees its leases at once, so a restarted single-machine server resumes without waiting.
//
// Checkpoints: the training process checkpoints into a local directory and waits while the worker copies
// the checkpoint to storage under a key naming the lease and step; the key is then recorded (fenced) as the
// job's checkpoint. A job resumes from the recorded key only, so a stale worker's copies are never read. The
// adapter is stored the same way, under adapters/<id>/<token>, and named by the fenced write that ends the run.
//
// Attempts: each training process started counts an attempt before it runs, and one that checkpoints and
// stops when asked gives it back. A job whose processes ended `maxAttempts` times without reporting (killed,
// crashed, or gone with their worker) is FAILED, wherever it is claimed next.
//
// Faults: a write the database cannot take now (connection lost) is retried with backoff, in order, while
// training goes on; no job is lost, as the lease outlives short outages and is only lost to another claim.
import { randomBytes } from 'node:crypto';
import { availableParallelism, hostname } from 'node:os';
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { trainingDefaults } from '../../engine/train/defaults.js';
import { isUnavailable } from '../store/database.js';
import type { EventBus, ServiceEvent } from '../store/events.js';
import { LeaseLostError, type ClaimedJob, type JobQueue, type Lease } from '../store/jobs.js';
import type { ArtifactStore } from '../storage/artifacts.js';
import { learningRateOf, type TuningService } from '../tuning/service.js';
import { now, type StepMetric, type TunedModel } from '../tuning/tuned-model.js';
import { WorkerCapacity, formatBytes, recordedDtype } from './capacity.js';
import type { DtypeChoice } from '../../engine/placement.js';
import { isFinal, type FinalMessage, type ParentMessage, type RunMessage, type WorkerMessage } from './protocol.js';

export const schedulerDefaults = {
  /** Training processes that ended without reporting (across workers and restarts) before a job is FAILED. */
  maxAttempts: 3,
  /** How long a lease lasts without a heartbeat; a dead worker's jobs wait this long for another worker. */
  leaseMs: 30_000,
  /** How often a worker looks for work without a wake-up (a lease that expired wakes nobody). */
  pollMs: 2_000,
  /** How long stop() waits for training processes to checkpoint and exit before killing them. */
  stopTimeoutMs: 30_000,
  /** How long a process that sent its final message may take to exit before it is killed. */
  exitGraceMs: 10_000,
  /** How long after a process stopped by a signal of its own it is started again (a shutdown may be under way). */
  resumeAfterStopMs: 1_000,
  /** Backoff of writes the database cannot take now. */
  retryFirstMs: 250,
  retryMaxMs: 5_000,
} as const;

/** The compiled training process sits next to this file (dist/src/service/jobs/worker.js). */
const trainingProcessPath = fileURLToPath(new URL('./worker.js', import.meta.url));

export interface SchedulerOptions {
  /** Jobs trained at once. */
  concurrency: number;
  /** Resolved (cpu, cuda:N); the dtype may be auto, resolved per base model by the engine's placement. */
  device: string;
  dtype: DtypeChoice;
  /** Memory offered to training (default: the host's free memory, on CPU). */
  memoryBytes?: number;
  leaseMs?: number;
  pollMs?: number;
  /** Local scratch: each run's checkpoints and adapter before they are copied to storage. */
  workDir: string;
  /** Where claims and other worker events are logged (a line each). */
  log?: (line: string) => void;
}

interface Run {
  lease: Lease;
  model: TunedModel;
  baseDir: string;
  child?: ChildProcess;
  /** The job's attempts counting the current process. */
  attempt: number;
  exampleCount: number;
  final?: FinalMessage;
  /** stop() asked it to checkpoint and exit: its lease is released for another worker. */
  stopping: boolean;
  /** The lease is gone (taken, or the job deleted or ended): nothing more is recorded. */
  lost?: LeaseLostError['reason'];
  cancelSent: boolean;
  /** Writes under the lease, one after another (each is retried until the database takes it). */
  writes: Promise<void>;
  /** The checkpoint being copied to storage, if one is. */
  storing: Promise<void>;
  /** Resolves when its current training process has exited and been handled. */
  exited: Promise<void>;
  /** The checkpoint recorded last (its key is removed once a newer one is recorded). */
  checkpointKey?: string;
  /** The outcome the process reported is recorded (the run is over). */
  recorded: boolean;
  scratch: string;
}

/** This host's boot id: a pid names a process only within one boot. */
function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

/** Whether a process with this id is alive (EPERM: it exists, as another user). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class Scheduler {
  readonly workerId = `${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`;
  private readonly host = hostname();
  private readonly boot = bootId();
  private readonly runs = new Map<string, Run>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly capacity: WorkerCapacity;
  private readonly leaseMs: number;
  private readonly pollMs: number;
  /** Jobs this worker said it cannot hold (said once each). */
  private readonly refused = new Set<string>();
  /** Dead local workers, looked up at most once a poll. */
  private deadWorkers?: { ids: string[]; at: number };
  private unsubscribe?: () => void;
  private accepting = false;
  private filling = false;
  private refill = false;
  private filled: Promise<void> = Promise.resolve();
  maxAttempts: number = schedulerDefaults.maxAttempts;
  stopTimeoutMs: number = schedulerDefaults.stopTimeoutMs;

  constructor(
    readonly tuning: TuningService,
    readonly jobs: JobQueue,
    private readonly artifacts: ArtifactStore,
    private readonly events: EventBus,
    readonly options: SchedulerOptions,
  ) {
    this.capacity = new WorkerCapacity({ device: options.device, dtype: options.dtype, memoryBytes: options.memoryBytes }, tuning.registry);
    this.leaseMs = options.leaseMs ?? schedulerDefaults.leaseMs;
    this.pollMs = options.pollMs ?? schedulerDefaults.pollMs;
  }

  get concurrency(): number {
    return this.options.concurrency;
  }

  private log(line: string): void {
    (this.options.log ?? ((l: string) => console.error(l)))(`attune worker ${this.workerId}: ${line}`);
  }

  /** Advertises the worker, then takes work. A worker with concurrency 0 does nothing. */
  async start(): Promise<void> {
    if (this.concurrency === 0) return;
    await this.jobs.registerWorker({
      id: this.workerId, host: this.host, bootId: this.boot, pid: process.pid, device: this.options.device, dtype: recordedDtype(this.options.device, this.options.dtype),
      memoryBytes: this.capacity.offerBytes(), concurrency: this.concurrency,
    });
    const memory = this.capacity.availableBytes();
    this.log(`ready: ${this.options.device}, ${this.options.dtype}, ${memory === undefined ? 'memory not checked' : `${formatBytes(memory)} for training`}, ${this.concurrency} at once`);
    await this.sweepScratch();
    this.accepting = true;
    this.unsubscribe = this.events.subscribe((event) => this.onEvent(event));
    this.every(Math.max(100, Math.floor(this.leaseMs / 3)), () => this.heartbeat());
    this.every(this.pollMs, async () => this.wake());
    this.wake();
    await this.filled;
  }

  /** Scratch directories are per process (work/<pid>): those of processes gone (killed) are removed. */
  private async sweepScratch(): Promise<void> {
    const entries = await fs.readdir(this.options.workDir).catch(() => [] as string[]);
    for (const entry of entries) {
      const pid = Number(entry);
      if (Number.isInteger(pid) && (pid === process.pid || !processAlive(pid))) {
        await fs.rm(path.join(this.options.workDir, entry), { recursive: true, force: true });
      }
    }
  }

  private every(ms: number, action: () => Promise<void>): void {
    let running = false;
    const timer = setInterval(() => {
      if (running) return;
      running = true;
      void this.guarded(action).finally(() => (running = false));
    }, ms);
    timer.unref();
    this.timers.add(timer);
  }

  wake(): void {
    if (!this.accepting) return;
    if (this.filling) this.refill = true;
    else this.filled = this.guarded(() => this.fill());
  }

  private onEvent(event: ServiceEvent): void {
    switch (event.type) {
      case 'queued':
        this.wake();
        break;
      case 'resync':
        this.wake();
        void this.guarded(() => this.heartbeat());
        break;
      case 'cancel': {
        const run = this.runs.get(event.id);
        if (run) this.sendCancel(run);
        break;
      }
      case 'deleted': {
        const run = this.runs.get(event.id);
        if (run) this.lose(run, 'deleted');
        break;
      }
    }
  }

  /** Checkpoints running jobs and releases their leases; another worker (or this one, restarted) resumes them. */
  async stop(): Promise<void> {
    if (!this.accepting && this.runs.size === 0) return;
    this.accepting = false;
    this.unsubscribe?.();
    for (const timer of this.timers) clearInterval(timer);
    this.timers.clear();
    await this.filled;
    const runs = [...this.runs.values()];
    for (const run of runs) {
      run.stopping = true;
      send(run, { type: 'stop' });
    }
    await Promise.all(
      runs.map(async (run) => {
        const timer = setTimeout(() => run.child?.kill('SIGKILL'), this.stopTimeoutMs);
        await run.exited;
        clearTimeout(timer);
        await run.writes;
      }),
    );
    await this.guarded(() => this.jobs.workerStopped([this.workerId]));
  }

  /** The process id of the training process of a model, if this worker runs one. */
  workerPid(tunedModelId: string): number | undefined {
    return this.runs.get(tunedModelId)?.child?.pid;
  }

  /** Models this worker trains now. */
  runningJobs(): string[] {
    return [...this.runs.keys()];
  }

  private async fill(): Promise<void> {
    this.filling = true;
    try {
      do {
        this.refill = false;
        while (this.accepting && this.runs.size < this.concurrency) {
          const job = await this.jobs.claim({
            workerId: this.workerId,
            leaseMs: this.leaseMs,
            deadWorkers: await this.deadLocalWorkers(),
            canHold: (candidate) => {
              const verdict = this.capacity.canHold(candidate);
              if (verdict !== true && !this.refused.has(candidate.tunedModelId)) {
                this.refused.add(candidate.tunedModelId);
                this.log(`cannot hold job ${candidate.tunedModelId}: ${verdict}; leaving it for another worker`);
              }
              return verdict;
            },
          });
          if (!job) break;
          await this.begin(job);
        }
      } while (this.refill);
    } catch (error) {
      if (!isUnavailable(error)) throw error;
      // The database is away: the next poll tries again.
    } finally {
      this.filling = false;
    }
  }

  /** Workers of this host (this boot) whose process is gone: their leases need not wait to expire. */
  private async deadLocalWorkers(): Promise<string[]> {
    if (this.deadWorkers && Date.now() - this.deadWorkers.at < this.pollMs) return this.deadWorkers.ids;
    const running = await this.jobs.runningWorkersOn(this.host, this.boot);
    const ids = running.filter((w) => w.id !== this.workerId && !processAlive(w.pid)).map((w) => w.id);
    // Their leases are taken by this claim or the next; a row says it stopped once no lease names it.
    await this.jobs.workersStoppedIfIdle(ids);
    this.deadWorkers = { ids, at: Date.now() };
    return ids;
  }

  /** A claimed job: finished, cancelled, out of attempts, or started in a training process. */
  private async begin(job: ClaimedJob): Promise<void> {
    const { lease } = job;
    const id = lease.tunedModelId;
    const took = job.tookOverFrom ? `, taking it over from ${job.tookOverFrom.workerId} (token ${job.tookOverFrom.token})` : '';
    const from = job.checkpoint ? ` from its checkpoint at step ${job.checkpoint.step}` : '';
    this.log(`claimed job ${id} (project ${job.project}, lease token ${lease.token})${took}${from}`);
    const run: Run = {
      lease, model: undefined as unknown as TunedModel, baseDir: '', attempt: job.attempts, exampleCount: 0, stopping: false, cancelSent: false, recorded: false,
      writes: Promise.resolve(), storing: Promise.resolve(), exited: Promise.resolve(), checkpointKey: job.checkpoint?.key,
      scratch: path.join(this.options.workDir, String(process.pid), `${id}-${lease.token}`),
    };
    this.runs.set(id, run);
    this.capacity.reserve(id);
    try {
      const model = await this.tuning.store.get(id);
      if (!model || model.operationDone) {
        // Finished just before its worker died (the model first, then the job): end the job too.
        if (model) await this.persist(run, () => this.jobs.fenced(lease, (trx) => this.jobs.in(trx).finish(lease)));
        return this.end(run);
      }
      run.model = model;
      if (job.cancelRequested && !job.checkpoint) {
        await this.persist(run, () => this.tuning.cancelled(lease, undefined));
        return this.end(run);
      }
      if (job.attempts >= this.maxAttempts) {
        const message = `Training failed: its training process ended without reporting ${job.attempts} times, the last time when its worker stopped (killed, or its machine lost); it is not started again.`;
        await this.persist(run, () => this.tuning.failed(lease, message, 13));
        await this.removeCheckpoints(id);
        return this.end(run);
      }
      run.baseDir = this.capacity.baseDirOf(model.baseModel, model.baseDir, model.customBaseModel) ?? model.baseDir;
      await fs.rm(run.scratch, { recursive: true, force: true });
      await fs.mkdir(path.join(run.scratch, 'adapter'), { recursive: true });
      if (job.checkpoint) await this.restoreCheckpoint(run, job.checkpoint.key);
      await this.launch(run, job.cancelRequested);
    } catch (error) {
      if (error instanceof LeaseLostError) return this.lose(run, error.reason);
      this.log(`could not start job ${id}: ${(error as Error).message}`);
      if (isUnavailable(error)) {
        // The database or the storage is away: give the job back for later.
        await this.release(run, { cleanly: true });
      } else {
        // Something of the job itself (its stored datasets) stops it: it fails alone, the worker goes on.
        await this.persist(run, () => this.tuning.failed(lease, `Training failed: the run could not be started: ${(error as Error).message}`, 13));
        await this.removeCheckpoints(id);
      }
      await this.end(run);
    }
  }

  private async launch(run: Run, cancel: boolean): Promise<void> {
    const id = run.lease.tunedModelId;
    const { hyperparameters: h } = run.model;
    const examples = await this.tuning.store.examples(id, 'training');
    const validation = await this.tuning.store.examples(id, 'validation');
    run.exampleCount = examples.length;
    if (!this.accepting) {
      await this.release(run, { cleanly: true });
      return this.end(run);
    }
    run.attempt = await this.jobs.attemptStarted(run.lease);
    if (run.lost) return this.end(run);
    const message: RunMessage = {
      type: 'run',
      tunedModelId: id,
      baseDir: run.baseDir,
      device: this.options.device,
      dtype: this.options.dtype,
      examples,
      validation,
      epochs: h.epochCount,
      batchSize: h.batchSize,
      learningRate: learningRateOf(run.model),
      adapterRank: h.adapterRank,
      startFrom: await this.sourceAdapter(run),
      preference: run.model.tuningMethod === 'preference' ? { beta: h.beta! } : undefined,
      seed: h.seed ?? trainingDefaults.seed,
      checkpointDir: path.join(run.scratch, 'checkpoint'),
      adapterDir: path.join(run.scratch, 'adapter'),
      snapshotSteps: this.tuning.checkpointPlan(run.model).map((c) => c.step),
      snapshotDir: path.join(run.scratch, 'snapshots'),
    };
    // A clean command line: the parent's own flags (-e, --test, --inspect) would make the child run them instead.
    const child = fork(trainingProcessPath, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [], env: this.childEnv() });
    run.child = child;
    run.final = undefined;
    run.cancelSent = false;
    let exited!: () => void;
    run.exited = new Promise<void>((resolve) => (exited = resolve));
    child.on('message', (message: WorkerMessage) => this.onMessage(run, child, message));
    let closed = false;
    const onClose = (code: number | null, signal: NodeJS.Signals | null) => {
      if (closed) return;
      closed = true;
      // After every write it queued: the outcome is recorded before the exit is judged.
      void run.writes.then(() => this.guarded(() => this.onExit(run, child, code, signal))).then(exited);
    };
    child.once('close', onClose);
    child.on('error', (error) => {
      // A failed spawn emits no 'close'; a failed send to a dying process is answered by its 'close'.
      if (child.pid === undefined) {
        this.log(`could not start a training process for ${id}: ${error.message}`);
        onClose(null, null);
      }
    });
    send(run, message);
    if (cancel) this.sendCancel(run);
  }

  /** Several training processes share the cores: each gets its share of ATen and OpenBLAS threads, unless the user chose. */
  private childEnv(): NodeJS.ProcessEnv {
    if (this.concurrency === 1) return process.env;
    const share = String(Math.max(1, Math.floor(availableParallelism() / this.concurrency)));
    return { ATTUNE_THREADS: share, ATTUNE_BLAS_THREADS: share, ...process.env };
  }

  private sendCancel(run: Run): void {
    if (run.cancelSent || !run.child) return;
    run.cancelSent = true;
    send(run, { type: 'cancel' });
  }

  private onMessage(run: Run, child: ChildProcess, message: WorkerMessage): void {
    if (run.lost || run.child !== child || run.final) return;
    const lease = run.lease;
    if (isFinal(message)) {
      run.final = message;
      // A process that reported its outcome has nothing left to do; do not let a stuck one hold the slot.
      setTimeout(() => child.kill('SIGKILL'), schedulerDefaults.exitGraceMs).unref();
    }
    switch (message.type) {
      case 'started':
        return this.record(run, () => this.tuning.runStarted(lease, message.resumedFromStep));
      case 'step': {
        const m = message.metrics;
        const metric = { kind: 'train' as const, step: m.step, epoch: m.epoch, loss: m.loss, accuracy: m.accuracy, rewardMargin: m.rewardMargin, predictions: m.predictedTokens, time: now() };
        return this.record(run, () => this.recordMetric(run, metric));
      }
      case 'eval': {
        const m = message.metrics;
        const epoch = Math.floor((m.step * run.model.hyperparameters.batchSize) / Math.max(1, run.exampleCount));
        const metric = { kind: 'eval' as const, step: m.step, epoch, loss: m.loss, accuracy: m.accuracy, rewardMargin: m.rewardMargin, predictions: m.predictedTokens, time: now() };
        return this.record(run, () => this.recordMetric(run, metric));
      }
      case 'checkpoint':
        return void this.guarded(() => this.saveCheckpoint(run, child, message.step));
      case 'snapshot':
        return void this.guarded(() => this.saveSnapshot(run, child, message.step));
      case 'succeeded':
        return this.recordOutcome(run, async () => {
          const key = await this.storeAdapter(run);
          const problem = await this.writeOutput(run, key, 'adapter');
          await (problem ? this.tuning.failed(lease, problem, 8) : this.tuning.succeeded(lease, key));
        });
      case 'cancelled':
        return this.recordOutcome(run, async () => {
          const key = message.adapterSaved ? await this.storeAdapter(run) : undefined;
          if (key) await this.writeOutput(run, key, 'adapter'); // a cancelled run ends CANCELLED either way
          await this.tuning.cancelled(lease, key);
        });
      case 'failed':
        return this.recordOutcome(run, () => this.tuning.failed(lease, message.message, message.code));
      case 'stopped':
        return; // see onExit
    }
  }

  /** A metric that diverged failed the run: it is abandoned (its process killed, its checkpoints removed). */
  private async recordMetric(run: Run, metric: StepMetric): Promise<void> {
    if ((await this.tuning.recordMetric(run.lease, metric)) === 'recorded') return;
    run.recorded = true;
    run.child?.kill('SIGKILL');
    await this.removeCheckpoints(run.lease.tunedModelId);
  }

  /** Copies the checkpoint to storage (training waits meanwhile), then records it under the lease. */
  private async saveCheckpoint(run: Run, child: ChildProcess, step: number): Promise<void> {
    const id = run.lease.tunedModelId;
    const key = `checkpoints/${id}/${run.lease.token}-${step}`;
    try {
      run.storing = this.withRetry(() => this.artifacts.putDirectory(key, path.join(run.scratch, 'checkpoint')), `storing checkpoint ${key}`, run);
      await run.storing;
    } finally {
      if (run.child === child && child.connected) child.send({ type: 'checkpoint-saved' } satisfies ParentMessage, () => {});
    }
    this.record(run, async () => {
      await this.jobs.recordCheckpoint(run.lease, { key, step });
      const previous = run.checkpointKey;
      run.checkpointKey = key;
      if (previous && previous !== key) await this.artifacts.deletePrefix(previous).catch(() => {});
    });
  }

  /**
   * Stores an intermediate adapter as one of the model's checkpoints (training waits meanwhile), under a key of
   * this lease and step next to the model's adapter, then records it (fenced). One the project's storage quota
   * has no room for is removed again and logged; the run goes on.
   */
  private async saveSnapshot(run: Run, child: ChildProcess, step: number): Promise<void> {
    const id = run.lease.tunedModelId;
    const key = `adapters/${id}/${run.lease.token}-step-${step}`;
    const dir = path.join(run.scratch, 'snapshots', String(step));
    const planned = this.tuning.checkpointPlan(run.model).find((c) => c.step === step);
    try {
      if (!planned) return;
      const bytes = await directoryBytes(dir);
      run.storing = this.withRetry(() => this.artifacts.putDirectory(key, dir), `storing checkpoint ${key}`, run);
      await run.storing;
      this.record(run, async () => {
        const { outcome, replaced } = await this.tuning.checkpointReached(run.lease, { checkpointId: planned.checkpointId, step, adapterKey: key, bytes });
        if (replaced) await this.artifacts.deletePrefix(replaced).catch(() => {});
        if (outcome === 'over-quota') {
          this.log(`job ${id}: checkpoint ${planned.checkpointId} (step ${step}) not kept: project ${run.model.project} has no room for it under storageBytesPerProject`);
          await this.artifacts.deletePrefix(key).catch(() => {});
        } else {
          const problem = await this.writeOutput(run, key, `checkpoints/${planned.checkpointId}`);
          if (problem) this.log(`job ${id}: ${problem}`);
        }
      });
      await run.writes; // recorded (or the lease lost) before training goes on
    } finally {
      await fs.rm(dir, { recursive: true, force: true }).catch(() => {});
      if (run.child === child && child.connected) child.send({ type: 'snapshot-saved' } satisfies ParentMessage, () => {});
    }
  }

  /** Copies the recorded checkpoint to the scratch directory; one that is gone (removed as its run ended) means a fresh start. */
  private async restoreCheckpoint(run: Run, key: string): Promise<void> {
    const dir = path.join(run.scratch, 'checkpoint');
    try {
      await this.withRetry(() => this.artifacts.getDirectory(key, dir), `reading checkpoint ${key}`, run);
    } catch (error) {
      if (isUnavailable(error)) throw error;
      this.log(`the checkpoint ${key} of job ${run.lease.tunedModelId} cannot be read (${(error as Error).message}); training from the start`);
      await fs.rm(dir, { recursive: true, force: true });
    }
  }

  /** A continued run's starting adapter, copied from storage into its scratch directory. */
  private async sourceAdapter(run: Run): Promise<string | undefined> {
    const key = run.model.sourceAdapterKey;
    if (!key) return undefined;
    const dir = path.join(run.scratch, 'source');
    await this.artifacts.getDirectory(key, dir);
    return dir;
  }

  /** The adapter in the scratch directory, stored under a key of this lease. */
  private async storeAdapter(run: Run): Promise<string> {
    const key = `adapters/${run.lease.tunedModelId}/${run.lease.token}`;
    await this.withRetry(() => this.artifacts.putDirectory(key, path.join(run.scratch, 'adapter')), `storing adapter ${key}`, run);
    return key;
  }

  /** Copies a stored adapter to the model's outputUri (Vertex); what went wrong, if something did (the quota, the bucket gone). */
  private async writeOutput(run: Run, key: string, subfolder: string): Promise<string | undefined> {
    if (!run.model.outputUri) return undefined;
    try {
      await this.tuning.writeOutput(run.model, key, subfolder);
      return undefined;
    } catch (error) {
      return `the tuned adapter could not be written to outputUri ${run.model.outputUri}/${subfolder}: ${(error as Error).message}`;
    }
  }

  private async onExit(run: Run, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): Promise<void> {
    const id = run.lease.tunedModelId;
    if (run.child !== child) return;
    run.child = undefined;
    if (run.lost) return this.end(run);
    const final = run.final;
    if (final && final.type !== 'stopped') {
      // Its outcome could not be recorded (nor the adapter stored): another claim runs it again from its checkpoint.
      if (!run.recorded) await this.release(run, { cleanly: false });
      return this.end(run);
    }
    if (run.stopping || !this.accepting) {
      // Shutting down: the checkpoint is stored; the job goes back to the queue for any worker.
      await this.release(run, { cleanly: final?.type === 'stopped' });
      this.log(`released job ${id}${final?.type === 'stopped' ? ` at step ${final.completedSteps}` : ''}`);
      return this.end(run);
    }
    if (final?.type === 'stopped') {
      // Stopped by a signal of its own (a SIGTERM or Ctrl-C that reached the whole process group): resume it
      // shortly, unless this worker turns out to be shutting down too. It keeps its lease and slot meanwhile.
      await this.persist(run, () => this.jobs.attemptEndedCleanly(run.lease));
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        void this.guarded(() => this.relaunch(run));
      }, schedulerDefaults.resumeAfterStopMs);
      this.timers.add(timer);
      return;
    }
    const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
    if (run.attempt < this.maxAttempts) {
      this.log(`the training process for ${id} ${how} without reporting; resuming from its checkpoint (attempt ${run.attempt + 1} of ${this.maxAttempts})`);
      return this.relaunch(run);
    }
    await this.persist(run, () => this.tuning.failed(run.lease, `Training failed: the training process ${how} without reporting, ${run.attempt} times in a row.`, 13));
    await this.removeCheckpoints(id);
    return this.end(run);
  }

  /** Gives the job back to the queue, and wakes every worker: a released job does not wait for their next poll. */
  private async release(run: Run, { cleanly }: { cleanly: boolean }): Promise<void> {
    await this.persist(run, () => this.jobs.release(run.lease, { cleanly }));
    if (!run.lost) await this.events.publish({ type: 'queued' }).catch(() => {}); // a hint: polls find it anyway
  }

  /** A new training process for the run, in the same slot and lease; it resumes from the local checkpoint. */
  private async relaunch(run: Run): Promise<void> {
    if (this.runs.get(run.lease.tunedModelId) !== run) return;
    if (!this.accepting || run.lost) {
      if (!run.lost) await this.release(run, { cleanly: true });
      return this.end(run);
    }
    try {
      await this.launch(run, (await this.jobs.get(run.lease.tunedModelId))?.cancelRequested ?? false);
    } catch (error) {
      if (error instanceof LeaseLostError) return this.lose(run, error.reason);
      throw error;
    }
  }

  /** Every heartbeat: extend each lease; a lost one stops its run; a cancel asked for reaches it. */
  private async heartbeat(): Promise<void> {
    await this.jobs.workerHeartbeat(this.workerId, this.capacity.offerBytes()).catch(() => {});
    for (const run of this.runs.values()) {
      if (run.lost || run.recorded) continue; // a recorded outcome ended the job: there is no lease left to keep
      try {
        const { held, cancelRequested } = await this.jobs.heartbeat(run.lease, this.leaseMs);
        if (!held) this.lose(run, 'taken');
        else if (cancelRequested) this.sendCancel(run);
      } catch (error) {
        if (!isUnavailable(error)) throw error;
        // The database is away: the lease outlives the outage unless another worker claims it after.
      }
    }
  }

  /** The lease is gone: kill the training process; nothing more of this run is recorded. */
  private lose(run: Run, reason: LeaseLostError['reason']): void {
    if (run.lost) return;
    run.lost = reason;
    const id = run.lease.tunedModelId;
    this.log(`lost the lease of job ${id} (token ${run.lease.token}): ${reason === 'deleted' ? 'it was deleted' : reason === 'taken' ? 'another worker claimed it' : 'it ended'}; stopping its training`);
    if (run.child) run.child.kill('SIGKILL');
    else if (!run.final) void this.guarded(() => this.end(run));
  }

  /** Frees the slot and the scratch directory; a deleted job's storage goes (what this worker stored after the delete). */
  private async end(run: Run): Promise<void> {
    const id = run.lease.tunedModelId;
    if (this.runs.get(id) !== run) return;
    this.runs.delete(id);
    this.capacity.release(id);
    this.refused.delete(id);
    // A copy or a write under way may still store files of the job (a deleted one's included): let it finish first.
    await Promise.allSettled([run.storing, run.writes]);
    await fs.rm(run.scratch, { recursive: true, force: true }).catch(() => {});
    if (run.lost === 'deleted') {
      await this.artifacts.deletePrefix(`adapters/${id}`).catch(() => {});
      await this.removeCheckpoints(id);
    }
    this.wake();
  }

  private async removeCheckpoints(id: string): Promise<void> {
    await this.artifacts.deletePrefix(`checkpoints/${id}`).catch((error) => this.log(`could not remove the checkpoints of ${id}: ${(error as Error).message}`));
  }

  /** The run's outcome: once recorded, its checkpoints are of no more use. */
  private recordOutcome(run: Run, write: () => Promise<void>): void {
    this.record(run, async () => {
      await write();
      run.recorded = true;
      await this.removeCheckpoints(run.lease.tunedModelId);
    });
  }

  /** Queues a write under the run's lease, after the ones before it. */
  private record(run: Run, write: () => Promise<void>): void {
    run.writes = run.writes.then(() => this.persist(run, write));
  }

  /** Runs a write until the database takes it; a lost lease stops the run instead. */
  private async persist(run: Run, write: () => Promise<unknown>): Promise<void> {
    if (run.lost) return;
    try {
      await this.withRetry(write, `recording job ${run.lease.tunedModelId}`, run);
    } catch (error) {
      if (error instanceof LeaseLostError) return this.lose(run, error.reason);
      this.log(`could not record job ${run.lease.tunedModelId}: ${(error as Error).message}`);
    }
  }

  /** Retries what failed because the database or storage is unreachable, with backoff, until the run is lost. */
  private async withRetry<T>(action: () => Promise<T>, what: string, run: Run): Promise<T> {
    let delay: number = schedulerDefaults.retryFirstMs;
    let told = false;
    for (;;) {
      try {
        return await action();
      } catch (error) {
        if (!isUnavailable(error) || run.lost) throw error;
        if (!told) this.log(`${what}: ${(error as Error).message}; retrying`);
        told = true;
        await sleep(delay);
        delay = Math.min(delay * 2, schedulerDefaults.retryMaxMs);
      }
    }
  }

  /** A failure handling one event must not take the process down with it. */
  private async guarded(action: () => unknown): Promise<void> {
    try {
      await action();
    } catch (error) {
      this.log(`${(error as Error)?.stack ?? String(error)}`);
    }
  }
}

async function directoryBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) if (entry.isFile()) total += (await fs.stat(path.join(dir, entry.name))).size;
  return total;
}

function send(run: Run, message: ParentMessage): void {
  const child = run.child;
  if (!child?.connected) return; // exiting: its 'close' decides what happens to the job
  // With a callback, a failed send (the process died meanwhile) is not an 'error' event; its 'close' handles it.
  child.send(message, () => {});
}
