// Continuous batching (Orca's iteration-level scheduling) on one base model: sequences join between steps
// and leave as soon as they finish, each with its own prompt, adapter, sampling settings and random stream.
//
// A step runs at most two forwards. New sequences are prefilled together (by priority, then oldest first,
// up to a prefill budget per step, and within the caller's step budget when it gives one: vLLM's
// max_num_batched_tokens, where a decoding row counts one token and a prompt its length), their prompts packed into rows (first-fit decreasing, rows as long as the
// longest prompt) with per-token positions and segment ids, so attention stays inside each prompt; the last
// position of each prompt gives its first token. Sequences
// already running decode one token each, as rows of one batch: every row writes its new keys and values
// into its own blocks of the pool (paged-kv-cache.ts) and attends over its own blocks, gathered and padded
// to the longest row, with a mask that hides the padding. The adapter stack routes every token through its
// own sequence's adapter (adapter-stack.ts), so one forward mixes tuned models and the base model.
//
// A sequence's blocks cover its prompt and every token it may generate, taken when it is added and given
// back when it leaves: a sequence that is running never waits for memory. `add` refuses a sequence the
// pool cannot hold yet; the caller queues it. A paused sequence keeps its blocks and its cache but takes no
// row until it is resumed, exactly where it stopped (the scheduler pauses a project's rows to make room for
// another project's request).
//
// Batched logits equal a lone sequence's up to float rounding (BLAS kernels sum in an order that depends on
// the batch's shape), so a greedy or seeded sequence gives the same text alone or in any batch unless two
// tokens tie to within that rounding.
import { ids, lowestFinite, noGrad, tensor, tidy, type Tensor } from '../tensor/index.js';
import type { AttentionMasks, Transformer } from '../model/transformer.js';
import { KvBlockPool, PagedForward, SCRATCH_BLOCK } from '../model/paged-kv-cache.js';
import type { AdapterStack } from '../lora/adapter-stack.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { CandidateText, effectiveStops } from './candidate.js';
import { sampleRows, type SamplingOptions, type UniformStream } from './sampling.js';
import { outputLimit } from './generate.js';
import { packRows } from '../train/packing.js';

export interface SequenceSpec {
  promptIds: number[];
  /** The adapter stack's slot this sequence decodes through; -1 for the base model alone. */
  adapterSlot: number;
  sampling: SamplingOptions;
  /** The sequence's own draws (used only when it samples). */
  uniforms: UniformStream;
  maxOutputTokens: number;
  /** Text that ends the sequence; it is not part of the output. */
  stopSequences?: string[];
  /** Tokens that end the sequence; the tokenizer's EOS tokens by default. */
  stopTokenIds?: number[];
  /** Prefill order among sequences waiting for it: lower first, then oldest first (default 0). */
  prefillPriority?: number;
}

export class Sequence {
  readonly text: CandidateText;
  /** Tokens whose keys and values are in the pool; 0 until prefilled. */
  cached = 0;
  lastToken = -1;
  produced = 0;
  finished = false;

  constructor(
    readonly spec: SequenceSpec,
    readonly blockTable: number[],
    readonly maxOutput: number,
    tokenizer: Tokenizer,
  ) {
    const stopTokens = new Set(spec.stopTokenIds ?? tokenizer.eosTokenIds);
    this.text = new CandidateText(tokenizer, spec.promptIds, stopTokens, effectiveStops(spec.stopSequences));
  }
}

/**
 * What one step may carry (vLLM's max_num_batched_tokens): one token per decoding row plus each prefilled
 * prompt's length. Every running row decodes (the caller pauses rows to fit); prompts go in order while they
 * fit, and a prompt that does not fit waits, with two exceptions: `exempt` prompts (a scheduler's protected
 * requests) go first and whatever the budget, and when nothing else would run the first prompt goes, so a
 * prompt longer than the budget is never stuck.
 */
export interface StepBudget {
  tokens: number;
  exempt?: (sequence: Sequence) => boolean;
}

/** What one step did to one sequence: new text, and whether it ended (its result is then final). */
export interface StepOutput {
  sequence: Sequence;
  delta: string;
  finished: boolean;
}

export const batchDecoderDefaults = {
  /**
   * Prompt tokens prefilled in one step at most (the first waiting prompt always goes): a burst of new
   * requests is prefilled over a few steps, so the running ones keep getting tokens meanwhile.
   */
  prefillTokens: 512,
} as const;

