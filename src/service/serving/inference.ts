// Serving: generation and token counting on base models and tuned models.
//
// Memory. Base models load once (`loadBaseModel`) into a small LRU (`maxBaseModels`, default 2) and are
// shared by every tuned model of that base: a tuned model costs its LoRA adapter (rank × (in + out)
// floats per projection), held in a second LRU keyed by tuned-model id (`maxAdapters`, default 32).
// Entries in use are never evicted (see lease-cache.ts). The engine has no Transformer.dispose(), so an
// evicted base model is dropped and its tensors are freed by the garbage collector (the addon reports
// their memory to V8).
//
// Stale adapters. A cached adapter is checked against its files' mtime and size on every use, so an
// adapter directory rewritten under the same id (a model deleted and created again, a resumed run) is
// reloaded. `forgetTunedModel(id)` drops one at once; hook it into TuningService.delete to free the
// memory immediately (without the hook a deleted model's adapter stays cached until LRU eviction; it can
// never be served, as requests for a deleted model are answered 404 before the cache is consulted).
//
// Prompt framing. A tuned model frames the conversation exactly as its adapter's attune.json records
// (`framePrompt`, plus the framing's stop sequences). A base model uses its tokenizer's chat template when
// it has one. Otherwise it continues plain text: the system instruction, a blank line, then the turns'
// texts joined by newlines, encoded with BOS when the tokenizer adds one and never with EOS (a
// tokenizer that appends EOS to encoded text would otherwise end the prompt with it). One user turn is
// exactly `tokenizer.encode(text)` for the usual BOS-only tokenizers, so a base model continues the
// text it is given.
//
// Scheduling and batching: one queue per base model (runner.ts).
import { statSync } from 'node:fs';
import path from 'node:path';
import { loadBaseModel, type BaseModel } from '../../engine/base-model.js';
import { loadTunedAdapter, tuningRecordFile, type TuningRecord } from '../../engine/lora/tuned-adapter.js';
import type { LoraAdapter } from '../../engine/lora/lora.js';
import { adapterFiles } from '../../engine/lora/peft.js';
import { checkEmbeddable, chooseFraming, stopSequencesFor } from '../../engine/data/framing.js';
import type { Tokenizer } from '../../engine/tokenizer/tokenizer.js';
import type { Turn } from '../../engine/data/examples.js';
import { charCount } from '../../engine/data/limits.js';
import { limitDefaults } from '../limits.js';
import { cpuPoolDefaults, type CpuPool } from '../cpu/pool.js';
import { promptTokenIds, textTokenIds, type PromptFormat } from './prompt.js';
import { generationDefaults, type FinishReason, type Generation } from '../../engine/generate/generate.js';
import { ServiceError, invalidArgument } from '../errors.js';
import type { BaseModelRegistry, SamplingDefaults } from '../models/registry.js';
import type { TuningService } from '../tuning/service.js';
import type { TunedModel } from '../tuning/tuned-model.js';
import { LeaseCache, type Lease } from './lease-cache.js';
import { BaseRunner, RngGate, runnerDefaults, type Job, type JobDelta, type JobOptions } from './runner.js';

export interface InferenceOptions {
  /** libtorch device for serving ('cpu', 'cuda', 'cuda:1'). */
  device?: string;
  /** Tokenizes long prompts off the event loop; without it every prompt is tokenized inline. */
  cpu?: CpuPool;
  /** limits.promptChars: characters of one prompt, for every model. */
  promptChars?: number;
  maxBaseModels?: number;
  maxAdapters?: number;
  maxBatchRows?: number;
}

export const inferenceDefaults = {
  maxBaseModels: 2,
  maxAdapters: 32,
} as const;

/** Request limits of generation (gemini-api.md §7, §8). */
export const servingLimits = {
  maxCandidateCount: 8,
  maxStopSequences: 5,
  maxTemperature: 2,
} as const;

/** A model as a request names it: tunedModels/{id} or models/{id}, for a project, through an API version. */
export interface ModelRef {
  project: string;
  collection: 'tunedModels' | 'models';
  id: string;
  apiVersion: string;
}

/** generationConfig, validated by the caller; omitted fields take the model's defaults. */
export interface SamplingConfig {
  candidateCount?: number;
  stopSequences?: string[];
  maxOutputTokens?: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  seed?: number;
}

export interface PromptRequest {
  systemInstruction?: string;
  /** The conversation so far; a tuned model (and a chat template) needs it to end with the user's turn. */
  turns: Turn[];
}

export interface GenerateRequest extends PromptRequest {
  config?: SamplingConfig;
}

export interface CandidateResult {
  text: string;
  finishReason: FinishReason;
  tokenCount: number;
}

