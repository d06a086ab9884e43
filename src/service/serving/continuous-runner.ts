// Serves one loaded base model with continuous batching: every request decodes in the running batch, whatever
// its prompt, tuned model or sampling settings (engine/generate/batch-decoder.ts).
//
// The loop: admit waiting requests while the batch has rows and the KV block pool has blocks for them, run
// one step, hand each request its new text, yield to the event loop (new requests, disconnects and adapter
// loads get in), repeat. A request is a row per candidate, or one row when it is greedy (every candidate is
// the same text). A request leaves the batch the step it finishes; a disconnect, a deadline or shutdown
// takes it out at once (JavaScript runs one thing at a time, so never in the middle of a step).
//
// Admission is fair and bounded: waiting requests sit in one FIFO per project, served round-robin
// (fair-queue.ts), so one project's flood waits behind another project's single request rather than ahead
// of it. A queue that is full answers RESOURCE_EXHAUSTED with a retry delay estimated from recent request
// times. The turn order is strict: when the request whose turn it is does not fit (rows or blocks), nothing
// behind it is admitted, so a large request is never starved by a stream of small ones. Only a request whose
// adapter is still loading steps aside (resident-adapters.ts).
//
// Rows are shared fairly too: each project with work is owed maxBatchRows / (projects with work) rows. When
// the request whose turn it is finds no free row while its project holds less than that, the newest
// requests of projects holding more are paused (their rows freed, their KV blocks and text kept) and go back
// to the head of their project's line, to go on where they stopped when their turn comes. So a request
// arriving during another project's flood starts at the next step instead of after the flood's first wave.
//
// Steps are shared fairly as well. On CPU a step's cost grows with the tokens it carries (a 32-row step
// costs several times a one-row step, a 512-token prefill more still), so starting at once is not enough:
// a light project (all its work, running and waiting, under its share of rows) would then take every step
// at the flood's size. While a light project decodes, steps are capped at `fairStepTokens` tokens (a
// decoding row counts one, a prompt its length; vLLM's max_num_batched_tokens, made small): the light
// projects' rows all decode, and their prompts go whatever their length; the heavy projects keep the rest
// (at least a row each), their newest requests paused down to it, the most loaded project first, and their
// prompts wait unless they fit (or the project has nothing decoding yet). When the light projects finish, the batch grows back to maxBatchRows and
// the paused requests resume. The flood pays for the light project's latency with throughput for that
// long, and only then.
import { BatchDecoder, type Sequence, type StepBudget } from '../../engine/generate/batch-decoder.js';
import { isGreedy, randomSeed, uniformStream } from '../../engine/generate/sampling.js';
import { KvBlockPool } from '../../engine/model/paged-kv-cache.js';
import { AdapterStack } from '../../engine/lora/adapter-stack.js';
import type { BaseModel } from '../../engine/base-model.js';
import type { Candidate } from '../../engine/generate/candidate.js';
import { ServiceError, invalidArgument } from '../errors.js';
import { FairQueue, type QueueBounds } from './fair-queue.js';
import { ResidentAdapters, type AdapterLease } from './resident-adapters.js';
import { adapterUnloadable, cancelled, deadlineExceeded, shuttingDown, type Job, type Runner, type RunnerStats } from './job.js';

export interface ContinuousOptions {
  /** Rows decoded together at most. */
  maxBatchRows: number;
  /** Adapters resident at once (slots of the adapter stack). */
  maxAdapters: number;
  /** Bytes of the KV block pool (capped at what maxBatchRows full-context rows could use). */
  kvCacheBytes: number;
  /** Tokens per KV block. */
  kvBlockSize: number;
  /** Tokens a step carries at most while a light project decodes (see above). */
  fairStepTokens: number;
  queue: QueueBounds;
  /** Sees each step: tokens it carried (decoding rows plus prompt tokens) and the rows per project that produced a token. */
  onStep?: (step: { tokens: number; rowsByProject: ReadonlyMap<string, number> }) => void;
}

