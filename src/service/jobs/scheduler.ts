// The job scheduler: claims queued jobs from SQLite and trains each in its own worker process
// (worker.ts), up to `concurrency` at once, relaying what the workers report to the TuningService.
//
// Durability: a job is 'running' in SQLite while a worker trains it. After a crash (or kill -9) of the
// server, its workers exit (they watch the IPC channel) and start() requeues the job; the new worker
// resumes from the last checkpoint, and resumedAt() drops the metrics recorded past it. A graceful
// stop() has every worker checkpoint where it is first, and leaves the jobs 'running' the same way.
import { availableParallelism } from 'node:os';
import { fork, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { hasCheckpoint } from '../../engine/train/checkpoint.js';
import { trainingDefaults } from '../../engine/train/defaults.js';
import type { JobQueue } from '../store/jobs.js';
import { learningRateOf, type RunControl, type TuningService } from '../tuning/service.js';
import { now, type TunedModel } from '../tuning/tuned-model.js';
import { isFinal, type FinalMessage, type ParentMessage, type RunMessage, type WorkerMessage } from './protocol.js';

export const schedulerDefaults = {
  /** Workers started for a job (in one server's lifetime) before a job whose workers keep dying is FAILED. */
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
  /** 1 for the worker started when the job was claimed; a replacement after a crash counts on. */
  attempt: number;
  batchSize: number;
  exampleCount: number;
  final?: FinalMessage;
  /** What it reported, handled one message after another (each is a database write). */
  handled: Promise<void>;
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
  /** fill() is running; `refill` asks it to look again when done (a wake came in meanwhile). */
  private filling = false;
  private refill = false;
  private filled: Promise<void> = Promise.resolve();
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
  async start(): Promise<void> {
    this.accepting = true;
    await this.jobs.requeueInterrupted();
    this.wake();
  }

  wake(): void {
    if (!this.accepting) return;
    if (this.filling) this.refill = true;
    else this.filled = this.guarded(() => this.fill());
  }

  /** Cancels a running job through its worker; a queued one that never trained ends at once, without an adapter. */
  async cancel(tunedModelId: string): Promise<void> {
    if (!this.accepting) return; // the cancel request is in the database; the next start() honours it
    const worker = this.workers.get(tunedModelId);
    if (worker) {
      send(worker, { type: 'cancel' });
    } else {
      const job = await this.jobs.get(tunedModelId);
      // A requeued job with a checkpoint has trained steps: a worker saves them as its adapter when claimed.
      if (job?.state === 'queued' && !hasCheckpoint(this.tuning.checkpointDir(tunedModelId))) await this.tuning.cancelled(tunedModelId, false);
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
    await this.filled;
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

  private async fill(): Promise<void> {
    this.filling = true;
    try {
      do {
        this.refill = false;
        while (this.accepting && this.workers.size < this.concurrency) {
          const job = await this.jobs.claim();
          if (!job) break;
          const id = job.tunedModelId;
          const model = await this.tuning.store.get(id);
          if (!model || model.operationDone) {
            await this.jobs.finish(id); // deleted, or finished just before a crash
            continue;
          }
          if (job.cancelRequested && !hasCheckpoint(this.tuning.checkpointDir(id))) {
            await this.tuning.cancelled(id, false);
            continue;
          }
          await this.launch(model, 1, job.cancelRequested);
        }
      } while (this.refill);
    } finally {
      this.filling = false;
    }
  }

  private async launch(model: TunedModel, attempt: number, cancel: boolean): Promise<void> {
    const id = model.id;
    const { hyperparameters: h } = model;
    const examples = await this.tuning.store.examples(id, 'training');
    const validation = await this.tuning.store.examples(id, 'validation');
    if (!this.accepting) return;
    const run: RunMessage = {
      type: 'run',
      tunedModelId: id,
      baseDir: model.baseDir,
      examples,
      validation,
      epochs: h.epochCount,
      batchSize: h.batchSize,
      learningRate: learningRateOf(h),
      adapterRank: h.adapterRank,
      seed: trainingDefaults.seed,
      checkpointDir: this.tuning.checkpointDir(id),
      adapterDir: this.tuning.adapterDir(id),
    };
    let child: ChildProcess;
    try {
      // A clean command line: the parent's own flags (-e, --test, --inspect) would make the child run them instead.
      child = fork(workerPath, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [], env: this.workerEnv() });
    } catch (error) {
      this.workers.delete(id);
      await this.tuning.failed(id, `Training failed: could not start a training worker: ${(error as Error).message}`, 13);
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
      handled: Promise.resolve(),
      exited: new Promise<void>((resolve) => (exited = resolve)),
    };
    this.workers.set(id, worker);
    // In order: a step is recorded before the next, and the outcome after them all.
    const handle = (action: () => Promise<void>) => {
      worker.handled = worker.handled.then(() => this.guarded(action));
      return worker.handled;
    };
    child.on('message', (message: WorkerMessage) => void handle(() => this.onMessage(worker, message)));
    let closed = false;
    const onClose = (code: number | null, signal: NodeJS.Signals | null) => {
      if (closed) return;
      closed = true;
      void handle(() => this.onExit(worker, code, signal)).then(exited);
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

  private async onMessage(worker: Worker, message: WorkerMessage): Promise<void> {
    const id = worker.tunedModelId;
    if (worker.dropped || worker.final) return;
    if (!(await this.tuning.store.exists(id))) return this.drop(id);
    if (isFinal(message)) {
      worker.final = message;
      // A worker that reported its outcome has nothing left to do; do not let a stuck one hold the slot.
      setTimeout(() => worker.child.kill('SIGKILL'), schedulerDefaults.exitGraceMs).unref();
    }
    switch (message.type) {
      case 'started':
        await this.tuning.started(id);
        await this.tuning.resumedAt(id, message.resumedFromStep);
        break;
      case 'step': {
        const m = message.metrics;
        await this.tuning.recordMetric(id, {
          kind: 'train', step: m.step, epoch: m.epoch, loss: m.loss, accuracy: m.accuracy, predictions: m.predictedTokens, time: now(),
        });
        break;
      }
      case 'eval': {
        const m = message.metrics;
        const epoch = Math.floor((m.step * worker.batchSize) / Math.max(1, worker.exampleCount));
        await this.tuning.recordMetric(id, {
          kind: 'eval', step: m.step, epoch, loss: m.loss, accuracy: m.accuracy, predictions: m.predictedTokens, time: now(),
        });
        break;
      }
      case 'succeeded':
        await this.tuning.succeeded(id);
        this.removeCheckpoint(id);
        break;
      case 'cancelled':
        await this.tuning.cancelled(id, message.adapterSaved);
        this.removeCheckpoint(id);
        break;
      case 'failed':
        await this.tuning.failed(id, message.message, message.code);
        this.removeCheckpoint(id);
        break;
      case 'stopped':
        break; // the job stays 'running'; see onExit
    }
  }

  private async onExit(worker: Worker, code: number | null, signal: NodeJS.Signals | null): Promise<void> {
    const id = worker.tunedModelId;
    if (worker.dropped) {
      this.release(worker);
      if (this.accepting && !(await this.tuning.store.exists(id))) this.removeDirectories(id);
    } else if (!this.accepting || worker.stopping) {
      this.release(worker); // shutting down: the job stays 'running' and resumes at the next start()
      return;
    } else if (worker.final?.type === 'stopped') {
      // Stopped by a signal of its own (a SIGTERM or Ctrl-C that reached the whole process group): resume
      // it shortly, unless the server turns out to be shutting down too. It keeps its slot meanwhile.
      const timer = setTimeout(() => {
        this.relaunchTimers.delete(timer);
        void worker.handled.then(() => this.guarded(() => this.relaunch(worker, worker.attempt)));
      }, schedulerDefaults.resumeAfterStopMs);
      this.relaunchTimers.add(timer);
      return;
    } else if (!worker.final) {
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      if (worker.attempt < this.maxAttempts) {
        console.error(
          `attune: the training worker for ${id} ${how} without reporting; resuming from its checkpoint (attempt ${worker.attempt + 1} of ${this.maxAttempts})`,
        );
        await this.relaunch(worker, worker.attempt + 1);
        return;
      }
      this.release(worker);
      const model = await this.tuning.store.get(id);
      if (model && !model.operationDone) {
        await this.tuning.failed(id, `Training failed: the training worker ${how} without reporting, ${worker.attempt} times in a row.`, 13);
        this.removeCheckpoint(id);
      }
    } else {
      this.release(worker); // it reported its outcome
    }
    this.wake();
  }

  /** Starts a new worker for the job of one that exited, in the same slot; the run resumes from its checkpoint. */
  private async relaunch(previous: Worker, attempt: number): Promise<void> {
    const id = previous.tunedModelId;
    if (this.workers.get(id) !== previous) return;
    const model = await this.tuning.store.get(id);
    if (!this.accepting || !model || model.operationDone) {
      this.release(previous);
      if (this.accepting && !model) this.removeDirectories(id);
      this.wake();
      return;
    }
    await this.launch(model, attempt, (await this.jobs.get(id))?.cancelRequested ?? false);
  }

  private release(worker: Worker): void {
    if (this.workers.get(worker.tunedModelId) === worker) this.workers.delete(worker.tunedModelId);
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
  private async guarded(action: () => unknown): Promise<void> {
    try {
      await action();
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

