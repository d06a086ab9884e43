// A training process: a child (child_process.fork) of the worker holding the job's lease. It tunes one
// model in local directories and reports over IPC; it never touches the database or the shared storage
// (the worker records and copies what it reports, under its lease). It exits when its parent goes away
// (the IPC channel closes), so a killed worker leaves no orphan training.
import path from 'node:path';
import { configureThreads } from '../../engine/runtime.js';
import { loadBaseModel } from '../../engine/base-model.js';
import { MemoryPlanError, tune } from '../../engine/tuning.js';
import { FramingError } from '../../engine/data/framing.js';
import { DatasetError } from '../../engine/data/examples.js';
import { TrainingDivergedError } from '../../engine/train/trainer.js';
import type { ParentMessage, RunMessage, WorkerMessage } from './protocol.js';

if (!process.send) {
  console.error('attune training process: run by a worker (child_process.fork), not directly');
  process.exit(2);
}

const controller = new AbortController();
/** What an abort of the run means: a cancel (save the adapter) or a stop (checkpoint and resume later). */
let ending: 'cancel' | 'stop' | undefined;
let runStarted = false;
let finished = false;
/** Resolves when the parent has copied the last checkpoint. */
let checkpointSaved: (() => void) | undefined;
/** Resolves when the parent has stored the last intermediate adapter. */
let snapshotSaved: (() => void) | undefined;

function send(message: WorkerMessage): void {
  if (!process.connected) process.exit(0); // the server is gone
  process.send!(message, () => {}); // with a callback, a send that fails (the server died) raises no 'error'
}

/** Sends the final message and exits once it is written to the channel. */
function finish(message: WorkerMessage): void {
  if (finished) return;
  finished = true;
  try {
    process.send!(message, () => process.exit(0));
  } catch {
    process.exit(0);
  }
}

function end(how: 'cancel' | 'stop'): void {
  ending ??= how;
  controller.abort();
  if (!runStarted && how === 'stop') finish({ type: 'stopped', completedSteps: 0 });
}

process.on('disconnect', () => process.exit(0));
// A terminal's Ctrl-C or a service manager's SIGTERM reaches the whole process group: the server asks
// the worker to stop anyway, and a worker signalled alone stops the same way (its job resumes).
process.on('SIGINT', () => end('stop'));
process.on('SIGTERM', () => end('stop'));
process.on('uncaughtException', (error) => fail(error));
process.on('unhandledRejection', (error) => fail(error));

process.on('message', (message: ParentMessage) => {
  switch (message.type) {
    case 'run':
      if (runStarted || finished) return;
      runStarted = true;
      run(message).catch(fail);
      break;
    case 'cancel':
      end('cancel');
      break;
    case 'stop':
      end('stop');
      break;
    case 'checkpoint-saved':
      checkpointSaved?.();
      checkpointSaved = undefined;
      break;
    case 'snapshot-saved':
      snapshotSaved?.();
      snapshotSaved = undefined;
      break;
  }
});

async function run(job: RunMessage): Promise<void> {
  configureThreads();
  const base = await loadBaseModel(job.baseDir, { device: job.device, dtype: job.dtype });
  if (ending === 'stop') return finish({ type: 'stopped', completedSteps: 0 });
  let completedSteps = 0;
  const outcome = await tune(base, {
    examples: job.examples,
    validation: job.validation.length ? job.validation : undefined,
    lora: { rank: job.adapterRank },
    startFrom: job.startFrom,
    preference: job.preference,
    training: {
      epochs: job.epochs,
      batchSize: job.batchSize,
      learningRate: job.learningRate,
      seed: job.seed,
      signal: controller.signal,
      checkpointDir: job.checkpointDir,
      checkpointOnAbort: true,
      onStart: (progress) => {
        completedSteps = progress.completedSteps;
        send({ type: 'started', resumedFromStep: progress.completedSteps, totalSteps: progress.totalSteps });
      },
      onStep: (metrics) => {
        completedSteps = metrics.step;
        send({ type: 'step', metrics });
      },
      onEval: (metrics) => send({ type: 'eval', metrics }),
      onCheckpoint: (step) =>
        new Promise<void>((resolve) => {
          checkpointSaved = resolve;
          send({ type: 'checkpoint', step });
        }),
    },
    outDir: job.adapterDir,
    snapshots: {
      steps: job.snapshotSteps,
      dirFor: (step) => path.join(job.snapshotDir, String(step)),
      saved: (step) =>
        new Promise<void>((resolve) => {
          snapshotSaved = resolve;
          send({ type: 'snapshot', step });
        }),
    },
    saveCancelled: () => ending === 'cancel',
  });
  const how = ending as 'cancel' | 'stop' | undefined; // set by a message while tune() ran
  if (!outcome.cancelled) finish({ type: 'succeeded' });
  else if (how === 'stop') finish({ type: 'stopped', completedSteps });
  else finish({ type: 'cancelled', adapterSaved: outcome.adapterSaved });
}

function fail(error: unknown): void {
  const badData = error instanceof FramingError || error instanceof DatasetError;
  const diverged = error instanceof TrainingDivergedError;
  const noMemory = error instanceof MemoryPlanError; // the device's free memory shrank since the job was accepted
  const message = error instanceof Error ? error.message : String(error);
  if (!badData && !diverged && !noMemory) console.error('attune worker:', error);
  finish({
    type: 'failed',
    code: badData || diverged ? 3 : noMemory ? 8 : 13,
    message: badData ? `Invalid training data: ${message}` : diverged || noMemory ? `Training failed: ${message}.` : `Training failed: ${message}`,
  });
}
