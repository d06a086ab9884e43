// Tuned models as a project sees them: create (which queues a training run), read, list, update,
// delete, cancel; and the run's lifecycle as the job scheduler reports it.
import { EventEmitter } from 'node:events';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { Tokenizer } from '../../engine/tokenizer/tokenizer.js';
import { totalStepsFor } from '../../engine/train/trainer.js';
import { trainingDefaults } from '../../engine/train/defaults.js';
import { serviceDefaults } from '../config.js';
import type { CpuPool } from '../cpu/pool.js';
import { ServiceError, invalidArgument } from '../errors.js';
import type { ServiceLimits } from '../limits.js';
import type { BaseModelInfo, BaseModelRegistry } from '../models/registry.js';
import type { ObjectStore } from '../storage/object-store.js';
import type { JobQueue } from '../store/jobs.js';
import type { ListPosition, TunedModelStore } from '../store/tuned-models.js';
import { loadDataset, type DatasetSource } from './datasets.js';
import { defaultBatchSize, defaultEpochsFor, pageSizes, tuningDefaults, tuningLimits, type Surface } from './defaults.js';
import { jobNumber, operationId, randomId, tunedModelIdFor, tunedModelIdPattern } from './ids.js';
import { now, type Hyperparameters, type StepMetric, type TunedModel } from './tuned-model.js';

export interface CreateTunedModelRequest {
  surface: Surface;
  project: string;
  apiVersion: string;
  /** Vertex's location; Gemini-API models get the default one. */
  location?: string;
  tunedModelId?: string;
  displayName?: string;
  description?: string;
  labels?: Record<string, string>;
  baseModel?: string;
  /** Tune further from an existing tuned model (its base is used; the adapter starts fresh). */
  sourceTunedModel?: string;
  temperature?: number;
  topP?: number;
  topK?: number;
  hyperparameters?: Partial<Hyperparameters>;
  training: DatasetSource;
  validation?: DatasetSource;
}

/** A tuned model as create() would store it, with its parsed datasets (JSON, as the store keeps them; only for create). */
export interface TuningPlan {
  model: TunedModel;
  training?: string;
  validation?: string;
}

/** What the service is given besides its stores. */
export interface TuningOptions {
  limits: ServiceLimits;
  /** Runs dataset parsing and framing off the event loop. */
  cpu: CpuPool;
  /** The one local directory dataset URIs may name (`attune serve --dataset-dir`). */
  datasetDir?: string;
}

export type TunedModelPatch = Partial<Pick<TunedModel, 'displayName' | 'description' | 'temperature' | 'topP' | 'topK'>>;
export const patchableFields = ['displayName', 'description', 'temperature', 'topP', 'topK'] as const;

export interface Page<T> {
  items: T[];
  nextPageToken?: string;
}

/** What the service needs from the job scheduler. */
export interface RunControl {
  /** A job was queued: start it when a worker is free. */
  wake(): void;
  /** Stop a queued or running job; its lifecycle ends in cancelled(). */
  cancel(tunedModelId: string): void;
  /** The run already ended here (failed): stop its worker at once, recording and saving nothing more. */
  abandon(tunedModelId: string): void;
}

export class TuningService {
  private control: RunControl = { wake: () => {}, cancel: () => {}, abandon: () => {} };
  /** 'metric' (id, StepMetric) for every recorded step or evaluation, 'change' (TunedModel) after every update, 'deleted' (id). */
  readonly events = new EventEmitter().setMaxListeners(0); // every open metrics stream listens
  private readonly tokenizers = new Map<string, Promise<Tokenizer>>();

  constructor(
    readonly store: TunedModelStore,
    private readonly jobs: JobQueue,
    readonly registry: BaseModelRegistry,
    readonly objects: ObjectStore,
    readonly dataDir: string,
    private readonly options: TuningOptions,
  ) {}

  attachScheduler(control: RunControl): void {
    this.control = control;
  }

  /** Called after a tuned model is deleted (serving frees its adapter). */
  onDeleted(listener: (id: string) => void): void {
    this.events.on('deleted', listener);
  }

  adapterDir(id: string): string {
    return path.join(this.dataDir, 'adapters', id);
  }

  checkpointDir(id: string): string {
    return path.join(this.dataDir, 'checkpoints', id);
  }

