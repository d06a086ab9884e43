// Tuned models as a project sees them: create (which queues a training run), read, list, update,
// delete, cancel; and the run's lifecycle as the job scheduler reports it.
import { rmSync } from 'node:fs';
import path from 'node:path';
import type { Example } from '../../engine/data/examples.js';
import { lengthProblem } from '../../engine/data/examples.js';
import { totalStepsFor } from '../../engine/train/trainer.js';
import { ServiceError, invalidArgument } from '../errors.js';
import type { BaseModelRegistry } from '../models/registry.js';
import type { JobQueue } from '../store/jobs.js';
import type { ListPosition, TunedModelStore } from '../store/tuned-models.js';
import { defaultBatchSize, tuningDefaults, tuningLimits } from './defaults.js';
import { operationId, tunedModelIdFor, tunedModelIdPattern } from './ids.js';
import { now, type Hyperparameters, type StepMetric, type TunedModel } from './tuned-model.js';

export interface CreateTunedModelRequest {
  project: string;
  apiVersion: string;
  tunedModelId?: string;
  displayName?: string;
  description?: string;
  baseModel?: string;
  /** Tune further from an existing tuned model (its base is used; the adapter starts fresh). */
  sourceTunedModel?: string;
  temperature?: number;
  topP?: number;
  topK?: number;
  hyperparameters?: Partial<Hyperparameters>;
  examples: Example[];
  validation?: Example[];
}

export type TunedModelPatch = Partial<Pick<TunedModel, 'displayName' | 'description' | 'temperature' | 'topP' | 'topK'>>;
export const patchableFields = ['displayName', 'description', 'temperature', 'topP', 'topK'] as const;

export interface Page<T> {
  items: T[];
  nextPageToken?: string;
}

export const pageSizes = { default: 10, max: 1000 } as const;

/** What the service needs from the job scheduler. */
export interface RunControl {
  /** A job was queued: start it when a worker is free. */
  wake(): void;
  /** Stop a queued or running job; its lifecycle ends in cancelled(). */
  cancel(tunedModelId: string): void;
}

export class TuningService {
  private control: RunControl = { wake: () => {}, cancel: () => {} };
  private readonly deletionListeners: ((id: string) => void)[] = [];

  constructor(
    readonly store: TunedModelStore,
    private readonly jobs: JobQueue,
    readonly registry: BaseModelRegistry,
    readonly dataDir: string,
  ) {}

  attachScheduler(control: RunControl): void {
    this.control = control;
  }

  /** Called after a tuned model is deleted (serving frees its adapter). */
  onDeleted(listener: (id: string) => void): void {
    this.deletionListeners.push(listener);
  }

  adapterDir(id: string): string {
    return path.join(this.dataDir, 'adapters', id);
  }

  checkpointDir(id: string): string {
    return path.join(this.dataDir, 'checkpoints', id);
  }

  create(request: CreateTunedModelRequest): TunedModel {
    const { examples } = request;
    if (examples.length === 0) {
      throw invalidArgument(
        'tuningTask.trainingData.examples must contain at least one training example. (@google/genai 1.28 and later drop ' +
          'the training examples in Gemini API mode: send them in the REST body, or use Vertex AI mode with a dataset URI.)',
        'tuned_model.tuning_task.training_data',
      );
    }
    examples.forEach((example, i) => {
      const problem = lengthProblem(example);
      if (problem) throw invalidArgument(`example ${i}: ${problem}`, `tuned_model.tuning_task.training_data.examples.examples[${i}]`);
    });
    if ((request.displayName ?? '').length > tuningLimits.displayNameChars) {
      throw invalidArgument(`displayName must be at most ${tuningLimits.displayNameChars} characters`, 'tuned_model.display_name');
    }
    const id = request.tunedModelId ?? tunedModelIdFor(request.displayName);
    if (!tunedModelIdPattern.test(id)) {
      throw invalidArgument(`tunedModelId '${id}' must match ${tunedModelIdPattern.source}`, 'tuned_model_id');
    }
    if (this.store.exists(id)) throw new ServiceError('ALREADY_EXISTS', `Tuned model tunedModels/${id} already exists.`);

    validateSampling(request);
    const base = this.baseOf(request);
    const hyperparameters = resolveHyperparameters(request.hyperparameters ?? {}, examples.length);
    const time = now();
    const model: TunedModel = {
      id,
      project: request.project,
      apiVersion: request.apiVersion,
      displayName: request.displayName ?? '',
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
      totalSteps: totalStepsFor(examples.length, hyperparameters.epochCount, hyperparameters.batchSize),
      completedSteps: 0,
      operationId: operationId(),
      operationDone: false,
    };
    this.store.transaction(() => {
      this.store.insert(model, examples, request.validation); // a model is never stored without its job
      this.jobs.enqueue(id);
    });
    this.control.wake();
    return model;
  }

