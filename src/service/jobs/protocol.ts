// The messages between a worker (the process holding the job's lease) and its training process
// (child_process IPC, JSON). The worker sends one `run`, then possibly `cancel` or `stop`; the training
// process reports progress and ends with exactly one final message (succeeded, cancelled, stopped or failed)
// before it exits. After each checkpoint it waits for `checkpoint-saved`: the worker copies the checkpoint to
// storage meanwhile, before the next one replaces it.
import type { Example } from '../../engine/data/examples.js';
import type { EvalMetrics, StepMetrics } from '../../engine/train/trainer.js';
import type { DtypeChoice } from '../../engine/placement.js';

/** Everything a training process needs to tune one model; it reads no database and no shared storage. */
export interface RunMessage {
  type: 'run';
  tunedModelId: string;
  /** The base model's Hugging Face directory (on this machine). */
  baseDir: string;
  /** The worker's device, and its dtype (auto: resolved by the training process for the base model). */
  device: string;
  dtype: DtypeChoice;
  examples: Example[];
  validation: Example[];
  epochs: number;
  batchSize: number;
  /** Absolute peak learning rate. */
  learningRate: number;
  /** LoRA rank. */
  adapterRank: number;
  /** Continuous tuning: a local copy of the adapter the run starts from. */
  startFrom?: string;
  /** Preference tuning (DPO): the examples carry their rejected completions. */
  preference?: { beta: number };
  seed: number;
  /** A local directory: a checkpoint found here is resumed from; the run checkpoints here as it goes. */
  checkpointDir: string;
  /** A local directory where the tuned adapter (PEFT files + attune.json) is written. */
  adapterDir: string;
  /** Steps after which the adapter so far is kept as a tuned model's checkpoint (the last step's is the adapter itself). */
  snapshotSteps: number[];
  /** A local directory: each of those adapters is written to <snapshotDir>/<step>. */
  snapshotDir: string;
}

/** The intermediate adapter just reported is stored: training may go on. */
export interface SnapshotSavedMessage {
  type: 'snapshot-saved';
}

/** The checkpoint just reported is copied: training may go on (and replace it). */
export interface CheckpointSavedMessage {
  type: 'checkpoint-saved';
}

/** Stop between steps; save the adapter if a step completed. */
export interface CancelMessage {
  type: 'cancel';
}

/** Graceful shutdown: checkpoint at the current step, report `stopped`, exit. The job resumes later. */
export interface StopMessage {
  type: 'stop';
}

export type ParentMessage = RunMessage | CancelMessage | StopMessage | CheckpointSavedMessage | SnapshotSavedMessage;

export type WorkerMessage =
  /** Training begins; resumedFromStep is the checkpoint's step, 0 for a fresh run. */
  | { type: 'started'; resumedFromStep: number; totalSteps: number }
  | { type: 'step'; metrics: StepMetrics }
  | { type: 'eval'; metrics: EvalMetrics }
  /** A checkpoint of `step` completed steps is in checkpointDir; training waits for checkpoint-saved. */
  | { type: 'checkpoint'; step: number }
  /** The adapter after `step` steps is a tuned-adapter directory in <snapshotDir>/<step>; training waits for snapshot-saved. */
  | { type: 'snapshot'; step: number }
  | { type: 'succeeded' }
  | { type: 'cancelled'; adapterSaved: boolean }
  | { type: 'stopped'; completedSteps: number }
  /** code: google.rpc.Code, 3 (INVALID_ARGUMENT) for data the engine rejects, 8 (RESOURCE_EXHAUSTED) for a run that does not fit in memory, 13 (INTERNAL) otherwise. */
  | { type: 'failed'; message: string; code: number };

export type FinalMessage = Extract<WorkerMessage, { type: 'succeeded' | 'cancelled' | 'stopped' | 'failed' }>;

export const isFinal = (message: WorkerMessage): message is FinalMessage =>
  message.type === 'succeeded' || message.type === 'cancelled' || message.type === 'stopped' || message.type === 'failed';