  /**
   * Validates a request and returns what create() would store, storing nothing (AIP-163 validateOnly). The
   * cheap checks come first; the datasets are read, parsed and framed in the CPU pool last.
   */
  async plan(request: CreateTunedModelRequest, { keepExamples = false } = {}): Promise<TuningPlan> {
    const { surface, project } = request;
    const maxName = tuningLimits.displayNameChars[surface];
    if ([...(request.displayName ?? '')].length > maxName) {
      throw invalidArgument(`displayName must be at most ${maxName} characters`, displayNameField[surface]);
    }
    validateSampling(request);
    const base = this.baseOf(request);
    // Vertex: "If not set, a random name is generated."
    const displayName = request.displayName ?? (surface === 'vertex' ? `${base.name.replace(/^models\//, '')}-${randomId(8)}` : '');
    const id = request.tunedModelId ?? tunedModelIdFor(displayName);
    if (!tunedModelIdPattern.test(id)) {
      throw invalidArgument(`tunedModelId '${id}' must match ${tunedModelIdPattern.source}`, 'tuned_model_id');
    }
    if (this.store.exists(id)) throw new ServiceError('ALREADY_EXISTS', `Tuned model tunedModels/${id} already exists.`);
    this.checkProjectQuotas(project);
    checkHyperparameterRanges(request.hyperparameters ?? {}, surface);

    const training = await this.dataset(request.training, request, { stats: { baseDir: base.dir, vocabSize: base.vocabSize }, keepExamples });
    const validation = request.validation && (await this.dataset(request.validation, request, { keepExamples }));
    if (validation && validation.exampleCount > tuningLimits.maxValidationExamples) {
      throw invalidArgument(
        `The validation dataset has ${validation.exampleCount} examples; at most ${tuningLimits.maxValidationExamples} are allowed.`,
        request.validation!.field,
      );
    }
    const hyperparameters = resolveHyperparameters(request.hyperparameters ?? {}, training.exampleCount, base, surface);
    this.checkJobSize(training.exampleCount, hyperparameters, surface);
    const time = now();
    const model: TunedModel = {
      id,
      jobNumber: jobNumber(),
      project,
      location: request.location ?? serviceDefaults.location,
      labels: request.labels ?? {},
      apiVersion: request.apiVersion,
      displayName,
      description: request.description ?? '',
      baseModel: base.name,
      baseDir: base.dir,
      sourceTunedModel: request.sourceTunedModel,
      state: 'CREATING',
      createTime: time,
      updateTime: time,
      temperature: request.temperature ?? base.sampling.temperature,
      topP: request.topP ?? base.sampling.topP,
      topK: request.topK ?? base.sampling.topK,
      hyperparameters,
      trainingDatasetUri: 'uri' in request.training ? request.training.uri : undefined,
      validationDatasetUri: request.validation && 'uri' in request.validation ? request.validation.uri : undefined,
      dataStats: training.stats!,
      totalSteps: totalStepsFor(training.exampleCount, hyperparameters.epochCount, hyperparameters.batchSize),
      completedSteps: 0,
      operationId: operationId(),
      operationDone: false,
      cancelRequested: false,
    };
    return { model, training: training.examplesJson, validation: validation?.examplesJson };
  }

  /** RESOURCE_EXHAUSTED when the project holds as many tuned models, or has as many jobs waiting or running, as its limits allow. */
  private checkProjectQuotas(project: string): void {
    const { tunedModelsPerProject, queuedJobsPerProject } = this.options.limits;
    const models = this.store.count(project);
    if (models >= tunedModelsPerProject) {
      throw new ServiceError(
        'RESOURCE_EXHAUSTED',
        `Project ${project} has ${models} tuned models, the limit tunedModelsPerProject (${tunedModelsPerProject}). Delete some to create more.`,
      );
    }
    const jobs = this.jobs.unfinishedCount(project);
    if (jobs >= queuedJobsPerProject) {
      throw new ServiceError(
        'RESOURCE_EXHAUSTED',
        `Project ${project} has ${jobs} tuning jobs queued or running, the limit queuedJobsPerProject (${queuedJobsPerProject}). Wait for some to finish, or cancel some.`,
      );
    }
  }

  /** One job may train on at most limits.trainedExamplesPerJob examples (epochs × examples). */
  private checkJobSize(examples: number, h: Hyperparameters, surface: Surface): void {
    const limit = this.options.limits.trainedExamplesPerJob;
    const trained = examples * h.epochCount;
    if (trained > limit) {
      throw invalidArgument(
        `This job would train on ${trained} examples (${examples} examples × ${h.epochCount} epochs), more than ${limit}, the limit trainedExamplesPerJob. Use fewer epochs or a smaller dataset.`,
        `${hyperparametersField[surface]}.epoch_count`,
      );
    }
  }