export class BatchDecoder {
  /** Sequences holding blocks; those not paused decode. */
  private readonly live = new Set<Sequence>();
  private readonly paused = new Set<Sequence>();
  /** What the last step carried. */
  lastStep = { decodeRows: 0, prefillTokens: 0 };

  constructor(
    readonly model: Transformer,
    readonly tokenizer: Tokenizer,
    readonly pool: KvBlockPool,
    readonly adapters?: AdapterStack,
    private readonly prefillTokens: number = batchDecoderDefaults.prefillTokens,
  ) {}

  /** Sequences decoding now (not paused). */
  get size(): number {
    return this.live.size - this.paused.size;
  }

  /** Takes a sequence out of the batch, keeping its blocks and cache. */
  pause(sequence: Sequence): void {
    if (this.live.has(sequence)) this.paused.add(sequence);
  }

  /** Puts a paused sequence back; it goes on from where it stopped. */
  resume(sequence: Sequence): void {
    this.paused.delete(sequence);
  }

  /** Blocks a sequence needs: its prompt plus every token it may generate. Throws for a prompt the model cannot take. */
  blocksNeeded(promptIds: number[], maxOutputTokens: number): number {
    return this.pool.blocksFor(promptIds.length + outputLimit(this.model, promptIds, maxOutputTokens));
  }

  /** Adds a sequence when the pool has its blocks; undefined when it must wait for others to leave. */
  add(spec: SequenceSpec): Sequence | undefined {
    if (spec.adapterSlot >= 0 && !this.adapters) throw new Error('this decoder has no adapter stack');
    const maxOutput = outputLimit(this.model, spec.promptIds, spec.maxOutputTokens);
    const blocks = this.pool.allocate(this.pool.blocksFor(spec.promptIds.length + maxOutput));
    if (!blocks) return undefined;
    const sequence = new Sequence(spec, blocks, maxOutput, this.tokenizer);
    this.live.add(sequence);
    return sequence;
  }

  /** Takes a sequence out (finished or abandoned) and gives its blocks back. */
  remove(sequence: Sequence): void {
    this.paused.delete(sequence);
    if (!this.live.delete(sequence)) return;
    this.pool.release(sequence.blockTable);
  }

  /**
   * One iteration: prefills sequences added since the last step (by priority, oldest first, within the
   * prefill budget and the step's `budget`), decodes one token of the others.
   */
  step(budget?: StepBudget): StepOutput[] {
    const all = [...this.live].filter((s) => !this.paused.has(s));
    const decode = all.filter((s) => s.cached > 0);
    const prefill = this.choosePrefill(
      all.filter((s) => s.cached === 0),
      decode.length,
      budget,
    );
    this.lastStep = { decodeRows: decode.length, prefillTokens: prefill.reduce((n, s) => n + s.spec.promptIds.length, 0) };
    const tokens = noGrad(() =>
      tidy(() => {
        try {
          return [...(prefill.length ? this.prefill(prefill) : []), ...(decode.length ? this.decode(decode) : [])];
        } finally {
          this.adapters?.clearRoute();
        }
      }),
    );
    return [...prefill, ...decode].map((sequence, i) => this.accept(sequence, tokens[i]));
  }

  /** Which waiting prompts this step prefills (see StepBudget). */
  private choosePrefill(waiting: Sequence[], decodeRows: number, budget?: StepBudget): Sequence[] {
    const byPriority = waiting.sort((a, b) => (a.spec.prefillPriority ?? 0) - (b.spec.prefillPriority ?? 0)); // stable: oldest first
    const exempt = (s: Sequence) => budget?.exempt?.(s) ?? false;
    const ordered = [...byPriority.filter(exempt), ...byPriority.filter((s) => !exempt(s))];
    const chosen: Sequence[] = [];
    let prefillLeft = this.prefillTokens;
    let stepLeft = budget ? budget.tokens - decodeRows : Infinity;
    for (const s of ordered) {
      const length = s.spec.promptIds.length;
      const fits = length <= prefillLeft && (exempt(s) || length <= stepLeft);
      const first = chosen.length === 0 && (!budget || exempt(s) || decodeRows === 0);
      if (!fits && !first) break;
      chosen.push(s);
      prefillLeft -= length;
      stepLeft -= length;
    }
    return chosen;
  }

  /** Releases every sequence's blocks. */
  clear(): void {
    for (const sequence of [...this.live]) this.remove(sequence);
  }

  private accept(sequence: Sequence, token: number): StepOutput {
    sequence.lastToken = token;
    sequence.produced++;
    let delta = sequence.text.push(token);
    if (!sequence.text.finishReason && sequence.produced >= sequence.maxOutput) delta += sequence.text.finishAtLimit();
    if (sequence.text.finishReason) {
      sequence.finished = true;
      this.remove(sequence);
    }
    return { sequence, delta, finished: sequence.finished };
  }