export interface GenerationResult {
  candidates: CandidateResult[];
  promptTokenCount: number;
  candidatesTokenCount: number;
  /** tunedModels/{id}, or the base model's id as requested (an alias stays an alias). */
  modelVersion: string;
  /** The base model's id as requested, or as the tuned model was created on (what Vertex reports). */
  baseModelVersion: string;
}

/** Text as it is decided, per candidate; iterate once. `result` settles when generation ends. */
export interface GenerationStream extends AsyncIterable<JobDelta> {
  readonly promptTokenCount: number;
  readonly candidateCount: number;
  readonly modelVersion: string;
  readonly baseModelVersion: string;
  readonly result: Promise<GenerationResult>;
}

interface LoadedBase {
  model: BaseModel;
  runner: BaseRunner;
}

interface LoadedAdapter {
  adapter: LoraAdapter;
  record?: TuningRecord;
  /** The files' mtimes and sizes when loaded. */
  stamp: string;
  /** Distinguishes two loads of one id (batching must not merge them). */
  serial: number;
}

interface Target {
  base: Lease<LoadedBase>;
  adapter?: Lease<LoadedAdapter>;
  format: PromptFormat;
  sampling: Partial<SamplingDefaults>;
  modelVersion: string;
  baseModelVersion: string;
  tuned: boolean;
}

export class InferenceService {
  private readonly bases: LeaseCache<string, LoadedBase>;
  private readonly adapters: LeaseCache<string, LoadedAdapter>;
  private readonly rng = new RngGate();
  private readonly runners = new Set<BaseRunner>();
  private adapterSerial = 0;
  private closed = false;

  constructor(
    private readonly tuning: TuningService,
    private readonly registry: BaseModelRegistry,
    private readonly options: InferenceOptions = {},
  ) {
    this.bases = new LeaseCache(options.maxBaseModels ?? inferenceDefaults.maxBaseModels, (loaded) => {
      loaded.runner.close();
      this.runners.delete(loaded.runner);
    });
    this.adapters = new LeaseCache(options.maxAdapters ?? inferenceDefaults.maxAdapters, (loaded) => loaded.adapter.dispose());
  }

  /** Starts a generation; rejects (before any text) for bad requests, unknown or unready models, and over-long prompts. */
  async stream(ref: ModelRef, request: GenerateRequest, signal?: AbortSignal): Promise<GenerationStream> {
    const target = await this.resolve(ref);
    let promptIds: number[];
    let options: JobOptions;
    try {
      promptIds = await this.frame(target, request);
      options = this.jobOptions(target, request.config ?? {});
    } catch (error) {
      release(target);
      throw error;
    }

    const channel = new Channel<JobDelta>();
    let settle!: { resolve(r: GenerationResult): void; reject(e: unknown): void };
    const result = new Promise<GenerationResult>((resolve, reject) => (settle = { resolve, reject }));
    result.catch(() => {}); // the stream's iterator reports the error; an abandoned result must not crash the process
    const { modelVersion, baseModelVersion } = target;
    const adapter = target.adapter?.value;
    const job: Job = {
      adapter: adapter?.adapter ?? null,
      adapterKey: adapter ? `${ref.id}#${adapter.serial}` : '',
      promptIds,
      options,
      signal,
      onDelta: (delta) => channel.push(delta),
      onDone: (generation: Generation) => {
        release(target);
        channel.close();
        settle.resolve({
          candidates: generation.candidates.map((c) => ({ text: c.text, finishReason: c.finishReason, tokenCount: c.tokenIds.length })),
          promptTokenCount: generation.promptTokenCount,
          candidatesTokenCount: generation.candidatesTokenCount,
          modelVersion,
          baseModelVersion,
        });
      },
      onError: (error) => {
        release(target);
        const failure = asServiceError(error);
        channel.fail(failure);
        settle.reject(failure);
      },
    };
    target.base.value.runner.submit(job);
    return {
      promptTokenCount: promptIds.length,
      candidateCount: options.candidateCount,
      modelVersion,
      baseModelVersion,
      result,
      [Symbol.asyncIterator]: () => channel.iterate(),
    };
  }

  async generate(ref: ModelRef, request: GenerateRequest, signal?: AbortSignal): Promise<GenerationResult> {
    return (await this.stream(ref, request, signal)).result;
  }

  /** Tokens of the prompt exactly as generation would frame it (promptTokenCount of the same request). */
  async countTokens(ref: ModelRef, request: PromptRequest): Promise<number> {
    const target = await this.resolve(ref);
    try {
      return (await this.frame(target, request)).length;
    } finally {
      release(target);
    }
  }

