// A generation request as the runners see it: framed prompt ids, settings, the adapter to decode through,
// who asked, until when, and where its text goes.
import type { Generation } from '../../engine/generate/generate.js';
import type { LoraAdapter } from '../../engine/lora/lora.js';
import { ServiceError } from '../errors.js';

export interface JobOptions {
  temperature: number;
  topP?: number;
  topK?: number;
  candidateCount: number;
  maxOutputTokens: number;
  stopSequences: string[];
  seed?: number;
}

export interface JobDelta {
  candidate: number;
  text: string;
}

/** A tuned model's adapter, loaded only when a runner needs it resident. */
export interface AdapterRef {
  /** One version of one tuned model's adapter files (`id@stamp`): a rewritten adapter is another key. */
  key: string;
  /** The tuned model's id, for forgetting every version of it. */
  modelId: string;
  /** Reads the files without blocking the event loop. */
  load(): Promise<LoraAdapter>;
}

export interface Job {
  project: string;
  /** null: the base model itself. */
  adapter: AdapterRef | null;
  promptIds: number[];
  options: JobOptions;
  signal?: AbortSignal;
  /** Epoch milliseconds by which the last token must be out. */
  deadline: number;
  onDelta(delta: JobDelta): void;
  onDone(result: Generation): void;
  onError(error: unknown): void;
}

export interface Runner {
  /**
   * Queues a job. Resolves once the job waits only for its turn (its adapter resident); rejects when the
   * queues are full (RESOURCE_EXHAUSTED), the adapter cannot be loaded, or the job ends first. After it
   * settles, the job's outcome arrives through its callbacks only.
   */
  submit(job: Job): Promise<void>;
  /** Drops every cached version of a tuned model's adapter not in use (the rest when their jobs end). */
  forget(modelId: string): void;
  /** Fails every job, frees what the runner holds. */
  close(): void;
  stats(): RunnerStats;
}

export interface RunnerStats {
  /** Adapters loaded now. */
  adapters: number;
  /** Forwards run: batches (swap-per-batch) or steps (continuous). */
  forwards: number;
  /** Requests waiting (for their adapter, their turn, or paused). */
  queued: number;
  /** Rows decoding (the swap-per-batch scheduler: batches running). */
  running: number;
}

export const cancelled = () => new ServiceError('CANCELLED', 'The request was cancelled.');
export const shuttingDown = () => new ServiceError('UNAVAILABLE', 'The service is shutting down.');
export const deadlineExceeded = () => new ServiceError('DEADLINE_EXCEEDED', 'The request ran past its deadline.');
export const adapterUnloadable = (modelId: string, error: unknown) =>
  new ServiceError('INTERNAL', `The adapter of tunedModels/${modelId} cannot be loaded: ${(error as Error)?.message ?? String(error)}`);
