// The messages between the server and a training worker process (child_process IPC, JSON).
// The server sends one `run`, then possibly `cancel` or `stop`; the worker reports progress and ends
// with exactly one final message (succeeded, cancelled, stopped or failed) before it exits.
import type { Example } from '../../engine/data/examples.js';
import type { EvalMetrics, StepMetrics } from '../../engine/train/trainer.js';

/** Everything a worker needs to tune one model; it reads nothing from the database. */
export interface RunMessage {
  type: 'run';
  tunedModelId: string;
  /** The base model's Hugging Face directory. */
  baseDir: string;
  examples: Example[];
  validation: Example[];
  epochs: number;
  batchSize: number;
  /** Absolute peak learning rate. */
  learningRate: number;
  /** LoRA rank. */
  adapterRank: number;
  seed: number;
  /** A checkpoint found here is resumed from; the run checkpoints here as it goes. */
  checkpointDir: string;
  /** Where the tuned adapter (PEFT files + attune.json) is written. */
  adapterDir: string;
}

/** Stop between steps; save the adapter if a step completed. */
export interface CancelMessage {
  type: 'cancel';
}

/** Graceful shutdown: checkpoint at the current step, report `stopped`, exit. The job resumes later. */
export interface StopMessage {
  type: 'stop';
}

export type ParentMessage = RunMessage | CancelMessage | StopMessage;

export type WorkerMessage =
  /** Training begins; resumedFromStep is the checkpoint's step, 0 for a fresh run. */
  | { type: 'started'; resumedFromStep: number; totalSteps: number }
  | { type: 'step'; metrics: StepMetrics }
  | { type: 'eval'; metrics: EvalMetrics }
  /** A checkpoint at this step is on disk (a restart resumes from the latest). */
  | { type: 'checkpoint'; step: number }
  | { type: 'succeeded' }
  | { type: 'cancelled'; adapterSaved: boolean }
  | { type: 'stopped'; completedSteps: number }
  /** code: google.rpc.Code, 3 (INVALID_ARGUMENT) for data the engine rejects, 13 (INTERNAL) otherwise. */
  | { type: 'failed'; message: string; code: number };

export type FinalMessage = Extract<WorkerMessage, { type: 'succeeded' | 'cancelled' | 'stopped' | 'failed' }>;

export const isFinal = (message: WorkerMessage): message is FinalMessage =>
  message.type === 'succeeded' || message.type === 'cancelled' || message.type === 'stopped' || message.type === 'failed';
