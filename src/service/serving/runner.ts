// Runs generations on one loaded base model, one batch at a time.
//
// Why serial: a tuned model is the base transformer with a LoRA adapter attached to its projections
// (`LoraAdapter.attach` points each Linear at the adapter's A/B matrices; nothing is merged into the base
// weights). Generation is async and yields between tokens, so two generations interleaved on one
// transformer would run with whichever adapter was attached last. Each base model therefore has one
// queue, drained by one loop that attaches the batch's adapter (or detaches, for the base model itself)
// and awaits the whole batch before it takes the next. Swapping adapters is a pointer assignment per
// projection, so requests for different tuned models of one base cost nothing extra to alternate.
//
// Batching: the engine decodes the candidates of one prompt as rows of one batch (one KV cache, one
// forward pass per token). A request's candidates are always one batch. Queued requests that are
// identical in everything but their candidate count (same adapter, same prompt token ids, same sampling
// settings, stop sequences and token limit, and no seed unless greedy) are merged into one batch, each
// taking its own rows. At temperature 0 every row would decode the same tokens, so a greedy batch runs
// one row and every candidate of every merged request receives its text. Different prompts are not
// batched: the engine's KV-cache decoding has no padding mask, so rows must share their prompt.
//
// Fairness: a long generation holds its base model until it ends; requests for other base models are
// not held up (each base model's loop yields between tokens, so they interleave token by token).
//
// Seeds: libtorch has one process-wide random generator. A seeded, sampled request is reproducible
// only if nothing else draws from it while it runs, so it holds the RNG gate exclusively; other sampled
// batches (on any base model) hold it shared; greedy batches draw nothing and skip it.
import { streamGenerate, type Generation } from '../../engine/generate/generate.js';
import { LoraAdapter } from '../../engine/lora/lora.js';
import type { BaseModel } from '../../engine/base-model.js';
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

export interface Job {
  /** The adapter to attach, or null for the base model itself; `adapterKey` identifies it for batching. */
  adapter: LoraAdapter | null;
  adapterKey: string;
  promptIds: number[];
  options: JobOptions;
  signal?: AbortSignal;
  onDelta(delta: JobDelta): void;
  onDone(result: Generation): void;
  onError(error: unknown): void;
}

export const runnerDefaults = {
  /** Rows decoded together at most when merging sampled requests (a greedy batch is one row). */
  maxBatchRows: 16,
} as const;

/** A FIFO readers–writer lock over the process-wide random generator. */
export class RngGate {
  private shared = 0;
  private exclusive = false;
  private readonly waiting: { exclusive: boolean; grant: () => void }[] = [];

  acquire(exclusive: boolean): Promise<() => void> {
    return new Promise((resolve) => {
      this.waiting.push({
        exclusive,
        grant: () => {
          let released = false;
          resolve(() => {
            if (released) return;
            released = true;
            if (exclusive) this.exclusive = false;
            else this.shared--;
            this.grant();
          });
        },
      });
      this.grant();
    });
  }

  private grant(): void {
    while (this.waiting.length) {
      const next = this.waiting[0];
      const free = next.exclusive ? !this.exclusive && this.shared === 0 : !this.exclusive;
      if (!free) return;
      this.waiting.shift();
      if (next.exclusive) this.exclusive = true;
      else this.shared++;
      next.grant();
    }
  }
}

export class BaseRunner {
  private readonly queue: Job[] = [];
  private draining = false;
  private closed = false;
  /** The adapter now attached to the transformer (null: none). */
  private attached: LoraAdapter | null = null;
  /** Aborts the batch that is running. */
  private current?: AbortController;
  /** Batches run so far (for tests and metrics). */
  batches = 0;

  constructor(
    readonly base: BaseModel,
    private readonly rng: RngGate,
    private readonly maxBatchRows: number = runnerDefaults.maxBatchRows,
  ) {}

  get pending(): number {
    return this.queue.length;
  }

  get busy(): boolean {
    return this.draining;
  }

  submit(job: Job): void {
    if (this.closed) {
      job.onError(new ServiceError('UNAVAILABLE', 'The service is shutting down.'));
      return;
    }
    this.queue.push(job);
    if (!this.draining) void this.drain();
  }