  async create(request: CreateTunedModelRequest): Promise<TunedModel> {
    const { model, training, validation } = await this.plan(request, { keepExamples: true });
    this.store.transaction(() => {
      // Checked again: another create may have taken the id, or the quota, while this one read its dataset.
      if (this.store.exists(model.id)) throw new ServiceError('ALREADY_EXISTS', `Tuned model tunedModels/${model.id} already exists.`);
      this.checkProjectQuotas(model.project);
      this.store.insert(model, training!, validation); // a model is never stored without its job
      this.jobs.enqueue(model.id);
    });
    this.control.wake();
    return model;
  }

  /**
   * A model the project may see, by Gemini id or Vertex number. Another project's answers exactly like a
   * missing one (AIP-193), so that whether it exists does not leak across projects.
   */
  get(project: string, id: string): TunedModel {
    const model = this.store.get(id);
    if (!model || model.project !== project) throw new ServiceError('NOT_FOUND', `Tuned model tunedModels/${id} does not exist.`);
    return model;
  }

  list(project: string, pageSize?: number, pageToken?: string, filter?: string): Page<TunedModel> {
    const size = pageSizeOf('gemini', pageSize);
    const after = pageToken ? decodePageToken(pageToken) : undefined;
    const rows = this.store.list(project, after, size + 1, filter?.replace(/\b\w+:me\b/g, '').trim());
    const items = rows.slice(0, size);
    const last = items.at(-1);
    return { items, nextPageToken: rows.length > size && last ? encodePageToken({ createTime: last.createTime, id: last.id }) : undefined };
  }

  /** A page of a project's models, newest first, that `keep` accepts (Vertex lists filter on derived states). */
  listMatching(project: string, keep: (model: TunedModel) => boolean, pageSize?: number, pageToken?: string): Page<TunedModel> {
    const size = pageSizeOf('vertex', pageSize);
    const after = pageToken ? decodePageToken(pageToken) : undefined;
    const older = (m: TunedModel) => !after || m.createTime < after.createTime || (m.createTime === after.createTime && m.id < after.id);
    const rows = this.store.all(project).filter((m) => older(m) && keep(m));
    const items = rows.slice(0, size);
    const last = items.at(-1);
    return { items, nextPageToken: rows.length > size && last ? encodePageToken({ createTime: last.createTime, id: last.id }) : undefined };
  }

  patch(project: string, id: string, patch: TunedModelPatch): TunedModel {
    const model = this.get(project, id);
    const maxName = tuningLimits.displayNameChars.gemini;
    if (patch.displayName !== undefined && [...patch.displayName].length > maxName) {
      throw invalidArgument(`displayName must be at most ${maxName} characters`, displayNameField.gemini);
    }
    validateSampling(patch);
    Object.assign(model, definedOnly(patch), { updateTime: now() });
    this.store.save(model);
    return model;
  }

  delete(project: string, idOrNumber: string): void {
    const { id, state } = this.get(project, idOrNumber);
    if (state === 'CREATING') this.control.cancel(id);
    this.store.delete(id);
    rmSync(this.adapterDir(id), { recursive: true, force: true });
    rmSync(this.checkpointDir(id), { recursive: true, force: true });
    this.events.emit('deleted', id);
  }

  /** Asks a run to stop; the model ends ACTIVE if a step completed (the adapter is usable), else FAILED. */
  cancel(project: string, idOrNumber: string): TunedModel {
    const model = this.get(project, idOrNumber);
    if (model.state === 'CREATING') {
      this.jobs.requestCancel(model.id);
      this.control.cancel(model.id);
    }
    return model;
  }

  // The run's lifecycle, reported by the scheduler.

  started(id: string): void {
    this.update(id, (m) => {
      m.startTime ??= now();
    });
  }

  /** A resumed run restarts after its checkpoint; metrics past it are recorded again. */
  resumedAt(id: string, completedSteps: number): void {
    this.store.truncateMetrics(id, completedSteps);
    this.update(id, (m) => {
      m.completedSteps = completedSteps;
    });
  }