  /**
   * Each text's tokens on its own, as the model's vocabulary splits it (no template, no special tokens): ids and
   * the bytes each stands for. Only the tokenizer is loaded, never the weights.
   */
  async computeTokens(ref: ModelRef, texts: string[]): Promise<{ ids: number[]; bytes: Uint8Array[] }[]> {
    if (this.closed) throw new ServiceError('UNAVAILABLE', 'The service is shutting down.');
    const dir = ref.collection === 'models' ? this.registry.resolve(ref.id, ref.apiVersion).dir : (await this.activeTunedModel(ref)).baseDir;
    const units = texts.reduce((n, text) => n + text.length, 0);
    this.checkPromptLength(units, () => texts.reduce((n, text) => n + charCount(text), 0));
    const tokenizer = await this.tuning.tokenizer(dir);
    const ids =
      this.options.cpu && units > cpuPoolDefaults.inlinePromptChars ? await this.options.cpu.textTokenIds(dir, texts) : textTokenIds(tokenizer, texts);
    return ids.map((list) => ({ ids: list, bytes: list.map((id) => tokenizer.tokenBytes(id)) }));
  }

  /** Drops a tuned model's cached adapter (call when the model is deleted). */
  forgetTunedModel(id: string): void {
    this.adapters.forget(id);
  }

  /** What is loaded now, and how many batches each base model has run. */
  stats(): { baseModels: number; adapters: number; batches: number } {
    return {
      baseModels: this.bases.size,
      adapters: this.adapters.size,
      batches: [...this.runners].reduce((n, r) => n + r.batches, 0),
    };
  }

  close(): void {
    this.closed = true;
    for (const runner of this.runners) runner.close();
    this.adapters.clear();
    this.bases.clear();
  }