/** A request from submit() to its end. */
interface Pending {
  job: Job;
  lease?: AdapterLease;
  /** Rows it decodes as: one per candidate, or one for all when greedy. */
  rows: number;
  blocks: number;
  sequences: Sequence[];
  state: 'queued' | 'running' | 'ended';
  /** Started, then paused to make room for another project: it holds its blocks, not its rows. */
  paused: boolean;
  /** When it last started or resumed (for pausing the newest first). */
  startedAt: number;
  /** submit() has resolved: from now on the outcome goes through the job's callbacks. */
  submitted: boolean;
  /** Ended before submit() resolved: submit() rejects with this. */
  earlyError?: ServiceError;
  /** Wakes submit() while it waits for the adapter. */
  wakeSubmit?: () => void;
  timer?: NodeJS.Timeout;
  unlisten?: () => void;
  arrivedAt: number;
}

/** Who is owed what now (ContinuousRunner.shares). */
interface Shares {
  /** Rows each project with work is owed. */
  share: number;
  /** Projects whose work is all under their share. */
  light: Set<string>;
  /** Rows a step may decode. */
  capacity: number;
}

export class ContinuousRunner implements Runner {
  private readonly pool: KvBlockPool;
  private readonly stack: AdapterStack;
  private readonly adapters: ResidentAdapters;
  private readonly decoder: BatchDecoder;
  private readonly queue: FairQueue<Pending>;
  private readonly running = new Map<Sequence, { pending: Pending; candidates: number[] }>();
  /** Rows each project decodes on now. */
  private readonly rowsByProject = new Map<string, number>();
  private starts = 0;
  private steps = 0;
  private closed = false;
  private looping = false;
  private wake?: () => void;
  /** Recent seconds from arrival to the end, for retry hints. */
  private meanSeconds = 1;

  constructor(
    readonly base: BaseModel,
    private readonly options: ContinuousOptions,
  ) {
    const { transformer, tokenizer } = base;
    const { config } = transformer;
    const dtype = transformer.weights.embed.dtype;
    const tokens = Math.min(
      Math.floor(options.kvCacheBytes / KvBlockPool.bytesPerToken(config, dtype)),
      options.maxBatchRows * config.maxPositions,
    );
    const blocks = Math.max(Math.ceil(config.maxPositions / options.kvBlockSize), Math.floor(tokens / options.kvBlockSize));
    this.pool = new KvBlockPool(
      { layers: config.numLayers, kvHeads: config.numKvHeads, headDim: config.headDim },
      blocks,
      options.kvBlockSize,
      { dtype, device: transformer.device },
    );
    this.stack = new AdapterStack(transformer, options.maxAdapters);
    this.adapters = new ResidentAdapters(this.stack, () => this.poke());
    this.decoder = new BatchDecoder(transformer, tokenizer, this.pool, this.stack);
    this.queue = new FairQueue(options.queue);
  }

  async submit(job: Job): Promise<void> {
    if (this.closed) throw shuttingDown();
    const rows = isGreedy(job.options) ? 1 : job.options.candidateCount;
    const blocks = rows * this.decoder.blocksNeeded(job.promptIds, job.options.maxOutputTokens);
    if (blocks > this.pool.blocks || rows > this.options.maxBatchRows) {
      throw invalidArgument(
        `The request needs ${blocks * this.pool.blockSize} tokens of KV cache over ${rows} rows; this server holds ${this.pool.blocks * this.pool.blockSize} tokens in ${this.options.maxBatchRows} rows per model. Lower maxOutputTokens or candidateCount.`,
        'generation_config',
      );
    }
    const refusal = this.queue.refusal(job.project, this.retryDelay());
    if (refusal) throw refusal;

    const pending: Pending = { job, rows, blocks, sequences: [], state: 'queued', paused: false, startedAt: 0, submitted: false, arrivedAt: Date.now() };
    this.queue.push(job.project, pending); // while its adapter loads, too: it counts against the bounds
    pending.timer = setTimeout(() => this.end(pending, deadlineExceeded()), Math.max(0, job.deadline - Date.now()));
    if (job.signal) {
      const onAbort = () => this.end(pending, cancelled());
      job.signal.addEventListener('abort', onAbort, { once: true });
      pending.unlisten = () => job.signal!.removeEventListener('abort', onAbort);
      if (job.signal.aborted) onAbort();
    }
    if (job.adapter && !pending.earlyError) {
      pending.lease = this.adapters.acquire(job.adapter);
      const endedEarly = new Promise<void>((resolve) => (pending.wakeSubmit = resolve));
      try {
        await Promise.race([pending.lease.ready, endedEarly]);
      } catch (error) {
        this.end(pending, adapterUnloadable(job.adapter.modelId, error));
      }
    }
    if (pending.earlyError) throw pending.earlyError;
    pending.submitted = true;
    this.poke();
  }

