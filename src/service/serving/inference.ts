// Serving: generation and token counting on base models and tuned models.
//
// Memory. Base models load once (`loadBaseModel`) into a small LRU (`maxBaseModels`, default 2) and are
// shared by every tuned model of that base: a tuned model costs its LoRA adapter. Each base model has one
// runner, which keeps its own bounded set of resident adapters (`maxAdapters`) and, in the default
// continuous scheduler, a preallocated KV block pool (`kvCacheBytes`). Entries in use are never evicted
// (see lease-cache.ts). The engine has no Transformer.dispose(), so an evicted base model is dropped and
// its tensors are freed by the garbage collector (the addon reports their memory to V8).
//
// Stale adapters. An adapter is named by its tuned model's id and its files' mtimes and sizes, checked on
// every request, so an adapter directory rewritten under the same id (a model deleted and created again, a
// resumed run) is another adapter and is loaded afresh. `forgetTunedModel(id)` drops one at once (the
// service calls it when a model is deleted; requests for a deleted model are answered 404 before any
// runner is asked).
//
// Prompt framing. A tuned model frames the conversation exactly as its adapter's attune.json records
// (`framePrompt`, plus the framing's stop sequences). A base model uses its tokenizer's chat template when
// it has one. Otherwise it continues plain text: the system instruction, a blank line, then the turns'
// texts joined by newlines, encoded with BOS when the tokenizer adds one and never with EOS (a
// tokenizer that appends EOS to encoded text would otherwise end the prompt with it). One user turn is
// exactly `tokenizer.encode(text)` for the usual BOS-only tokenizers, so a base model continues the
// text it is given.
//
// Scheduling: one runner per base model, continuous batching by default (continuous-runner.ts), or the
// earlier swap-per-batch scheduler for comparison (swap-runner.ts).
import { statSync } from 'node:fs';
import path from 'node:path';
import { loadBaseModel, type BaseModel } from '../../engine/base-model.js';
import type { PlacementRequest } from '../../engine/placement.js';
import { loadTunedAdapterAsync, readTuningRecordAsync, tuningRecordFile, type TuningRecord } from '../../engine/lora/tuned-adapter.js';
import { adapterFiles } from '../../engine/lora/peft.js';
import { checkEmbeddable, chooseFraming, stopSequencesFor } from '../../engine/data/framing.js';
import type { Tokenizer } from '../../engine/tokenizer/tokenizer.js';
import type { Turn } from '../../engine/data/examples.js';
import { charCount } from '../../engine/data/limits.js';
import { cpuPoolDefaults, type CpuPool } from '../cpu/pool.js';
import { promptTokenIds, textTokenIds, type PromptFormat } from './prompt.js';
import { generationDefaults, type FinishReason, type Generation } from '../../engine/generate/generate.js';
import { ServiceError, invalidArgument } from '../errors.js';
import { limitDefaults, type ServiceLimits } from '../limits.js';
import type { BaseModelRegistry, SamplingDefaults } from '../models/registry.js';
import type { TuningService } from '../tuning/service.js';
import type { TunedModel } from '../tuning/tuned-model.js';
import { LeaseCache, type Lease } from './lease-cache.js';
import { ContinuousRunner } from './continuous-runner.js';
import { SwapRunner } from './swap-runner.js';
import type { AdapterRef, Job, JobDelta, JobOptions, Runner } from './job.js';

export const schedulers = ['continuous', 'swap-per-batch'] as const;
export type SchedulerKind = (typeof schedulers)[number];

