// Today's scheduler before continuous batching, kept selectable (`attune serve --scheduler swap-per-batch`,
// InferenceOptions.scheduler) so the serving benchmark can compare against it. It runs generations on
// one loaded base model one batch at a time; it has no queue bounds, deadlines or fairness.
//
// Why serial: a tuned model is the base transformer with a LoRA adapter attached to its projections
// (`LoraAdapter.attach` points each Linear at the adapter's A/B matrices; nothing is merged into the base
// weights). Generation is async and yields between tokens, so two generations interleaved on one
// transformer would run with whichever adapter was attached last. Each base model therefore has one
// queue, drained by one loop that attaches the batch's adapter (or detaches, for the base model itself)
// and awaits the whole batch before it takes the next.
//
// Batching: the engine decodes the candidates of one prompt as rows of one batch (one KV cache, one
// forward pass per token). A request's candidates are always one batch. Queued requests that are
// identical in everything but their candidate count (same adapter, same prompt token ids, same sampling
// settings, stop sequences and token limit, and no seed unless greedy) are merged into one batch, each
// taking its own rows. At temperature 0 every row would decode the same tokens, so a greedy batch runs
// one row and every candidate of every merged request receives its text. Different prompts are not
// batched: this path's KV cache has no padding mask, so rows must share their prompt. A seeded, sampled
// request runs alone: its candidates draw from its own seed's streams.
import { streamGenerate, type Generation } from '../../engine/generate/generate.js';
import { LoraAdapter } from '../../engine/lora/lora.js';
import type { BaseModel } from '../../engine/base-model.js';
import { LeaseCache, type Lease } from './lease-cache.js';
import { adapterUnloadable, cancelled, shuttingDown, type Job, type Runner, type RunnerStats } from './job.js';

/** A job with its adapter leased for as long as it is queued or running. */
interface Held {
  job: Job;
  lease?: Lease<LoraAdapter>;
}

export class SwapRunner implements Runner {
  private readonly queue: Held[] = [];
  private readonly adapters: LeaseCache<string, LoraAdapter>;
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
    private readonly maxBatchRows: number,
    maxAdapters: number,
  ) {
    this.adapters = new LeaseCache(maxAdapters, (adapter) => adapter.dispose());
  }

  async submit(job: Job): Promise<void> {
    if (this.closed) throw shuttingDown();
    const held: Held = { job };
    if (job.adapter) {
      const { key, modelId, load } = job.adapter;
      try {
        held.lease = await this.adapters.acquire(key, load);
      } catch (error) {
        throw adapterUnloadable(modelId, error);
      }
      if (this.closed) {
        held.lease.release();
        throw shuttingDown();
      }
    }
    this.queue.push(held);
    if (!this.draining) void this.drain();
  }

  forget(modelId: string): void {
    this.adapters.forgetWhere((key) => key.startsWith(`${modelId}@`));
  }

  stats(): RunnerStats {
    return { adapters: this.adapters.size, forwards: this.batches, queued: this.queue.length, running: this.current ? 1 : 0 };
  }

  /** Fails queued jobs; a running batch is aborted at its next token. */
  close(): void {
    this.closed = true;
    for (const held of this.queue.splice(0)) {
      held.lease?.release();
      held.job.onError(shuttingDown());
    }
    this.current?.abort();
    this.adapters.clear();
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
  private takeBatch(): Held[] {
    let head: Held | undefined;
    while ((head = this.queue.shift())) {
      if (!head.job.signal?.aborted) break;
      head.lease?.release();
      head.job.onError(cancelled());
    }
    if (!head) return [];
    const batch = [head];
    const key = batchKey(head.job);
    if (key === undefined) return batch;
    const greedy = head.job.options.temperature === 0;
    let rows = head.job.options.candidateCount;
    for (let i = 0; i < this.queue.length; ) {
      const { job } = this.queue[i];
      if (batchKey(job) === key && !job.signal?.aborted && (greedy || rows + job.options.candidateCount <= this.maxBatchRows)) {
        batch.push(this.queue[i]);
        rows += job.options.candidateCount;
        this.queue.splice(i, 1);
      } else {
        i++;
      }
    }
    return batch;
  }

  private async run(held: Held[]): Promise<void> {
    try {
      await this.generate(held.map((h) => h.job), held[0].lease?.value ?? null);
    } finally {
      for (const h of held) h.lease?.release();
    }
  }

  private async generate(batch: Job[], adapter: LoraAdapter | null): Promise<void> {
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

    this.batches++;
    try {
      if (this.attached !== adapter) {
        if (adapter) adapter.attach(transformer);
        else LoraAdapter.detach(transformer);
        this.attached = adapter;
      }
      const stream = streamGenerate(transformer, tokenizer, first.promptIds, {
        temperature: options.temperature,
        topP: options.topP,
        topK: options.topK,
        candidateCount: owners.length,
        maxOutputTokens: options.maxOutputTokens,
        stopSequences: options.stopSequences,
        seed: options.seed,
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
          job.onError(this.closed ? shuttingDown() : cancelled());
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
      for (const off of unsubscribe) off();
    }
  }
}

const batchKeys = new WeakMap<Job, string | undefined>();

/** Jobs with equal keys may share a batch; undefined means the job runs alone. */
function batchKey(job: Job): string | undefined {
  if (batchKeys.has(job)) return batchKeys.get(job);
  const { temperature, topP, topK, maxOutputTokens, stopSequences, seed } = job.options;
  const greedy = temperature === 0; // argmax: top-p, top-k and the seed change nothing
  const key =
    seed !== undefined && !greedy
      ? undefined
      : JSON.stringify([job.adapter?.key ?? "", temperature, greedy ? null : (topP ?? null), greedy ? null : (topK ?? null), maxOutputTokens, stopSequences, job.promptIds]);
  batchKeys.set(job, key);
  return key;
}