  /** A model the project may see; another project's is a 403, a missing one a 404, as Google answers. */
  get(project: string, id: string): TunedModel {
    const model = this.store.get(id);
    if (!model) throw new ServiceError('NOT_FOUND', `Tuned model tunedModels/${id} does not exist.`);
    if (model.project !== project) {
      throw new ServiceError('PERMISSION_DENIED', `You do not have permission to access tuned model tunedModels/${id}`);
    }
    return model;
  }

  list(project: string, pageSize: number = pageSizes.default, pageToken?: string, filter?: string): Page<TunedModel> {
    const size = Math.min(Math.max(1, pageSize || pageSizes.default), pageSizes.max);
    const after = pageToken ? decodePageToken(pageToken) : undefined;
    const rows = this.store.list(project, after, size + 1, filter?.replace(/\b\w+:me\b/g, '').trim());
    const items = rows.slice(0, size);
    const last = items.at(-1);
    return { items, nextPageToken: rows.length > size && last ? encodePageToken({ createTime: last.createTime, id: last.id }) : undefined };
  }

  patch(project: string, id: string, patch: TunedModelPatch): TunedModel {
    const model = this.get(project, id);
    if (patch.displayName !== undefined && patch.displayName.length > tuningLimits.displayNameChars) {
      throw invalidArgument(`displayName must be at most ${tuningLimits.displayNameChars} characters`, 'tuned_model.display_name');
    }
    validateSampling(patch);
    Object.assign(model, definedOnly(patch), { updateTime: now() });
    this.store.save(model);
    return model;
  }

  delete(project: string, id: string): void {
    const model = this.get(project, id);
    if (model.state === 'CREATING') this.control.cancel(id);
    this.store.delete(id);
    rmSync(this.adapterDir(id), { recursive: true, force: true });
    rmSync(this.checkpointDir(id), { recursive: true, force: true });
    for (const listener of this.deletionListeners) listener(id);
  }

  /** Asks a run to stop; the model ends ACTIVE if a step completed (the adapter is usable), else FAILED. */
  cancel(project: string, id: string): TunedModel {
    const model = this.get(project, id);
    if (model.state === 'CREATING') {
      this.jobs.requestCancel(id);
      this.control.cancel(id);
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

  recordMetric(id: string, metric: StepMetric): void {
    this.store.addMetric(id, metric);
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

  /** The model first: a crash in between leaves a 'running' job, which the scheduler drops when it sees the model done. */
  private finish(id: string, change: (m: TunedModel) => void): void {
    this.update(id, (m) => {
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

function resolveHyperparameters(given: Partial<Hyperparameters>, examples: number): Hyperparameters {
  const { epochCount, batchSize, learningRate, learningRateMultiplier, adapterRank } = given;
  const positiveInteger = (value: number | undefined, field: string, max: number) => {
    if (value !== undefined && !(Number.isInteger(value) && value >= 1 && value <= max)) {
      throw invalidArgument(`${field} must be an integer from 1 to ${max}, not ${value}`, `tuned_model.tuning_task.hyperparameters.${field}`);
    }
  };
  positiveInteger(epochCount, 'epoch_count', tuningLimits.maxEpochCount);
  positiveInteger(batchSize, 'batch_size', tuningLimits.maxBatchSize);
  if (learningRate !== undefined && learningRateMultiplier !== undefined) {
    throw invalidArgument('set learningRate or learningRateMultiplier, not both', 'tuned_model.tuning_task.hyperparameters');
  }
  for (const [field, value] of [['learning_rate', learningRate], ['learning_rate_multiplier', learningRateMultiplier]] as const) {
    if (value !== undefined && !(value > 0)) {
      throw invalidArgument(`${field} must be a positive number, not ${value}`, `tuned_model.tuning_task.hyperparameters.${field}`);
    }
  }
  const resolved: Hyperparameters = {
    epochCount: epochCount ?? tuningDefaults.epochCount,
    batchSize: batchSize ?? defaultBatchSize(examples),
    adapterRank: adapterRank ?? tuningDefaults.adapterRank,
  };
  if (learningRateMultiplier !== undefined) resolved.learningRateMultiplier = learningRateMultiplier;
  else resolved.learningRate = learningRate ?? tuningDefaults.baseLearningRate;
  return resolved;
}

/** The absolute peak learning rate a run uses. */
export function learningRateOf(h: Hyperparameters): number {
  return h.learningRate ?? (h.learningRateMultiplier ?? 1) * tuningDefaults.baseLearningRate;
}

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