export interface InferenceOptions {
  /** Device and dtype base models are served in (`attune serve --device --dtype`); auto by default. */
  placement?: PlacementRequest;
  /** continuous (default) or the earlier swap-per-batch scheduler, kept for comparison. */
  scheduler?: SchedulerKind;
  /** Tokenizes long prompts off the event loop; without it every prompt is tokenized inline. */
  cpu?: CpuPool;
  /** limits.promptChars: characters of one prompt, for every model. */
  promptChars?: number;
  maxBaseModels?: number;
  /** Adapters resident at once per base model. */
  maxAdapters?: number;
  /** Rows decoded together per base model. */
  maxBatchRows?: number;
  /** Bytes of each base model's KV block pool (continuous scheduler). */
  kvCacheBytes?: number;
  /** Queue bounds and the generation deadline (the rest of the limits do not matter here). */
  limits?: Partial<Pick<ServiceLimits, 'queuedGenerationsPerProject' | 'queuedGenerationsPerBaseModel' | 'generationTimeoutSeconds'>>;
}

export const inferenceDefaults = {
  scheduler: 'continuous',
  maxBaseModels: 2,
  maxAdapters: 16,
  maxBatchRows: 32,
  kvCacheBytes: 512 * 1024 * 1024,
  kvBlockSize: 16,
  /**
   * Tokens a step carries at most while a light project decodes beside a heavy one (continuous-runner.ts).
   * On a 2-core CPU, steps of 4, 8, 16 and 32 rows cost about 1.3×, 1.6×, 1.9× and 3.7× a one-row step at
   * stories260K, and about one row's cost at the SmolLM2-135M shape, where a 512-token prefill costs 4 to 5
   * steps; with 6, a light request during a 200-request flood took 1.2 to 1.4× its CPU time alone.
   */
  fairStepTokens: 6,
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
  /** One of a tuned model's checkpoints (a Vertex checkpoint endpoint); by default the one the model serves. */
  checkpointId?: string;
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
  runner: Runner;
}

/** A tuned model's attune.json, as of one version of its files. */
interface CachedRecord {
  stamp: string;
  record?: TuningRecord;
}

interface Target {
  base: Lease<LoadedBase>;
  adapter: AdapterRef | null;
  format: PromptFormat;
  sampling: Partial<SamplingDefaults>;
  modelVersion: string;
  baseModelVersion: string;
  tuned: boolean;
}