  forget(modelId: string): void {
    this.adapters.forget(modelId);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const pending of [...this.queue.items(), ...new Set([...this.running.values()].map((r) => r.pending))]) {
      this.end(pending, shuttingDown());
    }
    this.poke();
    this.decoder.clear();
    this.stack.dispose();
    this.pool.dispose();
  }

  stats(): RunnerStats {
    return { adapters: this.adapters.size, forwards: this.steps, queued: this.waiting, running: this.decoder.size };
  }

  /** Requests waiting, for an adapter or for their turn. */
  private get waiting(): number {
    return this.queue.size;
  }

  /** Wakes the loop, or starts it on the next turn of the event loop (requests arriving together share a prefill). */
  private poke(): void {
    this.wake?.();
    if (this.looping || this.closed) return;
    this.looping = true;
    setImmediate(() => void this.loop());
  }

  private async loop(): Promise<void> {
    try {
      while (!this.closed) {
        this.admit();
        const budget = this.fitStep();
        if (this.decoder.size === 0) {
          if (this.queue.size === 0) return; // submit() starts the loop again
          await new Promise<void>((resolve) => (this.wake = resolve)); // an adapter loads or a request ends
          this.wake = undefined;
          continue;
        }
        this.step(budget);
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } finally {
      this.looping = false;
    }
  }

  /**
   * Starts waiting requests, in turn, while the one whose turn it is fits. With no row free, light
   * projects' requests (see shares()), then those of projects under their share of rows, in turn order,
   * may take rows from others (makeRoom): the first that can, starts.
   */
  private admit(): void {
    for (;;) {
      let next = this.queue.peek((p) => p.submitted);
      if (!next) return;
      const shares = this.shares();
      if (this.decoder.size + next.item.rows > shares.capacity) {
        const { share, light } = shares;
        const offers = [
          ...this.queue.offers((p) => p.submitted && light.has(p.job.project)),
          ...this.queue.offers((p) => p.submitted && !light.has(p.job.project) && this.rowsOf(p.job.project) + p.rows <= share),
        ];
        next = offers.find(({ item }) => this.fitsBlocks(item) && this.makeRoom(item, shares));
        if (!next) return;
      }
      if (!this.fitsBlocks(next.item)) return;
      this.queue.take(next.project, next.item);
      this.start(next.item);
    }
  }

  /**
   * Who is owed what now. Each project with work (decoding or waiting) is owed `share` rows. A project is
   * light when all its work, rows running and rows its waiting requests would take, is under its share,
   * beside another project's work. While a light project decodes, a step may decode `capacity` rows, fewer
   * than maxBatchRows: fairStepTokens, or more when the light projects' rows and a row for each heavy
   * project need more.
   */
  private shares(): Shares {
    const { maxBatchRows, fairStepTokens } = this.options;
    const demand = new Map(this.rowsByProject);
    for (const project of this.queue.waitingProjects) {
      const waiting = this.queue.itemsOf(project).reduce((n, p) => n + p.rows, 0);
      demand.set(project, (demand.get(project) ?? 0) + waiting);
    }
    const share = Math.max(1, Math.floor(maxBatchRows / demand.size));
    const light = new Set(demand.size > 1 ? [...demand].filter(([, rows]) => rows < share).map(([project]) => project) : []);
    const lightRows = [...light].reduce((n, project) => n + this.rowsOf(project), 0);
    if (lightRows === 0) return { share, light, capacity: maxBatchRows };
    const heavy = demand.size - light.size;
    return { share, light, capacity: Math.min(maxBatchRows, Math.max(fairStepTokens, lightRows + heavy)) };
  }

  /**
   * Pauses heavy projects' newest requests, the project decoding the most rows first, until the batch fits
   * the step's capacity; the step's token budget while a light project decodes. Exempt from it: the light
   * projects' prompts, and those of a project with nothing decoding yet (else a heavy project arriving while
   * steps are capped would hold its row without ever starting).
   */
  private fitStep(): StepBudget | undefined {
    const { light, capacity } = this.shares();
    if (capacity >= this.options.maxBatchRows) return undefined;
    while (this.decoder.size > capacity) {
      const heaviest = [...this.rowsByProject].filter(([project]) => !light.has(project)).sort((a, b) => b[1] - a[1])[0];
      if (!heaviest || heaviest[1] <= 1) break; // every heavy project keeps a row
      this.pause(this.newestOf(heaviest[0]));
    }
    const decoding = new Set([...this.running].filter(([sequence, { pending }]) => sequence.cached > 0 && pending.state === 'running').map(([, { pending }]) => pending.job.project));
    const exempt = (sequence: Sequence) => {
      const project = this.running.get(sequence)?.pending.job.project ?? '';
      return light.has(project) || !decoding.has(project);
    };
    return { tokens: capacity, exempt };
  }

  private runningRequests(): Pending[] {
    return [...new Set([...this.running.values()].map((r) => r.pending))].filter((p) => p.state === 'running');
  }

  private newestOf(project: string): Pending {
    return this.runningRequests()
      .filter((p) => p.job.project === project)
      .reduce((a, b) => (b.startedAt > a.startedAt ? b : a));
  }

  /** A paused request holds its blocks already. */
  private fitsBlocks(pending: Pending): boolean {
    return pending.paused || pending.blocks <= this.pool.freeBlocks;
  }

  private rowsOf(project: string): number {
    return this.rowsByProject.get(project) ?? 0;
  }

  /**
   * Pauses the newest requests of projects over their share until `pending`'s rows are free. While steps
   * are capped, heavy projects give rows too, down to a row each: to a light project's request, and to
   * another heavy project's while they keep at least as many as it will have (so rows even out, never
   * swinging back). False (pausing nothing) if the rows cannot be freed.
   */
  private makeRoom(pending: Pending, { share, light, capacity }: Shares): boolean {
    const forLight = light.has(pending.job.project);
    const capped = capacity < this.options.maxBatchRows;
    const requesterRows = this.rowsOf(pending.job.project) + pending.rows;
    const newestFirst = this.runningRequests().sort((a, b) => b.startedAt - a.startedAt);
    const victims: Pending[] = [];
    const freed = new Map<string, number>();
    let free = capacity - this.decoder.size;
    for (const victim of newestFirst) {
      if (free >= pending.rows) break;
      const project = victim.job.project;
      const left = this.rowsOf(project) - (freed.get(project) ?? 0) - victim.rows;
      const heavyVictim = project !== pending.job.project && !light.has(project) && left >= 1;
      const spare = left >= share || (heavyVictim && (forLight || (capped && left >= requesterRows)));
      if (!spare) continue;
      victims.push(victim);
      freed.set(project, (freed.get(project) ?? 0) + victim.rows);
      free += victim.rows;
    }
    if (free < pending.rows) return false;
    for (const victim of victims) this.pause(victim);
    return true;
  }

  private pause(pending: Pending): void {
    for (const sequence of pending.sequences) this.decoder.pause(sequence);
    this.countRows(pending, -1);
    pending.state = 'queued';
    pending.paused = true;
    this.queue.pushFront(pending.job.project, pending);
  }

  private countRows(pending: Pending, sign: 1 | -1): void {
    const project = pending.job.project;
    const rows = (this.rowsByProject.get(project) ?? 0) + sign * pending.rows;
    if (rows > 0) this.rowsByProject.set(project, rows);
    else this.rowsByProject.delete(project);
  }

  private start(pending: Pending): void {
    pending.state = 'running';
    pending.startedAt = ++this.starts;
    this.countRows(pending, 1);
    if (pending.paused) {
      pending.paused = false;
      for (const sequence of pending.sequences) this.decoder.resume(sequence);
      return;
    }
    const { job, rows } = pending;
    const { options } = job;
    const seed = options.seed ?? randomSeed();
    const adapterSlot = pending.lease?.slot() ?? -1;
    for (let row = 0; row < rows; row++) {
      const sequence = this.decoder.add({
        promptIds: job.promptIds,
        adapterSlot,
        sampling: { temperature: options.temperature, topK: options.topK, topP: options.topP },
        uniforms: uniformStream(seed, row),
        maxOutputTokens: options.maxOutputTokens,
        stopSequences: options.stopSequences,
        // Prompts of projects holding fewer rows are prefilled first, as they were admitted to even things out.
        prefillPriority: this.rowsOf(job.project),
      })!; // admit() checked the blocks
      pending.sequences.push(sequence);
      // A greedy request's one row serves every candidate.
      const candidates = rows === 1 ? Array.from({ length: options.candidateCount }, (_, c) => c) : [row];
      this.running.set(sequence, { pending, candidates });
    }
  }

  private step(budget: StepBudget | undefined): void {
    let outputs;
    try {
      outputs = this.decoder.step(budget);
      this.steps++;
    } catch (error) {
      const failure = new ServiceError('INTERNAL', `Generation failed: ${(error as Error)?.message ?? String(error)}`);
      for (const pending of new Set([...this.running.values()].map((r) => r.pending))) this.end(pending, failure);
      return;
    }
    if (this.options.onStep) {
      const rowsByProject = new Map<string, number>();
      for (const { sequence } of outputs) {
        const project = this.running.get(sequence)?.pending.job.project;
        if (project !== undefined) rowsByProject.set(project, (rowsByProject.get(project) ?? 0) + 1);
      }
      const { decodeRows, prefillTokens } = this.decoder.lastStep;
      this.options.onStep({ tokens: decodeRows + prefillTokens, rowsByProject });
    }
    const ended = new Set<Pending>();
    for (const { sequence, delta, finished } of outputs) {
      const owner = this.running.get(sequence);
      if (!owner || owner.pending.state !== 'running') continue;
      if (delta) for (const candidate of owner.candidates) owner.pending.job.onDelta({ candidate, text: delta });
      if (finished && owner.pending.sequences.every((s) => s.finished)) ended.add(owner.pending);
    }
    for (const pending of ended) this.finish(pending);
  }

  private finish(pending: Pending): void {
    const { job } = pending;
    const results: Candidate[] = [];
    for (const sequence of pending.sequences) {
      const owner = this.running.get(sequence)!;
      for (const candidate of owner.candidates) {
        const result = sequence.text.result();
        results[candidate] = { ...result, tokenIds: [...result.tokenIds] };
      }
    }
    this.release(pending);
    const seconds = (Date.now() - pending.arrivedAt) / 1000;
    this.meanSeconds = 0.9 * this.meanSeconds + 0.1 * seconds;
    job.onDone({
      candidates: results,
      promptTokenCount: job.promptIds.length,
      candidatesTokenCount: results.reduce((n, c) => n + c.tokenIds.length, 0),
    });
  }

  /** Ends a request early (cancelled, past its deadline, shutdown, failure): frees its rows, blocks and adapter now. */
  private end(pending: Pending, error: ServiceError): void {
    if (pending.state === 'ended') return;
    if (pending.state === 'queued') this.queue.remove(pending.job.project, pending);
    this.release(pending);
    if (pending.submitted) pending.job.onError(error);
    else {
      pending.earlyError = error;
      pending.wakeSubmit?.();
    }
    this.poke(); // the freed room may admit others
  }

  private release(pending: Pending): void {
    if (pending.state === 'running') this.countRows(pending, -1);
    pending.state = 'ended';
    clearTimeout(pending.timer);
    pending.unlisten?.();
    for (const sequence of pending.sequences) {
      this.decoder.remove(sequence);
      this.running.delete(sequence);
    }
    pending.lease?.release();
  }

  /** Seconds until a queue slot is likely free: the requests ahead, a batch at a time, at the recent pace. */
  private retryDelay(): number {
    return Math.min(60, Math.max(1, (this.waiting / this.options.maxBatchRows + 1) * this.meanSeconds));
  }
}