  /** The run saved a checkpoint at this step (the job's event log shows it). */
  checkpointed(id: string, step: number): void {
    if (this.store.exists(id)) this.store.addCheckpoint(id, step, now());
  }

  /** A metric that is not a finite number means the run diverged: it is not stored, and the run is failed. */
  recordMetric(id: string, metric: StepMetric): void {
    if (!Number.isFinite(metric.loss) || !Number.isFinite(metric.accuracy)) {
      this.failed(id, `Training diverged at step ${metric.step}: the ${metric.kind === 'eval' ? 'validation ' : ''}loss is ${metric.loss}. Try a lower learning rate.`, 3);
      this.control.abandon(id);
      return;
    }
    this.store.addMetric(id, metric);
    this.events.emit('metric', id, metric);
    if (metric.kind === 'train') this.update(id, (m) => void (m.completedSteps = metric.step));
  }

  succeeded(id: string): void {
    this.finish(id, (m) => {
      m.state = 'ACTIVE';
    });
  }

  failed(id: string, message: string, code = 13): void {
    this.finish(id, (m) => {
      m.state = 'FAILED';
      m.error = { code, message };
    });
  }

  /** Cancelled runs keep their adapter only if at least one step completed (it was saved by the worker). */
  cancelled(id: string, adapterSaved: boolean): void {
    this.finish(id, (m) => {
      m.state = adapterSaved ? 'ACTIVE' : 'FAILED';
      m.error = { code: 1, message: 'Operation cancelled.' };
    });
  }

  /**
   * The model first: a crash in between leaves a 'running' job, which the scheduler drops when it sees the model
   * done. A finished run stays as it finished (a worker's late report cannot turn a FAILED model ACTIVE).
   */
  private finish(id: string, change: (m: TunedModel) => void): void {
    this.update(id, (m) => {
      if (m.operationDone) return;
      change(m);
      m.completeTime = now();
      m.updateTime = m.completeTime;
      m.operationDone = true;
    });
    this.jobs.finish(id);
  }

  private update(id: string, change: (m: TunedModel) => void): void {
    const model = this.store.get(id);
    if (!model) return; // deleted while running
    change(model);
    this.store.save(model);
    this.events.emit('change', model);
  }

  /** Over-long examples fail a Gemini-API request; Vertex drops them and reports them in the data stats. */
  private dataset(source: DatasetSource, { surface, project }: CreateTunedModelRequest, use: { stats?: { baseDir: string; vocabSize: number }; keepExamples: boolean }) {
    const { limits, cpu, datasetDir } = this.options;
    return loadDataset(source, {
      cpu,
      access: { project, objects: this.objects, datasetDir, maxBytes: limits.datasetFileBytes },
      parse: { overLength: surface === 'vertex' ? 'skip' : 'throw', maxExamples: limits.datasetExamples },
      ...use,
    });
  }

  /**
   * A base model's tokenizer, loaded once per process (real ones take seconds and hundreds of MB); serving shares
   * it. (The CPU pool's threads load their own, for the work done there.)
   */
  tokenizer(baseDir: string): Promise<Tokenizer> {
    let tokenizer = this.tokenizers.get(baseDir);
    if (!tokenizer) {
      tokenizer = Tokenizer.load(baseDir);
      tokenizer.catch(() => this.tokenizers.delete(baseDir));
      this.tokenizers.set(baseDir, tokenizer);
    }
    return tokenizer;
  }