export class InferenceService {
  private readonly bases: LeaseCache<string, LoadedBase>;
  private readonly runners = new Set<Runner>();
  /** attune.json of recently used tuned models, by id (least recently used first). */
  private readonly records = new Map<string, CachedRecord>();
  private readonly limits: Pick<ServiceLimits, 'queuedGenerationsPerProject' | 'queuedGenerationsPerBaseModel' | 'generationTimeoutSeconds'>;
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
    const { queuedGenerationsPerProject, queuedGenerationsPerBaseModel, generationTimeoutSeconds } = { ...limitDefaults, ...options.limits };
    this.limits = { queuedGenerationsPerProject, queuedGenerationsPerBaseModel, generationTimeoutSeconds };
  }

  /**
   * Starts a generation; rejects (before any text) for bad requests, unknown or unready models, over-long
   * prompts, full queues (RESOURCE_EXHAUSTED), and an adapter that cannot be loaded. `timeoutSeconds` (a
   * client's X-Server-Timeout) may shorten the deadline, never lengthen it.
   */
  async stream(ref: ModelRef, request: GenerateRequest, signal?: AbortSignal, timeoutSeconds?: number): Promise<GenerationStream> {
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
    const seconds = Math.min(this.limits.generationTimeoutSeconds, timeoutSeconds && timeoutSeconds > 0 ? timeoutSeconds : Infinity);
    const job: Job = {
      project: ref.project,
      adapter: target.adapter,
      promptIds,
      options,
      signal,
      deadline: Date.now() + seconds * 1000,
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
    try {
      await target.base.value.runner.submit(job);
    } catch (error) {
      release(target);
      throw asServiceError(error);
    }
    return {
      promptTokenCount: promptIds.length,
      candidateCount: options.candidateCount,
      modelVersion,
      baseModelVersion,
      result,
      [Symbol.asyncIterator]: () => channel.iterate(),
    };
  }

  async generate(ref: ModelRef, request: GenerateRequest, signal?: AbortSignal, timeoutSeconds?: number): Promise<GenerationResult> {
    return (await this.stream(ref, request, signal, timeoutSeconds)).result;
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
    for (const name of this.records.keys()) if (name === id || name.startsWith(`${id}#`)) this.records.delete(name);
    for (const runner of this.runners) runner.forget(id);
  }

  /** What is loaded and waiting now, and how many forwards (steps or batches) the runners have run. */
  stats(): { baseModels: number; adapters: number; forwards: number; queued: number; running: number } {
    const runners = [...this.runners].map((r) => r.stats());
    const sum = (key: 'adapters' | 'forwards' | 'queued' | 'running') => runners.reduce((n, s) => n + s[key], 0);
    return { baseModels: this.bases.size, adapters: sum('adapters'), forwards: sum('forwards'), queued: sum('queued'), running: sum('running') };
  }

  close(): void {
    this.closed = true;
    for (const runner of this.runners) runner.close();
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
        adapter: null,
      };
    }
    const model = await this.activeTunedModel(ref);
    // Each checkpoint is an adapter of its own, resident and cached under its own name.
    const checkpointId = ref.checkpointId ?? model.defaultCheckpointId;
    const adapterName = checkpointId === undefined ? model.id : `${model.id}#${checkpointId}`;
    const base = await this.base(model.baseDir);
    let dir: string;
    let record: TuningRecord | undefined;
    let stamp: string;
    try {
      // The shared adapter (a mounted directory), or a local copy of a bucket's.
      dir = await this.tuning.adapterDirectory(model, checkpointId);
      ({ record, stamp } = await this.record(adapterName, dir));
    } catch (error) {
      base.release();
      throw new ServiceError('INTERNAL', `The adapter of tunedModels/${model.id} cannot be loaded: ${(error as Error).message}`);
    }
    const { tokenizer, transformer } = base.value.model;
    const adapter: AdapterRef = {
      key: `${adapterName}@${stamp}`,
      modelId: model.id,
      load: async () => (await loadTunedAdapterAsync(dir, transformer)).adapter,
    };
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

  /** A tuned model the project may use (its own, or one shared with it), which must be ACTIVE to be used. */
  private async activeTunedModel(ref: ModelRef): Promise<TunedModel> {
    const { model } = await this.tuning.access(ref.project, ref.id, 'READER', 'use');
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
      const model = await loadBaseModel(key, this.options.placement, this.tuning.tokenizer(key));
      const runner = this.runnerFor(model);
      this.runners.add(runner);
      return { model, runner };
    });
  }

  private runnerFor(model: BaseModel): Runner {
    const o = { ...inferenceDefaults, ...definedOnly(this.options) };
    if (o.scheduler === 'swap-per-batch') return new SwapRunner(model, o.maxBatchRows, o.maxAdapters);
    return new ContinuousRunner(model, {
      maxBatchRows: o.maxBatchRows,
      maxAdapters: o.maxAdapters,
      kvCacheBytes: o.kvCacheBytes,
      kvBlockSize: o.kvBlockSize,
      fairStepTokens: o.fairStepTokens,
      queue: { perProject: this.limits.queuedGenerationsPerProject, total: this.limits.queuedGenerationsPerBaseModel },
    });
  }

  /** A tuned model's attune.json for the current version of its files (read again when they change). */
  private async record(id: string, dir: string): Promise<CachedRecord> {
    const stamp = adapterStamp(dir);
    const cached = this.records.get(id);
    this.records.delete(id);
    const fresh = cached?.stamp === stamp ? cached : { stamp, record: await readTuningRecordAsync(dir) };
    this.records.set(id, fresh); // most recently used goes last
    const cap = 4 * (this.options.maxAdapters ?? inferenceDefaults.maxAdapters);
    for (const old of this.records.keys()) {
      if (this.records.size <= cap) break;
      this.records.delete(old);
    }
    return fresh;
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
  target.base.release();
}

/** The options that are set (an explicit undefined must not hide a default). */
function definedOnly<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<T>;
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