  /** Packs the prompts into rows, runs them, stores their keys and values; each prompt's first token. */
  private prefill(sequences: Sequence[]): number[] {
    const { model, pool } = this;
    const rows = packRows(sequences.map((s) => ({ ids: s.spec.promptIds, sequence: s })));
    const length = Math.max(...sequences.map((s) => s.spec.promptIds.length));
    const tokenIds: number[] = [];
    const positions: number[] = [];
    const segments: number[] = [];
    const slots: number[] = [];
    const adapterSlots: number[] = [];
    const lastIndex = new Map<Sequence, number>();
    for (const row of rows) {
      for (const { sequence } of row) {
        const { promptIds, adapterSlot } = sequence.spec;
        promptIds.forEach((id, p) => {
          tokenIds.push(id);
          positions.push(p);
          segments.push(lastIndex.size + 1);
          slots.push(pool.slotOf(sequence.blockTable, p));
          adapterSlots.push(adapterSlot);
        });
        lastIndex.set(sequence, tokenIds.length - 1);
      }
      const pad = length - (tokenIds.length % length || length);
      for (let i = 0; i < pad; i++) {
        tokenIds.push(0);
        positions.push(0);
        segments.push(0); // padding only ever attends to padding
        slots.push(SCRATCH_BLOCK * pool.blockSize);
        adapterSlots.push(-1);
      }
    }
    const shape = [rows.length, length];
    const device = model.device;
    this.adapters?.setRoute(adapterSlots, shape);
    const hidden = model.hiddenStates(ids(tokenIds, shape, device), {
      positions: ids(positions, shape, device),
      segments: ids(segments, shape, device),
      cache: new PagedForward(pool, slots),
    });
    const last = sequences.map((s) => lastIndex.get(s)!);
    const logits = model.logits(hidden.view(-1, hidden.size(-1)).indexSelect(0, ids(last, [last.length], device)));
    for (const s of sequences) s.cached = s.spec.promptIds.length;
    return this.sample(logits, sequences);
  }

  /** One token for each running sequence, every row attending over its own blocks. */
  private decode(sequences: Sequence[]): number[] {
    const { model, pool } = this;
    const device = model.device;
    const rows = sequences.length;
    const tables = sequences.map((s) => s.blockTable.slice(0, pool.blocksFor(s.cached + 1)));
    const width = Math.max(...tables.map((t) => t.length));
    const padded = tables.map((t) => [...t, ...Array<number>(width - t.length).fill(SCRATCH_BLOCK)]);
    const positions = sequences.map((s) => s.cached); // the new token's position
    this.adapters?.setRoute(
      sequences.map((s) => s.spec.adapterSlot),
      [rows, 1],
    );
    const hidden = model.hiddenStates(ids(sequences.map((s) => s.lastToken), [rows, 1], device), {
      positions: ids(positions, [rows, 1], device),
      cache: new PagedForward(
        pool,
        sequences.map((s) => pool.slotOf(s.blockTable, s.cached)),
        { blockTables: padded },
      ),
      masks: this.decodeMasks(positions, width * pool.blockSize),
    });
    for (const s of sequences) s.cached++;
    return this.sample(model.logits(hidden.view(rows, -1)), sequences);
  }

  /** [rows, 1, 1, 1, S]: row r attends keys 0..positions[r] (and, on sliding layers, only the last `window` of them). */
  private decodeMasks(positions: number[], span: number): AttentionMasks {
    const window = this.model.config.gemma?.slidingWindow;
    const build = (blocked: (position: number, key: number) => boolean): Tensor => {
      const { dtype } = this.model.weights.embed;
      const lowest = lowestFinite(dtype);
      const values = new Float32Array(positions.length * span);
      positions.forEach((position, r) => {
        for (let j = 0; j < span; j++) if (blocked(position, j)) values[r * span + j] = lowest;
      });
      return tensor(values, [positions.length, 1, 1, 1, span], { device: this.model.device }).to({ dtype });
    };
    const full = build((position, key) => key > position);
    const sliding = window === undefined ? null : build((position, key) => key > position || position - key >= window);
    return { full, sliding };
  }

  private sample(logits: Tensor, sequences: Sequence[]): number[] {
    return sampleRows(
      logits,
      sequences.map((s) => s.spec.sampling),
      (row) => sequences[row].spec.uniforms(),
    );
  }
}