  private baseOf(request: CreateTunedModelRequest) {
    if (request.baseModel && request.sourceTunedModel) {
      throw invalidArgument('set baseModel or tunedModelSource, not both', 'tuned_model.base_model');
    }
    if (request.sourceTunedModel) {
      const source = this.get(request.project, request.sourceTunedModel.replace(/^tunedModels\//, ''));
      return this.registry.resolve(source.baseModel, request.apiVersion, 'createTunedModel');
    }
    if (!request.baseModel) throw invalidArgument('baseModel is required', 'tuned_model.base_model');
    return this.registry.resolve(request.baseModel, request.apiVersion, 'createTunedModel');
  }
}

/** Sampling defaults a tuned model may carry: temperature 0–2, topP 0–1, topK a non-negative integer. */
function validateSampling({ temperature, topP, topK }: { temperature?: number; topP?: number; topK?: number }): void {
  if (temperature !== undefined && !(temperature >= 0 && temperature <= 2)) {
    throw invalidArgument(`temperature must be between 0 and 2, not ${temperature}`, 'tuned_model.temperature');
  }
  if (topP !== undefined && !(topP >= 0 && topP <= 1)) throw invalidArgument(`topP must be between 0 and 1, not ${topP}`, 'tuned_model.top_p');
  if (topK !== undefined && !(Number.isInteger(topK) && topK >= 0)) {
    throw invalidArgument(`topK must be a non-negative integer, not ${topK}`, 'tuned_model.top_k');
  }
}

/** Hyperparameters within their ranges: anything else is refused at create, before a run can diverge on it. */
function checkHyperparameterRanges(given: Partial<Hyperparameters>, surface: Surface): void {
  const { epochCount, batchSize, learningRate, learningRateMultiplier } = given;
  const field = (name: string) => `${hyperparametersField[surface]}.${name}`;
  const integerIn = (value: number | undefined, name: string, max: number) => {
    if (value !== undefined && !(Number.isInteger(value) && value >= 1 && value <= max)) {
      throw invalidArgument(`${name} must be an integer from 1 to ${max}, not ${value}`, field(name));
    }
  };
  integerIn(epochCount, 'epoch_count', tuningLimits.maxEpochCount);
  integerIn(batchSize, 'batch_size', tuningLimits.maxBatchSize);
  if (learningRate !== undefined && learningRateMultiplier !== undefined) {
    throw invalidArgument('set learningRate or learningRateMultiplier, not both', hyperparametersField[surface]);
  }
  const maxMultiplier = tuningLimits.maxLearningRate / tuningDefaults.baseLearningRate;
  for (const [name, value, max] of [
    ['learning_rate', learningRate, tuningLimits.maxLearningRate],
    ['learning_rate_multiplier', learningRateMultiplier, maxMultiplier],
  ] as const) {
    if (value !== undefined && !(value > 0 && value <= max)) {
      throw invalidArgument(`${name} must be greater than 0 and at most ${max}, not ${value}`, field(name));
    }
  }
}

function resolveHyperparameters(given: Partial<Hyperparameters>, examples: number, base: BaseModelInfo, surface: Surface): Hyperparameters {
  const { epochCount, batchSize, learningRate, learningRateMultiplier, adapterRank } = given;
  const field = (name: string) => `${hyperparametersField[surface]}.${name}`;
  if (adapterRank !== undefined && !base.adapterRanks.includes(adapterRank)) {
    throw invalidArgument(
      `The adapter size is not supported for this base model. ${base.name} takes ${base.adapterRanks.join(', ')}.`,
      field('adapter_size'),
    );
  }
  const resolved: Hyperparameters = {
    epochCount: epochCount ?? defaultEpochsFor(surface, examples),
    batchSize: batchSize ?? defaultBatchSize(examples),
    adapterRank: adapterRank ?? base.defaultAdapterRank,
    seed: trainingDefaults.seed,
  };
  if (learningRate !== undefined) resolved.learningRate = learningRate;
  else if (surface === 'vertex' || learningRateMultiplier !== undefined) resolved.learningRateMultiplier = learningRateMultiplier ?? 1;
  else resolved.learningRate = tuningDefaults.baseLearningRate;
  return resolved;
}

/** Request fields named in errors, per surface. */
const displayNameField: Record<Surface, string> = { gemini: 'tuned_model.display_name', vertex: 'tuning_job.tuned_model_display_name' };
const hyperparametersField: Record<Surface, string> = {
  gemini: 'tuned_model.tuning_task.hyperparameters',
  vertex: 'tuning_job.supervised_tuning_spec.hyper_parameters',
};

/** The absolute peak learning rate a run uses. */
export function learningRateOf(h: Hyperparameters): number {
  return h.learningRate ?? (h.learningRateMultiplier ?? 1) * tuningDefaults.baseLearningRate;
}

const pageSizeOf = (surface: Surface, requested: number | undefined) =>
  Math.min(Math.max(1, requested || pageSizes[surface].default), pageSizes[surface].max);

const encodePageToken = (position: ListPosition) => Buffer.from(JSON.stringify([position.createTime, position.id])).toString('base64url');

function decodePageToken(token: string): ListPosition {
  try {
    const [createTime, id] = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (typeof createTime === 'string' && typeof id === 'string') return { createTime, id };
  } catch {
    // falls through to the error below
  }
  throw invalidArgument('pageToken is invalid: pass the nextPageToken of a previous list call', 'page_token');
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
