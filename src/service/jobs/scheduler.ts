// The job scheduler: claims queued jobs from SQLite and trains each in its own worker process
// (worker.ts), up to `concurrency` at once, relaying what the workers report to the TuningService.
//
// Durability: a job is 'running' in SQLite while a worker trains it. After a crash (or kill -9) of the
// server, its workers exit (they watch the IPC channel) and start() requeues the job; the new worker
// resumes from the last checkpoint, and resumedAt() drops the metrics recorded past it. A graceful
// stop() has every worker checkpoint where it is first, and leaves the jobs 'running' the same way.
//
// Attempts: every worker started counts an attempt in SQLite before it runs, and one that checkpoints and
// stops when asked gives it back. A job whose workers ended `maxAttempts` times without reporting (killed,
// crashed, or gone with the server) is FAILED, in this server's lifetime or at a later start, so a job that
// takes the server down with it is not run again at every start.
import { availableParallelism } from 'node:os';
import { fork, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { hasCheckpoint } from '../../engine/train/checkpoint.js';
import { trainingDefaults } from '../../engine/train/defaults.js';
import type { Job, JobQueue } from '../store/jobs.js';
import { learningRateOf, type RunControl, type TuningService } from '../tuning/service.js';
import { now, type TunedModel } from '../tuning/tuned-model.js';
import { isFinal, type FinalMessage, type ParentMessage, type RunMessage, type WorkerMessage } from './protocol.js';

export const schedulerDefaults = {
  /** Workers that ended without reporting (across restarts) before a job is FAILED. */
  maxAttempts: 3,
  /** How long stop() waits for workers to checkpoint and exit before killing them. */
  stopTimeoutMs: 30_000,
  /** How long a worker that sent its final message may take to exit before it is killed. */
  exitGraceMs: 10_000,
  /** How long after a worker stopped by a signal of its own it is started again (a shutdown may be under way). */
  resumeAfterStopMs: 1_000,
} as const;

/** The compiled worker sits next to this file (dist/src/service/jobs/worker.js). */
const workerPath = fileURLToPath(new URL('./worker.js', import.meta.url));

interface Worker {
  tunedModelId: string;
  child: ChildProcess;
  /** The job's attempts counting this worker (JobQueue.attemptStarted). */
  attempt: number;
  batchSize: number;
  exampleCount: number;
  final?: FinalMessage;
  /** stop() asked it to checkpoint and exit: its job stays 'running' for the next start(). */
  stopping: boolean;
  /** Its tuned model was deleted: killed, nothing recorded, its directories removed once it exits. */
  dropped: boolean;
  exited: Promise<void>;
}

export class Scheduler implements RunControl {
  private readonly workers = new Map<string, Worker>();
  private readonly relaunchTimers = new Set<NodeJS.Timeout>();
  private accepting = false;
  maxAttempts: number = schedulerDefaults.maxAttempts;
  stopTimeoutMs: number = schedulerDefaults.stopTimeoutMs;

  constructor(
    readonly tuning: TuningService,
    readonly jobs: JobQueue,
    readonly concurrency: number,
  ) {
    tuning.onDeleted((id) => this.guarded(() => this.drop(id)));
  }

  /** Requeues interrupted jobs and starts queued ones. */
  start(): void {
    this.accepting = true;
    this.jobs.requeueInterrupted();
    this.fill();
  }

  wake(): void {
    if (this.accepting) this.fill();
  }

  /** Cancels a running job through its worker; a queued one that never trained ends at once, without an adapter. */
  cancel(tunedModelId: string): void {
    if (!this.accepting) return; // the cancel request is in SQLite; the next start() honours it
    const worker = this.workers.get(tunedModelId);
    if (worker) {
      send(worker, { type: 'cancel' });
    } else {
      const job = this.jobs.get(tunedModelId);
      // A requeued job with a checkpoint has trained steps: a worker saves them as its adapter when claimed.
      if (job?.state === 'queued' && !hasCheckpoint(this.tuning.checkpointDir(tunedModelId))) this.tuning.cancelled(tunedModelId, false);
    }
  }

  /** Stops workers after checkpointing; their jobs stay 'running' and are requeued by the next start(). */
  /** Several workers share the cores: each gets its share of ATen and OpenBLAS threads, unless the user chose. */
  private workerEnv(): NodeJS.ProcessEnv {
    if (this.concurrency === 1) return process.env;
    const share = String(Math.max(1, Math.floor(availableParallelism() / this.concurrency)));
    return { ATTUNE_THREADS: share, ATTUNE_BLAS_THREADS: share, ...process.env };
  }

  async stop(): Promise<void> {
    this.accepting = false;
    for (const timer of this.relaunchTimers) clearTimeout(timer);
    this.relaunchTimers.clear();
    const workers = [...this.workers.values()];
    for (const worker of workers) {
      worker.stopping = true;
      send(worker, { type: 'stop' });
    }
    await Promise.all(
      workers.map(async (worker) => {
        const timer = setTimeout(() => worker.child.kill('SIGKILL'), this.stopTimeoutMs);
        await worker.exited;
        clearTimeout(timer);
        this.release(worker);
      }),
    );
  }

  /** The process id of the worker training a model, if one is. */
  workerPid(tunedModelId: string): number | undefined {
    return this.workers.get(tunedModelId)?.child.pid;
  }

  /** Models being trained now. */
  runningJobs(): string[] {
    return [...this.workers.keys()];
  }

  private fill(): void {
    while (this.accepting && this.workers.size < this.concurrency) {
      const job = this.jobs.claim();
      if (!job) return;
      this.guarded(() => this.begin(job));
    }
  }

  /** A claimed job: finished, cancelled, out of attempts, or started in a worker. A launch error fails the job only. */
  private begin(job: Job): void {
    const id = job.tunedModelId;
    const model = this.tuning.store.get(id);
    if (!model || model.operationDone) {
      this.jobs.finish(id); // deleted, or finished just before a crash
      return;
    }
    if (job.cancelRequested && !hasCheckpoint(this.tuning.checkpointDir(id))) {
      this.tuning.cancelled(id, false);
      return;
    }
    if (job.attempts >= this.maxAttempts) {
      this.tuning.failed(
        id,
        `Training failed: its training worker ended without reporting ${job.attempts} times, the last time when the server stopped abruptly; it is not started again.`,
        13,
      );
      this.removeCheckpoint(id);
      return;
    }
    this.launchOrFail(model, job.cancelRequested);
  }

  private launchOrFail(model: TunedModel, cancel: boolean): void {
    try {
      this.launch(model, cancel);
    } catch (error) {
      console.error(`attune: could not start the training run of ${model.id}:`, error);
      const worker = this.workers.get(model.id);
      if (worker) {
        worker.dropped = true; // its exit records nothing
        worker.child.kill('SIGKILL');
        this.release(worker);
      }
      this.tuning.failed(model.id, `Training failed: the run could not be started: ${(error as Error)?.message ?? String(error)}`, 13);
    }
  }

  private launch(model: TunedModel, cancel: boolean): void {
    const id = model.id;
    const { hyperparameters: h } = model;
    const examples = this.tuning.store.examples(id, 'training');
    const run: RunMessage = {
      type: 'run',
      tunedModelId: id,
      baseDir: model.baseDir,
      examples,
      validation: this.tuning.store.examples(id, 'validation'),
      epochs: h.epochCount,
      batchSize: h.batchSize,
      learningRate: learningRateOf(h),
      adapterRank: h.adapterRank,
      seed: h.seed ?? trainingDefaults.seed,
      checkpointDir: this.tuning.checkpointDir(id),
      adapterDir: this.tuning.adapterDir(id),
    };
    const attempt = this.jobs.attemptStarted(id);
    let child: ChildProcess;
    try {
      // A clean command line: the parent's own flags (-e, --test, --inspect) would make the child run them instead.
      child = fork(workerPath, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [], env: this.workerEnv() });
    } catch (error) {
      this.workers.delete(id);
      this.tuning.failed(id, `Training failed: could not start a training worker: ${(error as Error).message}`, 13);
      return;
    }
    let exited!: () => void;
    const worker: Worker = {
      tunedModelId: id,
      child,
      attempt,
      batchSize: h.batchSize,
      exampleCount: examples.length,
      stopping: false,
      dropped: false,
      exited: new Promise<void>((resolve) => (exited = resolve)),
    };
    this.workers.set(id, worker);
    child.on('message', (message: WorkerMessage) => this.guarded(() => this.onMessage(worker, message)));
    let closed = false;
    const onClose = (code: number | null, signal: NodeJS.Signals | null) => {
      if (closed) return;
      closed = true;
      exited();
      this.guarded(() => this.onExit(worker, code, signal));
    };
    child.once('close', onClose);
    child.on('error', (error) => {
      // A failed spawn emits no 'close'; a failed send to a dying worker is answered by its 'close'.
      if (child.pid === undefined) {
        console.error(`attune: could not start a training worker for ${id}:`, error);
        onClose(null, null);
      }
    });
    send(worker, run);
    if (cancel) send(worker, { type: 'cancel' });
  }

  private onMessage(worker: Worker, message: WorkerMessage): void {
    const id = worker.tunedModelId;
    if (worker.dropped || worker.final) return;
    if (!this.tuning.store.exists(id)) return this.drop(id);
    if (isFinal(message)) {
      worker.final = message;
      // A worker that reported its outcome has nothing left to do; do not let a stuck one hold the slot.
      setTimeout(() => worker.child.kill('SIGKILL'), schedulerDefaults.exitGraceMs).unref();
    }
    switch (message.type) {
      case 'started':
        this.tuning.started(id);
        this.tuning.resumedAt(id, message.resumedFromStep);
        break;
      case 'step': {
        const m = message.metrics;
        this.tuning.recordMetric(id, {
          kind: 'train', step: m.step, epoch: m.epoch, loss: m.loss, accuracy: m.accuracy, predictions: m.predictedTokens, time: now(),
        });
        break;
      }
      case 'eval': {
        const m = message.metrics;
        const epoch = Math.floor((m.step * worker.batchSize) / Math.max(1, worker.exampleCount));
        this.tuning.recordMetric(id, {
          kind: 'eval', step: m.step, epoch, loss: m.loss, accuracy: m.accuracy, predictions: m.predictedTokens, time: now(),
        });
        break;
      }
      case 'checkpoint':
        this.tuning.checkpointed(id, message.step);
        break;
      case 'succeeded':
        this.tuning.succeeded(id);
        this.removeCheckpoint(id);
        break;
      case 'cancelled':
        this.tuning.cancelled(id, message.adapterSaved);
        this.removeCheckpoint(id);
        break;
      case 'failed':
        this.tuning.failed(id, message.message, message.code);
        this.removeCheckpoint(id);
        break;
      case 'stopped':
        break; // the job stays 'running'; see onExit
    }
  }

  private onExit(worker: Worker, code: number | null, signal: NodeJS.Signals | null): void {
    const id = worker.tunedModelId;
    if (worker.dropped) {
      this.release(worker);
      if (this.accepting && !this.tuning.store.exists(id)) this.removeDirectories(id);
      else if (this.accepting) this.removeCheckpoint(id); // abandoned: the run is over
    } else if (!this.accepting || worker.stopping) {
      if (worker.final?.type === 'stopped') this.jobs.attemptEndedCleanly(id);
      this.release(worker); // shutting down: the job stays 'running' and resumes at the next start()
      return;
    } else if (worker.final?.type === 'stopped') {
      // Stopped by a signal of its own (a SIGTERM or Ctrl-C that reached the whole process group): resume
      // it shortly, unless the server turns out to be shutting down too. It keeps its slot meanwhile.
      this.jobs.attemptEndedCleanly(id);
      const timer = setTimeout(() => {
        this.relaunchTimers.delete(timer);
        this.guarded(() => this.relaunch(worker));
      }, schedulerDefaults.resumeAfterStopMs);
      this.relaunchTimers.add(timer);
      return;
    } else if (!worker.final) {
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      if (worker.attempt < this.maxAttempts) {
        console.error(
          `attune: the training worker for ${id} ${how} without reporting; resuming from its checkpoint (attempt ${worker.attempt + 1} of ${this.maxAttempts})`,
        );
        this.relaunch(worker);
        return;
      }
      this.release(worker);
      if (this.tuning.store.exists(id) && !this.tuning.store.get(id)!.operationDone) {
        this.tuning.failed(id, `Training failed: the training worker ${how} without reporting, ${worker.attempt} times in a row.`, 13);
        this.removeCheckpoint(id);
      }
    } else {
      this.release(worker); // it reported its outcome
    }
    this.fill();
  }

  /** Starts a new worker for the job of one that exited, in the same slot; the run resumes from its checkpoint. */
  private relaunch(previous: Worker): void {
    const id = previous.tunedModelId;
    if (this.workers.get(id) !== previous) return;
    const model = this.tuning.store.get(id);
    if (!this.accepting || !model || model.operationDone) {
      this.release(previous);
      if (this.accepting && !model) this.removeDirectories(id);
      if (this.accepting) this.fill();
      return;
    }
    this.release(previous);
    this.launchOrFail(model, this.jobs.get(id)?.cancelRequested ?? false);
    if (!this.workers.has(id)) this.fill(); // it could not be started: its slot is free
  }

  private release(worker: Worker): void {
    if (this.workers.get(worker.tunedModelId) === worker) this.workers.delete(worker.tunedModelId);
  }

  /** The run failed in the server (a non-finite metric): its worker is killed like a deleted model's. */
  abandon(tunedModelId: string): void {
    this.drop(tunedModelId);
  }

  /** The model was deleted (TuningService.onDeleted): kill its worker; its directories go when it has exited. */
  private drop(id: string): void {
    const worker = this.workers.get(id);
    if (!worker || worker.dropped) return;
    worker.dropped = true;
    worker.child.kill('SIGKILL');
  }

  private removeCheckpoint(id: string): void {
    rmSync(this.tuning.checkpointDir(id), { recursive: true, force: true });
  }

  private removeDirectories(id: string): void {
    this.removeCheckpoint(id);
    rmSync(this.tuning.adapterDir(id), { recursive: true, force: true });
  }

  /** A failure relaying one event must not take the server down with it. */
  private guarded(action: () => unknown): void {
    try {
      action();
    } catch (error) {
      console.error('attune: job scheduler:', error);
    }
  }
}

function send(worker: Worker, message: ParentMessage): void {
  if (!worker.child.connected) return; // exiting: its 'close' decides what happens to the job
  // With a callback, a failed send (the worker died meanwhile) is not an 'error' event; its 'close' handles it.
  worker.child.send(message, () => {});
}