  private async resolve(ref: ModelRef): Promise<Target> {
    if (this.closed) throw new ServiceError('UNAVAILABLE', 'The service is shutting down.');
    if (ref.collection === 'models') {
      const info = this.registry.resolve(ref.id, ref.apiVersion);
      const base = await this.base(info.dir);
      const { tokenizer } = base.value.model;
      return {
        base,
        format: untunedFormat(tokenizer),
        sampling: info.sampling,
        modelVersion: info.name.replace(/^models\//, ''),
        baseModelVersion: info.name.replace(/^models\//, ''),
        tuned: false,
      };
    }
    const model = await this.activeTunedModel(ref);
    const base = await this.base(model.baseDir);
    let adapter: Lease<LoadedAdapter>;
    try {
      adapter = await this.adapter(model, base.value.model);
    } catch (error) {
      base.release();
      throw error;
    }
    const record = adapter.value.record;
    const { tokenizer } = base.value.model;
    return {
      base,
      adapter,
      format: record ? { kind: 'framing', framing: record.framing } : untunedFormat(tokenizer),
      sampling: { temperature: model.temperature, topP: model.topP, topK: model.topK },
      modelVersion: `tunedModels/${model.id}`,
      baseModelVersion: model.baseModel.replace(/^models\//, ''),
      tuned: true,
    };
  }

  /** The project's tuned model, which must be ACTIVE to be used. */
  private async activeTunedModel(ref: ModelRef): Promise<TunedModel> {
    const model = await this.tuning.get(ref.project, ref.id);
    if (model.state !== 'ACTIVE') {
      const why = model.state === 'FAILED' && model.error ? ` (${model.error.message})` : '';
      throw new ServiceError(
        'FAILED_PRECONDITION',
        `Tuned model tunedModels/${model.id} is ${model.state}${why}; it can generate content only when its state is ACTIVE.`,
      );
    }
    return model;
  }

  /** A prompt over limits.promptChars is refused; one far over it is refused without counting its characters. */
  private checkPromptLength(units: number, chars: () => number): void {
    const maxChars = this.options.promptChars ?? limitDefaults.promptChars;
    // A code point is one or two UTF-16 units.
    const count = units > 2 * maxChars ? units : chars();
    if (count > maxChars) {
      throw invalidArgument(`The prompt is ${units > 2 * maxChars ? 'more than ' + maxChars : count} characters long; the limit promptChars is ${maxChars} characters.`, 'contents');
    }
  }

  private base(dir: string): Promise<Lease<LoadedBase>> {
    const key = path.resolve(dir);
    return this.bases.acquire(key, async () => {
      const model = await loadBaseModel(key, { device: this.options.device }, this.tuning.tokenizer(key));
      const runner = new BaseRunner(model, this.rng, this.options.maxBatchRows ?? runnerDefaults.maxBatchRows);
      this.runners.add(runner);
      return { model, runner };
    });
  }

  private async adapter(model: TunedModel, base: BaseModel): Promise<Lease<LoadedAdapter>> {
    const id = model.id;
    try {
      // The shared adapter (a mounted directory), or a local copy of a bucket's.
      const dir = await this.tuning.adapterDirectory(model);
      return await this.adapters.acquire(
        id,
        () => {
          const stamp = adapterStamp(dir);
          const { adapter, record } = loadTunedAdapter(dir, base.transformer);
          return { adapter, record, stamp, serial: ++this.adapterSerial };
        },
        (loaded) => loaded.stamp === adapterStamp(dir),
      );
    } catch (error) {
      throw new ServiceError('INTERNAL', `The adapter of tunedModels/${id} cannot be loaded: ${(error as Error).message}`);
    }
  }

  /** The prompt's token ids; a long prompt is tokenized in the CPU pool, so it never stalls the event loop. */
  private async frame(target: Target, request: PromptRequest): Promise<number[]> {
    const { turns, systemInstruction } = request;
    if (turns.length === 0) throw invalidArgument('* GenerateContentRequest.contents: contents is not specified', 'contents');
    const units = (systemInstruction?.length ?? 0) + turns.reduce((n, t) => n + t.text.length, 0);
    this.checkPromptLength(units, () => charCount(systemInstruction ?? '') + turns.reduce((n, t) => n + charCount(t.text), 0));
    const { tokenizer, transformer, dir } = target.base.value.model;
    const prompt = { systemInstruction, turns };
    const ids =
      this.options.cpu && units > cpuPoolDefaults.inlinePromptChars
        ? await this.options.cpu.promptTokenIds(dir, target.format, prompt)
        : promptTokenIds(tokenizer, target.format, prompt);
    if (ids.length === 0) throw invalidArgument('The prompt is empty: give the model some text to continue.', 'contents');
    try {
      checkEmbeddable(ids, transformer.config.vocabSize, tokenizer);
    } catch (error) {
      throw invalidArgument(`The input cannot be given to this model: ${(error as Error).message}.`, 'contents');
    }
    const maxInput = transformer.config.maxPositions - 1; // at least one position is left to generate into
    if (ids.length > maxInput) {
      throw invalidArgument(`The input token count (${ids.length}) exceeds the maximum number of tokens allowed (${maxInput}).`, 'contents');
    }
    return ids;
  }

  private jobOptions(target: Target, config: SamplingConfig): JobOptions {
    const { sampling, format } = target;
    const candidateCount = config.candidateCount ?? 1;
    if (!(Number.isInteger(candidateCount) && candidateCount >= 1 && candidateCount <= servingLimits.maxCandidateCount)) {
      throw invalidArgument(`candidateCount must be from 1 to ${servingLimits.maxCandidateCount}`, 'generation_config.candidate_count');
    }
    let topP = config.topP ?? sampling.topP;
    let topK = config.topK ?? sampling.topK;
    if (topP === 0) {
      // Nucleus sampling keeps the most likely token and nothing else; the engine reads 0 as "no filter".
      topP = undefined;
      topK = 1;
    }
    return {
      temperature: config.temperature ?? sampling.temperature ?? generationDefaults.temperature,
      topP,
      topK,
      candidateCount,
      maxOutputTokens: config.maxOutputTokens ?? generationDefaults.maxOutputTokens,
      stopSequences: [...(config.stopSequences ?? []), ...(format.kind === 'framing' ? stopSequencesFor(format.framing) : [])],
      seed: config.seed,
    };
  }
}

/** A base model, or an adapter without attune.json: its chat template frames prompts as in tuning, else plain text continues. */
function untunedFormat(tokenizer: Tokenizer): PromptFormat {
  return tokenizer.chatTemplate !== undefined ? { kind: 'framing', framing: chooseFraming(tokenizer) } : { kind: 'continuation' };
}

function release(target: Target): void {
  target.adapter?.release();
  target.base.release();
}

/** What identifies one version of an adapter's files. */
function adapterStamp(dir: string): string {
  return [adapterFiles.weights, adapterFiles.config, tuningRecordFile]
    .map((file) => {
      try {
        const s = statSync(path.join(dir, file));
        return `${s.mtimeMs}:${s.size}`;
      } catch {
        return '-';
      }
    })
    .join('/');
}

function asServiceError(error: unknown): ServiceError {
  if (error instanceof ServiceError) return error;
  return new ServiceError('INTERNAL', `Generation failed: ${(error as Error)?.message ?? String(error)}`);
}

/** An unbounded single-consumer queue of values that ends or fails once. */
class Channel<T> {
  private readonly buffer: T[] = [];
  private ended = false;
  private failure?: { error: unknown };
  private wake?: () => void;

  push(value: T): void {
    this.buffer.push(value);
    this.wake?.();
  }

  close(): void {
    this.ended = true;
    this.wake?.();
  }

  fail(error: unknown): void {
    this.failure = { error };
    this.ended = true;
    this.wake?.();
  }

  async *iterate(): AsyncGenerator<T> {
    for (;;) {
      if (this.buffer.length) {
        yield this.buffer.shift()!;
        continue;
      }
      if (this.failure) throw this.failure.error;
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }
}