  /** Fails queued jobs; a running batch is aborted at its next token. */
  close(): void {
    this.closed = true;
    for (const job of this.queue.splice(0)) job.onError(new ServiceError('UNAVAILABLE', 'The service is shutting down.'));
    this.current?.abort();
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      // Let requests that arrive in the same tick join the first batch.
      await new Promise<void>((resolve) => setImmediate(resolve));
      for (let batch = this.takeBatch(); batch.length; batch = this.takeBatch()) {
        await this.run(batch);
      }
    } finally {
      this.draining = false;
    }
  }

  /** The oldest live job plus every queued job it can share a batch with. */
  private takeBatch(): Job[] {
    let head: Job | undefined;
    while ((head = this.queue.shift())) {
      if (!head.signal?.aborted) break;
      head.onError(cancelled());
    }
    if (!head) return [];
    const batch = [head];
    const key = batchKey(head);
    if (key === undefined) return batch;
    const greedy = head.options.temperature === 0;
    let rows = head.options.candidateCount;
    for (let i = 0; i < this.queue.length; ) {
      const job = this.queue[i];
      if (batchKey(job) === key && !job.signal?.aborted && (greedy || rows + job.options.candidateCount <= this.maxBatchRows)) {
        batch.push(job);
        rows += job.options.candidateCount;
        this.queue.splice(i, 1);
      } else {
        i++;
      }
    }
    return batch;
  }

  private async run(batch: Job[]): Promise<void> {
    const { transformer, tokenizer } = this.base;
    const [first] = batch;
    const { options } = first;
    const greedy = options.temperature === 0;
    // Row r belongs to candidate `local` of job `job`; a greedy batch's single row serves every candidate.
    const owners: { job: Job; local: number }[][] = [];
    if (greedy) {
      owners.push(batch.flatMap((job) => Array.from({ length: job.options.candidateCount }, (_, local) => ({ job, local }))));
    } else {
      for (const job of batch) for (let local = 0; local < job.options.candidateCount; local++) owners.push([{ job, local }]);
    }
    const abort = new AbortController();
    const live = new Set(batch);
    const unsubscribe: (() => void)[] = [];
    for (const job of batch) {
      if (!job.signal) continue;
      const onAbort = () => {
        live.delete(job);
        if (live.size === 0) abort.abort();
      };
      job.signal.addEventListener('abort', onAbort, { once: true });
      unsubscribe.push(() => job.signal!.removeEventListener('abort', onAbort));
    }
    if (this.closed) abort.abort();
    this.current = abort;

    const releaseRng = greedy ? () => {} : await this.rng.acquire(options.seed !== undefined);
    this.batches++;
    try {
      if (this.attached !== first.adapter) {
        if (first.adapter) first.adapter.attach(transformer);
        else LoraAdapter.detach(transformer);
        this.attached = first.adapter;
      }
      const stream = streamGenerate(transformer, tokenizer, first.promptIds, {
        temperature: options.temperature,
        topP: options.topP,
        topK: options.topK,
        candidateCount: owners.length,
        maxOutputTokens: options.maxOutputTokens,
        stopSequences: options.stopSequences,
        // A greedy batch draws nothing; seeding would reset the generator under a sampled batch elsewhere.
        seed: greedy ? undefined : options.seed,
        signal: abort.signal,
      });
      let result: Generation;
      for (;;) {
        const next = await stream.next();
        if (next.done) {
          result = next.value;
          break;
        }
        for (const { job, local } of owners[next.value.candidate]) {
          if (live.has(job)) job.onDelta({ candidate: local, text: next.value.text });
        }
      }
      for (const job of batch) {
        if (!live.has(job) || this.closed) {
          job.onError(this.closed ? new ServiceError('UNAVAILABLE', 'The service is shutting down.') : cancelled());
          continue;
        }
        const candidates = owners.flatMap((row, r) => row.filter((o) => o.job === job).map((o) => ({ local: o.local, candidate: result.candidates[r] })));
        candidates.sort((a, b) => a.local - b.local);
        const own = candidates.map((c) => ({ ...c.candidate, tokenIds: [...c.candidate.tokenIds] }));
        job.onDone({
          candidates: own,
          promptTokenCount: result.promptTokenCount,
          candidatesTokenCount: own.reduce((n, c) => n + c.tokenIds.length, 0),
        });
      }
    } catch (error) {
      for (const job of batch) job.onError(error);
    } finally {
      this.current = undefined;
      releaseRng();
      for (const off of unsubscribe) off();
    }
  }
}

const cancelled = () => new ServiceError('CANCELLED', 'The request was cancelled.');

const batchKeys = new WeakMap<Job, string | undefined>();

/** Jobs with equal keys may share a batch; undefined means the job runs alone. */
function batchKey(job: Job): string | undefined {
  if (batchKeys.has(job)) return batchKeys.get(job);
  const { temperature, topP, topK, maxOutputTokens, stopSequences, seed } = job.options;
  const greedy = temperature === 0; // argmax: top-p, top-k and the seed change nothing
  const key =
    seed !== undefined && !greedy
      ? undefined
      : JSON.stringify([job.adapterKey, temperature, greedy ? null : (topP ?? null), greedy ? null : (topK ?? null), maxOutputTokens, stopSequences, job.promptIds]);
  batchKeys.set(job, key);
  return key;
}
